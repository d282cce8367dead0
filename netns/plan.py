"""The pure core of pod networking: configuration, kernel object names, hostPort parsing and
conflict rules, IPAM arithmetic. No syscalls, no root; everything here is unit-tested.

Names are derived from the pod uid so that every object can be found again after a crash:
host veth  `<veth_prefix><12 hex of sha256(uid)>`  (kpy + 12 = 15 chars, the IFNAMSIZ limit)
chains     `<chain_prefix>-MASQ-<hash>`, `<chain_prefix>-HP-<hash>`  (same 12 hex)
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .errors import ConfigError, PodSpecError, PortConflict

IFNAMSIZ = 15                 # usable characters of a Linux interface name
CHAIN_MAX = 28                # iptables chain names: XT_EXTENSION_MAXNAMELEN - 1
HASH_LEN = 12                 # hex characters of sha256(uid) used in names
POD_IFNAME = "eth0"
ALL_ADDRESSES = "0.0.0.0"     # a hostPort without hostIP listens on every node address

_IFNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CHAIN_PREFIX_RE = re.compile(r"^[A-Z][A-Z0-9]*$")
# a pod uid as the runtime takes it (runtime.sandbox.check_uid): a DNS label, which a
# Kubernetes UID (a lowercase UUID) and a static pod's hash both are
_UID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class NetworkConfig:
    """One pod network. Every name and path is a parameter so that tests and several instances
    can run side by side (a test uses e.g. bridge `kpyt1a2b`, 10.250.7.1/24, prefix `KPYT1A2B`)."""

    state_root: str = "/var/lib/kubelet-py"   # <state_root>/ipam, <state_root>/hostports, <state_root>/podnet
    bridge: str = "kpy0"
    gateway: str = "10.244.0.1/16"           # the bridge's address; its prefix is the pod CIDR
    chain_prefix: str = "KPY"
    veth_prefix: str = "kpy"
    mtu: int | None = None                   # None: keep the bridge's MTU (1500 for a new bridge)
    hostport_mark: int = 0x2000              # portmap's SNAT bit 13; kube-proxy's masquerade bit is 14
    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    host_resolv_conf: str = "/etc/resolv.conf"
    host_hosts_file: str = "/etc/hosts"
    node_ip: str | None = None               # hostNetwork pod IP; None: the default route's source
    cluster_cidr: str | None = None          # every node's pod CIDR (serve --cluster-cidr): never NATed; None: ours

    def __post_init__(self):
        object.__setattr__(self, "cluster_dns", tuple(self.cluster_dns))
        if not isinstance(self.bridge, str) or not _IFNAME_RE.fullmatch(self.bridge) or len(self.bridge) > IFNAMSIZ:
            raise ConfigError("bridge", self.bridge, f"not an interface name of 1-{IFNAMSIZ} characters")
        if not _IFNAME_RE.fullmatch(self.veth_prefix or "") or len(self.veth_prefix) > IFNAMSIZ - 8:
            raise ConfigError("veth_prefix", self.veth_prefix, "1-7 characters of an interface name")
        if not _CHAIN_PREFIX_RE.fullmatch(self.chain_prefix or ""):
            raise ConfigError("chain_prefix", self.chain_prefix, "upper-case letters and digits")
        longest = f"{self.chain_prefix}-POSTROUTING"
        if max(len(longest), len(self.chain_prefix) + len("-MASQ-") + HASH_LEN) > CHAIN_MAX:
            raise ConfigError("chain_prefix", self.chain_prefix, f"chain names would exceed {CHAIN_MAX} characters")
        try:
            iface = ipaddress.IPv4Interface(self.gateway)
        except ValueError as e:
            raise ConfigError("gateway", self.gateway, f"not an IPv4 address/prefix: {e}") from None
        net = iface.network
        if net.prefixlen > 30:
            raise ConfigError("gateway", self.gateway, "the pod CIDR needs a prefix of /30 or shorter")
        if iface.ip in (net.network_address, net.broadcast_address):
            raise ConfigError("gateway", self.gateway, "the gateway must be a host address of its network")
        if self.mtu is not None and not (68 <= self.mtu <= 65535):
            raise ConfigError("mtu", self.mtu, "must be 68-65535")
        if not (0 < self.hostport_mark < 2**32) or self.hostport_mark & (self.hostport_mark - 1):
            raise ConfigError("hostport_mark", self.hostport_mark, "must be a single bit")
        for i, ns in enumerate(self.cluster_dns):
            try:
                ipaddress.ip_address(ns)
            except ValueError:
                raise ConfigError(f"cluster_dns[{i}]", ns, "not an IP address") from None
        if self.node_ip is not None:
            try:
                ipaddress.IPv4Address(self.node_ip)
            except ValueError:
                raise ConfigError("node_ip", self.node_ip, "not an IPv4 address") from None
        if self.cluster_cidr is not None:
            try:
                cluster = ipaddress.IPv4Network(self.cluster_cidr, strict=False)
            except ValueError as e:
                raise ConfigError("cluster_cidr", self.cluster_cidr, f"not an IPv4 network: {e}") from None
            if not net.subnet_of(cluster):
                raise ConfigError("cluster_cidr", self.cluster_cidr, f"must contain this node's pod CIDR {net}")

    # derived values
    @property
    def cidr(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Interface(self.gateway).network

    @property
    def no_masquerade_cidr(self) -> ipaddress.IPv4Network:
        """Where pod traffic keeps its source address: the cluster's pod range (pods on other
        nodes, reached through routes, as the Kubernetes network model asks), else this node's."""
        return ipaddress.IPv4Network(self.cluster_cidr, strict=False) if self.cluster_cidr else self.cidr

    @property
    def gateway_ip(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Interface(self.gateway).ip

    @property
    def prefixlen(self) -> int:
        return self.cidr.prefixlen

    @property
    def ipam_dir(self) -> str:
        return os.path.join(self.state_root, "ipam")

    @property
    def hostports_dir(self) -> str:
        return os.path.join(self.state_root, "hostports")

    @property
    def records_dir(self) -> str:
        """One record per pod whose setup finished (the PodNetwork it returned)."""
        return os.path.join(self.state_root, "podnet")

    def chain(self, suffix: str) -> str:
        return f"{self.chain_prefix}-{suffix}"

    @property
    def postrouting_chain(self) -> str:
        return self.chain("POSTROUTING")

    @property
    def hostports_chain(self) -> str:
        return self.chain("HOSTPORTS")

    @property
    def firewall_chain(self) -> str:
        return self.chain("FIREWALL")

    @property
    def masq_chain_prefix(self) -> str:
        return self.chain("MASQ-")

    @property
    def hostport_chain_prefix(self) -> str:
        return self.chain("HP-")


# ---- names --------------------------------------------------------------------------------------

def check_uid(pod_uid: object) -> str:
    if not isinstance(pod_uid, str) or not _UID_RE.fullmatch(pod_uid):
        raise PodSpecError(str(pod_uid), "pod_uid", pod_uid,
                           "must be 1-63 lowercase letters, digits and '-', starting with a letter or digit")
    return pod_uid


def uid_hash(pod_uid: str) -> str:
    return hashlib.sha256(pod_uid.encode()).hexdigest()[:HASH_LEN]


def host_veth_name(config: NetworkConfig, pod_uid: str) -> str:
    return config.veth_prefix + uid_hash(pod_uid)[:IFNAMSIZ - len(config.veth_prefix)]


def masq_chain(config: NetworkConfig, pod_uid: str) -> str:
    return config.masq_chain_prefix + uid_hash(pod_uid)


def hostport_chain(config: NetworkConfig, pod_uid: str) -> str:
    return config.hostport_chain_prefix + uid_hash(pod_uid)


def link_alias(config: NetworkConfig, pod_uid: str) -> str:
    """IFLA_IFALIAS of a host veth: says whose it is even when it is no longer on the bridge."""
    return f"kubelet-py bridge={config.bridge} pod={pod_uid}"


def parse_link_alias(alias: str | None) -> tuple[str, str] | None:
    """(bridge, pod_uid) from an alias written by link_alias, else None."""
    m = re.fullmatch(r"kubelet-py bridge=(\S+) pod=(\S+)", alias or "")
    return (m.group(1), m.group(2)) if m else None


# ---- hostPorts ----------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class PortMapping:
    """One hostPort: traffic to <host_ip or any node address>:<host_port>/<protocol> goes to the
    pod's <container_port>."""

    protocol: str          # "tcp" or "udp"
    host_port: int
    container_port: int
    host_ip: str = ALL_ADDRESSES
    source: str = field(default="", compare=False)   # field path of the pod's ports[] entry

    @property
    def key(self) -> str:
        """File name of the claim under <root>/hostports/ and the text used in messages."""
        return f"{self.protocol}-{self.host_port}-{self.host_ip}"

    def __str__(self) -> str:
        where = "" if self.host_ip == ALL_ADDRESSES else f"{self.host_ip}:"
        return f"{where}{self.host_port}/{self.protocol}"

    def overlaps(self, other: "PortMapping") -> bool:
        return (self.protocol == other.protocol and self.host_port == other.host_port
                and (self.host_ip == other.host_ip or ALL_ADDRESSES in (self.host_ip, other.host_ip)))


def parse_key(key: str) -> PortMapping | None:
    """The mapping a claim file name stands for (container_port is not part of the key)."""
    m = re.fullmatch(r"(tcp|udp)-(\d{1,5})-(\d+\.\d+\.\d+\.\d+)", key)
    if not m:
        return None
    return PortMapping(m.group(1), int(m.group(2)), 0, m.group(3))


def _port(pod_uid: str, fld: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise PodSpecError(pod_uid, fld, value, "must be an integer 1-65535")
    return value


def parse_ports(pod_uid: str, ports: Iterable[Mapping | PortMapping] | None,
                host_network: bool = False) -> tuple[PortMapping, ...]:
    """The hostPorts of a pod from `ports[]` entries in the Kubernetes shape (containerPort,
    hostPort, protocol, hostIP; the kubelet passes every container's ports in order) or from
    PortMapping objects. Entries without hostPort are not mappings, except with hostNetwork, where
    hostPort defaults to containerPort (the container binds it itself). Two entries of the pod
    that claim the same hostPort are an error (the API server refuses them too)."""
    out: list[PortMapping] = []
    for i, p in enumerate(ports or ()):
        fld = f"ports[{i}]"
        if isinstance(p, PortMapping):
            p = {"containerPort": p.container_port, "hostPort": p.host_port, "protocol": p.protocol,
                 "hostIP": "" if p.host_ip == ALL_ADDRESSES else p.host_ip}
        if not isinstance(p, Mapping):
            raise PodSpecError(pod_uid, fld, p, "must be a mapping")
        unknown = set(p) - {"name", "containerPort", "hostPort", "protocol", "hostIP"}
        if unknown:
            raise PodSpecError(pod_uid, f"{fld}.{sorted(unknown)[0]}", p[sorted(unknown)[0]], "unknown field")
        cport = _port(pod_uid, f"{fld}.containerPort", p.get("containerPort"))
        hport = p.get("hostPort") or 0
        if hport == 0:
            if not host_network:
                continue
            hport = cport
        hport = _port(pod_uid, f"{fld}.hostPort", hport)
        if host_network and hport != cport:
            raise PodSpecError(pod_uid, f"{fld}.hostPort", hport, "must equal containerPort with hostNetwork")
        proto = p.get("protocol") or "TCP"
        if not isinstance(proto, str) or proto.upper() not in ("TCP", "UDP"):
            raise PodSpecError(pod_uid, f"{fld}.protocol", proto, "supported: TCP, UDP")
        host_ip = p.get("hostIP") or ALL_ADDRESSES
        try:
            addr = ipaddress.IPv4Address(host_ip)
        except (ValueError, TypeError):
            raise PodSpecError(pod_uid, f"{fld}.hostIP", host_ip, "not an IPv4 address") from None
        if addr.is_multicast or (addr.is_unspecified and host_ip != ALL_ADDRESSES):
            raise PodSpecError(pod_uid, f"{fld}.hostIP", host_ip, "not a unicast address")
        m = PortMapping(proto.lower(), hport, cport, str(addr), source=fld)
        for prev in out:
            if prev.overlaps(m):
                raise PortConflict(pod_uid, f"{fld}.hostPort", str(m), pod_uid)
        out.append(m)
    return tuple(out)


def find_conflict(mappings: Iterable[PortMapping], claimed: Mapping[str, str],
                  pod_uid: str) -> tuple[int, PortMapping, str] | None:
    """First (index, mapping, owner) of `mappings` that collides with a claim of another pod.
    `claimed` maps claim keys to owner uids."""
    others = [(parse_key(k), owner) for k, owner in claimed.items() if owner != pod_uid]
    for i, m in enumerate(mappings):
        for held, owner in others:
            if held is not None and held.overlaps(m):
                return i, m, owner
    return None


# ---- IPAM arithmetic (host-local's range: .1 .. broadcast-1, gateway skipped) --------------------

def usable_range(config: NetworkConfig) -> tuple[int, int]:
    net = config.cidr
    return int(net.network_address) + 1, int(net.broadcast_address) - 1


def next_free(config: NetworkConfig, taken: Iterable[str], last: str | None) -> str | None:
    """The address to allocate: round-robin from the one after `last` (host-local's
    last_reserved_ip), wrapping around, skipping the gateway and every taken address.
    None when the range is exhausted."""
    lo, hi = usable_range(config)
    gw = int(config.gateway_ip)
    used = set()
    for t in taken:
        try:
            used.add(int(ipaddress.IPv4Address(t)))
        except ValueError:
            continue
    used.add(gw)
    start = lo
    if last is not None:
        try:
            v = int(ipaddress.IPv4Address(last))
            if lo <= v <= hi:
                start = v + 1 if v < hi else lo
        except ValueError:
            pass
    size = hi - lo + 1
    if len([u for u in used if lo <= u <= hi]) >= size:
        return None
    cand = start
    for _ in range(size):
        if cand not in used:
            return str(ipaddress.IPv4Address(cand))
        cand = cand + 1 if cand < hi else lo
    return None


def in_range(config: NetworkConfig, ip: str) -> bool:
    try:
        v = int(ipaddress.IPv4Address(ip))
    except ValueError:
        return False
    lo, hi = usable_range(config)
    return lo <= v <= hi and v != int(config.gateway_ip)


# ---- results ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PodFiles:
    """Paths of the per-pod files the runtime bind-mounts (None when not written)."""

    hosts: str | None = None
    hostname: str | None = None
    resolv_conf: str | None = None


@dataclass(frozen=True)
class PodNetwork:
    """What setup_pod_network made for one pod."""

    pod_uid: str
    ip: str
    gateway: str | None
    prefixlen: int | None
    host_network: bool = False
    ifname: str | None = POD_IFNAME
    host_veth: str | None = None
    mtu: int | None = None
    ports: tuple[PortMapping, ...] = ()
    files: PodFiles = field(default_factory=PodFiles)
    warnings: tuple[str, ...] = ()     # e.g. DNS limits exceeded (the kubelet turns them into events)
