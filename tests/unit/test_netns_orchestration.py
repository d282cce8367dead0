"""netns/network.py's orchestration against the recording double of its edges (netns/fake.py), no
root: the order of setup steps, that a failure at each step undoes exactly what was made in reverse
order, that a repeated setup changes nothing and a partial one is repaired step by step, teardown
and gc, and pod_network's read-back. The integration tests prove the same against the kernel."""

from __future__ import annotations

import pytest

from netns import network, rules
from netns.dnsfiles import PodDNS
from netns.errors import (INVALID_ARGUMENT, NOT_FOUND, LinkError, NetworkInconsistent, NetworkNotFound,
                          PodSpecError, PortConflict, RuleError, StateError)
from netns.fake import FakeEdge
from netns.plan import NetworkConfig, host_veth_name

CFG = NetworkConfig(state_root="/nonexistent/kpy", bridge="kpyt1", gateway="10.250.7.1/24", chain_prefix="KPYT1",
                    host_resolv_conf="/host/resolv.conf")
NS = "/run/netns/pod-a"
PORTS = [{"containerPort": 80, "hostPort": 18080}]
FILES = "/pods/a/etc"

# what a fresh setup with a hostPort and files changes, in order (the files right after the IP:
# on_files, then the kubelet creates the containers while the rest is made)
FRESH = ["hostports.claim", "netlink.ensure_bridge", "sysctl.ip_forward", "sysctl.bridge_nf_call_iptables",
         "sysctl.route_localnet", "ipam.ensure", "podfiles.write", "netlink.create_veth", "netlink.configure_pod",
         "iptables.apply", "podrecords.write"]
# what undoes each of them (None: a node-level object that pod teardown never removes either)
UNDO = {"hostports.claim": "hostports.release", "ipam.ensure": "ipam.release", "netlink.create_veth": "netlink.delete_link",
        "iptables.apply": "iptables.apply", "podfiles.write": "podfiles.remove"}


@pytest.fixture
def edge():
    e = FakeEdge(host_files={"/host/resolv.conf": "nameserver 192.0.2.53\n"})
    e.add_netns(NS)
    with e.installed():
        yield e


def setup(**kw):
    args = dict(config=CFG, pod=PodDNS("web-0"), files_dir=FILES)
    args.update(kw)
    return network.setup_pod_network("a", NS, args.pop("ports", PORTS), **args)


def empty(edge):
    return {"veth": None, "eth0": None, "routes": (), "chains": [], "rules": [], "ips": [], "claims": [],
            "record": None, "files": []}


def test_a_fresh_setup_runs_the_steps_in_order_and_records_the_result(edge):
    net = setup()
    assert edge.names(changed_only=True) == FRESH
    assert (net.ip, net.gateway, net.prefixlen, net.host_veth, net.mtu) == ("10.250.7.2", "10.250.7.1", 24,
                                                                           host_veth_name(CFG, "a"), 1500)
    assert net.files.hosts == f"{FILES}/hosts" and [m.key for m in net.ports] == ["tcp-18080-0.0.0.0"]
    objs = edge.pod_objects(CFG, "a", NS)
    assert objs["eth0"].addresses == ("10.250.7.2/24",) and objs["routes"] == (("10.250.7.1", 2),)
    assert objs["chains"] == sorted(rules.pod_chains(CFG, "a")) and objs["record"] is not None
    assert not edge._fds                                    # the netns fd is closed


@pytest.mark.parametrize("step", FRESH)
def test_a_failure_at_each_step_undoes_exactly_what_was_made_in_reverse(edge, step):
    edge.fail(step)
    with pytest.raises(LinkError):
        setup()
    names = edge.names()
    failed_at = names.index(step + "!")
    made = [c.name for c in edge.calls[:failed_at] if c.changed]
    assert made == FRESH[:FRESH.index(step)]
    undone = [c.name for c in edge.calls[failed_at + 1:] if c.changed]
    assert undone == [UNDO[n] for n in reversed(made) if n in UNDO]
    assert edge.pod_objects(CFG, "a", NS) == empty(edge)
    assert not edge._fds


def test_on_files_is_told_the_ip_between_the_files_and_the_veth_and_its_failure_undoes_all(edge):
    def refuse(ip):
        raise LinkError("eth0", "create", "the containers could not be made")
    with pytest.raises(LinkError, match="could not be made"):
        setup(on_files=refuse)
    assert "netlink.create_veth" not in edge.names()
    assert edge.pod_objects(CFG, "a", NS) == empty(edge)
    edge.calls.clear()
    told = []
    net = setup(on_files=lambda ip: told.append((ip, edge.names(changed_only=True)[-1])))
    assert told == [(net.ip, "podfiles.write")]


def test_a_rule_change_committed_in_one_table_only_is_undone(edge):
    del edge.world.tables["filter"]["INPUT"]          # the filter commit fails after the nat one
    with pytest.raises(RuleError) as e:
        setup()
    assert (e.value.table, e.value.chain) == ("filter", "INPUT")
    applies = [c for c in edge.calls if c.name == "iptables.apply"]
    assert [c.changed for c in applies] == [True, True]          # the nat commit, then its undo
    assert edge.pod_objects(CFG, "a", NS) == empty(edge)


def test_bad_input_touches_nothing(edge):
    with pytest.raises(PodSpecError) as e:
        setup(ports=[{"containerPort": 80, "hostPort": 70000}])
    assert (e.value.kind, e.value.field) == (INVALID_ARGUMENT, "ports[0].hostPort")
    with pytest.raises(PodSpecError) as e:
        network.setup_pod_network("a", "/run/netns/none", config=CFG)
    assert e.value.field == "netns_path" and "No such file" in str(e.value)
    assert edge.names(changed_only=True) == []


def test_a_port_conflict_leaves_nothing(edge):
    edge.add_netns("/run/netns/b")
    network.setup_pod_network("b", "/run/netns/b", PORTS, config=CFG)
    before = edge.names(changed_only=True)
    with pytest.raises(PortConflict) as e:
        setup()
    assert e.value.owner == "b" and edge.names(changed_only=True) == before
    assert edge.pod_objects(CFG, "a", NS) == empty(edge)


def test_a_repeated_setup_of_a_complete_pod_changes_nothing(edge):
    first = setup()
    edge.calls.clear()
    again = setup()
    assert again == first and repr(again) == repr(first)
    assert edge.names(changed_only=True) == []
    assert "iptables.unmet" in edge.names() and "netlink.inspect_pod" in edge.names()
    assert edge.commits["nat"] == 1


def test_rules_removed_by_someone_are_put_back_alone(edge):
    first = setup()
    veth = edge.world.links[first.host_veth]
    edge.iptables.apply(rules.teardown_changes(CFG, "a"))
    edge.calls.clear()
    assert setup() == first
    assert edge.names(changed_only=True) == ["iptables.apply"]
    assert edge.world.links[first.host_veth] == veth


def test_a_veth_removed_by_someone_is_remade_with_the_same_ip(edge):
    first = setup()
    edge.netlink.delete_link(first.host_veth)
    edge.calls.clear()
    assert setup() == first
    assert edge.names(changed_only=True) == ["netlink.create_veth", "netlink.configure_pod"]


def test_an_address_removed_inside_the_pod_is_put_back_alone(edge):
    first = setup()
    ns = edge.world.pods[NS]
    ns.eth0 = ns.eth0.__class__(**{**ns.eth0.__dict__, "addresses": ()})
    edge.calls.clear()
    assert setup() == first
    assert edge.names(changed_only=True) == ["netlink.configure_pod"]


def test_a_new_netns_for_the_same_pod_gets_a_new_pair(edge):
    first = setup()
    edge.add_netns("/run/netns/pod-a2")
    edge.calls.clear()
    second = network.setup_pod_network("a", "/run/netns/pod-a2", PORTS, config=CFG, pod=PodDNS("web-0"), files_dir=FILES)
    assert second == first
    assert edge.names(changed_only=True) == ["netlink.create_veth", "netlink.configure_pod"]
    assert edge.world.pods[NS].eth0 is None and edge.world.pods["/run/netns/pod-a2"].eth0 is not None


def test_other_ports_change_the_claims_and_rules_only(edge):
    setup()
    edge.calls.clear()
    net = setup(ports=[{"containerPort": 81, "hostPort": 18081}])
    assert [m.key for m in net.ports] == ["tcp-18081-0.0.0.0"]
    assert edge.names(changed_only=True) == ["hostports.claim", "iptables.apply", "podrecords.write"]


def test_a_failed_repair_undoes_only_what_the_repair_made(edge):
    first = setup()
    edge.netlink.delete_link(first.host_veth)
    edge.fail("podrecords.write", StateError("/x", "disk full"))
    edge.calls.clear()
    with pytest.raises(StateError):
        setup()
    objs = edge.pod_objects(CFG, "a", NS)
    assert objs["veth"] is None and objs["eth0"] is None            # the new pair is gone again
    assert objs["ips"] == [first.ip] and objs["claims"] == ["tcp-18080-0.0.0.0"] and objs["rules"]
    assert [c.name for c in edge.calls if c.changed] == ["netlink.create_veth", "netlink.configure_pod",
                                                         "netlink.delete_link"]


def test_a_failed_port_change_restores_the_previous_claims_and_rules(edge):
    setup()
    before = edge.pod_objects(CFG, "a", NS)
    del edge.world.tables["filter"]["INPUT"]          # the new rules' filter commit fails after the nat one
    with pytest.raises(RuleError):
        setup(ports=[{"containerPort": 81, "hostPort": 18081}, {"containerPort": 82, "hostPort": 18082}])
    assert edge.pod_objects(CFG, "a", NS) == before
    assert [c.name for c in edge.calls if c.changed][-3:] == ["iptables.apply", "iptables.apply", "hostports.claim"]


def test_teardown_removes_the_record_first_and_everything_of_the_pod(edge):
    setup()
    edge.calls.clear()
    network.teardown_pod_network("a", config=CFG)
    changed = edge.names(changed_only=True)
    assert changed[0] == "podrecords.remove"
    assert changed == ["podrecords.remove", "iptables.apply", "netlink.delete_link", "ipam.release", "hostports.release"]
    objs = edge.pod_objects(CFG, "a", NS)
    assert {k: v for k, v in objs.items() if k != "files"} == {k: v for k, v in empty(edge).items() if k != "files"}
    edge.calls.clear()
    network.teardown_pod_network("a", config=CFG)
    assert edge.names(changed_only=True) == []


def test_gc_removes_the_records_of_unknown_pods(edge):
    setup()
    report = network.gc((), config=CFG)
    assert report.records == ("a",) and report.ips == ("10.250.7.2",) and not report.empty
    assert edge.pod_objects(CFG, "a", NS)["record"] is None
    assert network.gc((), config=CFG).empty


def test_pod_network_reads_back_what_setup_returned_and_changes_nothing(edge):
    first = setup()
    edge.calls.clear()
    assert network.pod_network("a", config=CFG) == first
    assert edge.names(changed_only=True) == []


def test_pod_network_of_a_pod_without_network_is_not_found(edge):
    with pytest.raises(NetworkNotFound) as e:
        network.pod_network("a", config=CFG)
    assert (e.value.kind, e.value.obj) == (NOT_FOUND, "pod a")
    setup()
    network.teardown_pod_network("a", config=CFG)
    with pytest.raises(NetworkNotFound):
        network.pod_network("a", config=CFG)


@pytest.mark.parametrize("damage, field, words", [
    (lambda e, n: e.netlink.delete_link(n.host_veth), "host_veth", "host veth kpy"),
    (lambda e, n: e.ipam.IPStore(CFG).release("a"), "ip", "IP 10.250.7.2 is recorded but not allocated"),
    (lambda e, n: e.hostports.PortClaims(CFG).release("a"), "ports", "hostPort claims [] do not match"),
    (lambda e, n: e.iptables.apply(rules.teardown_changes(CFG, "a")), "rules", "chain missing"),
    (lambda e, n: e.netlink.delete_bridge(CFG), "bridge", "bridge kpyt1 is missing"),
    (lambda e, n: e.podrecords.remove(CFG, "a"), "record", "is missing, yet IP 10.250.7.2 is allocated"),
])
def test_pod_network_names_what_is_missing(edge, damage, field, words):
    net = setup()
    damage(edge, net)
    with pytest.raises(NetworkInconsistent) as e:
        network.pod_network("a", config=CFG)
    assert e.value.field == field and words in str(e.value), str(e.value)
    assert e.value.kind == "FAILED_PRECONDITION"
    if field != "bridge":        # a repeated setup repairs it
        assert setup() == net and network.pod_network("a", config=CFG) == net


def test_host_network_pod(edge):
    net = network.setup_pod_network("h", None, [{"containerPort": 8080}], config=CFG, host_network=True,
                                    pod=PodDNS("h"), files_dir="/pods/h/etc")
    assert net.host_network and net.ip == "192.0.2.10" and [m.key for m in net.ports] == ["tcp-8080-0.0.0.0"]
    assert edge.names(changed_only=True) == ["hostports.claim", "podfiles.write", "podrecords.write"]
    assert network.pod_network("h", config=CFG) == net
    edge.calls.clear()
    assert network.setup_pod_network("h", None, [{"containerPort": 8080}], config=CFG, host_network=True,
                                     pod=PodDNS("h"), files_dir="/pods/h/etc") == net
    assert edge.names(changed_only=True) == []


def test_a_host_network_failure_undoes_claims_and_files(edge):
    edge.fail("podrecords.write")
    with pytest.raises(LinkError):
        network.setup_pod_network("h", None, [{"containerPort": 8080}], config=CFG, host_network=True,
                                  pod=PodDNS("h"), files_dir="/pods/h/etc")
    assert edge.world.claims == {} and edge.world.files == {}
    assert [c.name for c in edge.calls if c.changed][-2:] == ["podfiles.remove", "hostports.release"]


def test_the_double_stands_in_and_steps_out():
    import netns.netlink
    e = FakeEdge()
    with e.installed():
        assert network.netlink is e.netlink
    assert network.netlink is netns.netlink
