"""Defaults of Services, EndpointSlices and v1 Endpoints as the API server fills them in before
validation (pure): `SetDefaults_Service`, `SetDefaults_EndpointPort` (core/v1 and discovery/v1)
and what the Service strategy's PrepareForCreate does first (status reset, clusterIP and
clusterIPs kept in step). Each function changes the dict it is given: defaults.set_defaults
calls them on its own copy.

Allocation (clusterIP, nodePorts, ipFamilies, ipFamilyPolicy) is not a default: it needs the
other Services and happens when the object is stored (kubelet_py/services/alloc.py)."""

from __future__ import annotations

DEFAULT_CLIENT_IP_TIMEOUT = 10800  # v1.DefaultClientIPServiceAffinitySeconds
EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


def externally_accessible(spec: dict) -> bool:
    """apiservice.ExternallyAccessible: NodePort, LoadBalancer, or ClusterIP with externalIPs."""
    kind = spec.get("type")
    return kind in EXTERNAL_TYPES or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def service(svc: dict) -> None:
    spec = svc.setdefault("spec", {})
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        cfg = spec.get("sessionAffinityConfig") or {}
        if (cfg.get("clientIP") or {}).get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    for port in spec.get("ports") or []:
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port", 0)
    if externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    # the strategy's PrepareForCreate/normalizeClusterIPs: clusterIP and clusterIPs[0] agree
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif not spec.get("clusterIP") and spec.get("clusterIPs"):
        spec["clusterIP"] = spec["clusterIPs"][0]
    svc["status"] = {"loadBalancer": {}}


def endpoint_slice(eps: dict) -> None:
    for port in eps.get("ports") or []:
        port.setdefault("name", "")
        if not port.get("protocol"):
            port["protocol"] = "TCP"


def endpoints(ep: dict) -> None:
    for subset in ep.get("subsets") or []:
        for port in subset.get("ports") or []:
            if not port.get("protocol"):
                port["protocol"] = "TCP"
