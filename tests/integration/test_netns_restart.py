"""A pod's network across a daemon restart, on the real kernel: a fresh process reads it back with
pod_network (equal to what setup returned, nothing changed); setup repeated on a complete pod
changes nothing (no commit, same links and files); on a partial one (rules, veth or address
removed by hand, a setup killed before its end) it makes only what is missing; pod_network names
what is missing; and the recording double of the edges takes the same steps as the kernel."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest

from netns import (DNSConfig, NetworkInconsistent, NetworkNotFound, PodDNS, gc, iptables, network, plan, pod_network,
                   remove_network, rules, setup_pod_network, teardown_pod_network)
from netns.fake import FakeEdge, Spy
from tests.conftest import need_tool
from tests.integration.netns_helpers import (Netns, allocation_files, assert_nothing_left, config_json, free_subnets,
                                             links_of, make_config, record_files, run, saved_rules)

pytestmark = pytest.mark.root
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORTS = [{"containerPort": 80, "hostPort": 18979},
         {"containerPort": 53, "hostPort": 18979, "protocol": "UDP", "hostIP": "127.0.0.1"}]
# four nameservers: one more than resolv.conf takes, so the result carries a warning too
POD = PodDNS("web-0", "shop", dns_config=DNSConfig(nameservers=("192.0.2.1", "192.0.2.2", "192.0.2.3")))


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    need_tool("ip")
    need_tool("iptables-legacy")
    need_tool("iptables-legacy-save")
    (subnet,) = free_subnets(1)
    c = make_config(str(tmp_path_factory.mktemp("net")), subnet)
    yield c
    remove_network(c)
    assert_nothing_left(c)


@pytest.fixture(autouse=True)
def clean(cfg):
    """Whatever a failed test left of its pod is removed, so the next one starts clean."""
    yield
    gc((), config=cfg)


@pytest.fixture
def ns():
    (made,) = Netns.create_many(1)
    yield made
    Netns.delete_many([made])


def helper(*args):
    return subprocess.run([sys.executable, "-m", "tests.integration.netns_helpers", *args], cwd=TOP,
                          capture_output=True, text=True, timeout=60)


def read_back(cfg, uid) -> dict:
    """pod_network in a fresh process, as a restarted daemon calls it."""
    r = helper("pod-network", config_json(cfg), uid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def as_json(net) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(net)))


def _stable(lines: list[str]) -> list[str]:
    """`ip -o link` lines without what the kernel changes on its own (carrier, operstate)."""
    return [re.sub(r",?(LOWER_UP|NO-CARRIER|M-DOWN)| state \S+", "", line) for line in lines]


def live(cfg, ns, net) -> dict:
    """Everything of the pod the kernel and the disk show, to compare before and after a call."""
    files = {p: (os.stat(p).st_ino, open(p).read()) for p in (net.files.hosts, net.files.resolv_conf) if p}
    rec = [(p, os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in record_files(cfg)]
    return {"rules": saved_rules(cfg), "links": _stable(links_of(cfg)), "files": files, "record": rec,
            "allocations": allocation_files(cfg),
            "pod": _stable(ns.exec("ip", "-o", "link").stdout.splitlines())
            + [ns.exec("ip", "-o", *a).stdout for a in (("-4", "addr"), ("-4", "route"))]}


def commits():
    return {t: iptables.commits[t] for t in ("nat", "filter")}


def veth_index(name: str) -> int:
    with open(f"/sys/class/net/{name}/ifindex") as f:
        return int(f.read())


def test_a_restarted_process_reads_the_pod_network_back(cfg, ns, tmp_path):
    net = setup_pod_network("reader", ns.path, PORTS, config=cfg, pod=POD, files_dir=str(tmp_path / "etc"))
    assert net.warnings and len(net.ports) == 2 and net.files.hosts
    before = live(cfg, ns, net)
    got = read_back(cfg, "reader")
    assert got["repr"] == repr(net)                       # every field, the ports' source too
    assert got["network"] == as_json(net)
    assert live(cfg, ns, net) == before                   # reading changed nothing
    assert pod_network("reader", config=cfg) == net
    teardown_pod_network("reader", config=cfg)
    assert read_back(cfg, "reader")["error"] == "NetworkNotFound"


def test_a_host_network_pod_is_read_back_too(cfg, tmp_path):
    net = setup_pod_network("hostnet-r", None, [{"containerPort": 18977}], config=cfg, host_network=True,
                            pod=PodDNS("hn"), files_dir=str(tmp_path / "etc"))
    assert read_back(cfg, "hostnet-r")["repr"] == repr(net)
    teardown_pod_network("hostnet-r", config=cfg)
    assert read_back(cfg, "hostnet-r")["error"] == "NetworkNotFound"


def test_a_pod_without_network_is_not_found(cfg):
    got = read_back(cfg, "never-set-up")
    assert (got["error"], got["kind"]) == ("NetworkNotFound", "NOT_FOUND") and "never-set-up" in got["message"]
    assert not os.path.exists(cfg.records_dir) or "never-set-up.json" not in os.listdir(cfg.records_dir)


def test_a_repeated_setup_of_a_complete_pod_changes_nothing(cfg, ns, tmp_path):
    first = setup_pod_network("again", ns.path, PORTS, config=cfg, pod=POD, files_dir=str(tmp_path / "etc"))
    before, c0 = live(cfg, ns, first), commits()
    h = plan.uid_hash("again")
    pod_rules = [line for line in before["rules"] if h in line]
    assert len(pod_rules) == len(set(pod_rules)) == 11 + 2           # 11 rules, 2 chains
    for _ in range(2):
        again = setup_pod_network("again", ns.path, PORTS, config=cfg, pod=POD, files_dir=str(tmp_path / "etc"))
        assert again == first and repr(again) == repr(first)
        assert commits() == c0                                       # not one iptables commit
        assert live(cfg, ns, first) == before                        # same links, rules, files, record
    # a restarted daemon repeating the setup (a pod without ports or files) changes nothing either
    teardown_pod_network("again", config=cfg)
    plain = setup_pod_network("again", ns.path, config=cfg)
    before = live(cfg, ns, plain)
    r = helper("setup-many", config_json(cfg), "1", f"again={ns.path}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"again": plain.ip} and live(cfg, ns, plain) == before
    teardown_pod_network("again", config=cfg)


def test_rules_removed_by_hand_are_put_back_alone(cfg, ns):
    net = setup_pod_network("rules", ns.path, PORTS, config=cfg)
    index = veth_index(net.host_veth)
    hp = plan.hostport_chain(cfg, "rules")
    run(["iptables-legacy", "-w", "-t", "nat", "-F", hp])
    with pytest.raises(NetworkInconsistent) as e:
        pod_network("rules", config=cfg)
    assert e.value.field == "rules" and f"nat/{hp}: rules differ" in str(e.value)
    c0 = commits()
    assert setup_pod_network("rules", ns.path, PORTS, config=cfg) == net
    assert commits() == {"nat": c0["nat"] + 1, "filter": c0["filter"]}
    assert veth_index(net.host_veth) == index                          # the link was not touched
    nat = rules.setup_changes(cfg, "rules", net.ip, net.ports)[0]
    planned = {r.render() for spec in nat.add for r in spec.rules} | {r.render() for r in nat.append}
    assert {line for line in saved_rules(cfg) if plan.uid_hash("rules") in line and line.startswith("-A ")} == planned
    assert pod_network("rules", config=cfg) == net
    teardown_pod_network("rules", config=cfg)


def test_a_veth_removed_by_hand_is_remade_with_the_same_ip(cfg, ns):
    net = setup_pod_network("veth", ns.path, PORTS, config=cfg)
    old = veth_index(net.host_veth)
    run(["ip", "link", "del", net.host_veth])
    got = read_back(cfg, "veth")
    assert (got["error"], got["kind"], got["field"]) == ("NetworkInconsistent", "FAILED_PRECONDITION", "host_veth")
    assert f"host veth {net.host_veth} is missing" in got["message"]
    c0 = commits()
    assert setup_pod_network("veth", ns.path, PORTS, config=cfg) == net
    assert commits() == c0                                            # the rules were right: no commit
    assert veth_index(net.host_veth) != old
    assert f"inet {net.ip}/{cfg.prefixlen} " in ns.exec("ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert f"default via {cfg.gateway_ip} dev eth0" in ns.exec("ip", "-4", "route").stdout
    assert read_back(cfg, "veth")["network"] == as_json(net)
    teardown_pod_network("veth", config=cfg)


def test_an_address_removed_inside_the_pod_is_put_back_alone(cfg, ns):
    net = setup_pod_network("addr", ns.path, config=cfg)
    index = veth_index(net.host_veth)
    ns.exec("ip", "addr", "flush", "dev", "eth0")
    ns.exec("ip", "addr", "add", "192.0.2.99/24", "dev", "eth0")       # and a stray one
    c0 = commits()
    assert setup_pod_network("addr", ns.path, config=cfg) == net
    assert commits() == c0 and veth_index(net.host_veth) == index
    addrs = ns.exec("ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert f"inet {net.ip}/{cfg.prefixlen} " in addrs and "192.0.2.99" not in addrs
    assert f"default via {cfg.gateway_ip} dev eth0" in ns.exec("ip", "-4", "route").stdout
    teardown_pod_network("addr", config=cfg)


def test_a_killed_setup_reads_as_inconsistent_and_a_repeated_setup_finishes_it(cfg, ns):
    ports = [{"containerPort": 80, "hostPort": 18978}]
    r = helper("crash", config_json(cfg), "record", "half", ns.path, json.dumps(ports))  # the last step
    assert r.returncode == -9, (r.stdout, r.stderr)
    got = read_back(cfg, "half")
    assert (got["error"], got["field"]) == ("NetworkInconsistent", "record")
    assert "is missing, yet IP" in got["message"] and "hostPort tcp-18978-0.0.0.0 is claimed" in got["message"]
    veth = plan.host_veth_name(cfg, "half")
    index, c0 = veth_index(veth), commits()
    net = setup_pod_network("half", ns.path, ports, config=cfg, pod=PodDNS(name="crash"),
                           files_dir=os.path.join(cfg.state_root, "f"))
    assert veth_index(veth) == index and commits() == c0            # only the record was missing
    assert read_back(cfg, "half")["network"] == as_json(net)
    teardown_pod_network("half", config=cfg)
    assert_nothing_left(cfg, bridge_removed=False)


def _scenario(recorder, cfg, ns, files_dir, drop_rules, pod_rules):
    """setup, repeat, rules dropped + repair, read back, teardown: the calls of each phase."""
    phases = {}

    def phase(name, fn):
        n = len(recorder.calls)
        out = fn()
        phases[name] = [c.name for c in recorder.calls[n:]]
        return out

    def setup():
        return network.setup_pod_network("twin", ns.path, PORTS, config=cfg, pod=POD, files_dir=files_dir)
    with recorder.installed():
        first = phase("setup", setup)
        made = pod_rules()
        phase("repeat", setup)
        drop_rules()
        phase("repair", setup)
        back = phase("read", lambda: network.pod_network("twin", config=cfg))
        phase("teardown", lambda: network.teardown_pod_network("twin", config=cfg))
        with pytest.raises(NetworkNotFound):
            network.pod_network("twin", config=cfg)
    return phases, first, back, made


def test_the_recording_double_takes_the_same_steps_as_the_kernel(ns, tmp_path):
    """netns/fake.py stands in for the edges in the unit tests: the same scenario through the real
    edges (recorded by Spy) and through the double gives the same calls and the same results."""
    (subnet,) = free_subnets(1)
    own = make_config(str(tmp_path / "state"), subnet)
    files_dir = str(tmp_path / "etc")
    h = plan.uid_hash("twin")
    try:
        kernel = _scenario(Spy(), own, ns, files_dir, lambda: iptables.apply(rules.teardown_changes(own, "twin")),
                           lambda: {x for x in saved_rules(own) if x.startswith("-A ") and h in x})
    finally:
        remove_network(own)
    assert_nothing_left(own)
    fake = FakeEdge(host_files={own.host_resolv_conf: open(own.host_resolv_conf).read()})
    fake.add_netns(ns.path)
    double = _scenario(fake, own, ns, files_dir, lambda: fake.iptables.apply(rules.teardown_changes(own, "twin")),
                       lambda: set(fake.pod_objects(own, "twin")["rules"]))
    (kp, kfirst, kback, krules), (fp, ffirst, fback, frules) = kernel, double
    assert list(kp) == ["setup", "repeat", "repair", "read", "teardown"]
    for name in kp:
        assert kp[name] == fp[name], name
    assert "netlink.create_veth" in kp["setup"] and "netlink.create_veth" not in kp["repeat"] + kp["repair"]
    assert kfirst == ffirst == kback == fback and repr(kfirst) == repr(ffirst)
    assert krules == frules and len(krules) == 11
