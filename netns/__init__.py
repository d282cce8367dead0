"""Pod networking and services: what the CNI bridge plugin, host-local IPAM, portmap and
kube-proxy (iptables mode) do.

Never imports kubelet_py or runtime; takes and returns plain dataclasses. The pure core is
`plan` (config, names, ports, IPAM arithmetic), `rules` (iptables rules as data) and `dnsfiles`
(/etc/hosts, hostname, resolv.conf); the edges are `netlink` (pyroute2), `iptables`
(python-iptables, one commit per table per change), `ipam`/`hostports`/`ownedfiles` (files +
flock), `podrecords` (one record per finished setup), `atomicfile`, `nsfs` (setns), `sysctl` and
`podfiles`; `network` puts them together; `state` (pure) says what a complete pod network looks
like; `fake` is a recording double of the edges for unit tests of `network`. Services: `services`
(pure: the kube-proxy rule set as data) and `servicesync` (edge: `ServiceProxy`, one commit per
table, conntrack through pyroute2).

The names below are loaded on first use, so importing the pure modules (`netns.plan`, ...) does
not load pyroute2 or libiptc.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "setup_pod_network": "network", "teardown_pod_network": "network", "pod_network": "network", "gc": "network",
    "remove_network": "network", "GCReport": "network", "DEFAULT_CONFIG": "network",
    "NetworkConfig": "plan", "PodNetwork": "plan", "PodFiles": "plan", "PortMapping": "plan",
    "PodDNS": "dnsfiles", "HostAlias": "dnsfiles", "DNSConfig": "dnsfiles", "DNSOption": "dnsfiles",
    "pod_dns_from_spec": "dnsfiles",
    "NetnsError": "errors", "ConfigError": "errors", "PodSpecError": "errors", "PortConflict": "errors",
    "AddressExhausted": "errors", "LinkError": "errors", "RuleError": "errors", "StateError": "errors",
    "NetworkNotFound": "errors", "NetworkInconsistent": "errors",
    "ServiceSpecError": "errors", "ServiceSyncError": "errors",
    "ServicePort": "services", "Endpoint": "services", "ServiceRules": "services",
    "ServiceProxy": "servicesync", "SyncResult": "servicesync",
    "ensure_bridge": "netlink", "ensure_local_address": "netlink",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'netns' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value
