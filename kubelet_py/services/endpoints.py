"""The EndpointSlice controller, its mirroring twin and the legacy Endpoints controller, for
one node (pure): Services + Pods (with their status) in, `discovery.k8s.io/v1` EndpointSlices
and `v1` Endpoints out, as upstream's controllers compute them
(pkg/controller/endpointslice, endpointslicemirroring, endpoint; staging endpointslice/util).

- A Service with a selector: its namespace's pods whose labels match, not terminal and with an
  IP, become endpoints with `ready` (ready and not terminating, or publishNotReadyAddresses),
  `serving` (ready) and `terminating` (deletionTimestamp set), a targetRef, the node name, the
  hostname when `spec.hostname` is set and `spec.subdomain` names the Service. Ports are the
  Service's, each targetPort resolved per pod (a name is looked up among the pod's container
  ports of that protocol; a pod that lacks it leaves that port out, so it lands in a slice of
  its own). Slices hold at most 100 endpoints; a Service with no pod gets one empty slice.
- A Service without a selector: no controller slices. The user's EndpointSlices (labelled
  `kubernetes.io/service-name`) are used as given, and a `v1` Endpoints object of the Service's
  name is mirrored into slices (ready addresses ready, notReadyAddresses not), as upstream's
  mirroring controller does.

Slice names are `<service>-<5 characters>` like upstream's generateName, but derived from the
Service's uid and the slice's port set, so a recomputation gives the same names and the daemon
can diff by name: `reconcile(...)` says what to write and what to delete."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
LABEL_ENDPOINTS_MANAGED_BY = "endpoints.kubernetes.io/managed-by"
ENDPOINTS_CONTROLLER = "endpoint-controller"
CONTROLLER = "endpointslice-controller.k8s.io"
MIRRORING_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
MANAGERS = (CONTROLLER, MIRRORING_CONTROLLER)
MAX_ENDPOINTS_PER_SLICE = 100
MAX_MIRRORED_ADDRESSES = 1000
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's utilrand alphanumerics


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def _ns(obj: Mapping) -> str:
    return _meta(obj).get("namespace") or "default"


def selects(svc: Mapping, pod: Mapping) -> bool:
    """The Service's selector (equality on every key) matches the pod, in the same namespace.
    A Service without a selector (or with an empty one) selects nothing."""
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector or _ns(svc) != _ns(pod):
        return False
    labels = _meta(pod).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def pod_ready(pod: Mapping) -> bool:
    """podutil.IsPodReady: the Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def pod_ips(pod: Mapping) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    return ips or ([status["podIP"]] if status.get("podIP") else [])


def should_be_endpoint(pod: Mapping, include_terminating: bool) -> bool:
    """ShouldPodBeInEndpoints: not Succeeded/Failed, has an IP, and (unless terminating ones are
    wanted) not being deleted."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not _meta(pod).get("deletionTimestamp")


def find_port(pod: Mapping, svc_port: Mapping) -> int | None:
    """podutil.FindPort: a number as is; a name among the containers' (and sidecars') ports of
    the Service port's protocol; None when no port has that name."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    proto = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for c in list(spec.get("containers") or []) + sidecars:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return p.get("containerPort")
    return None


def _headless(svc: Mapping) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def _ip_family(ip: str) -> str:
    return "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"


def _ip_key(ip: str):
    return ipaddress.ip_address(ip).packed


def endpoint_ports(svc: Mapping, pod: Mapping) -> list[dict]:
    """getEndpointPorts: the Service's ports with targetPort resolved for this pod."""
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        num = find_port(pod, sp)
        if num is None:
            continue
        port = {"name": sp.get("name", ""), "port": num, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def pod_endpoint(pod: Mapping, svc: Mapping, address_type: str = "IPv4") -> dict:
    """podToEndpoint."""
    meta, spec = _meta(pod), pod.get("spec") or {}
    serving = pod_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    ep = {"addresses": [ip for ip in pod_ips(pod) if _ip_family(ip) == address_type],
          "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
          "targetRef": {"kind": "Pod", "namespace": _ns(pod), "name": meta.get("name", ""), "uid": meta.get("uid", "")}}
    if spec.get("nodeName"):
        ep["nodeName"] = spec["nodeName"]
    if should_set_hostname(pod, svc):
        ep["hostname"] = spec["hostname"]
    return ep


def should_set_hostname(pod: Mapping, svc: Mapping) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == _meta(svc).get("name") and _ns(pod) == _ns(svc)


def _suffix(*parts: str) -> str:
    n = int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:8], "big")
    out = ""
    for _ in range(5):
        n, r = divmod(n, len(_ALPHABET))
        out += _ALPHABET[r]
    return out


def _owner(svc: Mapping) -> dict:
    meta = _meta(svc)
    return {"apiVersion": "v1", "kind": "Service", "name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "controller": True, "blockOwnerDeletion": True}


def _labels(svc: Mapping, manager: str, source_labels: Mapping | None = None) -> dict:
    """setEndpointSliceLabels: the source's labels but the reserved ones, the headless mark, the
    service name and the manager."""
    labels = {k: v for k, v in (source_labels if source_labels is not None else _meta(svc).get("labels") or {}).items()
              if k not in (LABEL_SERVICE_NAME, LABEL_MANAGED_BY)}
    if manager == CONTROLLER:
        if _headless(svc):
            labels[LABEL_HEADLESS] = ""
        else:
            labels.pop(LABEL_HEADLESS, None)
    labels[LABEL_SERVICE_NAME] = _meta(svc).get("name", "")
    labels[LABEL_MANAGED_BY] = manager
    return labels


def _slice(svc: Mapping, manager: str, ports: list, endpoints: list, index: int, labels: Mapping | None = None,
           address_type: str = "IPv4") -> dict:
    name = _meta(svc).get("name", "")
    port_key = ",".join(f"{p['name']}/{p['port']}/{p['protocol']}" for p in ports)
    meta = {"name": f"{name}-{_suffix(_meta(svc).get('uid', '') or name, manager, port_key, str(index))}",
            "generateName": f"{name}-", "namespace": _ns(svc), "labels": _labels(svc, manager, labels)}
    if manager == CONTROLLER:
        meta["ownerReferences"] = [_owner(svc)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": address_type, "endpoints": endpoints, "ports": ports}


def controller_slices(svc: Mapping, pods: Iterable[Mapping]) -> list[dict]:
    """The EndpointSlices the controller keeps for a Service with a selector."""
    spec = svc.get("spec") or {}
    if not spec.get("selector") or spec.get("type") == "ExternalName":
        return []
    groups: dict[tuple, tuple[list, list]] = {}
    headless_no_ports = not spec.get("ports") and _headless(svc)
    for pod in pods:
        if not selects(svc, pod) or not should_be_endpoint(pod, include_terminating=True):
            continue
        ep = pod_endpoint(pod, svc)
        if not ep["addresses"]:
            continue
        ports = [] if headless_no_ports else endpoint_ports(svc, pod)
        key = tuple((p["name"], p["port"], p["protocol"]) for p in ports)
        groups.setdefault(key, (ports, []))[1].append(ep)
    out = []
    for key in sorted(groups):
        ports, eps = groups[key]
        eps.sort(key=lambda e: (_ip_key(e["addresses"][0]), e["targetRef"]["name"]))
        for i in range(0, len(eps), MAX_ENDPOINTS_PER_SLICE):
            out.append(_slice(svc, CONTROLLER, ports, eps[i:i + MAX_ENDPOINTS_PER_SLICE], i // MAX_ENDPOINTS_PER_SLICE))
    if not out:  # the placeholder slice
        out.append(_slice(svc, CONTROLLER, [], [], 0))
    return out


def mirrored_slices(svc: Mapping, endpoints: Mapping) -> list[dict]:
    """The EndpointSliceMirroring controller: a selectorless Service's v1 Endpoints as slices."""
    if (svc.get("spec") or {}).get("selector") or _meta(endpoints).get("name") != _meta(svc).get("name") \
            or _ns(endpoints) != _ns(svc) or (_meta(endpoints).get("labels") or {}).get(LABEL_SKIP_MIRROR) == "true":
        return []
    out, total = [], 0
    src_labels = _meta(endpoints).get("labels") or {}
    for si, subset in enumerate(endpoints.get("subsets") or []):
        ports = [{"name": p.get("name", ""), "port": p.get("port"), "protocol": p.get("protocol") or "TCP",
                  **({"appProtocol": p["appProtocol"]} if p.get("appProtocol") else {})}
                 for p in subset.get("ports") or []]
        eps = []
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for addr in subset.get(key) or []:
                if total >= MAX_MIRRORED_ADDRESSES or _ip_family(addr.get("ip", "")) != "IPv4":
                    continue
                total += 1
                ep = {"addresses": [addr["ip"]], "conditions": {"ready": ready}}
                if addr.get("hostname"):
                    ep["hostname"] = addr["hostname"]
                if addr.get("nodeName"):
                    ep["nodeName"] = addr["nodeName"]
                if addr.get("targetRef"):
                    ep["targetRef"] = dict(addr["targetRef"])
                eps.append(ep)
        for i in range(0, len(eps), MAX_ENDPOINTS_PER_SLICE):
            out.append(_slice(svc, MIRRORING_CONTROLLER, ports, eps[i:i + MAX_ENDPOINTS_PER_SLICE],
                              si * 1000 + i // MAX_ENDPOINTS_PER_SLICE, labels=src_labels))
    return out


def legacy_endpoints(svc: Mapping, pods: Iterable[Mapping]) -> dict | None:
    """The `v1` Endpoints the endpoints controller keeps for a Service with a selector (what
    `get endpoints` lists): ready addresses, notReadyAddresses, grouped by port set."""
    spec = svc.get("spec") or {}
    if not spec.get("selector") or spec.get("type") == "ExternalName":
        return None
    tolerate = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple, dict] = {}
    for pod in pods:
        if not selects(svc, pod) or not should_be_endpoint(pod, include_terminating=tolerate):
            continue
        ip = pod_ips(pod)[0]
        addr = {"ip": ip, "targetRef": {"kind": "Pod", "namespace": _ns(pod), "name": _meta(pod).get("name", ""),
                                        "uid": _meta(pod).get("uid", "")}}
        if (pod.get("spec") or {}).get("nodeName"):
            addr["nodeName"] = pod["spec"]["nodeName"]
        if should_set_hostname(pod, svc):
            addr["hostname"] = pod["spec"]["hostname"]
        ports = [] if (not spec.get("ports") and _headless(svc)) else \
            [{k: v for k, v in p.items() if k != "appProtocol" or v} for p in endpoint_ports(svc, pod)]
        if spec.get("ports") and not ports:
            continue
        key = tuple((p["name"], p["port"], p["protocol"]) for p in ports)
        group = groups.setdefault(key, {"addresses": [], "notReadyAddresses": [], "ports": ports})
        group["addresses" if tolerate or pod_ready(pod) else "notReadyAddresses"].append(addr)
    subsets = []
    for key in sorted(groups):
        g = groups[key]
        subset = {}
        for k in ("addresses", "notReadyAddresses"):
            if g[k]:
                subset[k] = sorted(g[k], key=lambda a: _ip_key(a["ip"]))
        if g["ports"]:
            subset["ports"] = g["ports"]
        subsets.append(subset)
    labels = {k: v for k, v in (_meta(svc).get("labels") or {}).items()}
    if _headless(svc):
        labels[LABEL_HEADLESS] = ""
    labels[LABEL_ENDPOINTS_MANAGED_BY] = ENDPOINTS_CONTROLLER
    meta = {"name": _meta(svc).get("name", ""), "namespace": _ns(svc), "labels": labels}
    out = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta}
    if subsets:
        out["subsets"] = subsets
    return out


def slices_of(svc: Mapping, slices: Iterable[Mapping]) -> list[Mapping]:
    """Every EndpointSlice of the Service's namespace labelled with its name (what kube-proxy
    and DNS read)."""
    name, ns = _meta(svc).get("name"), _ns(svc)
    return [s for s in slices if _ns(s) == ns and (_meta(s).get("labels") or {}).get(LABEL_SERVICE_NAME) == name]


@dataclass
class Reconciled:
    """What the daemon should store: `slices` (create or update by name; compare addressType,
    endpoints, ports and labels), `delete` (names of managed slices no longer wanted, as
    (namespace, name)), `endpoints` (legacy Endpoints to store for Services with a selector),
    `delete_endpoints` (controller-made Endpoints, labelled endpoints.kubernetes.io/managed-by, of
    Services gone or without a selector now)."""
    slices: list[dict] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)
    endpoints: list[dict] = field(default_factory=list)
    delete_endpoints: list[tuple[str, str]] = field(default_factory=list)


def _controller_made(ep: Mapping) -> bool:
    return (_meta(ep).get("labels") or {}).get(LABEL_ENDPOINTS_MANAGED_BY) == ENDPOINTS_CONTROLLER


def reconcile(services: Sequence[Mapping], pods: Sequence[Mapping], stored_slices: Sequence[Mapping],
              stored_endpoints: Sequence[Mapping] = ()) -> Reconciled:
    """The whole desired set from the current objects (a user's Endpoints, without the
    controller's label, is mirrored for a selectorless Service and never deleted)."""
    out = Reconciled()
    by_ns: dict[str, list[Mapping]] = {}
    for pod in pods:
        by_ns.setdefault(_ns(pod), []).append(pod)
    user_eps = {(_ns(e), _meta(e).get("name")): e for e in stored_endpoints}
    wanted_eps = set()
    for svc in services:
        ns_pods = by_ns.get(_ns(svc), [])
        if (svc.get("spec") or {}).get("selector"):
            out.slices += controller_slices(svc, ns_pods)
            ep = legacy_endpoints(svc, ns_pods)
            if ep is not None:
                out.endpoints.append(ep)
                wanted_eps.add((_ns(svc), _meta(svc).get("name")))
        else:
            ep = user_eps.get((_ns(svc), _meta(svc).get("name")))
            if ep is not None and not _controller_made(ep):
                out.slices += mirrored_slices(svc, ep)
    wanted = {(_ns(s), _meta(s)["name"]) for s in out.slices}
    for s in stored_slices:
        key = (_ns(s), _meta(s).get("name"))
        if (_meta(s).get("labels") or {}).get(LABEL_MANAGED_BY) in MANAGERS and key not in wanted:
            out.delete.append(key)
    out.delete_endpoints = sorted({key for key, ep in user_eps.items() if _controller_made(ep)} - wanted_eps)
    return out


def differs(stored: Mapping, desired: Mapping) -> bool:
    """Whether a stored controller-made EndpointSlice or Endpoints must be rewritten to match
    `desired` (system fields such as uid, resourceVersion and creationTimestamp ignored)."""
    for key in set(stored) | set(desired):
        if key not in ("metadata", "status") and stored.get(key) != desired.get(key):
            return True
    sm, dm = _meta(stored), _meta(desired)
    return any((sm.get(k) or None) != (dm.get(k) or None) for k in ("labels", "annotations", "ownerReferences"))
