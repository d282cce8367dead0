"""Services, EndpointSlices and v1 Endpoints, checked as the API server checks them
(pkg/apis/core/validation ValidateService, ValidateServiceUpdate, ValidateEndpoints;
pkg/apis/discovery/validation ValidateEndpointSlice), for a decoded and defaulted object.
Paths and wording are upstream's.

What this agent does not do, refused with a clear error rather than accepted and ignored:
SCTP ports (no SCTP in the rules), IPv6 and dual-stack (the service CIDR is IPv4). A
LoadBalancer is accepted and served as a NodePort (there is no cloud to give it an address):
`service_warnings` says so, for `apply` to print."""

from __future__ import annotations

import copy
import ipaddress

from kubelet_py.api import names
from kubelet_py.api.errors import (NOT_SUPPORTED, TOO_MANY, FieldError, Path, duplicate, forbidden, invalid,
                                   not_supported, required)
from kubelet_py.api.meta_validation import messages_as_errors, validate_labels
from kubelet_py.api.service_defaults import externally_accessible
from kubelet_py.api.volume_validation import enum_errors

SPEC = Path("spec")
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
AFFINITIES = ("ClientIP", "None")
PROTOCOLS = ("TCP", "UDP")  # upstream also has SCTP: refused below with its own words
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
IP_FAMILIES = ("IPv4", "IPv6")
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_AFFINITY_TIMEOUT = 86400  # core.MaxClientIPServiceAffinitySeconds
MAX_SLICE_ENDPOINTS, MAX_SLICE_ADDRESSES, MAX_SLICE_PORTS, MAX_TOPOLOGY_LABELS = 1000, 100, 100, 16
SCTP_DETAIL = 'supported values: "TCP", "UDP" (SCTP Services are not implemented by this agent)'
LOAD_BALANCER_WARNING = ("this node has no load-balancer provider: the Service is served as a NodePort (its "
                         "EXTERNAL-IP stays <pending>)")


def is_headless(svc: dict) -> bool:
    ips = (svc.get("spec") or {}).get("clusterIPs") or []
    return len(ips) == 1 and ips[0] == "None"


def _protocol(value: str, path: Path) -> list[FieldError]:
    if value == "SCTP":
        return [FieldError(NOT_SUPPORTED, path, value, SCTP_DETAIL)]
    return enum_errors(value, path, PROTOCOLS)


def _port_num_or_name(port, path: Path) -> list[FieldError]:
    if isinstance(port, int):
        return messages_as_errors(path, port, names.is_valid_port_num(port))
    return messages_as_errors(path, port, names.is_valid_port_name(port))


def non_special_ip(ip: str, path: Path) -> list[FieldError]:
    """ValidateNonSpecialIP: no unspecified, loopback, link-local or link-local multicast address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return [invalid(path, ip, "must be a valid IP address")]
    errs = []
    if addr.is_unspecified:
        errs.append(invalid(path, ip, f"may not be unspecified ({ip})"))
    if addr.is_loopback:
        errs.append(invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if addr.is_link_local and not addr.is_multicast:
        errs.append(invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if addr in ipaddress.ip_network("224.0.0.0/24") or (addr.version == 6 and str(addr).startswith("ff02:")):
        errs.append(invalid(path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return errs


def _service_port(port: dict, require_name: bool, seen: set, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    name = port.get("name", "")
    if require_name and not name:
        errs.append(required(path.child("name")))
    elif name:
        errs += messages_as_errors(path.child("name"), name, names.is_dns1123_label(name))
        if name in seen:
            errs.append(duplicate(path.child("name"), name))
        seen.add(name)
    errs += messages_as_errors(path.child("port"), port.get("port", 0), names.is_valid_port_num(port.get("port", 0)))
    errs += _protocol(port.get("protocol", ""), path.child("protocol"))
    errs += _port_num_or_name(port.get("targetPort", 0), path.child("targetPort"))
    if "appProtocol" in port:
        errs += messages_as_errors(path.child("appProtocol"), port["appProtocol"],
                                   names.is_qualified_name(port["appProtocol"]))
    return errs


def _cluster_ips(spec: dict) -> list[FieldError]:
    """ValidateServiceClusterIPsRelatedFields."""
    errs: list[FieldError] = []
    path = SPEC.child("clusterIPs")
    cip, cips = spec.get("clusterIP", ""), spec.get("clusterIPs") or []
    if cip:
        if not cips:
            errs.append(required(path))
        elif cips[0] != cip:
            errs.append(invalid(path, cips, "first value must match `clusterIP`"))
    elif cips:
        errs.append(invalid(path, cips, "must be empty when `clusterIP` is not specified"))
    seen = set()
    for i, fam in enumerate(spec.get("ipFamilies") or []):
        if fam not in IP_FAMILIES:
            errs.append(not_supported(SPEC.child("ipFamilies").index(i), fam, IP_FAMILIES))
        if fam in seen:
            errs.append(duplicate(SPEC.child("ipFamilies").index(i), fam))
        seen.add(fam)
    if "ipFamilyPolicy" in spec and spec["ipFamilyPolicy"] not in IP_FAMILY_POLICIES:
        errs.append(not_supported(SPEC.child("ipFamilyPolicy"), spec["ipFamilyPolicy"], IP_FAMILY_POLICIES))
    bad = False
    for i, ip in enumerate(cips):
        if i == 0 and ip == "None":
            if len(cips) > 1:
                bad = True
                errs.append(invalid(path, cips, "'None' must be the first and only value"))
            continue
        msgs = names.is_valid_ip(ip)
        bad = bad or bool(msgs)
        errs += messages_as_errors(path.index(i), ip, msgs)
    if len(cips) > 2:
        errs.append(invalid(path, cips, "may only hold up to 2 values"))
    if bad:
        return errs
    if len(cips) > 1 and len({ipaddress.ip_address(ip).version for ip in cips}) != len(cips):
        errs.append(invalid(path, cips, "may specify no more than one IP for each IP family"))
    return errs


def validate_service(svc: dict) -> list[FieldError]:
    """ValidateService's spec checks (metadata is checked by the dispatcher)."""
    spec = svc.get("spec") or {}
    kind = spec.get("type", "")
    ports = spec.get("ports") or []
    errs: list[FieldError] = []
    headless = is_headless(svc)
    if not ports and not headless and kind != "ExternalName":
        errs.append(required(SPEC.child("ports")))
    if kind in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid(SPEC.child("clusterIPs").index(0), "None",
                            f"may not be set to 'None' for {kind} services"))
    elif kind == "ExternalName":
        if spec.get("clusterIPs"):
            errs.append(forbidden(SPEC.child("clusterIPs"), "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            errs.append(forbidden(SPEC.child("ipFamilies"), "may not be set for ExternalName services"))
        if "ipFamilyPolicy" in spec:
            errs.append(forbidden(SPEC.child("ipFamilyPolicy"), "may not be set for ExternalName services"))
        cname = spec.get("externalName", "").removesuffix(".")
        if cname:
            errs += messages_as_errors(SPEC.child("externalName"), cname, names.is_dns1123_subdomain(cname))
        else:
            errs.append(required(SPEC.child("externalName")))
    seen: set = set()
    for i, port in enumerate(ports):
        errs += _service_port(port, len(ports) > 1, seen, SPEC.child("ports").index(i))
    if "selector" in spec:
        errs += validate_labels(spec["selector"], SPEC.child("selector"))
    affinity = spec.get("sessionAffinity", "")
    errs += enum_errors(affinity, SPEC.child("sessionAffinity"), AFFINITIES)
    cfg_path = SPEC.child("sessionAffinityConfig")
    if affinity == "ClientIP":
        timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
        if timeout is None:
            errs.append(required(cfg_path.child("clientIP", "timeoutSeconds"),
                                 "when session affinity type is ClientIP"))
        elif not 0 < timeout <= MAX_AFFINITY_TIMEOUT:
            errs.append(invalid(cfg_path.child("clientIP", "timeoutSeconds"), timeout,
                                f"must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}"))
    elif affinity == "None" and "sessionAffinityConfig" in spec:
        errs.append(forbidden(cfg_path, "must not be set when session affinity is None"))
    if kind != "ExternalName":
        errs += _cluster_ips(spec)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        msgs = names.is_valid_ip(ip)
        errs += messages_as_errors(SPEC.child("externalIPs").index(i), ip, msgs) if msgs \
            else non_special_ip(ip, SPEC.child("externalIPs").index(i))
    errs += enum_errors(kind, SPEC.child("type"), SERVICE_TYPES)
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if port.get("nodePort"):
                errs.append(forbidden(SPEC.child("ports").index(i).child("nodePort"),
                                      "may not be used when `type` is 'ClusterIP'"))
    node_ports, pairs = set(), set()
    for i, port in enumerate(ports):
        if port.get("nodePort"):
            key = (port.get("protocol"), port["nodePort"])
            if key in node_ports:
                errs.append(duplicate(SPEC.child("ports").index(i).child("nodePort"), port["nodePort"]))
            node_ports.add(key)
    for i, port in enumerate(ports):
        key = (port.get("protocol"), port.get("port"))
        if key in pairs:
            errs.append(duplicate(SPEC.child("ports").index(i), {"protocol": key[0], "port": key[1]}))
        pairs.add(key)
    if spec.get("loadBalancerSourceRanges"):
        lbr = SPEC.child("LoadBalancerSourceRanges")
        if kind != "LoadBalancer":
            errs.append(forbidden(lbr, "may only be used when `type` is 'LoadBalancer'"))
        for i, cidr in enumerate(spec["loadBalancerSourceRanges"]):
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                errs.append(invalid(lbr.index(i), cidr.strip(),
                                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
    if "allocateLoadBalancerNodePorts" in spec and kind != "LoadBalancer":
        errs.append(forbidden(SPEC.child("allocateLoadBalancerNodePorts"),
                              "may only be used when `type` is 'LoadBalancer'"))
    errs += _traffic_policies(spec)
    return errs


def _traffic_policies(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    etp = spec.get("externalTrafficPolicy", "")
    if not externally_accessible(spec):
        if etp:
            errs.append(invalid(SPEC.child("externalTrafficPolicy"), etp,
                                "may only be set for externally-accessible services"))
    else:
        errs += enum_errors(etp, SPEC.child("externalTrafficPolicy"), TRAFFIC_POLICIES)
    if spec.get("healthCheckNodePort"):
        if not (spec.get("type") == "LoadBalancer" and etp == "Local"):
            errs.append(invalid(SPEC.child("healthCheckNodePort"), spec["healthCheckNodePort"],
                                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    itp = spec.get("internalTrafficPolicy")
    if itp is None:
        if spec.get("type") in ("ClusterIP", "NodePort", "LoadBalancer"):
            errs.append(required(SPEC.child("internalTrafficPolicy")))
    elif itp not in TRAFFIC_POLICIES:
        errs.append(not_supported(SPEC.child("internalTrafficPolicy"), itp, TRAFFIC_POLICIES))
    if "trafficDistribution" in spec and spec["trafficDistribution"] != "PreferClose":
        errs.append(not_supported(SPEC.child("trafficDistribution"), spec["trafficDistribution"], ("PreferClose",)))
    return errs


def service_warnings(svc: dict) -> list[FieldError]:
    """What `apply` should print for a Service this agent accepts but serves differently."""
    if (svc.get("spec") or {}).get("type") == "LoadBalancer":
        return [FieldError(NOT_SUPPORTED, "spec.type", "LoadBalancer", LOAD_BALANCER_WARNING)]
    return []


# --- updates -------------------------------------------------------------------------------

def patch_allocated_values(new: dict, old: dict) -> dict:
    """The Service strategy's patchAllocatedValues on a PUT: a clusterIP, clusterIPs and nodePort
    the new manifest leaves out are kept from the stored Service (a re-applied manifest never
    names what was allocated). Returns a new dict."""
    out = copy.deepcopy(new)
    nspec, ospec = out.setdefault("spec", {}), old.get("spec") or {}
    if _needs_cluster_ip(ospec) and _needs_cluster_ip(nspec):
        if not nspec.get("clusterIP"):
            nspec["clusterIP"] = ospec.get("clusterIP", "")
        if not nspec.get("clusterIPs") and ospec.get("clusterIPs"):
            nspec["clusterIPs"] = list(ospec["clusterIPs"])
        for key in ("ipFamilies", "ipFamilyPolicy"):
            if key not in nspec and key in ospec:
                nspec[key] = copy.deepcopy(ospec[key])
    if _needs_node_port(ospec) and _needs_node_port(nspec):
        used = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in ospec.get("ports") or []
                if p.get("nodePort")}
        for p in nspec.get("ports") or []:
            if not p.get("nodePort") and (p.get("port"), p.get("protocol")) in used:
                p["nodePort"] = used[(p.get("port"), p.get("protocol"))]
    return out


def _needs_cluster_ip(spec: dict) -> bool:
    return spec.get("type") != "ExternalName"


def _needs_node_port(spec: dict) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def validate_service_update(new: dict, old: dict) -> list[FieldError]:
    """ValidateServiceUpdate's own rules (the new Service is valid on its own): a clusterIP,
    once set, may not change (unless either side is ExternalName or both are headless)."""
    nspec, ospec = new.get("spec") or {}, old.get("spec") or {}
    if "ExternalName" in (nspec.get("type"), ospec.get("type")):
        return []
    if is_headless(new) and is_headless(old):
        return []
    errs: list[FieldError] = []
    path = SPEC.child("clusterIPs")
    ncips, ocips = nspec.get("clusterIPs") or [], ospec.get("clusterIPs") or []
    if len(ncips) == len(ocips):
        for i, ip in enumerate(ocips):
            if ip != ncips[i]:
                errs.append(invalid(path.index(i), ncips, "may not change once set"))
    elif len(ncips) < len(ocips):
        if not ncips:
            errs.append(invalid(path.index(0), ncips, "primary clusterIP can not be unset"))
        elif ncips[0] != ocips[0]:
            errs.append(invalid(path.index(0), ncips, "may not change once set"))
    elif ocips and ncips[0] != ocips[0]:
        errs.append(invalid(path.index(0), ncips, "may not change once set"))
    return errs


# --- EndpointSlices and Endpoints ------------------------------------------------------------

def validate_endpoint_slice(eps: dict) -> list[FieldError]:
    """ValidateEndpointSlice (create)."""
    errs: list[FieldError] = []
    atype = eps.get("addressType", "")
    errs += enum_errors(atype, Path("addressType"), ADDRESS_TYPES)
    endpoints, path = eps.get("endpoints") or [], Path("endpoints")
    if len(endpoints) > MAX_SLICE_ENDPOINTS:
        errs.append(FieldError(TOO_MANY, path, len(endpoints), f"must have at most {MAX_SLICE_ENDPOINTS} items"))
        endpoints = []
    for i, ep in enumerate(endpoints):
        addr_path = path.index(i).child("addresses")
        addrs = ep.get("addresses") or []
        if not addrs:
            errs.append(required(addr_path, "must contain at least 1 address"))
        elif len(addrs) > MAX_SLICE_ADDRESSES:
            errs.append(FieldError(TOO_MANY, addr_path, len(addrs), f"must have at most {MAX_SLICE_ADDRESSES} items"))
        for j, a in enumerate(addrs):
            errs += _slice_address(atype, a, addr_path.index(j))
        topo = ep.get("deprecatedTopology") or {}
        if len(topo) > MAX_TOPOLOGY_LABELS:
            errs.append(FieldError(TOO_MANY, path.index(i).child("deprecatedTopology"), len(topo),
                                   f"must have at most {MAX_TOPOLOGY_LABELS} items"))
        errs += validate_labels(topo, path.index(i).child("deprecatedTopology"))
        if "hostname" in ep:
            errs += messages_as_errors(path.index(i).child("hostname"), ep["hostname"],
                                       names.is_dns1123_label(ep["hostname"]))
    ports, ppath = eps.get("ports") or [], Path("ports")
    if len(ports) > MAX_SLICE_PORTS:
        return errs + [FieldError(TOO_MANY, ppath, len(ports), f"must have at most {MAX_SLICE_PORTS} items")]
    seen: set = set()
    for i, port in enumerate(ports):
        name = port.get("name", "")
        if name:
            errs += messages_as_errors(ppath.index(i).child("name"), name, names.is_dns1123_label(name))
        if name in seen:
            errs.append(duplicate(ppath.index(i).child("name"), name))
        seen.add(name)
        errs += _protocol(port.get("protocol", ""), ppath.index(i).child("protocol"))
        if "port" in port:
            errs += messages_as_errors(ppath.index(i).child("port"), port["port"],
                                       names.is_valid_port_num(port["port"]))
        if "appProtocol" in port:
            errs += messages_as_errors(ppath.index(i).child("appProtocol"), port["appProtocol"],
                                       names.is_qualified_name(port["appProtocol"]))
    return errs


def _slice_address(atype: str, address: str, path: Path) -> list[FieldError]:
    if atype in ("IPv4", "IPv6"):
        version = 4 if atype == "IPv4" else 6
        try:
            ok = ipaddress.ip_address(address).version == version
        except ValueError:
            ok = False
        if not ok:
            word = "IPv4" if version == 4 else "IPv6"
            return [invalid(path, address, f"must be a valid {word} address")]
        return non_special_ip(address, path)
    if atype == "FQDN":
        return messages_as_errors(path, address, names.is_dns1123_subdomain(address))
    return []


def validate_endpoints(ep: dict) -> list[FieldError]:
    """ValidateEndpoints (v1 Endpoints): addresses, hostnames, ports."""
    errs: list[FieldError] = []
    for i, subset in enumerate(ep.get("subsets") or []):
        spath = Path("subsets").index(i)
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            errs.append(required(spath, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(subset.get(key) or []):
                apath = spath.child(key).index(j)
                ip = addr.get("ip", "")
                msgs = names.is_valid_ip(ip)
                errs += (messages_as_errors(apath.child("ip"), ip, msgs) if msgs
                         else non_special_ip(ip, apath.child("ip")))
                if addr.get("hostname"):
                    errs += messages_as_errors(apath.child("hostname"), addr["hostname"],
                                               names.is_dns1123_label(addr["hostname"]))
        ports = subset.get("ports") or []
        for j, port in enumerate(ports):
            ppath = spath.child("ports").index(j)
            name = port.get("name", "")
            if len(ports) > 1 and not name:
                errs.append(required(ppath.child("name")))
            elif name:
                errs += messages_as_errors(ppath.child("name"), name, names.is_dns1123_label(name))
            errs += messages_as_errors(ppath.child("port"), port.get("port", 0),
                                       names.is_valid_port_num(port.get("port", 0)))
            errs += _protocol(port.get("protocol", ""), ppath.child("protocol"))
    return errs
