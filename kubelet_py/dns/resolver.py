"""Cluster DNS records (pure), as CoreDNS's kubernetes plugin answers them
(plugin/kubernetes: parse.go, kubernetes.go findServices/findPods, object/endpoint.go;
plugin/backend_lookup.go for SRV weights and the SOA), with kubeadm's `ttl 30`:

- `<svc>.<ns>.svc.<zone>`: A = the ClusterIP; for a headless Service the addresses of its
  ready endpoints (no ready endpoint: NXDOMAIN, as CoreDNS); an ExternalName Service: a CNAME.
- SRV `_<port>._<proto>.<svc>.<ns>.svc.<zone>` for each named port (and the bare Service name
  for all its ports): target `<svc>.<ns>.svc.<zone>` for a ClusterIP Service, one per ready
  endpoint `<hostname-or-a-b-c-d>.<svc>.<ns>.svc.<zone>` for a headless one; priority 0, weight
  100/n; the targets' A records in the additional section.
- `<hostname>.<svc>.<ns>.svc.<zone>` and `<a-b-c-d>.<svc>.<ns>.svc.<zone>`: one ready endpoint
  (so a pod with `hostname` and `subdomain: <svc>` behind a headless Service has its FQDN).
- `<a-b-c-d>.<ns>.pod.<zone>`: a pod of that namespace with that IP ("pods verified").
- PTR for ClusterIPs and ready endpoint addresses.
- A name under the zone that matches nothing: NXDOMAIN; one that exists without the asked
  type (AAAA of an IPv4 Service, `<ns>.svc.<zone>`): NODATA. Both carry the zone's SOA.
- Anything else (outside the zone, an unknown reverse name): `resolve` returns None, and the
  server forwards it.

`Resolver.build(...)` indexes every name once from the objects (dicts as the API stores them);
`resolve` is a dictionary lookup. Build a new Resolver when objects change and swap it in."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, A

from kubelet_py.services.endpoints import LABEL_SERVICE_NAME

TTL = 30
DEFAULT_ZONE = "cluster.local"
_ANY = QTYPE.ANY
_MEMO_TYPES = frozenset({QTYPE.A, QTYPE.AAAA, QTYPE.SRV, QTYPE.CNAME, QTYPE.PTR, QTYPE.TXT, QTYPE.MX, QTYPE.NS,
                         QTYPE.SOA, QTYPE.ANY, 64, 65})  # 64/65: SVCB/HTTPS, which browsers ask


@dataclass(frozen=True)
class Result:
    """An authoritative answer: rcode (RCODE.NOERROR / NXDOMAIN), answer records (owner names
    as asked), authority (the SOA of a negative answer), additional (SRV targets' A records)."""
    rcode: int
    answer: tuple = ()
    authority: tuple = ()
    additional: tuple = ()


@dataclass
class _Entry:
    records: dict[int, list] = field(default_factory=dict)  # qtype -> [rdata]
    additional: dict[int, list] = field(default_factory=dict)  # qtype -> [RR]
    answers: dict[int, Result] = field(default_factory=dict)  # memo of answers asked in the canonical case

    def add(self, qtype: int, rdata, extra: Iterable = ()) -> None:
        lst = self.records.setdefault(qtype, [])
        if rdata not in lst:
            lst.append(rdata)
        add = self.additional.setdefault(qtype, [])
        for rr in extra:
            if rr not in add:
                add.append(rr)


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def _ns(obj: Mapping) -> str:
    return _meta(obj).get("namespace") or "default"


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _reverse(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer.lower()


def _ready(endpoint: Mapping) -> bool:
    ready = (endpoint.get("conditions") or {}).get("ready")
    return ready is None or bool(ready)


class Resolver:
    """The records of one snapshot of Services, EndpointSlices, Pods and Namespaces."""

    def __init__(self, zone: str = DEFAULT_ZONE, ttl: int = TTL, serial: int | None = None,
                 dns_ip: str | None = None):
        self.zone = zone.strip(".").lower()
        self.ttl = ttl
        self.names: dict[str, _Entry] = {}
        self.ptr: dict[str, str] = {}
        z = self.zone + "."
        self.soa = RR(z, QTYPE.SOA, ttl=ttl, rdata=SOA(f"ns.dns.{z}", f"hostmaster.{z}",
                                                          (serial if serial is not None else int(time.time()),
                                                           7200, 1800, 86400, ttl)))
        self.dns_ip = dns_ip

    # --- building ------------------------------------------------------------------------------

    @classmethod
    def build(cls, services: Iterable[Mapping] = (), slices: Iterable[Mapping] = (), pods: Iterable[Mapping] = (),
              namespaces: Iterable[str] = (), *, zone: str = DEFAULT_ZONE, ttl: int = TTL, serial: int | None = None,
              dns_ip: str | None = None) -> Resolver:
        r = cls(zone, ttl, serial, dns_ip)
        z = r.zone
        r._entry(z)
        r._entry(f"svc.{z}")
        r._entry(f"pod.{z}")
        if dns_ip:
            r._entry(f"ns.dns.{z}").add(QTYPE.A, A(dns_ip))
            r._entry(z).add(QTYPE.NS, NS(f"ns.dns.{z}."), [RR(f"ns.dns.{z}.", QTYPE.A, ttl=ttl, rdata=A(dns_ip))])
        for ns in namespaces:
            r._entry(f"{ns.lower()}.svc.{z}")
            r._entry(f"{ns.lower()}.pod.{z}")
        by_service: dict[tuple[str, str], list[Mapping]] = {}
        for s in slices:
            name = (_meta(s).get("labels") or {}).get(LABEL_SERVICE_NAME)
            if name and s.get("addressType", "IPv4") in ("IPv4", "IPv6"):
                by_service.setdefault((_ns(s), name), []).append(s)
        for svc in services:
            r._service(svc, by_service.get((_ns(svc), _meta(svc).get("name", "")), []))
        for pod in pods:
            r._pod(pod)
        return r

    def _entry(self, name: str) -> _Entry:
        return self.names.setdefault(name.lower().rstrip("."), _Entry())

    def _a(self, name: str, ip: str) -> RR:
        kind = QTYPE.A if ipaddress.ip_address(ip).version == 4 else QTYPE.AAAA
        return RR(name, kind, ttl=self.ttl, rdata=A(ip) if kind == QTYPE.A else AAAA(ip))

    def _add_ip(self, entry: _Entry, ip: str) -> None:
        if ipaddress.ip_address(ip).version == 4:
            entry.add(QTYPE.A, A(ip))
        else:
            entry.add(QTYPE.AAAA, AAAA(ip))

    def _service(self, svc: Mapping, slices: list[Mapping]) -> None:
        spec = svc.get("spec") or {}
        name, ns = _meta(svc).get("name", "").lower(), _ns(svc).lower()
        base = f"{name}.{ns}.svc.{self.zone}"
        self._entry(f"{ns}.svc.{self.zone}")
        if spec.get("type") == "ExternalName":
            target = spec.get("externalName", "").rstrip(".") + "."
            self._entry(base).add(QTYPE.CNAME, CNAME(target))
            return
        headless = spec.get("clusterIP") in ("None", "", None)
        # ready endpoints: (endpoint name, ip, [(port name, port, proto)])
        endpoints = []
        for s in slices:
            ports = [(p.get("name") or "", p.get("port"), (p.get("protocol") or "TCP")) for p in s.get("ports") or []]
            for ep in s.get("endpoints") or []:
                if not _ready(ep) or not ep.get("addresses"):
                    continue
                ip = ep["addresses"][0]
                endpoints.append(((ep.get("hostname") or dashed(ip)).lower(), ip, ports))
        for host, ip, _ports in endpoints:
            self._add_ip(self._entry(f"{host}.{base}"), ip)
            self.ptr.setdefault(_reverse(ip), f"{host}.{base}.")
        if not headless:
            cips = [ip for ip in spec.get("clusterIPs") or [spec["clusterIP"]] if ip and ip != "None"]
            entry = self._entry(base)
            for ip in cips:
                self._add_ip(entry, ip)
                self.ptr[_reverse(ip)] = base + "."
            extra = [self._a(base + ".", ip) for ip in cips]
            for p in spec.get("ports") or []:
                rdata = SRV(0, 0, p.get("port", 0), base + ".")
                entry.add(QTYPE.SRV, rdata, extra)
                if p.get("name"):
                    self._entry(f"_{p['name'].lower()}._{(p.get('protocol') or 'TCP').lower()}.{base}").add(
                        QTYPE.SRV, rdata, extra)
            return
        if not endpoints:
            return  # a headless Service without a ready endpoint: NXDOMAIN, as CoreDNS
        entry = self._entry(base)
        for host, ip, ports in endpoints:
            self._add_ip(entry, ip)
            extra = [self._a(f"{host}.{base}.", ip)]
            for pname, port, proto in ports:
                rdata = SRV(0, 0, port or 0, f"{host}.{base}.")
                entry.add(QTYPE.SRV, rdata, extra)
                if pname:
                    self._entry(f"_{pname.lower()}._{proto.lower()}.{base}").add(QTYPE.SRV, rdata, extra)

    def _pod(self, pod: Mapping) -> None:
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")] or \
            ([status["podIP"]] if status.get("podIP") else [])
        ns = _ns(pod).lower()
        for ip in ips:
            self._add_ip(self._entry(f"{dashed(ip)}.{ns}.pod.{self.zone}"), ip)

    # --- answering -----------------------------------------------------------------------------

    def is_ours(self, qname: str) -> bool:
        name = qname.lower().rstrip(".")
        return name == self.zone or name.endswith("." + self.zone)

    def resolve(self, qname: str, qtype: int) -> Result | None:
        """The answer to one question, or None when the name is not this server's to answer."""
        name = qname.lower().rstrip(".")
        owner = qname if qname.endswith(".") else qname + "."
        if name.endswith(".in-addr.arpa") or name.endswith(".ip6.arpa"):
            target = self.ptr.get(name)
            if target is None:
                return None
            if qtype not in (QTYPE.PTR, _ANY):
                return Result(RCODE.NOERROR, authority=(self.soa,))
            return Result(RCODE.NOERROR, (RR(owner, QTYPE.PTR, ttl=self.ttl, rdata=PTR(target)),))
        if not (name == self.zone or name.endswith("." + self.zone)):
            return None
        entry = self.names.get(name)
        if entry is None:
            return Result(RCODE.NXDOMAIN, authority=(self.soa,))
        if name == self.zone and qtype in (QTYPE.SOA, _ANY):
            return Result(RCODE.NOERROR, (RR(owner, QTYPE.SOA, ttl=self.ttl, rdata=self.soa.rdata),))
        if owner == name + "." and (qtype in entry.records or qtype in _MEMO_TYPES):
            # asked in lower case, as most stubs do: reuse the answer built once (only for the types
            # clients ask, so that a sweep of all 65536 qtypes cannot grow the memo)
            memo = entry.answers.get(qtype)
            if memo is None:
                memo = entry.answers[qtype] = self._answer(entry, qtype, owner)
            return memo
        return self._answer(entry, qtype, owner)

    def _answer(self, entry: _Entry, qtype: int, owner: str) -> Result:
        if QTYPE.CNAME in entry.records and qtype != QTYPE.CNAME:
            qtype = QTYPE.CNAME
        types = list(entry.records) if qtype == _ANY else [qtype]
        answer, additional = [], []
        for t in types:
            rdatas = entry.records.get(t) or []
            if t == QTYPE.SRV and rdatas:
                weight = max(1, 100 // len(rdatas))
                rdatas = [SRV(r.priority, weight, r.port, r.target) for r in rdatas]
            answer += [RR(owner, t, ttl=self.ttl, rdata=r) for r in rdatas]
            additional += entry.additional.get(t) or []
        if not answer:
            return Result(RCODE.NOERROR, authority=(self.soa,))
        return Result(RCODE.NOERROR, tuple(answer), (), tuple(additional))
