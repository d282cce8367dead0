"""The iptables rule plan as data: exact rules (in iptables-save syntax), what one setup, teardown,
gc and uninstall change, and that each is one TableChange per table."""

from __future__ import annotations

from netns import rules
from netns.plan import NetworkConfig, PortMapping, hostport_chain, masq_chain, uid_hash

CFG = NetworkConfig(bridge="kpyt1", gateway="10.250.7.1/24", chain_prefix="KPYT1")
UID = "pod-a"
H = uid_hash(UID)


def rendered(change: rules.TableChange) -> list[str]:
    out = [r.render() for spec in change.ensure + change.add for r in spec.rules]
    return out + [r.render() for r in change.jumps + change.append]


def test_masquerade_rules_like_cni_ipmasq_in_our_chains():
    (nat,) = rules.setup_changes(CFG, UID, "10.250.7.5", ())
    assert nat.table == "nat"
    assert [c.name for c in nat.ensure] == ["KPYT1-POSTROUTING", "KPYT1-HOSTPORTS"]
    assert [c.name for c in nat.add] == [f"KPYT1-MASQ-{H}"]
    assert rendered(nat) == [
        '-A KPYT1-POSTROUTING -m mark --mark 0x2000/0x2000 -m comment --comment "kubelet-py kpyt1: hairpin and localhost hostPort traffic" -j MASQUERADE',
        f'-A KPYT1-MASQ-{H} -d 10.250.7.0/24 -m comment --comment "kubelet-py pod pod-a: pod network" -j RETURN',
        f'-A KPYT1-MASQ-{H} ! -d 224.0.0.0/4 -m comment --comment "kubelet-py pod pod-a" -j MASQUERADE',
        '-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "kubelet-py kpyt1: pod hostPorts" -j KPYT1-HOSTPORTS',
        '-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "kubelet-py kpyt1: pod hostPorts" -j KPYT1-HOSTPORTS',
        '-A POSTROUTING -m comment --comment "kubelet-py kpyt1: pod masquerade" -j KPYT1-POSTROUTING',
        f'-A KPYT1-POSTROUTING -s 10.250.7.5/32 -m comment --comment "kubelet-py pod pod-a" -j KPYT1-MASQ-{H}',
    ]
    # a repeated setup replaces the pod's own chains in the same commit
    assert nat.remove == (masq_chain(CFG, UID), hostport_chain(CFG, UID))
    assert nat.referrers == ("KPYT1-POSTROUTING", "KPYT1-HOSTPORTS")


def test_hostport_rules_like_portmap():
    ports = (PortMapping("tcp", 18080, 8080), PortMapping("udp", 5353, 53, "192.0.2.7"))
    nat, filt = rules.setup_changes(CFG, UID, "10.250.7.5", ports)
    hp = [r.render() for r in nat.add[1].rules]
    assert nat.add[1].name == f"KPYT1-HP-{H}"
    assert hp == [
        f'-A KPYT1-HP-{H} -s 10.250.7.0/24 -p tcp -m tcp --dport 18080 -m comment --comment "kubelet-py pod pod-a: hairpin 18080/tcp" -j MARK --set-xmark 0x2000/0x2000',
        f'-A KPYT1-HP-{H} -s 127.0.0.1/32 -p tcp -m tcp --dport 18080 -m comment --comment "kubelet-py pod pod-a: localhost 18080/tcp" -j MARK --set-xmark 0x2000/0x2000',
        f'-A KPYT1-HP-{H} -p tcp -m tcp --dport 18080 -m comment --comment "kubelet-py pod pod-a: hostPort 18080/tcp" -j DNAT --to-destination 10.250.7.5:8080',
        f'-A KPYT1-HP-{H} -s 10.250.7.0/24 -d 192.0.2.7/32 -p udp -m udp --dport 5353 -m comment --comment "kubelet-py pod pod-a: hairpin 192.0.2.7:5353/udp" -j MARK --set-xmark 0x2000/0x2000',
        f'-A KPYT1-HP-{H} -s 127.0.0.1/32 -d 192.0.2.7/32 -p udp -m udp --dport 5353 -m comment --comment "kubelet-py pod pod-a: localhost 192.0.2.7:5353/udp" -j MARK --set-xmark 0x2000/0x2000',
        f'-A KPYT1-HP-{H} -d 192.0.2.7/32 -p udp -m udp --dport 5353 -m comment --comment "kubelet-py pod pod-a: hostPort 192.0.2.7:5353/udp" -j DNAT --to-destination 10.250.7.5:53',
    ]
    jumps = [r.render() for r in nat.append[1:]]
    assert jumps == [
        f'-A KPYT1-HOSTPORTS -p tcp -m tcp --dport 18080 -m comment --comment "kubelet-py pod pod-a: hostPort 18080/tcp" -j KPYT1-HP-{H}',
        f'-A KPYT1-HOSTPORTS -d 192.0.2.7/32 -p udp -m udp --dport 5353 -m comment --comment "kubelet-py pod pod-a: hostPort 192.0.2.7:5353/udp" -j KPYT1-HP-{H}',
    ]
    # the route_localnet guard (kube-proxy's CVE-2020-8558 rule), only once hostPorts are used
    assert filt.table == "filter" and filt.ensure[0].name == "KPYT1-FIREWALL"
    assert rendered(filt) == [
        '-A KPYT1-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "kubelet-py kpyt1: block incoming localnet connections" -j DROP',
        '-A INPUT -m comment --comment "kubelet-py kpyt1: localnet guard" -j KPYT1-FIREWALL',
    ]


def test_every_pod_rule_names_the_pod_uid():
    nat, _ = rules.setup_changes(CFG, UID, "10.250.7.5", (PortMapping("tcp", 1, 2),))
    pod_rules = [r for spec in nat.add for r in spec.rules] + list(nat.append)
    assert pod_rules and all("kubelet-py pod pod-a" in r.render() for r in pod_rules)


def test_teardown_removes_only_the_pod_chains():
    (nat,) = rules.teardown_changes(CFG, UID)
    assert nat.remove == (f"KPYT1-MASQ-{H}", f"KPYT1-HP-{H}") and not (nat.add or nat.append or nat.ensure)


def test_gc_removes_chains_of_unknown_pods_only():
    live = ["PREROUTING", "KPYT1-POSTROUTING", "KPYT1-HOSTPORTS", masq_chain(CFG, "a"), hostport_chain(CFG, "a"),
            masq_chain(CFG, "b"), "KPY-MASQ-" + uid_hash("c"), "KPYT1-SERVICES"]
    (nat,) = rules.gc_changes(CFG, live, known_uids=["a"])
    assert nat.remove == (masq_chain(CFG, "b"),)      # not another prefix's, not base chains
    assert rules.gc_changes(CFG, live, known_uids=["a", "b"]) == ()


def test_uninstall_removes_pod_chains_before_base_chains_and_the_builtin_jumps():
    chains = {"nat": ["PREROUTING", "KPYT1-POSTROUTING", masq_chain(CFG, "a"), "KPYT1-HOSTPORTS", "KPY-POSTROUTING"],
              "filter": ["INPUT", "KPYT1-FIREWALL"]}
    nat, filt = rules.uninstall_changes(CFG, chains)
    assert nat.remove == (masq_chain(CFG, "a"), "KPYT1-POSTROUTING", "KPYT1-HOSTPORTS")
    assert {"PREROUTING", "OUTPUT", "POSTROUTING", "KPYT1-POSTROUTING"} <= set(nat.referrers)
    assert filt.remove == ("KPYT1-FIREWALL",) and "INPUT" in filt.referrers


def test_render_quotes_and_negation():
    r = rules.Rule("X", "DROP", src="!10.0.0.0/8", matches=(rules.Match("comment", (("comment", "a b"),)),))
    assert r.render() == '-A X ! -s 10.0.0.0/8 -m comment --comment "a b" -j DROP'
    assert rules.TableChange("nat").empty
