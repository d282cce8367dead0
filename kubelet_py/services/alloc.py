"""ClusterIPs and nodePorts for Services, as the API server's allocators hand them out
(pkg/registry/core/service/ipallocator, portallocator, storage/alloc.go). Pure.

There is no allocation state of its own to persist: what is taken is read from the stored
Services themselves, each time (the way upstream's repair loops rebuild their bitmaps from the
Services). A Service checkpointed with its clusterIP keeps it over any restart; one that was
never stored never took anything. So the daemon calls

    svc = allocate(svc, stored_services)   # on create, and on update after api.update (which keeps
                                           # the clusterIP and nodePorts the stored version holds)

with the stored Services of every namespace except this one (`others` may include it: a Service
is never in its own way). Errors are ApiErrors naming the field, in upstream's words:

    spec.clusterIPs: Invalid value: ["10.0.0.5"]: failed to allocate IP 10.0.0.5: provided IP is not
        in the valid range. The range of valid IPs is 10.96.0.0/12
    spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated

Conventions kept: `.1` is the `default/kubernetes` Service's and `.10` the cluster DNS
Service's (`kube-system/kube-dns`); nobody else gets them, asked or not. Dynamic ClusterIPs come
from above the static band (the first 256 addresses, upstream's ServiceIPStaticSubrange) while
there is room, so addresses picked by hand rarely collide with allocated ones."""

from __future__ import annotations

import copy
import ipaddress
import random
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from kubelet_py.api.errors import (FAILED_PRECONDITION, INVALID_ARGUMENT, ApiError, FieldError, Path, invalid)
from kubelet_py.api.meta_validation import object_ref

SPEC = Path("spec")
DNS_SERVICE = ("kube-system", "kube-dns")
KUBERNETES_SERVICE = ("default", "kubernetes")


@dataclass(frozen=True)
class AllocConfig:
    cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.96.0.0/12")
    node_ports: tuple[int, int] = (30000, 32767)
    # offset in the CIDR -> the (namespace, name) it is kept for
    reserved: Mapping[int, tuple[str, str]] = field(
        default_factory=lambda: {1: KUBERNETES_SERVICE, 10: DNS_SERVICE})

    @property
    def first(self) -> int:
        return int(self.cidr.network_address) + 1

    @property
    def last(self) -> int:  # the broadcast address is not handed out
        return int(self.cidr.broadcast_address) - 1

    def reserved_ip(self, key: tuple[str, str]) -> str | None:
        for offset, owner in self.reserved.items():
            if owner == key:
                return str(self.cidr.network_address + offset)
        return None

    @property
    def dns_ip(self) -> str:
        return str(self.cidr.network_address + 10)


DEFAULT = AllocConfig()


def _key(svc: Mapping) -> tuple[str, str]:
    meta = svc.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name", "")


@dataclass
class Taken:
    """What the stored Services hold: ClusterIPs and nodePorts, each with its owner."""
    ips: dict[str, tuple[str, str]] = field(default_factory=dict)
    node_ports: dict[int, tuple[str, str]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)


def taken(services: Iterable[Mapping], *, exclude: tuple[str, str] | None = None) -> Taken:
    """Rebuild the allocation state from stored Services (upstream's repair). Two stored Services
    holding the same address or port (a hand-edited checkpoint) are listed in `conflicts`; the
    first one keeps it."""
    out = Taken()
    for svc in services:
        key = _key(svc)
        if key == exclude:
            continue
        spec = svc.get("spec") or {}
        for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
            if ip in ("", "None"):
                continue
            if ip in out.ips and out.ips[ip] != key:
                out.conflicts.append(f"clusterIP {ip} of {key[0]}/{key[1]} is also {'/'.join(out.ips[ip])}'s")
                continue
            out.ips[ip] = key
        for port in spec.get("ports") or []:
            np = port.get("nodePort")
            if not np:
                continue
            if np in out.node_ports and out.node_ports[np] != key:
                out.conflicts.append(f"nodePort {np} of {key[0]}/{key[1]} is also {'/'.join(out.node_ports[np])}'s")
                continue
            out.node_ports[np] = key
    return out


def _fail(svc: Mapping, errs: list[FieldError], kind: str = INVALID_ARGUMENT) -> ApiError:
    ref = object_ref({"kind": "Service", **svc})
    return ApiError([e.at(obj=ref) for e in errs], kind=kind)


def allocate(svc: Mapping, others: Iterable[Mapping], cfg: AllocConfig = DEFAULT, *,
             rng: random.Random | None = None) -> dict:
    """The Service with its ipFamilies, ipFamilyPolicy, clusterIP(s) and nodePorts filled in, or
    ApiError. What it asks for that it already holds (an update) stays its own. `rng` picks free
    addresses and ports (random, as upstream; seed it in tests)."""
    out = copy.deepcopy(dict(svc))
    spec = out.setdefault("spec", {})
    key = _key(out)
    state = taken(others, exclude=key)
    rng = rng or random.Random()
    if spec.get("type") == "ExternalName":
        return out
    errs = _families(spec)
    if errs:
        raise _fail(out, errs)
    _cluster_ip(out, spec, key, state, cfg, rng)
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        _node_ports(out, spec, key, state, cfg, rng)
    elif spec.get("type") == "ClusterIP":
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    return out


def _families(spec: dict) -> list[FieldError]:
    """initIPFamilyFields on a single-stack IPv4 cluster."""
    errs: list[FieldError] = []
    headless = (spec.get("clusterIPs") or [""])[0] == "None"
    policy = spec.get("ipFamilyPolicy")
    if policy is None:
        policy = "RequireDualStack" if headless and not spec.get("selector") else "SingleStack"
    elif policy == "RequireDualStack" and not (headless and not spec.get("selector")):
        errs.append(invalid(SPEC.child("ipFamilyPolicy"), policy,
                            "this cluster is not configured for dual-stack services"))
    for i, fam in enumerate(spec.get("ipFamilies") or []):
        if fam != "IPv4":
            errs.append(invalid(SPEC.child("ipFamilies").index(i), fam, "not configured on this cluster"))
    for i, ip in enumerate(spec.get("clusterIPs") or []):
        if ip != "None" and ipaddress.ip_address(ip).version != 4:
            errs.append(invalid(SPEC.child("clusterIPs").index(i), ip, "IPv6 is not configured on this cluster"))
    if not errs:
        spec["ipFamilyPolicy"] = policy
        spec["ipFamilies"] = ["IPv4"]
    return errs


def _cluster_ip(svc: dict, spec: dict, key, state: Taken, cfg: AllocConfig, rng: random.Random) -> None:
    cips = spec.get("clusterIPs") or []
    if cips and cips[0] == "None":
        spec["clusterIP"] = "None"
        return
    if cips:
        ip = cips[0]
        value = int(ipaddress.IPv4Address(ip))
        reason = None
        if not cfg.first <= value <= cfg.last:
            reason = f"provided IP is not in the valid range. The range of valid IPs is {cfg.cidr}"
        elif state.ips.get(ip, key) != key:
            reason = "provided IP is already allocated"
        else:
            owner = cfg.reserved.get(value - int(cfg.cidr.network_address))
            if owner is not None and owner != key:
                reason = "provided IP is already allocated"
        if reason:
            raise _fail(svc, [invalid(SPEC.child("clusterIPs"), cips, f"failed to allocate IP {ip}: {reason}")])
        spec["clusterIP"] = ip
        return
    want = cfg.reserved_ip(key)
    if want is not None and want not in state.ips:
        ip = want
    else:
        ip = _next_ip(state, cfg, rng)
        if ip is None:
            raise _fail(svc, [FieldError("Internal error", SPEC.child("clusterIPs"), detail=(
                "failed to allocate a serviceIP: range is full"))], FAILED_PRECONDITION)
    spec["clusterIP"] = ip
    spec["clusterIPs"] = [ip]


def _next_ip(state: Taken, cfg: AllocConfig, rng: random.Random) -> str | None:
    size = cfg.last - cfg.first + 3  # the CIDR's size (network and broadcast included)
    static = 0 if size <= 16 else min(max(16, size // 16), 256)  # calculateRangeOffset
    base = int(cfg.cidr.network_address)
    reserved = {base + o for o in cfg.reserved}
    for lo, hi in ((cfg.first + static, cfg.last), (cfg.first, min(cfg.first + static - 1, cfg.last))):
        if hi < lo:
            continue
        start = rng.randint(lo, hi)
        n = hi - lo + 1
        for i in range(n):  # a linear probe from a random start, as the bitmap allocator scans
            value = lo + (start - lo + i) % n
            ip = str(ipaddress.IPv4Address(value))
            if value not in reserved and ip not in state.ips:
                return ip
    return None


def _node_ports(svc: dict, spec: dict, key, state: Taken, cfg: AllocConfig, rng: random.Random) -> None:
    """initNodePorts: a port given is checked and taken, a missing one allocated; the same
    service port number under two protocols shares one nodePort."""
    lo, hi = cfg.node_ports
    allocate_new = spec.get("type") == "NodePort" or spec.get("allocateLoadBalancerNodePorts", True)
    mine: dict[int, int] = {}
    ports = spec.get("ports") or []
    errs: list[FieldError] = []
    for i, port in enumerate(ports):
        np = port.get("nodePort") or 0
        path = SPEC.child("ports").index(i).child("nodePort")
        if np == 0 and not allocate_new:
            continue
        if np == 0:
            np = mine.get(port.get("port")) or next((p.get("nodePort") for p in ports[i + 1:]
                                                    if p.get("port") == port.get("port") and p.get("nodePort")), 0)
        if np:
            if not lo <= np <= hi:
                errs.append(invalid(path, np, f"provided port is not in the valid range. The range of valid ports is "
                                              f"{lo}-{hi}"))
                continue
            if state.node_ports.get(np, key) != key:
                errs.append(invalid(path, np, "provided port is already allocated"))
                continue
        else:
            np = _next_port(state, lo, hi, rng)
            if np is None:
                raise _fail(svc, [FieldError("Internal error", path, detail=(
                    "failed to allocate a nodePort: range is full"))], FAILED_PRECONDITION)
        port["nodePort"] = np
        state.node_ports[np] = key
        mine.setdefault(port.get("port"), np)
    if errs:
        raise _fail(svc, errs)


def _next_port(state: Taken, lo: int, hi: int, rng: random.Random) -> int | None:
    n = hi - lo + 1
    start = rng.randint(lo, hi)
    for i in range(n):
        port = lo + (start - lo + i) % n
        if port not in state.node_ports:
            return port
    return None
