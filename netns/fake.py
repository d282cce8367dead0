"""A recording double of netns's edges, for unit tests of the orchestration in netns/network.py
(no root, no kernel): what youki's network/fake.rs and host-local's fake store are to theirs.

FakeEdge holds an in-memory world (host links, pod namespaces, iptables tables, IP and hostPort
entries, /etc files, records, sysctls) and one object per edge module with the functions
network.py calls, each of which records a Call (name, arguments, whether it changed the world)
before it acts. `installed()` puts them in place of network.py's module attributes. `fail(name)`
makes the next call of that name raise (before it changes anything), to check that setup undoes
exactly what it made, in reverse order.

`Spy` records the same Calls around the real edges, so an integration test can check that the
double and the kernel lead network.py through the same steps. Unit tests only: never used by
the package itself."""

from __future__ import annotations

import copy
import errno
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator

from . import plan, rules, state
from .errors import AddressExhausted, LinkError, PortConflict, RuleError
from .plan import NetworkConfig, PodFiles, PodNetwork, PortMapping
from .state import Bridge, LinkState, PodSide

EDGES = ("netlink", "iptables", "sysctl", "nsfs", "ipam", "hostports", "podfiles", "podrecords")
TARGETS = {"ACCEPT", "DROP", "RETURN", "MASQUERADE", "DNAT", "SNAT", "MARK", "REJECT", "LOG"}
NODE_IP = "192.0.2.10"


@dataclass
class Call:
    name: str                 # "netlink.create_veth", "ipam.ensure", ...
    args: tuple = ()
    changed: bool = False     # set after the call: did it change the world?

    def __repr__(self) -> str:
        return f"{self.name}{'*' if self.changed else ''}"


@dataclass
class PodNS:
    """A pod network namespace of the fake world."""

    eth0: LinkState | None = None
    lo_up: bool = False
    routes: tuple[tuple[str | None, int | None], ...] = ()


@dataclass
class World:
    links: dict[str, LinkState] = field(default_factory=dict)
    pods: dict[str, PodNS] = field(default_factory=dict)          # netns path -> namespace
    tables: dict[str, dict[str, list[rules.Rule]]] = field(
        default_factory=lambda: {t: {c: [] for c in cs} for t, cs in rules.BUILTIN.items()})
    ips: dict[str, str] = field(default_factory=dict)             # ip -> owner
    last_ip: str | None = None
    claims: dict[str, str] = field(default_factory=dict)          # key -> owner
    files: dict[str, str] = field(default_factory=dict)           # path -> text
    records: dict[str, bytes] = field(default_factory=dict)       # uid -> record
    sysctls: dict[str, str] = field(default_factory=dict)


class FakeEdge:
    def __init__(self, host_files: dict[str, str] | None = None):
        self.world = World()
        self.host_files = dict(host_files or {})
        self.calls: list[Call] = []
        self.commits: Counter = Counter()
        self._failures: dict[str, tuple[int, BaseException]] = {}
        self._next_index = 10
        self._fds: dict[int, str] = {}
        self.netlink = _Netlink(self)
        self.iptables = _Iptables(self)
        self.sysctl = _Sysctl(self)
        self.nsfs = _Nsfs(self)
        self.ipam = _Ipam(self)
        self.hostports = _Hostports(self)
        self.podfiles = _Podfiles(self)
        self.podrecords = _Podrecords(self)

    # ---- test controls ----------------------------------------------------------------------------

    def add_netns(self, path: str) -> str:
        """A pinned pod network namespace at `path` (what the runtime's sandbox makes)."""
        self.world.pods[path] = PodNS()
        return path

    def fail(self, name: str, exc: BaseException | None = None, nth: int = 1) -> None:
        """The `nth` next call of `name` raises `exc` (default: a LinkError) before acting."""
        self._failures[name] = (nth, exc or LinkError("fake", name, "injected failure"))

    @contextmanager
    def installed(self, module=None) -> Iterator["FakeEdge"]:
        """Put the fakes in place of `module`'s edge attributes (default: netns.network)."""
        if module is None:
            from . import network as module
        saved = {name: getattr(module, name) for name in EDGES}
        for name in EDGES:
            setattr(module, name, getattr(self, name))
        try:
            yield self
        finally:
            for name, value in saved.items():
                setattr(module, name, value)

    def names(self, changed_only: bool = False) -> list[str]:
        return [c.name for c in self.calls if c.changed or not changed_only]

    def snapshot(self) -> World:
        return copy.deepcopy(self.world)

    def pod_objects(self, config: NetworkConfig, pod_uid: str, netns_path: str | None = None) -> dict[str, Any]:
        """Everything of the world that belongs to the pod (not the bridge, base chains, sysctls);
        with `netns_path`, what is inside that pod namespace too."""
        veth = plan.host_veth_name(config, pod_uid)
        ns = self.world.pods.get(netns_path) if netns_path else None
        pod_chains = set(rules.pod_chains(config, pod_uid))
        rules_of_pod = sorted(r.render() for t in self.world.tables.values() for c, rs in t.items() for r in rs
                              if c in pod_chains or r.target in pod_chains)
        return {
            "veth": self.world.links.get(veth),
            "eth0": ns.eth0 if ns is not None else None,
            "routes": ns.routes if ns is not None else (),
            "chains": sorted(c for t in self.world.tables.values() for c in t if c in pod_chains),
            "rules": rules_of_pod,
            "ips": sorted(ip for ip, o in self.world.ips.items() if o == pod_uid),
            "claims": sorted(k for k, o in self.world.claims.items() if o == pod_uid),
            "record": self.world.records.get(pod_uid),
            "files": sorted(self.world.files),
        }

    # ---- recording ----------------------------------------------------------------------------------

    def _call(self, name: str, *args) -> Call:
        failure = self._failures.get(name)
        if failure is not None:
            nth, exc = failure
            if nth <= 1:
                del self._failures[name]
                self.calls.append(Call(name + "!", args))
                raise exc
            self._failures[name] = (nth - 1, exc)
        c = Call(name, args)
        self.calls.append(c)
        return c

    def _index(self) -> int:
        self._next_index += 1
        return self._next_index


class _Part:
    def __init__(self, edge: FakeEdge):
        self.edge = edge
        self.w = edge.world

    def _call(self, name: str, *args) -> Call:
        return self.edge._call(f"{self.prefix}.{name}", *args)

    prefix = ""


class _Netlink(_Part):
    prefix = "netlink"

    def ensure_bridge(self, config: NetworkConfig) -> Bridge:
        c = self._call("ensure_bridge", config.bridge)
        gw = f"{config.gateway_ip}/{config.prefixlen}"
        br = self.w.links.get(config.bridge)
        if br is not None and br.kind != "bridge":
            raise LinkError(config.bridge, "ensure bridge", f"exists but is a {br.kind or 'physical'} link, not a bridge")
        want = LinkState(config.bridge, br.index if br else self.edge._index(), "bridge", True,
                         config.mtu or (br.mtu if br else 1500),
                         addresses=tuple(sorted(set(br.addresses if br else ()) | {gw})))
        if want != br:
            self.w.links[config.bridge] = want
            c.changed = True
        return Bridge(want.name, want.index, want.mtu)

    def delete_bridge(self, config: NetworkConfig) -> bool:
        return self._delete("delete_bridge", config.bridge)

    def create_veth(self, config: NetworkConfig, pod_uid: str, bridge: Bridge, netns_fd: int, netns_path: str) -> str:
        c = self._call("create_veth", pod_uid, netns_path)
        name = plan.host_veth_name(config, pod_uid)
        if name in self.w.links:
            self._drop(name)
            c.changed = True
        ns = self.w.pods[self.edge._fds[netns_fd]]
        if ns.eth0 is not None:
            raise LinkError(plan.POD_IFNAME, "create veth peer", "the pod network namespace already has eth0",
                            errno.EEXIST, netns_path)
        index = self.edge._index()
        ns.eth0 = LinkState(plan.POD_IFNAME, 2, "veth", False, bridge.mtu, peer=index)
        self.w.links[name] = LinkState(name, index, "veth", True, bridge.mtu, master=bridge.index, peer=2,
                                       alias=plan.link_alias(config, pod_uid), hairpin=True)
        c.changed = True
        return name

    def configure_pod(self, netns_fd: int, netns_path: str, ip: str, prefixlen: int, gateway: str) -> None:
        c = self._call("configure_pod", netns_path, ip)
        ns = self.w.pods[self.edge._fds[netns_fd]]
        if ns.eth0 is None:
            raise LinkError(plan.POD_IFNAME, "configure", "not in the pod network namespace", errno.ENODEV, netns_path)
        eth0 = replace(ns.eth0, up=True, addresses=(f"{ip}/{prefixlen}",))
        routes = ((gateway, eth0.index),)
        if (eth0, routes, True) != (ns.eth0, ns.routes, ns.lo_up):
            ns.eth0, ns.routes, ns.lo_up = eth0, routes, True
            c.changed = True

    def _drop(self, name: str) -> None:
        link = self.w.links.pop(name)
        if link.kind == "veth":
            for ns in self.w.pods.values():
                if ns.eth0 is not None and ns.eth0.peer == link.index:
                    ns.eth0, ns.routes = None, ()

    def delete_link(self, name: str) -> bool:
        return self._delete("delete_link", name)

    def delete_later(self, name: str) -> bool:
        return self._delete("delete_later", name)

    def _delete(self, call: str, name: str) -> bool:
        c = self._call(call, name)
        if name in self.w.links:
            self._drop(name)
            c.changed = True
        return c.changed

    def wait_deleted(self, name: str | None = None, timeout: float | None = 30.0) -> bool:
        self._call("wait_deleted", name)
        return True

    def link_exists(self, name: str) -> bool:
        self._call("link_exists", name)
        return name in self.w.links

    def our_veths(self, config: NetworkConfig) -> dict[str, str | None]:
        self._call("our_veths")
        br = self.w.links.get(config.bridge)
        out = {}
        for name, link in self.w.links.items():
            if link.kind != "veth" or not name.startswith(config.veth_prefix):
                continue
            owner = plan.parse_link_alias(link.alias)
            if (br is not None and link.master == br.index) or (owner is not None and owner[0] == config.bridge):
                out[name] = owner[1] if owner is not None and owner[0] == config.bridge else None
        return out

    def node_ip(self) -> str | None:
        self._call("node_ip")
        return NODE_IP

    def inspect_link(self, name: str) -> LinkState | None:
        self._call("inspect_link", name)
        return self.w.links.get(name)

    def inspect_pod(self, netns_fd: int, netns_path: str) -> PodSide:
        self._call("inspect_pod", netns_path)
        ns = self.w.pods[self.edge._fds[netns_fd]]
        return PodSide(ns.eth0, ns.lo_up, ns.routes)


class _Iptables(_Part):
    prefix = "iptables"

    @property
    def commits(self) -> Counter:
        return self.edge.commits

    def apply(self, changes: Iterable[rules.TableChange]) -> int:
        changes = [ch for ch in changes if not ch.empty]
        c = self._call("apply", tuple(changes))
        n = 0
        for ch in changes:
            table = {k: list(v) for k, v in self.w.tables[ch.table].items()}
            if _apply_one(table, ch):
                self.w.tables[ch.table] = table       # one commit per table, all or nothing
                self.edge.commits[ch.table] += 1
                c.changed = True
                n += 1
        return n

    def unmet(self, expects: Iterable[rules.Expect]) -> list[str]:
        expects = tuple(expects)
        self._call("unmet", expects)
        out = []
        for x in expects:
            where = f"iptables {x.table}/{x.chain}"
            live = self.w.tables[x.table].get(x.chain)
            if live is None:
                if x.present:
                    out.append(f"{where}: chain missing")
                continue
            if not x.present:
                out.append(f"{where}: chain should not exist")
                continue
            what = f"rules to {x.target}" if x.target else "rules"
            if x.rules and x.target is not None and x.target not in TARGETS and x.target not in self.w.tables[x.table]:
                out.append(f"{where}: {what} missing: can't find target {x.target}")
                continue
            got = [r for r in live if x.target is None or r.target == x.target]
            if got != list(x.rules):
                out.append(f"{where}: {what} differ from the plan ({len(got)} live, {len(x.rules)} planned)")
        return out

    def chains(self, table: str) -> list[str]:
        self._call("chains", table)
        return list(self.w.tables[table])

    def targets(self, table: str, chain: str) -> list[str]:
        self._call("targets", table, chain)
        return [r.target for r in self.w.tables[table].get(chain, ())]


def _apply_one(t: dict[str, list[rules.Rule]], ch: rules.TableChange) -> bool:
    """TableChange's documented order, on an in-memory table (as netns/iptables.py does on libiptc's)."""
    changed = False

    def check_target(r: rules.Rule) -> None:
        if r.target not in TARGETS and r.target not in t:
            raise RuleError(ch.table, r.chain, f"no chain/target/match by the name {r.target}")

    def need(chain: str) -> None:
        if chain not in t:
            raise RuleError(ch.table, chain, "No chain/target/match by that name")

    for spec in ch.ensure:
        if spec.name not in t:
            t[spec.name] = []
            for r in spec.rules:
                check_target(r)
                t[spec.name].append(r)
            changed = True
    for j in ch.jumps:
        need(j.chain)
        check_target(j)
        if j.target not in [r.target for r in t[j.chain]]:
            t[j.chain].insert(0, j)
            changed = True
    for name in ch.remove:
        if name not in t:
            continue
        for ref in ch.referrers:
            if ref != name and ref in t:
                kept = [r for r in t[ref] if r.target != name]
                changed |= len(kept) != len(t[ref])
                t[ref] = kept
        if any(r.target == name for rs in t.values() for r in rs):
            raise RuleError(ch.table, name, "Too many links (the chain is still referenced)")
        del t[name]
        changed = True
    for spec in ch.add:
        if spec.name in t:
            raise RuleError(ch.table, spec.name, "Chain already exists")
        t[spec.name] = []
        for r in spec.rules:
            check_target(r)
            t[spec.name].append(r)
        changed = True
    for r in ch.append:
        need(r.chain)
        check_target(r)
        t[r.chain].append(r)
        changed = True
    return changed


class _Sysctl(_Part):
    prefix = "sysctl"

    def _set(self, call: str, key: str, value: str) -> bool:
        c = self._call(call, key, value)
        if self.w.sysctls.get(key) != value:
            self.w.sysctls[key] = value
            c.changed = True
        return c.changed

    def ensure(self, key: str, value: str, link: str = "sysctl") -> bool:
        return self._set("ensure", key, value)

    def ip_forward(self) -> bool:
        return self._set("ip_forward", "net.ipv4.ip_forward", "1")

    def bridge_nf_call_iptables(self) -> bool:
        return self._set("bridge_nf_call_iptables", "net.bridge.bridge-nf-call-iptables", "1")

    def route_localnet(self, ifname: str) -> bool:
        return self._set("route_localnet", f"net.ipv4.conf.{ifname}.route_localnet", "1")


class _Nsfs(_Part):
    prefix = "nsfs"

    def open_netns(self, path: str) -> int:
        self._call("open_netns", path)
        if path not in self.w.pods:
            raise OSError(errno.ENOENT, "No such file or directory", path)
        fd = 1000 + len(self.edge._fds)
        self.edge._fds[fd] = path
        return fd

    def close(self, fd: int) -> None:
        self._call("close", fd)
        del self.edge._fds[fd]


class _Ipam(_Part):
    prefix = "ipam"

    def IPStore(self, config: NetworkConfig) -> "_Ipam._Store":   # noqa: N802 (stands in for the class)
        return _Ipam._Store(self, config)

    class _Store:
        def __init__(self, part: "_Ipam", config: NetworkConfig):
            self.part, self.config, self.w = part, config, part.w

        def ensure(self, pod_uid: str, prefer: str | None = None) -> tuple[str, bool]:
            c = self.part._call("ensure", pod_uid, prefer)
            mine = [ip for ip, o in self.w.ips.items() if o == pod_uid]
            for ip in mine:
                if plan.in_range(self.config, ip):
                    return ip, False
            for ip in mine:
                del self.w.ips[ip]
            c.changed = bool(mine)
            if prefer is not None and prefer not in self.w.ips and plan.in_range(self.config, prefer):
                self.w.ips[prefer] = pod_uid
                c.changed = True
                return prefer, True
            ip = plan.next_free(self.config, self.w.ips, self.w.last_ip)
            if ip is None:
                raise AddressExhausted(pod_uid, str(self.config.cidr), len(self.w.ips))
            self.w.ips[ip] = pod_uid
            self.w.last_ip = ip
            c.changed = True
            return ip, True

        def allocate(self, pod_uid: str) -> str:
            return self.ensure(pod_uid)[0]

        def lookup(self, pod_uid: str) -> str | None:
            self.part._call("lookup", pod_uid)
            mine = sorted(ip for ip, o in self.w.ips.items() if o == pod_uid)
            return mine[0] if mine else None

        def release(self, pod_uid: str) -> list[str]:
            return self._remove("release", lambda o: o == pod_uid)

        def gc(self, known_uids: Iterable[str]) -> list[str]:
            known = set(known_uids)
            return self._remove("gc", lambda o: o not in known)

        def _remove(self, name: str, drop) -> list[str]:
            c = self.part._call(name)
            gone = sorted(ip for ip, o in self.w.ips.items() if drop(o))
            for ip in gone:
                del self.w.ips[ip]
            c.changed = bool(gone)
            return gone

        def allocations(self) -> dict[str, str]:
            return dict(self.w.ips)


class _Hostports(_Part):
    prefix = "hostports"

    def PortClaims(self, config: NetworkConfig) -> "_Hostports._Claims":   # noqa: N802
        return _Hostports._Claims(self)

    class _Claims:
        def __init__(self, part: "_Hostports"):
            self.part, self.w = part, part.w

        def claim(self, pod_uid: str, mappings: Iterable[PortMapping]) -> tuple[str, ...]:
            mappings = tuple(mappings)
            c = self.part._call("claim", pod_uid, tuple(m.key for m in mappings))
            hit = plan.find_conflict(mappings, self.w.claims, pod_uid)
            if hit is not None:
                i, m, owner = hit
                raise PortConflict(pod_uid, f"{m.source or f'ports[{i}]'}.hostPort", str(m), owner)
            before = tuple(sorted(k for k, o in self.w.claims.items() if o == pod_uid))
            want = {m.key for m in mappings}
            for k in before:
                if k not in want:
                    del self.w.claims[k]
            for k in want:
                self.w.claims[k] = pod_uid
            c.changed = set(before) != want
            return before

        def held(self, pod_uid: str) -> tuple[str, ...]:
            self.part._call("held", pod_uid)
            return tuple(sorted(k for k, o in self.w.claims.items() if o == pod_uid))

        def release(self, pod_uid: str) -> list[str]:
            return self._remove("release", lambda o: o == pod_uid)

        def gc(self, known_uids: Iterable[str]) -> list[str]:
            known = set(known_uids)
            return self._remove("gc", lambda o: o not in known)

        def _remove(self, name: str, drop) -> list[str]:
            c = self.part._call(name)
            gone = sorted(k for k, o in self.w.claims.items() if drop(o))
            for k in gone:
                del self.w.claims[k]
            c.changed = bool(gone)
            return gone

        def claims(self) -> dict[str, str]:
            return dict(self.w.claims)


class _Podfiles(_Part):
    prefix = "podfiles"

    def write(self, files_dir: str, hosts: str, hostname: str, resolv_conf: str) -> PodFiles:
        out = PodFiles(f"{files_dir}/hosts", f"{files_dir}/hostname", f"{files_dir}/resolv.conf")
        c = self._call("write", files_dir)
        for path, text in zip((out.hosts, out.hostname, out.resolv_conf), (hosts, hostname, resolv_conf)):
            if self.w.files.get(path) != text:
                self.w.files[path] = text
                c.changed = True
        return out

    def present(self, files_dir: str) -> bool:
        self._call("present", files_dir)
        return any(p.startswith(files_dir + "/") for p in self.w.files)

    def remove(self, files_dir: str) -> None:
        c = self._call("remove", files_dir)
        for p in [p for p in self.w.files if p.startswith(files_dir + "/")]:
            del self.w.files[p]
            c.changed = True

    def read_text(self, path: str, limit: int = 1 << 20) -> str:
        self._call("read_text", path)
        return self.edge.host_files.get(path, "")


class _Podrecords(_Part):
    prefix = "podrecords"

    def path(self, config: NetworkConfig, pod_uid: str) -> str:
        return f"{config.records_dir}/{pod_uid}.json"

    def read(self, config: NetworkConfig, pod_uid: str) -> PodNetwork | None:
        self._call("read", pod_uid)
        data = self.w.records.get(pod_uid)
        return state.from_record(data) if data is not None else None

    def write(self, config: NetworkConfig, net: PodNetwork) -> bool:
        c = self._call("write", net.pod_uid)
        data = state.to_record(net)
        if self.w.records.get(net.pod_uid) != data:
            self.w.records[net.pod_uid] = data
            c.changed = True
        return c.changed

    def remove(self, config: NetworkConfig, pod_uid: str) -> bool:
        c = self._call("remove", pod_uid)
        c.changed = self.w.records.pop(pod_uid, None) is not None
        return c.changed

    def gc(self, config: NetworkConfig, known_uids: Iterable[str]) -> list[str]:
        c = self._call("gc")
        known = set(known_uids)
        gone = sorted(u for u in self.w.records if u not in known)
        for u in gone:
            del self.w.records[u]
        c.changed = bool(gone)
        return gone


# ---- the same record around the real edges ----------------------------------------------------------

class Spy:
    """Records the calls network.py makes into the real edges (names only; `changed` stays
    False: the real edges do not say), for comparison with a FakeEdge's `names()`."""

    def __init__(self):
        self.calls: list[Call] = []

    @contextmanager
    def installed(self, module=None) -> Iterator["Spy"]:
        if module is None:
            from . import network as module
        saved = {name: getattr(module, name) for name in EDGES}
        for name in EDGES:
            setattr(module, name, _Proxy(self, name, saved[name]))
        try:
            yield self
        finally:
            for name, value in saved.items():
                setattr(module, name, value)

    def names(self) -> list[str]:
        return [c.name for c in self.calls]


class _Proxy:
    CLASSES = {"IPStore": "ipam", "PortClaims": "hostports"}    # their instances' methods are recorded too

    def __init__(self, spy: Spy, prefix: str, target):
        self._spy, self._prefix, self._target = spy, prefix, target

    def __getattr__(self, attr: str):
        value = getattr(self._target, attr)
        if not callable(value):
            return value
        if attr in self.CLASSES:
            return lambda *a, **k: _Proxy(self._spy, self._prefix, value(*a, **k))

        def call(*args, **kw):
            self._spy.calls.append(Call(f"{self._prefix}.{attr}", args))
            return value(*args, **kw)
        return call
