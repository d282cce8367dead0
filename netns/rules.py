"""The iptables rule plan as data (pure): what the CNI bridge plugin's ipMasq and the portmap plugin
program, in chains of our own, as Rule/ChainSpec/TableChange values. netns/iptables.py applies a
TableChange in ONE libiptc commit per table; the services issue builds on the same types.

Layout (prefix P, default `KPY`; <h> = 12 hex of sha256(pod uid); every pod rule's comment names
the pod uid, every base rule's comment names the bridge):

nat  PREROUTING   -m addrtype --dst-type LOCAL -j P-HOSTPORTS        (inserted at the top)
     OUTPUT       -m addrtype --dst-type LOCAL -j P-HOSTPORTS
     POSTROUTING  -j P-POSTROUTING
     P-POSTROUTING  -m mark --mark M/M -j MASQUERADE                  (hairpin and 127.0.0.1 hostPort traffic)
                    -s <podIP>/32 -j P-MASQ-<h>                       (one per pod)
     P-MASQ-<h>     -d <podCIDR> -j RETURN                            (pod-to-pod and the bridge IP: never NATed;
                                                                       with cluster_cidr, that range: pods on other nodes)
                    ! -d 224.0.0.0/4 -j MASQUERADE
     P-HOSTPORTS    [-d hostIP] -p tcp -m tcp --dport HP -j P-HP-<h>  (one per mapping)
     P-HP-<h>       [-d hostIP] -s <podCIDR> -p tcp --dport HP -j MARK --set-xmark M/M
                    [-d hostIP] -s 127.0.0.1 -p tcp --dport HP -j MARK --set-xmark M/M
                    [-d hostIP] -p tcp --dport HP -j DNAT --to-destination <podIP>:<containerPort>
filter INPUT      -j P-FIREWALL                                       (only once a hostPort exists)
     P-FIREWALL     -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
                    (kube-proxy's CVE-2020-8558 guard: route_localnet=1 on the bridge must not let a
                    pod reach the node's 127.0.0.1 services)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from .plan import ALL_ADDRESSES, NetworkConfig, PortMapping, hostport_chain, masq_chain, uid_hash

NAT = "nat"
FILTER = "filter"
BUILTIN = {NAT: ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
           FILTER: ("INPUT", "FORWARD", "OUTPUT")}
MULTICAST = "224.0.0.0/4"


@dataclass(frozen=True)
class Match:
    """`-m <name> <args>`; an option whose name starts with "!" is negated (`! --ctstate X`)."""

    name: str
    args: tuple[tuple[str, str | None], ...] = ()   # value None: an option without value (`--rcheck`)

    def render(self) -> str:
        out = [f"-m {self.name}"]
        for opt, val in self.args:
            neg = opt.startswith("!")
            out.append(f"{'! ' if neg else ''}--{opt.lstrip('!')}" + _saved_value(self.name, opt, val))
        return " ".join(out)


@dataclass(frozen=True)
class Rule:
    chain: str
    target: str
    src: str = ""            # "10.0.0.1/32", "!10.0.0.0/8"
    dst: str = ""
    protocol: str = ""
    matches: tuple[Match, ...] = ()
    target_args: tuple[tuple[str, str | None], ...] = ()

    def render(self, _matches: dict | None = None) -> str:
        """The rule as `iptables-save` prints it (tests compare live tables with this).
        `_matches`: render_rules' memo of Match texts by object id."""
        out = [f"-A {self.chain}"]
        for flag, v in (("-s", self.src), ("-d", self.dst)):
            if v:
                out.append(f"! {flag} {v[1:]}" if v.startswith("!") else f"{flag} {v}")
        if self.protocol:
            out.append(f"-p {self.protocol}")
        for m in self.matches:
            if _matches is None:
                out.append(m.render())
            else:
                text = _matches.get(id(m))
                if text is None:
                    text = _matches[id(m)] = m.render()
                out.append(text)
        out.append(f"-j {self.target}")
        for opt, val in self.target_args:
            out.append(f"--{opt}" + ("" if val is None else f" {val}"))
        return " ".join(out)


def render_rules(rules: Iterable[Rule]) -> list[str]:
    """Rule.render of many rules; a Match object shared by several rules (a Service's comment)
    is rendered once."""
    memo: dict[int, str] = {}
    keep = []                     # the ids stay valid while their objects live
    out = []
    for r in rules:
        keep.append(r)
        out.append(r.render(memo))
    return out


_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPE = str.maketrans({'"': '\\"', "\\": "\\\\", "'": "\\'"})


def _quote(v: str) -> str:
    """A string as xtables_save_string prints it: bare when it is only letters, digits, '_' and
    '-', else in double quotes with '"', '\\' and "'" escaped."""
    if _BARE.fullmatch(v):
        return v
    return '"' + v.translate(_ESCAPE) + '"'


def saved_probability(p: str) -> str:
    """A `statistic --probability` as the kernel keeps it (a fraction of 2^31) and iptables-save
    prints it: kube-proxy's "0.3333333333" is saved as "0.33333333349"."""
    return f"{round(float(p) * 0x80000000) / 0x80000000:.11f}"


def _saved_value(match: str, opt: str, val: str | None) -> str:
    """` <value>` of a match option as iptables-save prints it; None is an option without value
    (`--rcheck`)."""
    if val is None:
        return ""
    if match == "comment":
        return " " + _quote(val)
    if match == "statistic" and opt == "probability":
        return " " + saved_probability(val)
    return " " + val


@dataclass(frozen=True)
class ChainSpec:
    """A chain of ours and the rules it starts with."""

    name: str
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class TableChange:
    """Everything one change does to one table, applied in this order in one commit:
    0. `replace`: create each chain that is missing (all of them first, so that their rules may
       jump to one another), then flush each and give it exactly its rules;
    1. `ensure`: create each chain that is missing, with its rules (an existing one is kept);
    2. `jumps`: rules into built-in chains, inserted at the top unless that chain already has a
       rule with the same target;
    3. `remove`: for each chain, delete every rule of `referrers` that jumps to it, then flush
       and delete it (a chain already gone is fine);
    4. `add`: create each chain with its rules;
    5. `append`: append each rule to its (existing or just added) chain."""

    table: str
    ensure: tuple[ChainSpec, ...] = ()
    jumps: tuple[Rule, ...] = ()
    remove: tuple[str, ...] = ()
    referrers: tuple[str, ...] = ()
    add: tuple[ChainSpec, ...] = ()
    append: tuple[Rule, ...] = ()
    replace: tuple[ChainSpec, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.replace or self.ensure or self.jumps or self.remove or self.add or self.append)


def _comment(text: str) -> Match:
    return Match("comment", (("comment", text),))


def base_comment(config: NetworkConfig, what: str) -> str:
    return f"kubelet-py {config.bridge}: {what}"


def pod_comment(pod_uid: str, what: str = "") -> str:
    return f"kubelet-py pod {pod_uid}" + (f": {what}" if what else "")


def _mark(config: NetworkConfig) -> str:
    return f"{config.hostport_mark:#x}/{config.hostport_mark:#x}"


# ---- base chains --------------------------------------------------------------------------------

def base_nat(config: NetworkConfig) -> tuple[tuple[ChainSpec, ...], tuple[Rule, ...]]:
    """Our nat chains with their fixed rules, and the jumps from the built-in chains."""
    post, hp = config.postrouting_chain, config.hostports_chain
    chains = (
        ChainSpec(post, (Rule(post, "MASQUERADE", matches=(
            Match("mark", (("mark", _mark(config)),)),
            _comment(base_comment(config, "hairpin and localhost hostPort traffic")))),)),
        ChainSpec(hp),
    )
    local = Match("addrtype", (("dst-type", "LOCAL"),))
    jumps = (
        Rule("PREROUTING", hp, matches=(local, _comment(base_comment(config, "pod hostPorts")))),
        Rule("OUTPUT", hp, matches=(local, _comment(base_comment(config, "pod hostPorts")))),
        Rule("POSTROUTING", post, matches=(_comment(base_comment(config, "pod masquerade")),)),
    )
    return chains, jumps


def base_filter(config: NetworkConfig) -> tuple[tuple[ChainSpec, ...], tuple[Rule, ...]]:
    fw = config.firewall_chain
    chains = (ChainSpec(fw, (Rule(fw, "DROP", dst="127.0.0.0/8", src="!127.0.0.0/8", matches=(
        Match("conntrack", (("!ctstate", "RELATED,ESTABLISHED,DNAT"),)),
        _comment(base_comment(config, "block incoming localnet connections")))),)),)
    jumps = (Rule("INPUT", fw, matches=(_comment(base_comment(config, "localnet guard")),)),)
    return chains, jumps


# ---- per pod ------------------------------------------------------------------------------------

def pod_masq(config: NetworkConfig, pod_uid: str, ip: str) -> tuple[ChainSpec, Rule]:
    chain = masq_chain(config, pod_uid)
    c = _comment(pod_comment(pod_uid))
    spec = ChainSpec(chain, (
        Rule(chain, "RETURN", dst=str(config.no_masquerade_cidr), matches=(_comment(pod_comment(
            pod_uid, "cluster network" if config.cluster_cidr else "pod network")),)),
        Rule(chain, "MASQUERADE", dst="!" + MULTICAST, matches=(c,)),
    ))
    jump = Rule(config.postrouting_chain, chain, src=f"{ip}/32", matches=(c,))
    return spec, jump


def pod_hostports(config: NetworkConfig, pod_uid: str, ip: str,
                  ports: Iterable[PortMapping]) -> tuple[ChainSpec | None, tuple[Rule, ...]]:
    ports = tuple(ports)
    if not ports:
        return None, ()
    chain = hostport_chain(config, pod_uid)
    rules: list[Rule] = []
    jumps: list[Rule] = []
    mark = (("set-xmark", _mark(config)),)
    for m in ports:
        dst = "" if m.host_ip == ALL_ADDRESSES else f"{m.host_ip}/32"
        dport = Match(m.protocol, (("dport", str(m.host_port)),))
        c = _comment(pod_comment(pod_uid, f"hostPort {m}"))
        jumps.append(Rule(config.hostports_chain, chain, dst=dst, protocol=m.protocol, matches=(dport, c)))
        rules.append(Rule(chain, "MARK", dst=dst, src=str(config.cidr), protocol=m.protocol,
                          matches=(dport, _comment(pod_comment(pod_uid, f"hairpin {m}"))), target_args=mark))
        rules.append(Rule(chain, "MARK", dst=dst, src="127.0.0.1/32", protocol=m.protocol,
                          matches=(dport, _comment(pod_comment(pod_uid, f"localhost {m}"))), target_args=mark))
        rules.append(Rule(chain, "DNAT", dst=dst, protocol=m.protocol, matches=(dport, c),
                          target_args=(("to-destination", f"{ip}:{m.container_port}"),)))
    return ChainSpec(chain, tuple(rules)), tuple(jumps)


def pod_chains(config: NetworkConfig, pod_uid: str) -> tuple[str, str]:
    return masq_chain(config, pod_uid), hostport_chain(config, pod_uid)


def referrers(config: NetworkConfig) -> tuple[str, ...]:
    return (config.postrouting_chain, config.hostports_chain)


def setup_changes(config: NetworkConfig, pod_uid: str, ip: str,
                  ports: Iterable[PortMapping]) -> tuple[TableChange, ...]:
    """The changes for one pod: base chains ensured, any previous rules of the same pod replaced
    (a repeated setup after a crash or with other ports), the pod's chains added."""
    ports = tuple(ports)
    base_chains, base_jumps = base_nat(config)
    masq, masq_jump = pod_masq(config, pod_uid, ip)
    hp, hp_jumps = pod_hostports(config, pod_uid, ip, ports)
    nat = TableChange(NAT, ensure=base_chains, jumps=base_jumps,
                      remove=pod_chains(config, pod_uid), referrers=referrers(config),
                      add=(masq,) + ((hp,) if hp else ()),
                      append=(masq_jump,) + hp_jumps)
    changes = [nat]
    if ports:
        fchains, fjumps = base_filter(config)
        changes.append(TableChange(FILTER, ensure=fchains, jumps=fjumps))
    return tuple(changes)


@dataclass(frozen=True)
class Expect:
    """What one chain must hold for a pod's network to be complete: with `target` None, exactly
    `rules` in that order (and `present` False: the chain must not exist); with `target` set,
    the chain's rules that jump to `target` must be exactly `rules`."""

    table: str
    chain: str
    rules: tuple[Rule, ...] = ()
    target: str | None = None
    present: bool = True


def pod_expectations(config: NetworkConfig, pod_uid: str, ip: str,
                     ports: Iterable[PortMapping]) -> tuple[Expect, ...]:
    """The live state setup_changes leaves for this pod, chain by chain (what a repeated setup
    checks before deciding that no commit is needed)."""
    ports = tuple(ports)
    base_chains, base_jumps = base_nat(config)
    masq, masq_jump = pod_masq(config, pod_uid, ip)
    hp, hp_jumps = pod_hostports(config, pod_uid, ip, ports)
    post = base_chains[0]
    out = [Expect(NAT, j.chain, (j,), j.target) for j in base_jumps]
    out.append(Expect(NAT, post.name, post.rules, "MASQUERADE"))
    out += [Expect(NAT, masq.name, masq.rules), Expect(NAT, post.name, (masq_jump,), masq.name)]
    hp_name = hostport_chain(config, pod_uid)
    if hp is None:
        out += [Expect(NAT, hp_name, present=False), Expect(NAT, config.hostports_chain, (), hp_name)]
    else:
        out += [Expect(NAT, hp.name, hp.rules), Expect(NAT, config.hostports_chain, hp_jumps, hp.name)]
        fchains, fjumps = base_filter(config)
        out += [Expect(FILTER, c.name, c.rules) for c in fchains]
        out += [Expect(FILTER, j.chain, (j,), j.target) for j in fjumps]
    return tuple(out)


def teardown_changes(config: NetworkConfig, pod_uid: str) -> tuple[TableChange, ...]:
    return (TableChange(NAT, remove=pod_chains(config, pod_uid), referrers=referrers(config)),)


def pod_hash_of_chain(config: NetworkConfig, chain: str) -> str | None:
    for prefix in (config.masq_chain_prefix, config.hostport_chain_prefix):
        if chain.startswith(prefix):
            return chain[len(prefix):]
    return None


def gc_changes(config: NetworkConfig, nat_chains: Iterable[str],
               known_uids: Iterable[str]) -> tuple[TableChange, ...]:
    """Remove the pod chains (and their jumps) of every pod not in `known_uids`."""
    known = {uid_hash(u) for u in known_uids}
    stale = tuple(sorted(c for c in nat_chains
                         if (h := pod_hash_of_chain(config, c)) is not None and h not in known))
    if not stale:
        return ()
    return (TableChange(NAT, remove=stale, referrers=referrers(config)),)


def uninstall_changes(config: NetworkConfig, chains: dict[str, Iterable[str]]) -> tuple[TableChange, ...]:
    """Remove every chain of ours (by prefix) and the jumps to them from the built-in chains."""
    out = []
    for table, names in chains.items():
        ours = [c for c in names if c.startswith(config.chain_prefix + "-")]
        if not ours:
            continue
        # pod chains first (referenced from base chains), then the base chains
        ours.sort(key=lambda c: pod_hash_of_chain(config, c) is None)
        out.append(TableChange(table, remove=tuple(ours),
                               referrers=BUILTIN[table] + tuple(c for c in ours if pod_hash_of_chain(config, c) is None)))
    return tuple(out)
