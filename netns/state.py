"""Pure: what a pod's network looks like when it is complete, compared with what was observed.

The edges report plain values (LinkState from netlink, PodSide from inside the pod netns, the
IP and hostPort entries from disk, the record of a finished setup); the functions here say what is
wrong as (field, message) pairs, field being the PodNetwork field concerned or "bridge", "rules",
"record". setup_pod_network uses them to skip what is already right and redo only the rest;
pod_network uses them to refuse to report a half-made network as a whole one.

The record (<state_root>/podnet/<uid>.json) is the PodNetwork a setup returned, written last; it
is what a restarted daemon reads back (to_record / from_record)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Mapping

from .plan import NetworkConfig, PodFiles, PodNetwork, PortMapping, host_veth_name, in_range, link_alias

RECORD_VERSION = 1
Problem = tuple[str, str]


@dataclass(frozen=True)
class Bridge:
    name: str
    index: int
    mtu: int


@dataclass(frozen=True)
class LinkState:
    """One link as netlink reports it."""

    name: str
    index: int
    kind: str | None                  # "bridge", "veth", ... (None: a physical link)
    up: bool
    mtu: int
    master: int | None = None         # ifindex of the bridge it is a port of
    peer: int | None = None           # a veth's IFLA_LINK: its peer's ifindex (in the peer's netns)
    alias: str | None = None
    addresses: tuple[str, ...] = ()   # IPv4 "a.b.c.d/len"
    hairpin: bool | None = None       # bridge ports only


@dataclass(frozen=True)
class PodSide:
    """The pod netns as setup leaves it: eth0, lo, the default route."""

    eth0: LinkState | None
    lo_up: bool
    default_routes: tuple[tuple[str | None, int | None], ...] = ()   # (gateway, oif)


# ---- checks --------------------------------------------------------------------------------------

def bridge_problems(config: NetworkConfig, br: LinkState | None) -> list[Problem]:
    name = config.bridge
    if br is None:
        return [("bridge", f"bridge {name} is missing")]
    out = []
    if br.kind != "bridge":
        out.append(("bridge", f"link {name} is a {br.kind or 'physical'} link, not a bridge"))
    if not br.up:
        out.append(("bridge", f"bridge {name} is down"))
    gw = f"{config.gateway_ip}/{config.prefixlen}"
    if gw not in br.addresses:
        out.append(("gateway", f"bridge {name} lacks the gateway address {gw}"))
    if config.mtu and br.mtu != config.mtu:
        out.append(("mtu", f"bridge {name} has mtu {br.mtu}, not {config.mtu}"))
    return out


def veth_problems(config: NetworkConfig, pod_uid: str, veth: LinkState | None, bridge: Bridge) -> list[Problem]:
    name = host_veth_name(config, pod_uid)
    if veth is None:
        return [("host_veth", f"host veth {name} is missing")]
    out = []
    if veth.kind != "veth":
        out.append(("host_veth", f"link {name} is a {veth.kind or 'physical'} link, not a veth"))
    if veth.master != bridge.index:
        out.append(("host_veth", f"host veth {name} is not on bridge {bridge.name}"))
    if not veth.up:
        out.append(("host_veth", f"host veth {name} is down"))
    if veth.alias != link_alias(config, pod_uid):
        out.append(("host_veth", f"host veth {name} does not name the pod in its alias"))
    if veth.hairpin is False:
        out.append(("host_veth", f"host veth {name} has hairpin mode off"))
    if veth.mtu != bridge.mtu:
        out.append(("mtu", f"host veth {name} has mtu {veth.mtu}, not the bridge's {bridge.mtu}"))
    return out


def pod_side_problems(config: NetworkConfig, ip: str, veth: LinkState, pod: PodSide) -> list[Problem]:
    eth0 = pod.eth0
    if eth0 is None:
        return [("ifname", "eth0 is missing in the pod network namespace")]
    out = []
    if eth0.peer != veth.index or (veth.peer is not None and veth.peer != eth0.index):
        out.append(("ifname", f"eth0 in the pod network namespace is not the peer of {veth.name}"))
    if not eth0.up:
        out.append(("ifname", "eth0 is down"))
    want = f"{ip}/{config.prefixlen}"
    if eth0.addresses != (want,):
        out.append(("ip", f"eth0 has addresses {list(eth0.addresses)}, not [{want!r}]"))
    if eth0.mtu != veth.mtu:
        out.append(("mtu", f"eth0 has mtu {eth0.mtu}, not {veth.mtu}"))
    if pod.default_routes != ((str(config.gateway_ip), eth0.index),):
        out.append(("gateway", f"the pod's default routes are {list(pod.default_routes)}, "
                               f"not one via {config.gateway_ip} on eth0"))
    if not pod.lo_up:
        out.append(("ifname", "lo is down in the pod network namespace"))
    return out


def record_problems(config: NetworkConfig, rec: PodNetwork, ip: str | None,
                    claims: Iterable[str]) -> list[Problem]:
    """The record against the IP and hostPort entries on disk (`ip`: the address IPAM holds for
    the pod; `claims`: the keys of the hostPort claims it holds)."""
    out = []
    held = sorted(claims)
    want = sorted(m.key for m in rec.ports)
    if held != want:
        out.append(("ports", f"hostPort claims {held} do not match the recorded ports {want}"))
    if rec.host_network:
        if ip is not None:
            out.append(("ip", f"IP {ip} is allocated to a hostNetwork pod"))
        return out
    if ip is None:
        out.append(("ip", f"IP {rec.ip} is recorded but not allocated"))
    elif ip != rec.ip:
        out.append(("ip", f"IP {rec.ip} is recorded but {ip} is allocated"))
    elif not in_range(config, ip):
        out.append(("ip", f"IP {ip} is outside the pod CIDR {config.cidr}"))
    if rec.gateway != str(config.gateway_ip) or rec.prefixlen != config.prefixlen:
        out.append(("gateway", f"recorded gateway {rec.gateway}/{rec.prefixlen} is not {config.gateway}"))
    if rec.host_veth != host_veth_name(config, rec.pod_uid):
        out.append(("host_veth", f"recorded veth {rec.host_veth} is not this network's name for the pod"))
    return out


# ---- the record ----------------------------------------------------------------------------------

def to_record(net: PodNetwork) -> bytes:
    doc = {
        "version": RECORD_VERSION, "pod_uid": net.pod_uid, "ip": net.ip, "gateway": net.gateway,
        "prefixlen": net.prefixlen, "host_network": net.host_network, "ifname": net.ifname,
        "host_veth": net.host_veth, "mtu": net.mtu,
        "ports": [{"protocol": m.protocol, "host_port": m.host_port, "container_port": m.container_port,
                   "host_ip": m.host_ip, "source": m.source} for m in net.ports],
        "files": {"hosts": net.files.hosts, "hostname": net.files.hostname, "resolv_conf": net.files.resolv_conf},
        "warnings": list(net.warnings),
    }
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def from_record(data: bytes) -> PodNetwork:
    """Raises ValueError (with what is wrong) on anything but a record to_record wrote."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(doc, Mapping) or doc.get("version") != RECORD_VERSION:
        raise ValueError(f"not a version {RECORD_VERSION} pod network record")
    try:
        ports = tuple(PortMapping(p["protocol"], p["host_port"], p["container_port"], p["host_ip"], p["source"])
                      for p in doc["ports"])
        f = doc["files"]
        return PodNetwork(doc["pod_uid"], doc["ip"], doc["gateway"], doc["prefixlen"],
                          host_network=doc["host_network"], ifname=doc["ifname"], host_veth=doc["host_veth"],
                          mtu=doc["mtu"], ports=ports, files=PodFiles(f["hosts"], f["hostname"], f["resolv_conf"]),
                          warnings=tuple(doc["warnings"]))
    except KeyError as e:
        raise ValueError(f"field {e} is missing") from None
    except (TypeError, AttributeError) as e:
        raise ValueError(f"a field has the wrong type: {e}") from None
