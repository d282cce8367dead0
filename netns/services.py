"""Services as iptables rules (pure): what kube-proxy in iptables mode programs
(k/k pkg/proxy/iptables/proxier.go), under our chain prefix, as rules.Rule/ChainSpec data.
netns/servicesync.py applies it; nothing here touches the kernel.

Inputs are plain values: ServicePort (one port of one Service, with its ClusterIP, NodePort,
externalIPs and ClientIP affinity) and Endpoint (one address:port with its conditions), keyed by
the service port name `ns/svc:port` (`ns/svc` for an unnamed port), as upstream's ServicePortName.

Layout (P = NetworkConfig.chain_prefix, default KPY; <h> = upstream's hash, semantics 6.2):

nat  PREROUTING, OUTPUT -> P-SERVICES          POSTROUTING -> P-PROXY-POSTROUTING
     P-SERVICES    -d CIP -p PROTO --dport PORT -j P-SVC-<h>        ("ns/svc:p cluster IP")
                   -d EXTIP ... -j P-EXT-<h>                         ("ns/svc:p external IP")
                   -m addrtype --dst-type LOCAL -j P-NODEPORTS       (always last)
     P-NODEPORTS   -p PROTO --dport NODEPORT -j P-EXT-<h>
     P-EXT-<h>     -j P-MARK-MASQ; -j P-SVC-<h>                      (external traffic is masqueraded)
     P-SVC-<h>     ! -s PODCIDR -d CIP ... -j P-MARK-MASQ            (from outside the pod CIDR)
                   [-m recent --rcheck --seconds T --reap --name P-SEP-<e> -j P-SEP-<e>]  (ClientIP)
                   -m statistic --mode random --probability 1/(n-i) -j P-SEP-<e>   (last: no match)
     P-SEP-<e>     -s EPIP -j P-MARK-MASQ                            (hairpin)
                   -p PROTO [-m recent --set --name P-SEP-<e>] -j DNAT --to-destination EPIP:EPPORT
     P-MARK-MASQ   -j MARK --or-mark 0x4000
     P-PROXY-POSTROUTING  mark unset -> RETURN; clear the mark; MASQUERADE --random-fully
filter INPUT   -> P-EXTERNAL-SERVICES (ctstate NEW), P-PROXY-FIREWALL
       FORWARD -> P-FORWARD, P-SERVICES (NEW), P-EXTERNAL-SERVICES (NEW)
       OUTPUT  -> P-SERVICES (NEW), P-PROXY-FIREWALL
     P-SERVICES           -d CIP ... -j REJECT         ("ns/svc:p has no endpoints": refused at once)
     P-EXTERNAL-SERVICES  -d EXTIP ... / -m addrtype --dst-type LOCAL --dport NODEPORT -j REJECT
     P-FORWARD            ctstate INVALID DROP; mark 0x4000 ACCEPT; RELATED,ESTABLISHED ACCEPT
     P-PROXY-FIREWALL     the localnet guard kube-proxy keeps in KUBE-FIREWALL (route_localnet is
                          on for 127.0.0.1 NodePorts, CVE-2020-8558)

Names that differ from kube-proxy's, because the pod network (rules.py) already owns them in the
same tables: upstream's KUBE-POSTROUTING is P-PROXY-POSTROUTING (P-POSTROUTING is the pod
masquerade chain) and KUBE-FIREWALL is P-PROXY-FIREWALL (P-FIREWALL is the hostPort guard). The
service proxy never writes, flushes or deletes a chain outside `owned_chain`.

Every per-service rule's comment names `ns/svc:port`. Rule texts are iptables-save's canonical
form (Rule.render), which iptables-restore also reads, so a table written from this plan saves
back line for line. Read back (parse_save, save_state), that text is how the "nft" backend sees
the live tables, and removal_text is its teardown: iptables-nft has no library like libiptc.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import socket
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .errors import ConfigError, ServiceSpecError
from .plan import CHAIN_MAX, NetworkConfig
from .rules import FILTER, NAT, ChainSpec, Match, Rule, render_rules

MASQ_MARK = 0x4000                   # kube-proxy's masquerade bit 14
DEFAULT_AFFINITY_S = 10800           # sessionAffinityConfig.clientIP.timeoutSeconds default
MAX_AFFINITY_S = 86400
PROTOCOLS = ("TCP", "UDP")
HASHED = ("SVC", "SEP", "EXT")       # per service port / endpoint chains (upstream also has FW, SVL)
HASH_CHARS = 16
FIXED_NAT = ("SERVICES", "NODEPORTS", "MARK-MASQ", "PROXY-POSTROUTING")
FIXED_FILTER = ("SERVICES", "EXTERNAL-SERVICES", "FORWARD", "PROXY-FIREWALL")
_HASH_RE = re.compile(r"[A-Z2-7]{%d}" % HASH_CHARS)


# ---- inputs -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    """One backend of a service port, as an EndpointSlice entry has it (port resolved)."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @property
    def hostport(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service. `cluster_ip` None (or "None") is a headless Service: no rules.
    `session_affinity_timeout` None: no affinity; else ClientIP affinity for that many seconds."""

    namespace: str
    name: str
    port_name: str
    protocol: str
    cluster_ip: str | None
    port: int
    node_port: int | None = None
    session_affinity_timeout: int | None = None
    external_ips: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "external_ips", tuple(self.external_ips))

    @property
    def key(self) -> str:
        """Upstream's ServicePortName.String(): `ns/svc:port`, or `ns/svc` for an unnamed port."""
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def headless(self) -> bool:
        return self.cluster_ip in (None, "", "None")


# ---- names (semantics 6.2) ----------------------------------------------------------------------

def _hash16(text: str) -> str:
    # base32 turns each 5 bytes into 8 characters: the first 16 characters are those of the
    # first 10 bytes of the digest
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def port_proto_hash(key: str, proto: str) -> str:
    """upstream portProtoHash: base32(sha256(spn + protocol)), first 16 characters."""
    return _hash16(key + proto)


def endpoint_hash(key: str, proto: str, endpoint: str) -> str:
    """upstream servicePortEndpointChainName's hash: sha256(spn + protocol + "ip:port")."""
    return _hash16(key + proto + endpoint)


def svc_chain(config: NetworkConfig, sp: ServicePort) -> str:
    return config.chain("SVC-" + port_proto_hash(sp.key, sp.proto))


def ext_chain(config: NetworkConfig, sp: ServicePort) -> str:
    return config.chain("EXT-" + port_proto_hash(sp.key, sp.proto))


def sep_chain(config: NetworkConfig, sp: ServicePort, ep: Endpoint) -> str:
    return config.chain("SEP-" + endpoint_hash(sp.key, sp.proto, ep.hostport))


def fixed_chains(config: NetworkConfig) -> dict[str, tuple[str, ...]]:
    return {NAT: tuple(config.chain(c) for c in FIXED_NAT), FILTER: tuple(config.chain(c) for c in FIXED_FILTER)}


def is_hashed_chain(config: NetworkConfig, chain: str) -> bool:
    """A per service port or per endpoint chain of ours (`P-SVC-<16 base32>`, ...)."""
    for kind in HASHED:
        prefix = config.chain(kind + "-")
        if chain.startswith(prefix) and _HASH_RE.fullmatch(chain[len(prefix):]):
            return True
    return False


def owned_chain(config: NetworkConfig, table: str, chain: str) -> bool:
    """True for the chains the service proxy writes and removes: its fixed chains in `table`
    and, in nat, the hashed ones. Never a pod network chain (P-POSTROUTING, P-HOSTPORTS,
    P-FIREWALL, P-MASQ-*, P-HP-*)."""
    if chain in fixed_chains(config).get(table, ()):
        return True
    return table == NAT and is_hashed_chain(config, chain)


def check_prefix(config: NetworkConfig) -> None:
    """Service chain names must fit iptables' 28 characters: a prefix of at most 7."""
    longest = max(len(config.chain(k + "-")) + HASH_CHARS for k in HASHED)
    longest = max(longest, *(len(c) for cs in fixed_chains(config).values() for c in cs))
    if longest > CHAIN_MAX:
        raise ConfigError("chain_prefix", config.chain_prefix,
                          f"service chain names would exceed {CHAIN_MAX} characters (at most 7 for services)")


# ---- probabilities ------------------------------------------------------------------------------

def probability(n: int, i: int) -> str:
    """kube-proxy's computeProbability: rule i of n (from 0) matches with 1/(n-i), "%0.10f"."""
    return f"{1.0 / (n - i):0.10f}"


# ---- validation ---------------------------------------------------------------------------------

def _ip(service: str, fld: str, value: object) -> str:
    try:
        packed = socket.inet_pton(socket.AF_INET, value)     # dotted quad only, as IPv4Address
    except (OSError, TypeError):
        raise ServiceSpecError(service, fld, value, "not an IPv4 address") from None
    if socket.inet_ntop(socket.AF_INET, packed) != value:
        raise ServiceSpecError(service, fld, value, "not an IPv4 address in canonical form")
    return value


def _port(service: str, fld: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ServiceSpecError(service, fld, value, "must be an integer 1-65535")
    return value


def check_service_port(sp: ServicePort) -> None:
    svc = f"{sp.namespace}/{sp.name}"
    where = f"ports[{sp.port_name or sp.port}]"
    if not isinstance(sp.protocol, str) or sp.protocol.upper() not in PROTOCOLS:
        why = "SCTP is not supported by this proxy" if str(sp.protocol).upper() == "SCTP" else "supported: TCP, UDP"
        raise ServiceSpecError(svc, f"{where}.protocol", sp.protocol, why)
    if sp.protocol != sp.protocol.upper():
        raise ServiceSpecError(svc, f"{where}.protocol", sp.protocol, "must be upper case (TCP, UDP)")
    _port(svc, f"{where}.port", sp.port)
    if not sp.headless:
        _ip(svc, f"{where}.cluster_ip", sp.cluster_ip)
    if sp.node_port is not None:
        _port(svc, f"{where}.node_port", sp.node_port)
    for i, ip in enumerate(sp.external_ips):
        _ip(svc, f"{where}.external_ips[{i}]", ip)
    t = sp.session_affinity_timeout
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_AFFINITY_S):
        raise ServiceSpecError(svc, f"{where}.session_affinity_timeout", t, f"must be 1-{MAX_AFFINITY_S} seconds")


def check_endpoints(sp: ServicePort, endpoints: Iterable[Endpoint]) -> None:
    svc = f"{sp.namespace}/{sp.name}"
    for i, ep in enumerate(endpoints):
        _ip(svc, f"endpoints[{sp.key}][{i}].ip", ep.ip)
        _port(svc, f"endpoints[{sp.key}][{i}].port", ep.port)


def usable_endpoints(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """The ready endpoints; with none, the serving and terminating ones (upstream); each address
    once, sorted (so that chain contents do not depend on the order they were given in)."""
    eps = list(endpoints)
    use = [e for e in eps if e.ready] or [e for e in eps if e.serving and e.terminating]
    seen: dict[tuple[bytes, int], Endpoint] = {}
    for e in use:
        seen.setdefault((socket.inet_pton(socket.AF_INET, e.ip), e.port), e)
    return [seen[k] for k in sorted(seen)]


# ---- the plan -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServiceRules:
    """The whole service rule set: per table, every chain we own with its rules (in order), and
    the jumps from the built-in chains. `node_ports`: some Service has a NodePort (route_localnet
    is needed for 127.0.0.1). `udp_endpoints`: (key, ClusterIP or "", port, node_port or 0,
    endpoint ip, endpoint port) of every UDP endpoint in use, for the conntrack flush."""

    chains: Mapping[str, tuple[ChainSpec, ...]]
    jumps: Mapping[str, tuple[Rule, ...]]
    node_ports: bool = False
    udp_endpoints: frozenset = field(default_factory=frozenset)

    def table(self, table: str) -> dict[str, tuple[Rule, ...]]:
        """chain name -> rules (built once per plan; do not change it)."""
        views = self.__dict__.setdefault("_views", {})     # frozen: the cache goes in __dict__ directly
        if table not in views:
            views[table] = {c.name: c.rules for c in self.chains.get(table, ())}
        return views[table]

    def render(self) -> str:
        """The rule set as one iptables-restore input (kube-proxy's format: each table's chain
        lines, then its rules, then COMMIT), what `iptables-legacy-restore --noflush` loads."""
        out: list[str] = []
        for table in (FILTER, NAT):
            specs = self.chains.get(table, ())
            out.append(f"*{table}")
            out += [f":{c.name} - [0:0]" for c in specs]
            out += render_rules(r for c in specs for r in c.rules)
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def _c(text: str) -> Match:
    return Match("comment", (("comment", text),))


def _dport(sp_proto: str, port: int) -> Match:
    return Match(sp_proto, (("dport", str(port)),))


def _jumps(config: NetworkConfig) -> dict[str, tuple[Rule, ...]]:
    ch = config.chain
    new = Match("conntrack", (("ctstate", "NEW"),))
    portals = _c("kubernetes service portals")
    external = _c("kubernetes externally-visible service portals")
    return {
        NAT: (Rule("PREROUTING", ch("SERVICES"), matches=(portals,)),
              Rule("OUTPUT", ch("SERVICES"), matches=(portals,)),
              Rule("POSTROUTING", ch("PROXY-POSTROUTING"), matches=(_c("kubernetes postrouting rules"),))),
        FILTER: (Rule("INPUT", ch("EXTERNAL-SERVICES"), matches=(new, external)),
                 Rule("INPUT", ch("PROXY-FIREWALL"), matches=(_c("kubernetes localnet guard"),)),
                 Rule("FORWARD", ch("FORWARD"), matches=(_c("kubernetes forwarding rules"),)),
                 Rule("FORWARD", ch("SERVICES"), matches=(new, portals)),
                 Rule("FORWARD", ch("EXTERNAL-SERVICES"), matches=(new, external)),
                 Rule("OUTPUT", ch("SERVICES"), matches=(new, portals)),
                 Rule("OUTPUT", ch("PROXY-FIREWALL"), matches=(_c("kubernetes localnet guard"),))),
    }


def _mark() -> str:
    return f"{MASQ_MARK:#x}/{MASQ_MARK:#x}"


def _fixed(config: NetworkConfig) -> tuple[list[Rule], list[Rule], list[Rule], list[Rule]]:
    """(nat P-PROXY-POSTROUTING, nat P-MARK-MASQ, filter P-FORWARD, filter P-PROXY-FIREWALL)."""
    post, mm, fwd, fw = (config.chain(c) for c in ("PROXY-POSTROUTING", "MARK-MASQ", "FORWARD", "PROXY-FIREWALL"))
    mark = Match("mark", (("!mark", _mark()),))
    postrouting = [
        Rule(post, "RETURN", matches=(mark,)),
        Rule(post, "MARK", target_args=(("set-xmark", f"{MASQ_MARK:#x}/0x0"),)),       # --xor-mark
        Rule(post, "MASQUERADE", matches=(_c("kubernetes service traffic requiring SNAT"),),
             target_args=(("random-fully", None),)),
    ]
    mark_masq = [Rule(mm, "MARK", target_args=(("set-xmark", _mark()),))]                # --or-mark
    forward = [
        Rule(fwd, "DROP", matches=(Match("conntrack", (("ctstate", "INVALID"),)),)),
        Rule(fwd, "ACCEPT", matches=(_c("kubernetes forwarding rules"), Match("mark", (("mark", _mark()),)))),
        Rule(fwd, "ACCEPT", matches=(_c("kubernetes forwarding conntrack rule"),
                                     Match("conntrack", (("ctstate", "RELATED,ESTABLISHED"),)))),
    ]
    firewall = [Rule(fw, "DROP", src="!127.0.0.0/8", dst="127.0.0.0/8", matches=(
        _c("block incoming localnet connections"),
        Match("conntrack", (("!ctstate", "RELATED,ESTABLISHED,DNAT"),))))]
    return postrouting, mark_masq, forward, firewall


REJECT = (("reject-with", "icmp-port-unreachable"),)


@dataclass(frozen=True)
class _Fragment:
    """What one service port with its endpoints contributes (memoized across syncs)."""

    nat_services: tuple[Rule, ...] = ()
    nodeports: tuple[Rule, ...] = ()
    chains: tuple[ChainSpec, ...] = ()
    f_services: tuple[Rule, ...] = ()
    f_external: tuple[Rule, ...] = ()
    udp: tuple[tuple, ...] = ()


def _fragment(config: NetworkConfig, sp: ServicePort, eps: tuple[Endpoint, ...]) -> _Fragment:
    check_endpoints(sp, eps)
    use = usable_endpoints(eps)
    ch = config.chain
    key, proto = sp.key, sp.proto
    cip = f"{sp.cluster_ip}/32"
    dport = _dport(proto, sp.port)
    if not use:
        gone = _c(f"{key} has no endpoints")
        f_external = [Rule(ch("EXTERNAL-SERVICES"), "REJECT", dst=f"{ip}/32", protocol=proto,
                           matches=(gone, dport), target_args=REJECT) for ip in sp.external_ips]
        if sp.node_port:
            f_external.append(Rule(ch("EXTERNAL-SERVICES"), "REJECT", protocol=proto, matches=(
                gone, Match("addrtype", (("dst-type", "LOCAL"),)), _dport(proto, sp.node_port)), target_args=REJECT))
        return _Fragment(f_services=(Rule(ch("SERVICES"), "REJECT", dst=cip, protocol=proto, matches=(gone, dport),
                                          target_args=REJECT),), f_external=tuple(f_external))
    mm = ch("MARK-MASQ")
    svc, ext = svc_chain(config, sp), ext_chain(config, sp)
    c_key, c_cip = _c(key), _c(f"{key} cluster IP")
    nat_services = [Rule(ch("SERVICES"), svc, dst=cip, protocol=proto, matches=(c_cip, dport))]
    nat_services += [Rule(ch("SERVICES"), ext, dst=f"{ip}/32", protocol=proto, matches=(_c(f"{key} external IP"), dport))
                     for ip in sp.external_ips]
    nodeports = ()
    chains: list[ChainSpec] = []
    if sp.node_port:
        nodeports = (Rule(ch("NODEPORTS"), ext, protocol=proto, matches=(c_key, _dport(proto, sp.node_port))),)
    if sp.node_port or sp.external_ips:
        chains.append(ChainSpec(ext, (
            Rule(ext, mm, matches=(_c(f"masquerade traffic for {key} external destinations"),)),
            Rule(ext, svc, matches=(c_key,)))))
    svc_rules = [Rule(svc, mm, src="!" + str(config.cidr), dst=cip, protocol=proto, matches=(c_cip, dport))]
    seps = [(ep, sep_chain(config, sp, ep), _c(f"{key} -> {ep.hostport}")) for ep in use]
    affinity = sp.session_affinity_timeout
    if affinity is not None:
        for ep, sep, c_ep in seps:
            svc_rules.append(Rule(svc, sep, matches=(c_ep, Match("recent", (
                ("rcheck", None), ("seconds", str(affinity)), ("reap", None),
                ("name", sep), ("mask", "255.255.255.255"), ("rsource", None))))))
    n = len(seps)
    for i, (ep, sep, c_ep) in enumerate(seps):
        if i < n - 1:
            ms = (c_ep, Match("statistic", (("mode", "random"), ("probability", probability(n, i)))))
        else:
            ms = (c_ep,)
        svc_rules.append(Rule(svc, sep, matches=ms))
    chains.append(ChainSpec(svc, tuple(svc_rules)))
    proto_match = Match(proto, ())
    udp = []
    for ep, sep, _ in seps:
        if affinity is not None:
            dnat_ms = (c_key, Match("recent", (("set", None), ("name", sep), ("mask", "255.255.255.255"),
                                               ("rsource", None))), proto_match)
        else:
            dnat_ms = (c_key, proto_match)
        chains.append(ChainSpec(sep, (
            Rule(sep, mm, src=f"{ep.ip}/32", matches=(c_key,)),
            Rule(sep, "DNAT", protocol=proto, matches=dnat_ms, target_args=(("to-destination", ep.hostport),)))))
        if proto == "udp":
            udp.append((key, sp.cluster_ip, sp.port, sp.node_port or 0, ep.ip, ep.port))
    return _Fragment(tuple(nat_services), nodeports, tuple(chains), udp=tuple(udp))


def plan(config: NetworkConfig, services: Iterable[ServicePort],
         endpoints: Mapping[str, Iterable[Endpoint]], cache: dict | None = None) -> ServiceRules:
    """The complete rule set for these service ports and their endpoints (keyed by
    ServicePort.key). Raises ServiceSpecError for a port or endpoint it cannot program, and for
    two ports with the same key and protocol.

    `cache`: a dict the caller keeps between calls (ServiceProxy does): the rules of a service
    port whose ServicePort and endpoints are unchanged are reused (the same objects, so comparing
    them with the last plan is an identity check); it is left holding this call's entries only."""
    check_prefix(config)
    ch = config.chain
    services = sorted(services, key=lambda s: (s.key, s.proto))
    seen: set[tuple[str, str]] = set()
    for sp in services:
        check_service_port(sp)
        if (sp.key, sp.proto) in seen:
            raise ServiceSpecError(f"{sp.namespace}/{sp.name}", f"ports[{sp.port_name}]", sp.port_name,
                                   f"service port {sp.key}/{sp.protocol} given twice")
        seen.add((sp.key, sp.proto))
    old = cache if cache is not None else {}
    used: dict = {}
    frags: list[_Fragment] = []
    for sp in services:
        if sp.headless:
            continue
        k = (sp, tuple(endpoints.get(sp.key, ())))
        frag = old.get(k)
        if frag is None:
            frag = _fragment(config, sp, k[1])
        used[k] = frag
        frags.append(frag)
    if cache is not None:
        cache.clear()
        cache.update(used)
    nat_services = [r for f in frags for r in f.nat_services]
    nat_services.append(Rule(ch("SERVICES"), ch("NODEPORTS"), matches=(
        _c("kubernetes service nodeports; NOTE: this must be the last rule in this chain"),
        Match("addrtype", (("dst-type", "LOCAL"),)))))
    postrouting, mark_masq, forward, firewall = _fixed(config)
    nat = (ChainSpec(ch("SERVICES"), tuple(nat_services)),
           ChainSpec(ch("NODEPORTS"), tuple(r for f in frags for r in f.nodeports)),
           ChainSpec(ch("MARK-MASQ"), tuple(mark_masq)), ChainSpec(ch("PROXY-POSTROUTING"), tuple(postrouting)),
           *(c for f in frags for c in f.chains))
    filt = (ChainSpec(ch("SERVICES"), tuple(r for f in frags for r in f.f_services)),
            ChainSpec(ch("EXTERNAL-SERVICES"), tuple(r for f in frags for r in f.f_external)),
            ChainSpec(ch("FORWARD"), tuple(forward)), ChainSpec(ch("PROXY-FIREWALL"), tuple(firewall)))
    any_node_port = any(sp.node_port for sp in services if not sp.headless)
    return ServiceRules({NAT: nat, FILTER: filt}, _jumps(config), any_node_port,
                        frozenset(u for f in frags for u in f.udp))


# ---- what a sync writes -------------------------------------------------------------------------

@dataclass(frozen=True)
class TableDelta:
    """What one sync does to one table, in one commit: `write` chains are created or flushed and
    given their rules (in full), `delete` chains are flushed and removed (after every write, so
    that no rule of ours still jumps to them), `jumps` are inserted at the top of their built-in
    chains (those found missing)."""

    table: str
    write: tuple[ChainSpec, ...] = ()
    delete: tuple[str, ...] = ()
    jumps: tuple[Rule, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.write or self.delete or self.jumps)

    def render(self) -> str:
        """This table's part of an iptables-restore --noflush input (`*table` ... `COMMIT`)."""
        out = [f"*{self.table}"]
        out += [f":{c.name} - [0:0]" for c in self.write]
        out += [f":{name} - [0:0]" for name in self.delete]            # flushed before -X
        # each jump inserted at the top: in reverse so that they end up in plan order
        out += [_insert_at_top(j) for j in reversed(self.jumps)]
        out += render_rules(r for c in self.write for r in c.rules)
        out += [f"-X {name}" for name in self.delete]
        out.append("COMMIT")
        return "\n".join(out) + "\n"


def _insert_at_top(rule: Rule) -> str:
    """`-I CHAIN 1 <spec>` for a rule whose render() is `-A CHAIN <spec>`."""
    head = f"-A {rule.chain} "
    text = rule.render()
    assert text.startswith(head)
    return f"-I {rule.chain} 1 " + text[len(head):]


def delta(config: NetworkConfig, new: ServiceRules, old: ServiceRules | None,
          live_chains: Mapping[str, Iterable[str]] | None = None,
          live_jump_targets: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
          live_rules: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None) -> tuple[TableDelta, ...]:
    """What to write to go from `old` (the last applied plan; None: unknown, a full sync) to `new`.

    Full sync (old None): every chain of `new` is written; every owned chain in `live_chains` that
    `new` lacks is deleted (a Service gone while we were away); jumps missing from
    `live_jump_targets` (table -> built-in chain -> the targets of its rules) are inserted. With
    `live_rules` (table -> chain -> its rules as iptables-save prints them, saved_rule_lines), a
    full sync writes only the chains whose live rules are not exactly the plan's (the "nft"
    backend: nf_tables applies just those, where a rewrite of every chain takes seconds).
    Incremental: only chains whose rules differ from `old` are written, chains of `old` that `new`
    lacks are deleted, no jump is looked at. Chains we do not own are never in a delta."""
    out = []
    for table in (FILTER, NAT):
        want = new.table(table)
        if old is None:
            have = set(live_chains.get(table, ())) if live_chains else set()
            write = tuple(ChainSpec(n, rs) for n, rs in want.items())
            if live_rules is not None:
                saved = live_rules.get(table, {})
                write = tuple(c for c in write if saved.get(c.name) != tuple(render_rules(c.rules)))
            stale = sorted(c for c in have if c not in want and owned_chain(config, table, c))
            targets = (live_jump_targets or {}).get(table, {})
            jumps = tuple(j for j in new.jumps.get(table, ())
                          if j.target not in set(targets.get(j.chain, ())))
        else:
            prev = old.table(table)
            write = tuple(ChainSpec(n, rs) for n, rs in want.items() if prev.get(n) != rs)
            stale = sorted(c for c in prev if c not in want)
            jumps = ()
        # never a chain of the pod network, whatever the inputs say
        foreign = [c.name for c in write if not owned_chain(config, table, c.name)]
        foreign += [c for c in stale if not owned_chain(config, table, c)]
        if foreign:
            raise ValueError(f"service rules would touch chains that are not the proxy's: {table} {foreign}")
        d = TableDelta(table, write, tuple(stale), jumps)
        if not d.empty:
            out.append(d)
    return tuple(out)


def restore_text(deltas: Iterable[TableDelta]) -> str:
    return "".join(d.render() for d in deltas)


def restore_error_location(text: str, stderr: str) -> tuple[str, str]:
    """(table, chain) of the input line iptables-restore names in its error, when it does."""
    m = re.search(r"line:? (\d+)", stderr)
    if not m:
        return "*", "*"
    lines = text.splitlines()
    n = int(m.group(1))
    table, chain = "*", "*"
    for line in lines[:n]:
        if line.startswith("*"):
            table, chain = line[1:], "*"
    if 0 < n <= len(lines):
        words = lines[n - 1].split()
        if len(words) > 1 and words[0] in ("-A", "-I", "-X"):
            chain = words[1]
        elif words and words[0].startswith(":"):
            chain = words[0][1:]
        elif words and words[0] == "COMMIT":
            chain = "COMMIT"
    return table, chain


# ---- reading iptables-save's text (the "nft" backend's view of the live tables) ------------------

@dataclass(frozen=True)
class SavedTable:
    """One `*table` ... `COMMIT` of iptables-save's output: every chain (`:NAME` lines, built-in
    ones first, as saved) and every rule as (chain, the text after `-A CHAIN `), in order."""

    name: str
    chains: tuple[str, ...] = ()
    rules: tuple[tuple[str, str], ...] = ()


def parse_save(text: str) -> dict[str, SavedTable]:
    """iptables-save's (or iptables-nft-save's) output -> table name -> SavedTable. Comment
    lines (`# Generated by`, `# Warning: iptables-legacy tables present`) are skipped; a table
    saved twice keeps the last."""
    out: dict[str, SavedTable] = {}
    name, chains, rules = None, [], []
    for line in text.splitlines():
        if line.startswith("*"):
            name, chains, rules = line[1:].strip(), [], []
        elif name is None:
            continue
        elif line.startswith(":"):
            chains.append(line[1:].split(None, 1)[0])
        elif line.startswith("-A "):
            words = line.split(" ", 2)
            rules.append((words[1], words[2] if len(words) > 2 else ""))
        elif line.strip() == "COMMIT":
            out[name] = SavedTable(name, tuple(chains), tuple(rules))
            name = None
    return out


def rule_target(spec: str) -> str:
    """The target of a saved rule (`-j NAME` or `-g NAME`), "" when it has none. Quoted values
    (comments) are read as iptables-save quotes them, so a comment holding "-j X" is no target."""
    words = shlex.split(spec)
    for i, w in enumerate(words[:-1]):
        if w in ("-j", "--jump", "-g", "--goto"):
            return words[i + 1]
    return ""


def save_state(tables: Mapping[str, SavedTable], builtins: Mapping[str, Iterable[str]]) -> tuple[
        dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """(table -> chain names, table -> built-in chain -> targets of its rules) of `builtins`'
    tables, from parse_save's result: what servicesync.live_state returns for a full sync (a
    table not saved has no chain and no rule)."""
    chains: dict[str, list[str]] = {}
    targets: dict[str, dict[str, list[str]]] = {}
    for table, names in builtins.items():
        t = tables.get(table) or SavedTable(table)
        chains[table] = list(t.chains)
        targets[table] = {b: [] for b in names}
        for chain, spec in t.rules:
            if chain in targets[table]:
                targets[table][chain].append(rule_target(spec))
    return chains, targets


def saved_rule_lines(tables: Mapping[str, SavedTable]) -> dict[str, dict[str, tuple[str, ...]]]:
    """table -> chain -> its rules as `-A CHAIN ...` lines (what Rule.render gives for a rule
    the plan wrote), every saved chain, empty ones too: delta's `live_rules`."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, t in tables.items():
        by_chain: dict[str, list[str]] = {c: [] for c in t.chains}
        for chain, spec in t.rules:
            by_chain.setdefault(chain, []).append(f"-A {chain} {spec}" if spec else f"-A {chain}")
        out[name] = {c: tuple(rs) for c, rs in by_chain.items()}
    return out


def removal_text(config: NetworkConfig, tables: Mapping[str, SavedTable]) -> str:
    """The iptables-restore --noflush input that removes every chain of ours from the saved
    tables (flushed, the rules of other chains that jump to them deleted, then each deleted);
    "" when they hold none. Chains of the pod network are left alone (owned_chain)."""
    out: list[str] = []
    for table in (FILTER, NAT):
        t = tables.get(table)
        ours = teardown_order(config, table, t.chains) if t else ()
        if not ours:
            continue
        mine = set(ours)
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in ours]
        out += [f"-D {chain} {spec}" for chain, spec in t.rules if chain not in mine and rule_target(spec) in mine]
        out += [f"-X {c}" for c in ours]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def conntrack_flush_targets(old: ServiceRules | None, new: ServiceRules) -> tuple[set, set]:
    """(endpoint addresses (ip, port) no longer behind some UDP service port, destinations
    (ip, port) of UDP service ports that got their first endpoint: the ClusterIP and port, and
    (None, NodePort) for any local address)."""
    if old is None:
        return set(), set()
    gone_eps = {(ip, port) for (_, _, _, _, ip, port) in old.udp_endpoints - new.udp_endpoints}
    old_svcs = {(k, cip, p, np) for (k, cip, p, np, _, _) in old.udp_endpoints}
    new_svcs = {(k, cip, p, np) for (k, cip, p, np, _, _) in new.udp_endpoints}
    first = set()
    for _, cip, p, np in new_svcs - old_svcs:
        first.add((cip, p))
        if np:
            first.add((None, np))
    return gone_eps, first


def teardown_order(config: NetworkConfig, table: str, chains: Iterable[str]) -> tuple[str, ...]:
    """Our chains of `table` (from a live list) in an order that can be removed one by one, each
    after every chain that jumps to it: the entry chains, then EXT, SVC, SEP, then the rest."""
    rank = {config.chain("SERVICES"): 0, config.chain("EXTERNAL-SERVICES"): 0, config.chain("NODEPORTS"): 1,
            config.chain("FORWARD"): 0, config.chain("PROXY-FIREWALL"): 0, config.chain("PROXY-POSTROUTING"): 0}

    def order(c: str) -> tuple[int, str]:
        if c in rank:
            return rank[c], c
        for r, k in ((2, "EXT"), (3, "SVC"), (4, "SEP")):
            if c.startswith(config.chain(k + "-")):
                return r, c
        return 5, c                             # MARK-MASQ last: every SVC/SEP/EXT jumps to it
    return tuple(sorted((c for c in chains if owned_chain(config, table, c)), key=order))


__all__ = ["Endpoint", "ServicePort", "ServiceRules", "TableDelta", "plan", "delta", "restore_text",
           "probability", "port_proto_hash", "endpoint_hash", "svc_chain", "sep_chain", "ext_chain",
           "owned_chain", "is_hashed_chain", "fixed_chains", "usable_endpoints", "teardown_order",
           "conntrack_flush_targets", "restore_error_location", "check_prefix", "SavedTable", "parse_save",
           "rule_target", "save_state", "saved_rule_lines", "removal_text"]
