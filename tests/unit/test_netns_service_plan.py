"""The service rule planner (netns/services.py), pure: kube-proxy's layout under our prefix as
exact iptables-save lines, upstream's chain hashes (constants from upstream's proxier tests and
hashes computed here from the algorithm), 1/(n-i) probabilities, ClientIP affinity, NodePorts,
REJECT without endpoints, hairpin masquerade, input errors naming the field, and what a full and
an incremental sync write (never a chain of the pod network)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from netns import rules, services
from netns.errors import ConfigError, ServiceSpecError
from netns.plan import NetworkConfig
from netns.services import Endpoint, ServicePort, TableDelta, delta, plan

CFG = NetworkConfig(gateway="10.0.0.1/24")          # prefix KPY, pod CIDR 10.0.0.0/24
SVC1 = ServicePort("ns1", "svc1", "p80", "TCP", "10.20.30.41", 80)
KEY1 = "ns1/svc1:p80"
# upstream's pkg/proxy/iptables/proxier_test.go names these chains for the same inputs
H_SVC1 = "XPGD46QRK7WJZT7O"           # KUBE-SVC- of ns1/svc1:p80 tcp
H_SEP1 = "SXIVWICOYRO3J4NJ"           # KUBE-SEP- of ns1/svc1:p80 tcp 10.180.0.1:80
H_SVC2 = "GNZBNJ2PO5MGZ6GT"           # KUBE-SVC- of ns2/svc2:p80 tcp


def by_hand(text: str) -> str:
    """upstream: base32.StdEncoding(sha256(text)) cut to 16 characters."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def lines(r: services.ServiceRules, table: str, chain: str) -> list[str]:
    return [x.render() for x in r.table(table)[chain]]


def test_chain_hashes_are_upstreams():
    assert services.port_proto_hash(KEY1, "tcp") == H_SVC1 == by_hand("ns1/svc1:p80tcp")
    assert services.endpoint_hash(KEY1, "tcp", "10.180.0.1:80") == H_SEP1 == by_hand("ns1/svc1:p80tcp10.180.0.1:80")
    assert services.port_proto_hash("ns2/svc2:p80", "tcp") == H_SVC2
    # an unnamed port: "ns/svc" without ':'; the protocol is part of the hash
    unnamed = ServicePort("default", "web", "", "UDP", "10.96.0.20", 53)
    assert unnamed.key == "default/web"
    assert services.svc_chain(CFG, unnamed) == "KPY-SVC-" + by_hand("default/webudp")
    assert services.ext_chain(CFG, unnamed) == "KPY-EXT-" + by_hand("default/webudp")
    assert services.sep_chain(CFG, unnamed, Endpoint("10.0.0.7", 5353)) == "KPY-SEP-" + by_hand(
        "default/webudp10.0.0.7:5353")
    # the prefix is the network's (plan.NetworkConfig.chain_prefix), the hash does not depend on it
    other = NetworkConfig(gateway="10.0.0.1/24", chain_prefix="KT1")
    assert services.svc_chain(other, SVC1) == f"KT1-SVC-{H_SVC1}"


def test_layout_of_one_port_with_one_endpoint_like_upstream():
    r = plan(CFG, [SVC1], {KEY1: [Endpoint("10.180.0.1", 80)]})
    svc, sep = f"KPY-SVC-{H_SVC1}", f"KPY-SEP-{H_SEP1}"
    assert lines(r, "nat", "KPY-SERVICES") == [
        f'-A KPY-SERVICES -d 10.20.30.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j {svc}',
        '-A KPY-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KPY-NODEPORTS',
    ]
    assert lines(r, "nat", svc) == [
        f'-A {svc} ! -s 10.0.0.0/24 -d 10.20.30.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KPY-MARK-MASQ',
        f'-A {svc} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j {sep}',
    ]
    assert lines(r, "nat", sep) == [
        f'-A {sep} -s 10.180.0.1/32 -m comment --comment "ns1/svc1:p80" -j KPY-MARK-MASQ',
        f'-A {sep} -p tcp -m comment --comment "ns1/svc1:p80" -m tcp -j DNAT --to-destination 10.180.0.1:80',
    ]
    assert lines(r, "nat", "KPY-MARK-MASQ") == ["-A KPY-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"]
    assert lines(r, "nat", "KPY-PROXY-POSTROUTING") == [
        "-A KPY-PROXY-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KPY-PROXY-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KPY-PROXY-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]
    assert lines(r, "nat", "KPY-NODEPORTS") == []
    assert [c.name for c in r.chains["nat"]] == ["KPY-SERVICES", "KPY-NODEPORTS", "KPY-MARK-MASQ",
                                                "KPY-PROXY-POSTROUTING", svc, sep]
    assert [j.render() for j in r.jumps["nat"]] == [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KPY-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KPY-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KPY-PROXY-POSTROUTING',
    ]
    assert [j.render() for j in r.jumps["filter"]] == [
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KPY-EXTERNAL-SERVICES',
        '-A INPUT -m comment --comment "kubernetes localnet guard" -j KPY-PROXY-FIREWALL',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KPY-FORWARD',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KPY-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KPY-EXTERNAL-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KPY-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes localnet guard" -j KPY-PROXY-FIREWALL',
    ]
    assert lines(r, "filter", "KPY-SERVICES") == [] and lines(r, "filter", "KPY-EXTERNAL-SERVICES") == []
    assert lines(r, "filter", "KPY-PROXY-FIREWALL") == [
        '-A KPY-PROXY-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP']
    assert not r.node_ports and r.udp_endpoints == frozenset()


def test_every_service_rule_comment_names_the_service_port():
    sp = ServicePort("ns1", "svc1", "p80", "TCP", "10.20.30.41", 80, node_port=30080, session_affinity_timeout=60,
                     external_ips=("192.168.99.11",))
    r = plan(CFG, [sp], {KEY1: [Endpoint("10.180.0.1", 80), Endpoint("10.180.0.2", 80)]})
    per_service = [x for c in r.chains["nat"] if services.is_hashed_chain(CFG, c.name) for x in c.rules]
    per_service += [x for x in r.table("nat")["KPY-SERVICES"][:-1] + r.table("nat")["KPY-NODEPORTS"]]
    assert len(per_service) == 14       # EXT 2, SVC 5, SEP 2x2, SERVICES 2, NODEPORTS 1
    for x in per_service:
        (comment,) = [m for m in x.matches if m.name == "comment"]
        assert KEY1 in comment.args[0][1], x.render()
    gone = plan(CFG, [sp], {})
    for x in gone.table("filter")["KPY-SERVICES"] + gone.table("filter")["KPY-EXTERNAL-SERVICES"]:
        assert f'--comment "{KEY1} has no endpoints"' in x.render()


@pytest.mark.parametrize("n, kube_proxy, saved", [
    (1, [], []),
    (2, ["0.5000000000"], ["0.50000000000"]),
    (3, ["0.3333333333", "0.5000000000"], ["0.33333333349", "0.50000000000"]),
    (4, ["0.2500000000", "0.3333333333", "0.5000000000"], ["0.25000000000", "0.33333333349", "0.50000000000"]),
])
def test_probabilities_one_over_n_minus_i(n, kube_proxy, saved):
    eps = [Endpoint(f"10.180.0.{i + 1}", 80) for i in range(n)]
    r = plan(CFG, [SVC1], {KEY1: eps})
    jumps = r.table("nat")[f"KPY-SVC-{H_SVC1}"][1:]
    assert [x.target for x in jumps] == [services.sep_chain(CFG, SVC1, e) for e in eps]
    probs = [dict(m.args)["probability"] for x in jumps for m in x.matches if m.name == "statistic"]
    assert probs == kube_proxy == [services.probability(n, i) for i in range(n - 1)]
    # the last endpoint matches everything; iptables-save prints the value the kernel keeps (x/2^31)
    assert "statistic" not in jumps[-1].render()
    assert [x.render().split("--probability ")[1].split()[0] for x in jumps[:-1]] == saved
    for x in jumps[:-1]:
        assert "-m statistic --mode random --probability 0." in x.render()


def test_endpoints_ready_first_then_serving_terminating_sorted_and_unique():
    eps = [Endpoint("10.180.0.9", 80), Endpoint("10.180.0.10", 80), Endpoint("10.180.0.2", 80, ready=False),
           Endpoint("10.180.0.9", 80)]
    assert [e.ip for e in services.usable_endpoints(eps)] == ["10.180.0.9", "10.180.0.10"]
    terminating = [Endpoint("10.180.0.3", 80, ready=False, serving=True, terminating=True),
                   Endpoint("10.180.0.4", 80, ready=False, serving=False, terminating=True)]
    assert [e.ip for e in services.usable_endpoints(terminating)] == ["10.180.0.3"]
    # the order they come in does not change the rules (no rewrite for a reordered slice)
    a = plan(CFG, [SVC1], {KEY1: eps})
    b = plan(CFG, [SVC1], {KEY1: list(reversed(eps))})
    assert a == b


def test_client_ip_affinity_with_recent():
    sp = ServicePort("ns1", "svc1", "p80", "TCP", "10.20.30.41", 80, session_affinity_timeout=10800)
    eps = [Endpoint("10.180.0.1", 80), Endpoint("10.180.0.2", 80)]
    r = plan(CFG, [sp], {KEY1: eps})
    svc = f"KPY-SVC-{H_SVC1}"
    s1, s2 = (services.sep_chain(CFG, sp, e) for e in eps)
    assert s1 == f"KPY-SEP-{H_SEP1}"
    assert lines(r, "nat", svc)[1:] == [
        f'-A {svc} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --rcheck --seconds 10800 --reap --name {s1} --mask 255.255.255.255 --rsource -j {s1}',
        f'-A {svc} -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m recent --rcheck --seconds 10800 --reap --name {s2} --mask 255.255.255.255 --rsource -j {s2}',
        f'-A {svc} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.50000000000 -j {s1}',
        f'-A {svc} -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j {s2}',
    ]
    assert lines(r, "nat", s1)[1] == (
        f'-A {s1} -p tcp -m comment --comment "ns1/svc1:p80" -m recent --set --name {s1} --mask 255.255.255.255 '
        f'--rsource -m tcp -j DNAT --to-destination 10.180.0.1:80')


def test_nodeport_and_external_ip_go_through_ext_chain_and_nodeports_is_last():
    sp = ServicePort("ns2", "svc2", "p80", "TCP", "10.20.30.42", 80, node_port=30080, external_ips=("192.168.99.11",))
    r = plan(CFG, [sp, SVC1], {"ns2/svc2:p80": [Endpoint("10.180.0.2", 8080)], KEY1: [Endpoint("10.180.0.1", 80)]})
    svc, ext = f"KPY-SVC-{H_SVC2}", f"KPY-EXT-{H_SVC2}"
    assert lines(r, "nat", "KPY-SERVICES") == [
        f'-A KPY-SERVICES -d 10.20.30.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KPY-SVC-{H_SVC1}',
        f'-A KPY-SERVICES -d 10.20.30.42/32 -p tcp -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp --dport 80 -j {svc}',
        f'-A KPY-SERVICES -d 192.168.99.11/32 -p tcp -m comment --comment "ns2/svc2:p80 external IP" -m tcp --dport 80 -j {ext}',
        '-A KPY-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KPY-NODEPORTS',
    ]
    assert lines(r, "nat", "KPY-NODEPORTS") == [
        f'-A KPY-NODEPORTS -p tcp -m comment --comment "ns2/svc2:p80" -m tcp --dport 30080 -j {ext}']
    assert lines(r, "nat", ext) == [
        f'-A {ext} -m comment --comment "masquerade traffic for ns2/svc2:p80 external destinations" -j KPY-MARK-MASQ',
        f'-A {ext} -m comment --comment "ns2/svc2:p80" -j {svc}',
    ]
    assert r.node_ports
    assert f"KPY-EXT-{H_SVC1}" not in r.table("nat")          # no NodePort, no external IP: no EXT chain


def test_no_endpoints_rejects_in_filter_and_has_no_nat_chains():
    sp = ServicePort("ns2", "svc2", "p80", "UDP", "10.20.30.42", 80, node_port=30081, external_ips=("192.168.99.11",))
    not_ready = {"ns2/svc2:p80": [Endpoint("10.180.0.5", 80, ready=False, serving=False)]}
    r = plan(CFG, [sp], not_ready)
    assert lines(r, "filter", "KPY-SERVICES") == [
        '-A KPY-SERVICES -d 10.20.30.42/32 -p udp -m comment --comment "ns2/svc2:p80 has no endpoints" -m udp --dport 80 -j REJECT --reject-with icmp-port-unreachable']
    assert lines(r, "filter", "KPY-EXTERNAL-SERVICES") == [
        '-A KPY-EXTERNAL-SERVICES -d 192.168.99.11/32 -p udp -m comment --comment "ns2/svc2:p80 has no endpoints" -m udp --dport 80 -j REJECT --reject-with icmp-port-unreachable',
        '-A KPY-EXTERNAL-SERVICES -p udp -m comment --comment "ns2/svc2:p80 has no endpoints" -m addrtype --dst-type LOCAL -m udp --dport 30081 -j REJECT --reject-with icmp-port-unreachable',
    ]
    assert not [c for c in r.chains["nat"] if services.is_hashed_chain(CFG, c.name)]
    assert lines(r, "nat", "KPY-NODEPORTS") == [] and len(lines(r, "nat", "KPY-SERVICES")) == 1
    assert r.node_ports          # 127.0.0.1:30081 must still be refused, not dropped as martian


def test_hairpin_and_outside_traffic_are_marked_for_masquerade():
    r = plan(CFG, [SVC1], {KEY1: [Endpoint("10.0.0.5", 8080), Endpoint("10.0.0.6", 8080)]})
    svc = r.table("nat")[f"KPY-SVC-{H_SVC1}"]
    # from outside the pod CIDR (the node, an outside host) to the ClusterIP
    assert (svc[0].src, svc[0].dst, svc[0].target) == ("!10.0.0.0/24", "10.20.30.41/32", "KPY-MARK-MASQ")
    # a pod reaching itself through its Service: its own address as source in its SEP chain
    for ip in ("10.0.0.5", "10.0.0.6"):
        sep = r.table("nat")[services.sep_chain(CFG, SVC1, Endpoint(ip, 8080))]
        assert (sep[0].src, sep[0].target) == (f"{ip}/32", "KPY-MARK-MASQ")
        assert sep[1].target_args == (("to-destination", f"{ip}:8080"),)


def test_headless_services_have_no_rules():
    headless = ServicePort("ns1", "db", "", "TCP", None, 5432)
    r = plan(CFG, [headless], {"ns1/db": [Endpoint("10.0.0.5", 5432)]})
    assert plan(CFG, [], {}) == r
    assert ServicePort("ns1", "db", "", "TCP", "None", 5432).headless


@pytest.mark.parametrize("sp, eps, field, why", [
    (ServicePort("ns", "s", "x", "SCTP", "10.96.0.5", 80), {}, "ports[x].protocol", "SCTP"),
    (ServicePort("ns", "s", "x", "tcp", "10.96.0.5", 80), {}, "ports[x].protocol", "upper case"),
    (ServicePort("ns", "s", "x", "TCP", "10.96.0.300", 80), {}, "ports[x].cluster_ip", "IPv4"),
    (ServicePort("ns", "s", "x", "TCP", "10.96.0.5", 0), {}, "ports[x].port", "1-65535"),
    (ServicePort("ns", "s", "x", "TCP", "10.96.0.5", 80, node_port=70000), {}, "ports[x].node_port", "1-65535"),
    (ServicePort("ns", "s", "x", "TCP", "10.96.0.5", 80, external_ips=("a",)), {}, "ports[x].external_ips[0]", "IPv4"),
    (ServicePort("ns", "s", "x", "TCP", "10.96.0.5", 80, session_affinity_timeout=86401), {},
     "ports[x].session_affinity_timeout", "86400"),
    (ServicePort("ns", "s", "x", "TCP", "10.96.0.5", 80), {"ns/s:x": [Endpoint("10.0.0.1", 80), Endpoint("x", 80)]},
     "endpoints[ns/s:x][1].ip", "IPv4"),
])
def test_bad_input_names_service_and_field(sp, eps, field, why):
    with pytest.raises(ServiceSpecError) as e:
        plan(CFG, [sp], eps)
    assert (e.value.obj, e.value.field) == ("service ns/s", field) and why in str(e.value)


def test_same_port_twice_is_an_error_and_a_long_prefix_is_refused():
    with pytest.raises(ServiceSpecError):
        plan(CFG, [SVC1, SVC1], {})
    with pytest.raises(ConfigError) as e:
        plan(NetworkConfig(gateway="10.0.0.1/24", chain_prefix="KPYTESTX"), [SVC1], {})
    assert e.value.field == "chain_prefix"
    services.check_prefix(NetworkConfig(gateway="10.0.0.1/24", chain_prefix="KPYTEST"))   # 7: fits


# ---- what a sync writes -------------------------------------------------------------------------

POD_NETWORK_CHAINS = {"nat": ["KPY-POSTROUTING", "KPY-HOSTPORTS", "KPY-MASQ-0123456789ab", "KPY-HP-0123456789ab"],
                      "filter": ["KPY-FIREWALL"]}


def test_pod_network_chains_are_never_ours():
    for table, names in POD_NETWORK_CHAINS.items():
        for name in names:
            assert not services.owned_chain(CFG, table, name)
    r = plan(CFG, [SVC1], {KEY1: [Endpoint("10.180.0.1", 80)]})
    for table in ("nat", "filter"):
        for c in r.chains[table]:
            assert services.owned_chain(CFG, table, c.name)
            assert c.name not in POD_NETWORK_CHAINS.get(table, ())
    # a chain name that looks like ours but whose hash part is not one
    assert not services.owned_chain(CFG, "nat", "KPY-SVC-POSTROUTING")
    assert not services.owned_chain(CFG, "filter", f"KPY-SVC-{H_SVC1}")


def test_full_sync_writes_everything_removes_stale_of_ours_only_and_inserts_missing_jumps():
    r = plan(CFG, [SVC1], {KEY1: [Endpoint("10.180.0.1", 80)]})
    stale = f"KPY-SEP-{by_hand('gone')}"
    live = {"nat": POD_NETWORK_CHAINS["nat"] + ["KPY-SERVICES", stale, "OTHER-CHAIN", "KUBE-SVC-" + H_SVC1],
            "filter": POD_NETWORK_CHAINS["filter"] + ["KPY-PROXY-FIREWALL"]}
    targets = {"nat": {"PREROUTING": ["KPY-HOSTPORTS", "KPY-SERVICES"], "OUTPUT": [], "POSTROUTING": []},
               "filter": {}}
    filt, nat = delta(CFG, r, None, live, targets)
    assert [c.name for c in nat.write] == [c.name for c in r.chains["nat"]]
    assert nat.delete == (stale,)
    assert [j.chain for j in nat.jumps] == ["OUTPUT", "POSTROUTING"]          # PREROUTING has it
    assert filt.delete == () and len(filt.jumps) == 7
    text = services.restore_text((filt, nat))
    assert text.count("COMMIT") == 2 and text.startswith("*filter\n")
    nat_part = text[text.index("*nat"):]
    # flushed with a chain line, deleted only after every write; jumps inserted at the top, in plan order
    assert f":{stale} - [0:0]" in nat_part and nat_part.index(f"-X {stale}") > nat_part.rindex("-A ")
    assert nat_part.index("-I POSTROUTING 1 ") < nat_part.index("-I OUTPUT 1 ")
    for name in POD_NETWORK_CHAINS["nat"] + POD_NETWORK_CHAINS["filter"] + ["OTHER-CHAIN"]:
        assert name not in text


def test_incremental_sync_writes_only_changed_chains():
    eps = [Endpoint("10.180.0.1", 80), Endpoint("10.180.0.2", 80)]
    other = ServicePort("ns2", "svc2", "p80", "TCP", "10.20.30.42", 80)
    old = plan(CFG, [SVC1, other], {KEY1: eps, "ns2/svc2:p80": [Endpoint("10.180.0.7", 80)]})
    assert delta(CFG, old, old) == ()
    # one endpoint of svc1 goes: its SVC chain is rewritten and the SEP chain removed; nothing else
    new = plan(CFG, [SVC1, other], {KEY1: eps[:1], "ns2/svc2:p80": [Endpoint("10.180.0.7", 80)]})
    (nat,) = delta(CFG, new, old)
    assert [c.name for c in nat.write] == [f"KPY-SVC-{H_SVC1}"]
    assert nat.delete == (services.sep_chain(CFG, SVC1, eps[1]),) and nat.jumps == ()
    # svc2 loses its last endpoint: its chains go, KPY-SERVICES is rewritten, filter gets the REJECT
    gone = plan(CFG, [SVC1, other], {KEY1: eps})
    filt, nat = delta(CFG, gone, old)
    assert [c.name for c in filt.write] == ["KPY-SERVICES"]
    assert [c.name for c in nat.write] == ["KPY-SERVICES"]
    assert set(nat.delete) == {f"KPY-SVC-{H_SVC2}", services.sep_chain(CFG, other, Endpoint("10.180.0.7", 80))}


def test_restore_error_names_table_and_chain_of_the_failing_line():
    d = TableDelta("nat", write=(rules.ChainSpec("KPY-SERVICES", (rules.Rule("KPY-SERVICES", "KPY-NODEPORTS"),)),))
    text = services.restore_text((TableDelta("filter", delete=("KPY-X",)), d))
    n = text.splitlines().index("-A KPY-SERVICES -j KPY-NODEPORTS") + 1
    assert services.restore_error_location(text, f"iptables-restore: line {n} failed") == ("nat", "KPY-SERVICES")
    assert services.restore_error_location(text, "Another app is currently holding the xtables lock") == ("*", "*")


def test_conntrack_flush_targets_removed_udp_endpoints_and_first_endpoints():
    udp = ServicePort("ns", "dns", "dns", "UDP", "10.96.0.10", 53)
    one = plan(CFG, [udp, SVC1], {"ns/dns:dns": [Endpoint("10.0.0.5", 5353), Endpoint("10.0.0.6", 5353)],
                                  KEY1: [Endpoint("10.0.0.9", 80)]})
    assert services.conntrack_flush_targets(None, one) == (set(), set())
    fewer = plan(CFG, [udp], {"ns/dns:dns": [Endpoint("10.0.0.6", 5353)]})
    assert services.conntrack_flush_targets(one, fewer) == ({("10.0.0.5", 5353)}, set())   # TCP: nothing
    empty = plan(CFG, [udp], {})
    assert services.conntrack_flush_targets(empty, fewer) == (set(), {("10.96.0.10", 53)})
    np = ServicePort("ns", "dns", "dns", "UDP", "10.96.0.10", 53, node_port=30053)
    got = services.conntrack_flush_targets(plan(CFG, [np], {}), plan(CFG, [np], {"ns/dns:dns": [Endpoint("10.0.0.6", 53)]}))
    assert got == (set(), {("10.96.0.10", 53), (None, 30053)})


def test_teardown_order_removes_referrers_first():
    names = ["KPY-MARK-MASQ", f"KPY-SEP-{H_SEP1}", f"KPY-SVC-{H_SVC1}", f"KPY-EXT-{H_SVC1}", "KPY-NODEPORTS",
             "KPY-SERVICES", "KPY-PROXY-POSTROUTING", "KPY-POSTROUTING", "KPY-HOSTPORTS"]
    order = services.teardown_order(CFG, "nat", names)
    assert "KPY-POSTROUTING" not in order and "KPY-HOSTPORTS" not in order
    assert order.index("KPY-SERVICES") < order.index("KPY-NODEPORTS") < order.index(f"KPY-EXT-{H_SVC1}") \
        < order.index(f"KPY-SVC-{H_SVC1}") < order.index(f"KPY-SEP-{H_SEP1}") < order.index("KPY-MARK-MASQ")


def test_rule_render_quotes_comments_as_iptables_save():
    r = rules.Rule("C", "ACCEPT", matches=(rules.Match("comment", (("comment", "a/b:c"),)),))
    assert r.render() == '-A C -m comment --comment "a/b:c" -j ACCEPT'
    r = rules.Rule("C", "ACCEPT", matches=(rules.Match("comment", (("comment", "plain-word_1"),)),))
    assert r.render() == "-A C -m comment --comment plain-word_1 -j ACCEPT"
    r = rules.Rule("C", "ACCEPT", matches=(rules.Match("comment", (("comment", 'say "hi"'),)),))
    assert r.render() == '-A C -m comment --comment "say \\"hi\\"" -j ACCEPT'
