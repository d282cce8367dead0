"""Pod network lifecycle on the real kernel: 50 concurrent setups (two processes, threads in each)
get 50 distinct IPs and lose no iptables rule; teardown of all leaves only the bridge and the base
chains; teardown is idempotent; a process killed between any two setup steps is cleaned by gc;
bad input leaves nothing; hostNetwork; the /etc files; one iptables commit per table per change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from netns import (AddressExhausted, LinkError, PodDNS, PodSpecError, PortConflict, gc, iptables, netlink, plan,
                   remove_network, setup_pod_network, teardown_pod_network)
from tests.conftest import need_tool
from tests.integration.netns_helpers import (Netns, allocation_files, assert_nothing_left, base_only, config_json,
                                             free_subnets, links_of, make_config, run, saved_rules)

pytestmark = pytest.mark.root
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    need_tool("ip")
    need_tool("iptables-legacy-save")
    (subnet,) = free_subnets(1)
    c = make_config(str(tmp_path_factory.mktemp("net")), subnet)
    yield c
    remove_network(c)
    assert_nothing_left(c)


@pytest.fixture
def nss():
    made = []

    def make(n):
        got = Netns.create_many(n)
        made.extend(got)
        return got
    yield make
    Netns.delete_many(made)


def helper(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tests.integration.netns_helpers", *args], cwd=TOP,
                          capture_output=True, text=True, timeout=timeout)


def pod_chains(cfg):
    return sorted(line.split()[0][1:] for line in saved_rules(cfg)
                  if line.startswith((f":{cfg.masq_chain_prefix}", f":{cfg.hostport_chain_prefix}")))


def test_50_concurrent_pods_get_distinct_ips_and_teardown_leaves_nothing(cfg, nss):
    spaces = nss(50)
    uids = [f"conc-{i:02d}" for i in range(50)]
    pairs = [f"{u}={ns.path}" for u, ns in zip(uids, spaces)]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.integration.netns_helpers", "setup-many",
                               config_json(cfg), "8", *pairs[k::2]], cwd=TOP, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(2)]
    ips: dict[str, str] = {}
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ips.update(json.loads(out))
    assert sorted(ips) == uids
    assert len(set(ips.values())) == 50 and all(plan.in_range(cfg, ip) for ip in ips.values())
    # every allocation is on disk, every veth exists, and no process lost another's rules
    assert len(allocation_files(cfg)) == 50
    veths = netlink.our_veths(cfg)
    assert sorted(veths.values()) == uids
    assert len(pod_chains(cfg)) == 50
    jumps = [line for line in saved_rules(cfg) if line.startswith(f"-A {cfg.postrouting_chain} -s ")]
    assert sorted(j.split()[3].split("/")[0] for j in jumps) == sorted(ips.values())
    # each pod has its address inside its own namespace
    for u, ns in list(zip(uids, spaces))[::10]:
        assert f"inet {ips[u]}/" in ns.exec("ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda u: teardown_pod_network(u, config=cfg, wait=u.endswith(("0", "2", "4"))), uids))
    assert_nothing_left(cfg, bridge_removed=False)
    assert [line for line in links_of(cfg) if f" {cfg.bridge}:" in line]   # the bridge stays
    assert saved_rules(cfg) and base_only(cfg)                              # and the base chains


def test_teardown_is_idempotent_and_a_repeated_setup_keeps_the_ip(cfg, nss):
    (ns,) = nss(1)
    n1 = setup_pod_network("again", ns.path, [{"containerPort": 80, "hostPort": 18999}], config=cfg)
    n2 = setup_pod_network("again", ns.path, [{"containerPort": 81, "hostPort": 18998}], config=cfg)
    assert n2.ip == n1.ip
    rules = saved_rules(cfg)
    assert any("--dport 18998" in r for r in rules) and not any("--dport 18999" in r for r in rules)
    assert [f for f in allocation_files(cfg) if "hostports" in f] == [os.path.join(cfg.hostports_dir, "tcp-18998-0.0.0.0")]
    assert ns.exec("ip", "-o", "link").stdout.count("eth0") == 1
    for _ in range(3):
        teardown_pod_network("again", config=cfg)
    teardown_pod_network("never-existed", config=cfg)
    assert_nothing_left(cfg, bridge_removed=False)
    assert "eth0" not in ns.exec("ip", "-o", "link").stdout


def test_teardown_without_waiting_detaches_at_once(cfg, nss):
    (ns,) = nss(1)
    setup_pod_network("nowait", ns.path, config=cfg)
    veth = plan.host_veth_name(cfg, "nowait")
    teardown_pod_network("nowait", config=cfg, wait=False)
    assert allocation_files(cfg) == [] and base_only(cfg)
    if netlink.link_exists(veth):          # still being deleted: already off the bridge and down
        assert not os.path.exists(f"/sys/class/net/{veth}/master")
    netlink.wait_deleted()
    assert not netlink.link_exists(veth)
    # a new setup of the same pod right after works
    setup_pod_network("nowait", ns.path, config=cfg)
    teardown_pod_network("nowait", config=cfg, wait=False)
    setup_pod_network("nowait", ns.path, config=cfg)
    teardown_pod_network("nowait", config=cfg)
    assert_nothing_left(cfg, bridge_removed=False)


# the steps in their order: the files (with the IP, before the veth: the kubelet creates the
# containers meanwhile), the veth, its address, the rules, the record of the finished setup
@pytest.mark.parametrize("step", ["files", "veth", "address", "rules", "record"])
def test_a_setup_killed_at_any_step_is_cleaned_by_gc(cfg, nss, step):
    alive_ns, crash_ns = nss(2)
    alive = setup_pod_network("alive", alive_ns.path, [{"containerPort": 80, "hostPort": 18997}], config=cfg)
    r = helper("crash", config_json(cfg), step, "crashed", crash_ns.path,
               json.dumps([{"containerPort": 80, "hostPort": 18996}]))
    assert r.returncode == -9, (r.stdout, r.stderr)
    left = allocation_files(cfg)
    assert os.path.join(cfg.hostports_dir, "tcp-18996-0.0.0.0") in left
    crashed_veth = plan.host_veth_name(cfg, "crashed")
    has_veth = step in ("address", "rules", "record")
    assert netlink.link_exists(crashed_veth) == has_veth
    if step == "address":      # killed between veth creation and IP assignment
        assert "inet " not in crash_ns.exec("ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    report = gc({"alive"}, config=cfg)
    assert report.veths == ((crashed_veth,) if has_veth else ())
    assert len(report.ips) == 1 and report.hostports == ("tcp-18996-0.0.0.0",)
    assert bool(report.chains) == (step == "record")
    # the known pod is untouched
    assert netlink.link_exists(alive.host_veth)
    assert {os.path.basename(f) for f in allocation_files(cfg)} == {alive.ip, "tcp-18997-0.0.0.0"}
    assert len(pod_chains(cfg)) == 2
    assert "eth0" not in crash_ns.exec("ip", "-o", "link").stdout
    assert gc({"alive"}, config=cfg).empty
    teardown_pod_network("alive", config=cfg)
    assert_nothing_left(cfg, bridge_removed=False)


@pytest.mark.parametrize("step", ["address", "record"])
def test_teardown_after_a_killed_setup_removes_everything(cfg, nss, step):
    (ns,) = nss(1)
    r = helper("crash", config_json(cfg), step, "half", ns.path, json.dumps([{"containerPort": 80, "hostPort": 18988}]))
    assert r.returncode == -9, (r.stdout, r.stderr)
    assert allocation_files(cfg) and netlink.link_exists(plan.host_veth_name(cfg, "half"))
    teardown_pod_network("half", config=cfg)
    assert_nothing_left(cfg, bridge_removed=False)
    assert "eth0" not in ns.exec("ip", "-o", "link").stdout


def test_gc_leaves_another_network_alone(cfg, nss, tmp_path):
    mine, theirs = nss(2)
    (subnet,) = free_subnets(1)
    other = make_config(str(tmp_path), subnet)
    try:
        setup_pod_network("p-mine", mine.path, config=cfg)
        o = setup_pod_network("p-theirs", theirs.path, config=other)
        report = gc((), config=cfg)
        assert report.veths == (plan.host_veth_name(cfg, "p-mine"),)
        assert netlink.link_exists(o.host_veth) and len(allocation_files(other)) == 1 and len(pod_chains(other)) == 1
        assert_nothing_left(cfg, bridge_removed=False)
    finally:
        remove_network(other)
    assert_nothing_left(other)


def test_bad_input_leaves_nothing(cfg, nss, tmp_path):
    (ns,) = nss(1)
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    cases = [
        (dict(netns_path="/run/netns/kpytest-does-not-exist"), PodSpecError, "netns_path"),
        (dict(netns_path=str(plain)), PodSpecError, "netns_path"),
        (dict(netns_path="/proc/self/ns/net"), PodSpecError, "netns_path"),       # the host's own
        (dict(netns_path=None), PodSpecError, "netns_path"),
        (dict(netns_path=ns.path, ports=[{"containerPort": 80, "hostPort": 99999}]), PodSpecError, "ports[0].hostPort"),
        (dict(netns_path=ns.path, ports=[{"containerPort": 80, "hostPort": 1, "protocol": "SCTP"}]), PodSpecError,
         "ports[0].protocol"),
        (dict(netns_path=ns.path, pod=PodDNS("x", hostname="Bad_Name")), PodSpecError, "spec.hostname"),
    ]
    for kw, exc, field in cases:
        with pytest.raises(exc) as e:
            setup_pod_network("bad", kw.pop("netns_path"), kw.pop("ports", ()), config=cfg, **kw)
        assert e.value.field == field
        assert allocation_files(cfg) == [] and not netlink.link_exists(plan.host_veth_name(cfg, "bad"))
        assert base_only(cfg)
    # eth0 already in the namespace: the veth cannot be made; IP and claim are given back
    ns.exec("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")   # no dummy module here
    with pytest.raises(LinkError) as e:
        setup_pod_network("bad", ns.path, [{"containerPort": 80, "hostPort": 18995}], config=cfg)
    assert e.value.link == "eth0" and e.value.netns == ns.path
    assert allocation_files(cfg) == [] and not netlink.link_exists(plan.host_veth_name(cfg, "bad")) and base_only(cfg)


def test_exhaustion_is_a_clear_error_and_leaves_nothing(nss, tmp_path):
    a, b = nss(2)
    (subnet,) = free_subnets(1)
    small = make_config(str(tmp_path), next(subnet.subnets(new_prefix=30)), mtu=1400)   # one pod address
    try:
        first = setup_pod_network("only", a.path, config=small)
        assert first.ip == str(subnet.network_address + 2)
        assert first.mtu == 1400 and "mtu 1400 " in a.exec("ip", "-o", "link", "show", "eth0").stdout
        with pytest.raises(AddressExhausted) as e:
            setup_pod_network("second", b.path, [{"containerPort": 1, "hostPort": 18994}], config=small)
        assert e.value.cidr == str(small.cidr) and "no free IP address" in str(e.value)
        assert [os.path.basename(f) for f in allocation_files(small)] == [first.ip]
        assert not netlink.link_exists(plan.host_veth_name(small, "second"))
        assert "eth0" not in b.exec("ip", "-o", "link").stdout
    finally:
        remove_network(small)
    assert_nothing_left(small)


def test_host_network_pod(cfg, nss, tmp_path):
    (ns,) = nss(1)
    before = links_of(cfg)
    net = setup_pod_network("hostnet", None, [{"containerPort": 18993}], config=cfg, host_network=True,
                            pod=PodDNS("hn", host_aliases=()), files_dir=str(tmp_path / "f"))
    assert net.host_network and net.host_veth is None and net.ifname is None and net.gateway is None
    assert net.ip == netlink.node_ip() and net.ip
    assert links_of(cfg) == before and [f for f in allocation_files(cfg) if "/ipam/" in f] == []
    hosts = open(net.files.hosts).read()
    assert hosts.startswith("# Kubernetes-managed hosts file (host network).\n")
    assert open("/etc/hosts").read().strip().splitlines()[0] in hosts
    assert open(net.files.resolv_conf).read() == "search corp.example\nnameserver 192.0.2.53\noptions timeout:2\n"
    # its port (hostPort = containerPort) is held against pods on the bridge
    with pytest.raises(PortConflict):
        setup_pod_network("bridged", ns.path, [{"containerPort": 80, "hostPort": 18993}], config=cfg)
    teardown_pod_network("hostnet", config=cfg)
    assert_nothing_left(cfg, bridge_removed=False)


def test_pod_files_for_the_runtime(cfg, nss, tmp_path):
    (ns,) = nss(1)
    pod = PodDNS("web-0", "shop", subdomain="web")
    net = setup_pod_network("files", ns.path, config=cfg, pod=pod, files_dir=str(tmp_path / "etc"))
    try:
        assert open(net.files.hosts).read().endswith(f"{net.ip}\tweb-0.web.shop.svc.cluster.local\tweb-0\n")
        assert open(net.files.hostname).read() == "web-0\n"
        assert open(net.files.resolv_conf).read() == (
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
            "nameserver 10.96.0.10\noptions ndots:5\n")
        assert all(os.stat(p).st_mode & 0o777 == 0o644 for p in (net.files.hosts, net.files.resolv_conf))
    finally:
        teardown_pod_network("files", config=cfg)


def test_live_rules_are_exactly_the_plan(cfg, nss):
    from netns import rules
    (ns,) = nss(1)
    net = setup_pod_network("planned", ns.path, [{"containerPort": 80, "hostPort": 18989},
                                                  {"containerPort": 53, "hostPort": 18989, "protocol": "UDP",
                                                   "hostIP": "127.0.0.1"}], config=cfg)
    nat = rules.setup_changes(cfg, "planned", net.ip, net.ports)[0]
    planned = {r.render() for spec in nat.add for r in spec.rules} | {r.render() for r in nat.append}
    h = plan.uid_hash("planned")
    live = {line for line in saved_rules(cfg) if h in line and line.startswith("-A ")}
    assert live == planned and len(planned) == 11     # 2 masq + 3 per hostPort + 1 + 2 jumps
    teardown_pod_network("planned", config=cfg)
    assert not [line for line in saved_rules(cfg) if h in line]


def test_one_iptables_commit_per_table_per_change(cfg, nss):
    a, b = nss(2)
    c0 = dict(iptables.commits)

    def delta():
        now = dict(iptables.commits)
        return {t: now.get(t, 0) - c0.get(t, 0) for t in ("nat", "filter")}
    setup_pod_network("c1", a.path, [{"containerPort": 80, "hostPort": 18992}, {"containerPort": 81, "hostPort": 18991}],
                      config=cfg)
    first = delta()
    assert first["nat"] == 1 and first["filter"] <= 1        # filter: the localnet guard, once per node
    setup_pod_network("c2", b.path, [{"containerPort": 80, "hostPort": 18990}], config=cfg)
    assert delta() == {"nat": 2, "filter": first["filter"]}
    assert run(["iptables-legacy-save", "-t", "filter"]).stdout.count(f"-j {cfg.firewall_chain}") == 1
    teardown_pod_network("c1", config=cfg)
    teardown_pod_network("c2", config=cfg)
    teardown_pod_network("c2", config=cfg)                   # nothing left to change: no commit
    assert delta() == {"nat": 4, "filter": first["filter"]}
    assert_nothing_left(cfg, bridge_removed=False)


def test_on_files_comes_with_the_files_before_the_veth_and_its_failure_undoes_all(cfg, nss, tmp_path):
    (ns,) = nss(1)
    files_dir = tmp_path / "files"
    files_dir.mkdir()
    seen = []

    def on_files(ip):  # what a kubelet may rely on when it creates containers meanwhile
        seen.append((ip, sorted(os.listdir(files_dir)), netlink.link_exists(plan.host_veth_name(cfg, "early"))))
    net = setup_pod_network("early", ns.path, config=cfg, pod=PodDNS("early"), files_dir=str(files_dir),
                            on_files=on_files)
    assert seen == [(net.ip, ["hostname", "hosts", "resolv.conf"], False)]
    assert net.ip in (files_dir / "hosts").read_text()
    teardown_pod_network("early", config=cfg)

    def refuse(ip):
        raise RuntimeError("the kubelet could not create its containers")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(RuntimeError, match="could not create"):
        setup_pod_network("early2", ns.path, [{"containerPort": 80, "hostPort": 18994}], config=cfg,
                          pod=PodDNS("early2"), files_dir=str(other), on_files=refuse)
    assert allocation_files(cfg) == [] and not netlink.link_exists(plan.host_veth_name(cfg, "early2"))
    assert base_only(cfg) and os.listdir(other) == []
