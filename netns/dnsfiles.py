"""Contents of a pod's /etc/hosts, /etc/hostname and /etc/resolv.conf (pure), as the kubelet
writes them (kubelet-semantics.md 4.5; `kubelet_pods.go` managedHostsFileContent,
`network/dns/dns.go` GetPodDNS, containerd's resolv.conf writer)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import PodSpecError

HOSTNAME_MAX = 63
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
DEFAULT_OPTIONS = ("ndots:5",)
POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class HostAlias:
    ip: str
    hostnames: tuple[str, ...]


@dataclass(frozen=True)
class DNSOption:
    name: str
    value: str | None = None


@dataclass(frozen=True)
class DNSConfig:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[DNSOption, ...] = ()


@dataclass(frozen=True)
class PodDNS:
    """The fields of a pod that shape its name files."""

    name: str
    namespace: str = "default"
    hostname: str = ""
    subdomain: str = ""
    host_aliases: tuple[HostAlias, ...] = ()
    dns_policy: str = "ClusterFirst"
    dns_config: DNSConfig | None = None


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        """containerd's order: search, nameserver lines, options."""
        out = ""
        if self.searches:
            out += "search " + " ".join(self.searches) + "\n"
        for ns in self.nameservers:
            out += f"nameserver {ns}\n"
        if self.options:
            out += "options " + " ".join(self.options) + "\n"
        return out


def pod_dns_from_spec(pod_uid: str, name: str, namespace: str, spec: Mapping[str, Any]) -> PodDNS:
    """PodDNS from a pod spec in the Kubernetes shape; errors name the field path."""
    def err(fld, value, why):
        return PodSpecError(pod_uid, f"spec.{fld}", value, why)

    aliases = []
    for i, a in enumerate(spec.get("hostAliases") or ()):
        if not isinstance(a, Mapping):
            raise err(f"hostAliases[{i}]", a, "must be a mapping")
        names = a.get("hostnames") or ()
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise err(f"hostAliases[{i}].hostnames", names, "must be a list of names")
        aliases.append(HostAlias(a.get("ip", ""), tuple(names)))
    cfg = None
    dc = spec.get("dnsConfig")
    if dc is not None:
        if not isinstance(dc, Mapping):
            raise err("dnsConfig", dc, "must be a mapping")
        opts = []
        for i, o in enumerate(dc.get("options") or ()):
            if not isinstance(o, Mapping) or not isinstance(o.get("name"), str):
                raise err(f"dnsConfig.options[{i}]", o, "must be a mapping with a name")
            v = o.get("value")
            opts.append(DNSOption(o["name"], None if v is None else str(v)))
        cfg = DNSConfig(tuple(dc.get("nameservers") or ()), tuple(dc.get("searches") or ()), tuple(opts))
    dns = PodDNS(name=name, namespace=namespace, hostname=spec.get("hostname") or "",
                 subdomain=spec.get("subdomain") or "", host_aliases=tuple(aliases),
                 dns_policy=spec.get("dnsPolicy") or "ClusterFirst", dns_config=cfg)
    validate(pod_uid, dns)
    return dns


def validate(pod_uid: str, dns: PodDNS) -> None:
    """The API server's checks on these fields, so bad input fails before anything is made."""
    def err(fld, value, why):
        return PodSpecError(pod_uid, f"spec.{fld}", value, why)

    if dns.hostname and (not _DNS1123_LABEL.fullmatch(dns.hostname) or len(dns.hostname) > HOSTNAME_MAX):
        raise err("hostname", dns.hostname, "must be a DNS-1123 label")
    if dns.subdomain and (not _DNS1123_LABEL.fullmatch(dns.subdomain) or len(dns.subdomain) > HOSTNAME_MAX):
        raise err("subdomain", dns.subdomain, "must be a DNS-1123 label")
    if dns.dns_policy not in POLICIES:
        raise err("dnsPolicy", dns.dns_policy, f"supported: {', '.join(POLICIES)}")
    for i, a in enumerate(dns.host_aliases):
        try:
            ipaddress.ip_address(a.ip)
        except ValueError:
            raise err(f"hostAliases[{i}].ip", a.ip, "must be a valid IP address") from None
        for j, n in enumerate(a.hostnames):
            if not _DNS1123_SUBDOMAIN.fullmatch(n) or len(n) > 253:
                raise err(f"hostAliases[{i}].hostnames[{j}]", n, "must be a DNS-1123 subdomain")
    cfg = dns.dns_config
    if dns.dns_policy == "None" and (cfg is None or not cfg.nameservers):
        raise err("dnsConfig.nameservers", [], "must have at least one nameserver when dnsPolicy is None")
    if cfg is None:
        return
    if len(cfg.nameservers) > MAX_NAMESERVERS:
        raise err("dnsConfig.nameservers", list(cfg.nameservers), f"must not have more than {MAX_NAMESERVERS}")
    for i, ns in enumerate(cfg.nameservers):
        try:
            ipaddress.ip_address(ns)
        except ValueError:
            raise err(f"dnsConfig.nameservers[{i}]", ns, "must be a valid IP address") from None
    if len(cfg.searches) > MAX_SEARCHES:
        raise err("dnsConfig.searches", list(cfg.searches), f"must not have more than {MAX_SEARCHES}")
    if len(" ".join(cfg.searches)) > MAX_SEARCH_CHARS:
        raise err("dnsConfig.searches", list(cfg.searches), f"must not have more than {MAX_SEARCH_CHARS} characters")
    for i, s in enumerate(cfg.searches):
        if not _DNS1123_SUBDOMAIN.fullmatch(s.rstrip(".")) or len(s) > 253:
            raise err(f"dnsConfig.searches[{i}]", s, "must be a DNS-1123 subdomain")
    for i, o in enumerate(cfg.options):
        if not o.name:
            raise err(f"dnsConfig.options[{i}].name", o.name, "must not be empty")


# ---- hostname and /etc/hosts ------------------------------------------------------------------------

def pod_hostname(dns: PodDNS) -> str:
    """spec.hostname, else the pod name cut to 63 characters without trailing '-' or '.'."""
    if dns.hostname:
        return dns.hostname
    return dns.name[:HOSTNAME_MAX].rstrip("-.")


def pod_domain(dns: PodDNS, cluster_domain: str) -> str:
    """`<subdomain>.<ns>.svc.<domain>`, or "" without subdomain."""
    if not dns.subdomain:
        return ""
    return f"{dns.subdomain}.{dns.namespace}.svc.{cluster_domain}"


def hostname_file(hostname: str) -> str:
    return hostname + "\n"


def _aliases(aliases: tuple[HostAlias, ...]) -> str:
    if not aliases:
        return ""
    out = "\n# Entries added by HostAliases.\n"
    for a in aliases:
        out += f"{a.ip}\t" + "\t".join(a.hostnames) + "\n"
    return out


def hosts_file(dns: PodDNS, pod_ips: tuple[str, ...], cluster_domain: str) -> str:
    host = pod_hostname(dns)
    domain = pod_domain(dns, cluster_domain)
    out = ("# Kubernetes-managed hosts file.\n"
           "127.0.0.1\tlocalhost\n"
           "::1\tlocalhost ip6-localhost ip6-loopback\n"
           "fe00::0\tip6-localnet\n"
           "fe00::0\tip6-mcastprefix\n"
           "fe00::1\tip6-allnodes\n"
           "fe00::2\tip6-allrouters\n")
    for ip in pod_ips:
        out += f"{ip}\t{host}.{domain}\t{host}\n" if domain else f"{ip}\t{host}\n"
    return out + _aliases(dns.host_aliases)


def host_network_hosts_file(dns: PodDNS, node_hosts: str) -> str:
    if node_hosts and not node_hosts.endswith("\n"):
        node_hosts += "\n"
    return "# Kubernetes-managed hosts file (host network).\n" + node_hosts + _aliases(dns.host_aliases)


# ---- resolv.conf ----------------------------------------------------------------------------------

def parse_resolv_conf(text: str) -> ResolvConf:
    """The kubelet's parser: comments (# ;) dropped, every nameserver kept, the last search line
    wins (trailing dots removed, "." dropped), options accumulated."""
    ns: list[str] = []
    searches: list[str] = []
    opts: list[str] = []
    for line in text.splitlines():
        line = re.split(r"[#;]", line, maxsplit=1)[0]
        f = line.split()
        if not f:
            continue
        if f[0] == "nameserver" and len(f) > 1:
            ns.append(f[1])
        elif f[0] in ("search", "domain") and len(f) > 1:
            searches = [s.rstrip(".") for s in f[1:] if s != "."]
        elif f[0] == "options":
            opts = _merge_options(opts, f[1:])
    return ResolvConf(tuple(ns), tuple(searches), tuple(opts))


def _dedup(items) -> list[str]:
    seen, out = set(), []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _merge_options(existing, new) -> list[str]:
    """Options merged by name, later ones winning; first-seen order kept (the kubelet's map order
    is random, so any order is upstream's)."""
    merged: dict[str, str | None] = {}
    for o in list(existing) + list(new):
        if isinstance(o, DNSOption):
            name, value = o.name, o.value
        else:
            name, _, value = o.partition(":")
            value = value or None
        merged[name] = value
    return [n if v in (None, "") else f"{n}:{v}" for n, v in merged.items()]


def effective_policy(dns: PodDNS, host_network: bool, cluster_dns: tuple[str, ...]) -> str:
    policy = dns.dns_policy
    if policy == "ClusterFirst" and host_network:
        policy = "Default"
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    if policy == "ClusterFirst" and not cluster_dns:
        policy = "Default"
    return policy


def resolv_conf(dns: PodDNS, host: ResolvConf, cluster_dns: tuple[str, ...], cluster_domain: str,
                host_network: bool = False) -> tuple[ResolvConf, tuple[str, ...]]:
    """(resolv.conf of the pod, warnings) for its dnsPolicy and dnsConfig."""
    warnings: list[str] = []
    policy = effective_policy(dns, host_network, cluster_dns)
    if dns.dns_policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        warnings.append("MissingClusterDNS: no cluster DNS configured; falling back to the node's resolv.conf")
    if policy == "ClusterFirst":
        d = cluster_domain
        ns = list(cluster_dns)
        searches = _dedup([f"{dns.namespace}.svc.{d}", f"svc.{d}", d] + list(host.searches))
        opts = list(DEFAULT_OPTIONS)
    elif policy == "Default":
        ns, searches, opts = list(host.nameservers), list(host.searches), list(host.options)
    else:  # None
        ns, searches, opts = [], [], []
    cfg = dns.dns_config
    if cfg is not None:
        ns = _dedup(ns + list(cfg.nameservers))
        searches = _dedup(searches + [s.rstrip(".") for s in cfg.searches])
        opts = _merge_options(opts, cfg.options)
    if len(ns) > MAX_NAMESERVERS:
        warnings.append(f"DNSConfigForming: nameserver limits were exceeded, some nameservers have been "
                        f"omitted, the applied nameserver line is: {' '.join(ns[:MAX_NAMESERVERS])}")
        ns = ns[:MAX_NAMESERVERS]
    if len(searches) > MAX_SEARCHES or len(" ".join(searches)) > MAX_SEARCH_CHARS:
        kept: list[str] = []
        for s in searches:
            if len(kept) == MAX_SEARCHES or len(" ".join(kept + [s])) > MAX_SEARCH_CHARS:
                break
            kept.append(s)
        warnings.append(f"DNSConfigForming: search line limits were exceeded, some search paths have been "
                        f"omitted, the applied search line is: {' '.join(kept)}")
        searches = kept
    return ResolvConf(tuple(ns), tuple(searches), tuple(opts)), tuple(warnings)
