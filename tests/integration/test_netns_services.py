"""Services in iptables on the real kernel, with real traffic, once with the rules in the legacy tables
(backend "restore") and once in nf_tables through iptables-nft (backend "nft", beside the pod
network's rules, which stay in the legacy tables): a client pod and three
backend pods (busybox httpd answering their names) on a test bridge, an "outside" host netns.
The live tables equal the plan; ClusterIP from a pod, the node and the outside host reaches every
backend; hairpin; a removed endpoint leaves the rotation and an incremental sync rewrites only the
changed chains (packet counters of the others survive); no endpoints is refused at once; NodePort
from outside, 127.0.0.1 and the node address; ClientIP affinity; a UDP client moves off a removed
endpoint (conntrack flushed); a failed sync leaves the table as it was and the retry repairs it;
teardown leaves nothing of ours in either family; a proxy of the other family takes the rules
over (a daemon switched between modes). The chain prefix, subnets and ports are unique to the run; traffic goes
only to loopback or into namespaces made here (the service subnet is routed to a veth of
the test into a netns of its own, so a packet the rules fail to DNAT goes nowhere else)."""

from __future__ import annotations

import errno
import os
import random
import secrets
import socket
import threading
import time
from collections import Counter

import pytest

from netns import (Endpoint, ServicePort, ServiceProxy, ServiceSyncError, remove_network, services, setup_pod_network,
                   teardown_pod_network)
from netns.rules import BUILTIN
from tests.conftest import need_tool
from tests.integration.netns_helpers import (Httpd, Netns, Outside, assert_nothing_left, free_subnets, http_get,
                                             make_config, run, write_site)

pytestmark = pytest.mark.root

NP_WEB = 30000 + random.randrange(0, 2700)        # NodePorts distinct per run
NP_EMPTY = NP_WEB + 1
HP_B2 = 18000 + random.randrange(0, 1000)          # a hostPort of b2: the pod network's rules share the tables
BACKENDS = ("b0", "b1", "b2")


class World:
    pass


def who_cgi(site: str, name: str) -> None:
    """cgi-bin/who: "<name> <client address>" (httpd listens on v6: strip ::ffff:)."""
    path = os.path.join(site, "cgi-bin", "who")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\n'
                f'printf "{name} "; echo "$REMOTE_ADDR" | sed -e "s/^\\[::ffff://" -e "s/\\]$//" | tr -d "\\n"\n')
    os.chmod(path, 0o755)


class UdpEcho:
    """A UDP server inside a pod netns, served from a thread here: answers each datagram with its
    name."""

    def __init__(self, ns: Netns, port: int, name: str):
        self.sock = ns.socket(socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", port))
        self.sock.settimeout(0.2)
        self.name = name.encode()
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                _, peer = self.sock.recvfrom(100)
            except socket.timeout:
                continue
            self.sock.sendto(self.name, peer)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


SAVE = {"restore": "iptables-legacy-save", "iptc": "iptables-legacy-save", "nft": "iptables-nft-save"}
IPTABLES = {"restore": "iptables-legacy", "nft": "iptables-nft"}


def owned_lines(cfg, table: str, counters: bool = False, save: str = "iptables-legacy-save") -> list[str]:
    """This table's lines of ours in `save`'s output (iptables-legacy-save or iptables-nft-save):
    our chains' rules and the built-in chains' jumps to them (pod network chains of the same
    prefix left out)."""
    out = run([save, "-t", table] + (["-c"] if counters else [])).stdout.splitlines()
    got = []
    for line in out:
        rule = line.split("] ", 1)[1] if counters and line.startswith("[") else line
        if is_owned(cfg, table, rule):
            got.append(rule.split()[0] if rule.startswith(":") else line)
    return got


def is_owned(cfg, table: str, line: str) -> bool:
    """An iptables-save line of the proxy's: its chain, a rule of it, a built-in chain's jump to it."""
    words = line.split()
    if line.startswith(":"):
        return services.owned_chain(cfg, table, words[0][1:])
    return line.startswith("-A ") and (services.owned_chain(cfg, table, words[1]) or (
        words[1] in BUILTIN[table] and services.owned_chain(cfg, table, words[-1])))


def pod_network_lines(cfg) -> list[str]:
    """iptables-legacy-save lines of the pod network (our prefix, not the proxy's chains)."""
    out = []
    for table in ("nat", "filter"):
        out += [f"{table} {x}" for x in run(["iptables-legacy-save", "-t", table]).stdout.splitlines()
                if cfg.chain_prefix + "-" in x and not is_owned(cfg, table, x)]
    return out


def planned_lines(cfg, plan: services.ServiceRules, table: str) -> list[str]:
    return ([f":{c.name}" for c in plan.chains[table]]
            + [r.render() for c in plan.chains[table] for r in c.rules]
            + [j.render() for j in plan.jumps[table]])


def both_families(cfg) -> dict[str, list[str]]:
    """Our lines in the legacy tables and in iptables-nft's, per table."""
    return {f"{save} {t}": owned_lines(cfg, t, save=save) for save in ("iptables-legacy-save", "iptables-nft-save")
            for t in ("nat", "filter")}


def assert_live_equals_plan(w, plan: services.ServiceRules | None = None, backend: str | None = None) -> None:
    plan = plan or w.proxy.applied
    backend = backend or w.backend
    other = "iptables-legacy-save" if backend == "nft" else "iptables-nft-save"
    for table in ("nat", "filter"):
        assert owned_lines(w.cfg, table, save=other) == [], f"{other} {table} holds rules of ours"
        live = owned_lines(w.cfg, table, save=SAVE[backend])
        want = planned_lines(w.cfg, plan, table)
        assert sorted(live) == sorted(want), f"{table}: live has {sorted(set(live) - set(want))}, " \
                                             f"lacks {sorted(set(want) - set(live))}"
        # rule order inside each chain as planned
        for c in plan.chains[table]:
            assert [x for x in live if x.startswith(f"-A {c.name} ")] == [r.render() for r in c.rules]


def ports(w, web_eps=BACKENDS, udp_eps=("b0", "b1"), empty_eps=()):
    svc = w.svc_net
    sps = [ServicePort("default", "web", "http", "TCP", str(svc[10]), 80, node_port=NP_WEB),
           ServicePort("default", "sticky", "", "TCP", str(svc[11]), 80, session_affinity_timeout=600),
           ServicePort("other", "empty", "http", "TCP", str(svc[12]), 80, node_port=NP_EMPTY),
           ServicePort("default", "dns", "dns", "UDP", str(svc[13]), 53)]
    eps = {"default/web:http": [Endpoint(w.ip[b], 8080) for b in web_eps],
           "default/sticky": [Endpoint(w.ip[b], 8080) for b in BACKENDS],
           "other/empty:http": [Endpoint(w.ip[b], 8080) for b in empty_eps],
           "default/dns:dns": [Endpoint(w.ip[b], 5353) for b in udp_eps]}
    return sps, eps


@pytest.fixture(scope="module", params=["restore", "nft"])
def world(request, tmp_path_factory):
    need_tool("ip")
    need_tool("iptables-legacy-save")
    need_tool("iptables-legacy-restore")
    need_tool("busybox")
    need_tool("iptables-nft-save")
    need_tool("iptables-nft-restore")
    pods_net, out_net, svc_net = free_subnets(3)
    w = World()
    w.backend = request.param
    w.svc_net = svc_net
    w.dummy = "kpytd" + secrets.token_hex(3)
    w.cfg = make_config(str(tmp_path_factory.mktemp("net")), pods_net, chain_prefix="KS" + secrets.token_hex(2).upper())
    w.client, w.sink, *backs = Netns.create_many(5)
    w.ns = dict(zip(BACKENDS, backs))
    w.out = Outside(out_net)
    w.servers, w.udp = [], []
    w.before = both_families(w.cfg)
    w.proxy = None
    route = False
    try:
        w.client_ip = setup_pod_network("client", w.client.path, config=w.cfg).ip
        w.ip = {b: setup_pod_network(b, w.ns[b].path, [{"containerPort": 8080, "hostPort": HP_B2}] if b == "b2" else (),
                                     config=w.cfg).ip for b in BACKENDS}
        w.pod_rules = pod_network_lines(w.cfg)
        # the service subnet goes to a veth into a sink netns of ours: a packet the rules fail to
        # DNAT ends there (not on the bridge: a route back out of the interface a packet came in
        # on sends an ICMP redirect first, which uses up the per-host ICMP rate limit the REJECT needs)
        run(["ip", "link", "add", w.dummy, "type", "veth", "peer", "name", "eth0", "netns", w.sink.name])
        route = True
        run(["ip", "link", "set", w.dummy, "up"])
        run(["ip", "route", "add", str(svc_net), "dev", w.dummy])
        w.out.route_to(str(svc_net))
        site = str(tmp_path_factory.mktemp("site"))
        for b in BACKENDS:
            d = write_site(os.path.join(site, b), b)
            who_cgi(d, b)
            w.servers.append(Httpd(w.ns[b], 8080, d))
            w.udp.append(UdpEcho(w.ns[b], 5353, b))
        # b2's hostPort turned route_localnet on: off again, the proxy must turn it on for 127.0.0.1:NodePort
        with open(f"/proc/sys/net/ipv4/conf/{w.cfg.bridge}/route_localnet", "w") as f:
            f.write("0")
        w.proxy = ServiceProxy(w.cfg, backend=w.backend)
        w.first = w.proxy.sync(*ports(w))
        yield w
    finally:
        if w.proxy is not None:
            w.proxy.teardown()
            after = both_families(w.cfg)
            pod_rules_after = pod_network_lines(w.cfg)
        for s in w.servers:
            s.stop()
        for u in w.udp:
            u.close()
        if route:
            run(["ip", "link", "del", w.dummy], check=False)
        w.out.close()
        for uid in ("client",) + BACKENDS:
            teardown_pod_network(uid, config=w.cfg)
        remove_network(w.cfg)
        Netns.delete_many([w.client, w.sink, *backs])
        assert_nothing_left(w.cfg)
    # teardown of the proxy left exactly what was there before it: nothing of ours, in either family
    assert after == w.before and not any(after.values()), after
    assert pod_rules_after == w.pod_rules


def cip(w, i: int) -> str:
    return str(w.svc_net[i])


def names(w, n: int, ip: str, port: int, ns=None) -> Counter:
    return Counter(http_get(ip, port, ns=ns) for _ in range(n))


def test_first_sync_is_full_and_the_live_tables_equal_the_plan(world):
    assert world.first.full
    assert_live_equals_plan(world)
    live = owned_lines(world.cfg, "nat", save=SAVE[world.backend])
    # kube-proxy's layout under our prefix, with upstream's hashes
    web = ServicePort("default", "web", "http", "TCP", cip(world, 10), 80)
    svc = services.svc_chain(world.cfg, web)
    assert svc == f"{world.cfg.chain_prefix}-SVC-" + services.port_proto_hash("default/web:http", "tcp")
    assert f":{svc}" in live and f":{services.ext_chain(world.cfg, web)}" in live
    assert f":{world.cfg.chain_prefix}-POSTROUTING" not in live     # the pod network's chain is not ours
    assert f"-A {world.cfg.chain_prefix}-POSTROUTING " in "\n".join(run(["iptables-legacy-save", "-t", "nat"]).stdout.splitlines())
    assert open(f"/proc/sys/net/ipv4/conf/{world.cfg.bridge}/route_localnet").read().strip() == "1"


def test_clusterip_from_a_pod_reaches_every_backend_without_nat(world):
    got = names(world, 300, cip(world, 10), 80, ns=world.client)
    assert set(got) == set(BACKENDS) and min(got.values()) >= 60, got       # each >= 20%
    # pod to ClusterIP keeps the pod's address (inside the pod CIDR: not masqueraded)
    assert http_get(cip(world, 10), 80, "/cgi-bin/ip", ns=world.client) == world.client_ip


def test_clusterip_from_the_node_reaches_every_backend(world):
    got = names(world, 60, cip(world, 10), 80)
    assert set(got) == set(BACKENDS), got


def test_clusterip_from_outside_the_pod_cidr_is_masqueraded(world):
    out = world.out
    got = names(world, 30, cip(world, 10), 80, ns=out.ns)
    assert set(got) <= set(BACKENDS) and len(got) >= 2
    # the backend sees the node (its address on the bridge), not the outside host
    assert http_get(cip(world, 10), 80, "/cgi-bin/ip", ns=out.ns) == str(world.cfg.gateway_ip)


def test_hairpin_a_backend_reaches_itself_through_its_service(world):
    seen = {}
    for _ in range(60):
        name, addr = http_get(cip(world, 10), 80, "/cgi-bin/who", ns=world.ns["b0"]).split()
        seen[name] = addr
        if len(seen) == 3:
            break
    assert "b0" in seen, seen
    assert seen["b0"] == str(world.cfg.gateway_ip)     # to itself: masqueraded (else the reply never returns)
    others = [a for n, a in seen.items() if n != "b0"]
    assert others and all(a == world.ip["b0"] for a in others)


def test_nodeport_from_outside_from_localhost_and_from_the_node_address(world):
    out = world.out
    got = names(world, 30, out.node_ip, NP_WEB, ns=out.ns)
    assert set(got) <= set(BACKENDS) and len(got) >= 2, got
    assert http_get(out.node_ip, NP_WEB, "/cgi-bin/ip", ns=out.ns) == str(world.cfg.gateway_ip)   # masqueraded
    assert http_get("127.0.0.1", NP_WEB) in BACKENDS          # OUTPUT, route_localnet on the bridge, SNAT
    assert http_get(out.node_ip, NP_WEB) in BACKENDS
    assert http_get(str(world.cfg.gateway_ip), NP_WEB) in BACKENDS


def refused_at_once(ip: str, port: int, ns=None) -> None:
    s = ns.socket() if ns is not None else socket.socket()
    with s:
        s.settimeout(5)
        t0 = time.monotonic()
        assert s.connect_ex((ip, port)) == errno.ECONNREFUSED
        assert time.monotonic() - t0 < 1.0


def test_a_service_without_endpoints_is_refused_at_once(world):
    refused_at_once(cip(world, 12), 80, ns=world.client)       # FORWARD -> filter P-SERVICES REJECT
    refused_at_once(cip(world, 12), 80)                        # OUTPUT
    refused_at_once(world.out.node_ip, NP_EMPTY, ns=world.out.ns)   # INPUT -> P-EXTERNAL-SERVICES
    refused_at_once("127.0.0.1", NP_EMPTY)


def test_client_ip_affinity_sticks(world):
    for ns in (world.client, world.out.ns, None):
        got = names(world, 20, cip(world, 11), 80, ns=ns)
        assert len(got) == 1, got


def test_a_removed_endpoint_leaves_the_rotation_and_only_changed_chains_are_rewritten(world):
    w = world
    web = ServicePort("default", "web", "http", "TCP", cip(w, 10), 80)
    names(w, 30, cip(w, 10), 80, ns=w.client)               # traffic: every SEP chain of web has counts
    sep = {b: services.sep_chain(w.cfg, web, Endpoint(w.ip[b], 8080)) for b in BACKENDS}
    before = owned_lines(w.cfg, "nat", counters=True, save=SAVE[w.backend])
    r = w.proxy.sync(*ports(w, web_eps=("b0", "b1")))
    try:
        assert not r.full
        assert r.written == (f"nat/{services.svc_chain(w.cfg, web)}",)
        assert r.deleted == (f"nat/{sep['b2']}",)
        assert_live_equals_plan(w)
        after = owned_lines(w.cfg, "nat", counters=True, save=SAVE[w.backend])
        # unchanged chains were not rewritten: their rules kept their packet counters, line for line
        for b in ("b0", "b1"):
            kept = [x for x in before if f"-A {sep[b]} " in x]
            assert kept and kept == [x for x in after if f"-A {sep[b]} " in x]
            assert any(not x.startswith("[0:0]") for x in kept)
        assert all(x.startswith("[0:0]") for x in after if f"-A {services.svc_chain(w.cfg, web)} " in x)
        got = names(w, 60, cip(w, 10), 80, ns=w.client)
        assert set(got) == {"b0", "b1"}, got
        assert w.proxy.sync(*ports(w, web_eps=("b0", "b1"))).written == ()    # nothing changed: nothing written
    finally:
        r = w.proxy.sync(*ports(w))
    assert set(names(w, 60, cip(w, 10), 80, ns=w.client)) == set(BACKENDS)


def test_a_udp_client_moves_off_a_removed_endpoint(world):
    w = world
    c = w.client.socket(socket.SOCK_DGRAM)
    with c:
        c.bind(("0.0.0.0", 0))
        c.settimeout(3)

        def ask():
            c.sendto(b"?", (cip(w, 13), 53))
            return c.recvfrom(100)[0].decode()
        first = ask()
        assert first in ("b0", "b1") and all(ask() == first for _ in range(5))   # one conntrack entry
        other = "b1" if first == "b0" else "b0"
        r = w.proxy.sync(*ports(w, udp_eps=(other,)))
        try:
            assert r.conntrack_deleted >= 1
            assert ask() == other        # the entry NATed to the removed endpoint was deleted
        finally:
            w.proxy.sync(*ports(w))


def test_a_failed_sync_leaves_the_table_as_it_was_and_the_retry_repairs_it(world):
    w = world
    web = ServicePort("default", "web", "http", "TCP", cip(w, 10), 80)
    svc, sep0 = services.svc_chain(w.cfg, web), services.sep_chain(w.cfg, web, Endpoint(w.ip["b0"], 8080))
    # someone else removes a chain an incremental write will jump to
    ipt, save = IPTABLES[w.backend], SAVE[w.backend]
    run([ipt, "-w", "5", "-t", "nat", "-F", svc])
    run([ipt, "-w", "5", "-t", "nat", "-F", sep0])
    run([ipt, "-w", "5", "-t", "nat", "-X", sep0])
    nat_before = owned_lines(w.cfg, "nat", save=save)
    filter_before = owned_lines(w.cfg, "filter", save=save)
    with pytest.raises(ServiceSyncError) as e:
        w.proxy.sync(*ports(w, web_eps=("b0", "b1")))
    assert e.value.table == "nat" and e.value.chain in (svc, "COMMIT") and w.proxy.applied is None
    assert owned_lines(w.cfg, "nat", save=save) == nat_before and owned_lines(w.cfg, "filter", save=save) == filter_before
    r = w.proxy.sync(*ports(w))        # the retry is a full sync: everything is put back
    assert r.full
    if w.backend == "nft":             # nf_tables: only the chains that differ are written
        assert sorted(r.written) == sorted((f"nat/{svc}", f"nat/{sep0}")), r.written
    assert_live_equals_plan(w)
    assert set(names(w, 60, cip(w, 10), 80, ns=w.client)) == set(BACKENDS)


def test_a_resync_repairs_a_chain_changed_by_someone_else(world):
    w = world
    web = ServicePort("default", "web", "http", "TCP", cip(w, 10), 80)
    svc = services.svc_chain(w.cfg, web)
    n_chains = sum(len(cs) for cs in w.proxy.applied.chains.values())
    r = w.proxy.resync()
    # the legacy tables are replaced whole anyway: every chain; nf_tables: what differs, nothing
    assert r.full and len(r.written) == (0 if w.backend == "nft" else n_chains), r.written
    run([IPTABLES[w.backend], "-w", "5", "-t", "nat", "-I", svc, "1", "-j", "RETURN"])    # the Service broken
    refused = w.client.socket()
    with refused:
        refused.settimeout(1)
        assert refused.connect_ex((cip(w, 10), 80)) != 0          # not DNATed: into the sink, no answer
    r = w.proxy.resync()
    assert f"nat/{svc}" in r.written and (w.backend != "nft" or r.written == (f"nat/{svc}",)), r.written
    assert_live_equals_plan(w)
    assert set(names(w, 60, cip(w, 10), 80, ns=w.client)) == set(BACKENDS)


def test_a_new_proxy_removes_the_chains_of_services_gone_meanwhile(world):
    w = world
    sps, eps = ports(w)
    fresh = ServiceProxy(w.cfg, backend=w.backend)
    r = fresh.sync([sp for sp in sps if sp.name != "sticky"], eps)      # "sticky" was deleted while we were away
    try:
        sticky = ServicePort("default", "sticky", "", "TCP", cip(w, 11), 80)
        assert r.full and f"nat/{services.svc_chain(w.cfg, sticky)}" in r.deleted and len(r.deleted) == 4
        assert_live_equals_plan(w, fresh.applied)
    finally:
        w.proxy.resync()
    assert_live_equals_plan(w)


@pytest.mark.parametrize("world", ["restore"], indirect=True)  # python-iptables writes the legacy tables
def test_the_python_iptables_applier_writes_the_same_tables(world):
    w = world
    sps, eps = ports(w)
    other = ServiceProxy(w.cfg, backend="iptc")
    try:
        assert other.sync(sps, eps).full
        assert_live_equals_plan(w, other.applied)
        r = other.sync(*ports(w, web_eps=("b1",)))
        assert not r.full and len(r.written) == 1 and len(r.deleted) == 2
        assert_live_equals_plan(w, other.applied)
        assert set(names(w, 20, cip(w, 10), 80, ns=w.client)) == {"b1"}
    finally:
        w.proxy.resync()
    assert_live_equals_plan(w)
    assert set(names(w, 60, cip(w, 10), 80, ns=w.client)) == set(BACKENDS)


def test_the_pod_network_rules_sharing_the_tables_are_untouched(world):
    w = world
    assert any("HOSTPORTS" in x for x in w.pod_rules) and any("-POSTROUTING " in x for x in w.pod_rules)
    assert pod_network_lines(w.cfg) == w.pod_rules
    assert http_get("127.0.0.1", HP_B2) == "b2"                    # the hostPort works beside the Services
    assert http_get(w.out.node_ip, HP_B2, ns=w.out.ns) == "b2"
    w.proxy.sync(*ports(w, web_eps=("b0",)))
    w.proxy.resync()
    assert pod_network_lines(w.cfg) == w.pod_rules


def test_a_proxy_of_the_other_family_takes_the_rules_over(world):
    """A daemon restarted in the other mode: its first sync writes the plan into its family and
    removes ours from the other one (else both would act on traffic); and back."""
    w = world
    other = "nft" if w.backend == "restore" else "restore"
    try:
        q = ServiceProxy(w.cfg, backend=other)
        assert q.sync(*ports(w, web_eps=("b2",))).full
        assert_live_equals_plan(w, q.applied, backend=other)      # and our family is empty of ours
        assert set(names(w, 20, cip(w, 10), 80, ns=w.client)) == {"b2"}
        assert http_get(w.out.node_ip, NP_WEB, ns=w.out.ns) == "b2"
    finally:
        w.proxy = ServiceProxy(w.cfg, backend=w.backend)
        w.proxy.sync(*ports(w))
    assert_live_equals_plan(w)
    assert set(names(w, 60, cip(w, 10), 80, ns=w.client)) == set(BACKENDS)
    assert pod_network_lines(w.cfg) == w.pod_rules


def test_teardown_removes_ours_from_both_families_and_is_repeatable(world):
    w = world
    # the same rules in the other family too (a full sync's input, loaded by its restore alone)
    restore = "iptables-legacy-restore" if w.backend == "nft" else "iptables-nft-restore"
    run([restore, "-w", "5", "--noflush"], input=services.restore_text(services.delta(w.cfg, w.proxy.applied, None)))
    try:
        lines = both_families(w.cfg)
        assert all(lines[f"{s} {t}"] for s in ("iptables-legacy-save", "iptables-nft-save") for t in ("nat", "filter"))
        p = ServiceProxy(w.cfg)
        p.teardown()
        assert not any(both_families(w.cfg).values()), both_families(w.cfg)
        p.teardown()                                   # nothing left: nothing to do
        assert not any(both_families(w.cfg).values())
        assert pod_network_lines(w.cfg) == w.pod_rules
        assert http_get("127.0.0.1", HP_B2) == "b2"      # the pod network's hostPort still works
    finally:
        ServiceProxy(w.cfg).teardown()
        w.proxy.resync()
    assert_live_equals_plan(w)
    assert set(names(w, 60, cip(w, 10), 80, ns=w.client)) == set(BACKENDS)
