"""Cluster DNS: the records (resolver, pure) and the UDP+TCP server that answers them and
forwards the rest (server, edge)."""

from kubelet_py.dns.resolver import TTL, Resolver, Result
from kubelet_py.dns.server import DNSServer, host_upstreams, parse_resolv_conf

__all__ = ["Resolver", "Result", "TTL", "DNSServer", "host_upstreams", "parse_resolv_conf"]
