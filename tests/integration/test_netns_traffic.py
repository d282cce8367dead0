"""Pod networking on the real kernel with real traffic: pod to pod over TCP, pod to an "outside"
host through NAT, the outside host kept out unless routed, hostPorts (TCP and UDP, node address,
127.0.0.1, hostIP, hairpin), hostPort conflicts. Traffic goes only to loopback or to addresses in
namespaces this module made (the outside host is a netns on its own veth and subnet)."""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest

from netns import PodDNS, PortConflict, netlink, plan, remove_network, setup_pod_network, teardown_pod_network
from tests.conftest import need_tool
from tests.integration.netns_helpers import (BUSYBOX, Httpd, Netns, Outside, allocation_files, assert_nothing_left,
                                             free_subnets, http_get, links_of, make_config, saved_rules, write_site)

pytestmark = pytest.mark.root

HP_A = 18080 + int.from_bytes(os.urandom(1), "big")   # hostPorts: not well-known, distinct per run
HP_U = HP_A + 300
HP_C = HP_A + 600


class World:
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need_tool("ip")
    need_tool("iptables-legacy-save")
    need_tool("busybox")
    pods_net, out_net = free_subnets(2)
    w = World()
    w.cfg = make_config(str(tmp_path_factory.mktemp("net")), pods_net)
    w.a, w.b, w.c = Netns.create_many(3)
    w.out = Outside(out_net)
    servers = []
    try:
        w.net_a = setup_pod_network("pod-a", w.a.path, [{"containerPort": 8080, "hostPort": HP_A}], config=w.cfg,
                                    pod=PodDNS("a"), files_dir=str(tmp_path_factory.mktemp("files-a")))
        w.net_b = setup_pod_network("pod-b", w.b.path, [{"containerPort": 9000, "hostPort": HP_U, "protocol": "UDP"}],
                                    config=w.cfg)
        w.net_c = setup_pod_network("pod-c", w.c.path,
                                    [{"containerPort": 8080, "hostPort": HP_C, "hostIP": w.out.node_ip}], config=w.cfg)
        site = str(tmp_path_factory.mktemp("site"))
        for ns, body in ((w.a, "pod-a"), (w.b, "pod-b"), (w.c, "pod-c")):
            servers.append(Httpd(ns, 8080, write_site(os.path.join(site, body), body)))
        servers.append(Httpd(w.out.ns, 8080, write_site(os.path.join(site, "outside"), "outside")))
        yield w
    finally:
        for s in servers:
            s.stop()
        for uid in ("pod-a", "pod-b", "pod-c", "pod-d"):
            teardown_pod_network(uid, config=w.cfg)
        assert_nothing_left(w.cfg, bridge_removed=False)
        remove_network(w.cfg)
        w.out.close()
        Netns.delete_many([w.a, w.b, w.c])
        assert_nothing_left(w.cfg)


def test_pods_get_addresses_on_the_bridge(world):
    a, b = world.net_a, world.net_b
    assert plan.in_range(world.cfg, a.ip) and plan.in_range(world.cfg, b.ip) and a.ip != b.ip
    assert a.gateway == str(world.cfg.gateway_ip) and a.ifname == "eth0"
    addr = world.a.exec("ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert f"inet {a.ip}/{world.cfg.prefixlen}" in addr
    assert f"default via {a.gateway} dev eth0" in world.a.exec("ip", "route").stdout
    assert "<LOOPBACK,UP," in world.a.exec("ip", "-o", "link", "show", "lo").stdout
    mtu_bridge = open(f"/sys/class/net/{world.cfg.bridge}/mtu").read().strip()
    assert f"mtu {mtu_bridge} " in world.a.exec("ip", "link", "show", "eth0").stdout and a.mtu == int(mtu_bridge)
    # host end: named from the uid, on the bridge, hairpin on, alias naming the pod
    veth = plan.host_veth_name(world.cfg, "pod-a")
    assert a.host_veth == veth and len(veth) <= 15
    assert open(f"/sys/class/net/{veth}/brport/hairpin_mode").read().strip() == "1"
    assert os.path.basename(os.readlink(f"/sys/class/net/{veth}/master")) == world.cfg.bridge
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"
    assert any("alias kubelet-py bridge=" in line and "pod=pod-a" in line for line in links_of(world.cfg))


def test_pods_reach_each_other_over_tcp_without_nat(world):
    a, b = world.net_a, world.net_b
    got = world.b.exec("timeout", "5", BUSYBOX, "wget", "-q", "-O", "-", f"http://{a.ip}:8080/").stdout
    assert got == "pod-a"
    assert http_get(b.ip, 8080, ns=world.a) == "pod-b"
    # the server sees the other pod's own address: pod-to-pod traffic is never NATed
    assert http_get(a.ip, 8080, "/cgi-bin/ip", ns=world.b) == b.ip


def test_pod_reaches_outside_host_which_sees_the_node_address(world):
    out = world.out
    got = world.a.exec("timeout", "5", BUSYBOX, "wget", "-q", "-O", "-", f"http://{out.ip}:8080/cgi-bin/ip").stdout
    assert got == out.node_ip          # masqueraded to the node's address on that link
    assert http_get(out.ip, 8080, ns=world.b) == "outside"


def test_outside_host_reaches_a_pod_only_when_routed(world):
    out, a = world.out, world.net_a
    with out.ns.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((a.ip, 8080)) in (errno.ENETUNREACH, errno.EHOSTUNREACH)
    out.route_to(str(world.cfg.cidr))
    try:
        # routed: the pod sees the outside host's own address (no NAT on the way in)
        assert http_get(a.ip, 8080, "/cgi-bin/ip", ns=out.ns) == out.ip
    finally:
        out.route_to(str(world.cfg.cidr), add=False)


def test_hostport_on_node_addresses_and_localhost(world):
    out = world.out
    assert http_get("127.0.0.1", HP_A) == "pod-a"                   # OUTPUT + route_localnet + SNAT
    assert http_get(out.node_ip, HP_A) == "pod-a"                   # the node's address, from the node
    assert http_get(str(world.cfg.gateway_ip), HP_A) == "pod-a"
    assert http_get(out.node_ip, HP_A, ns=out.ns) == "pod-a"        # PREROUTING, from outside
    assert http_get(out.node_ip, HP_A, "/cgi-bin/ip", ns=out.ns) == out.ip   # external client kept
    assert open(f"/proc/sys/net/ipv4/conf/{world.cfg.bridge}/route_localnet").read().strip() == "1"


def test_hostport_hairpin_pod_reaches_itself_and_others_through_the_node(world):
    assert http_get(world.out.node_ip, HP_A, ns=world.a) == "pod-a"          # itself: hairpin
    assert http_get(world.out.node_ip, HP_A, ns=world.b) == "pod-a"
    # hairpin traffic is masqueraded, so the pod answers via the node
    assert http_get(world.out.node_ip, HP_A, "/cgi-bin/ip", ns=world.b) == str(world.cfg.gateway_ip)


def test_udp_hostport(world):
    srv = world.b.socket(socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", 9000))
    srv.settimeout(3)
    got = []

    def serve():
        for _ in range(2):
            data, peer = srv.recvfrom(100)
            got.append((data, peer[0]))
            srv.sendto(b"pong:" + data, peer)
    t = threading.Thread(target=serve)
    t.start()
    try:
        for dst, via in (("127.0.0.1", None), (world.out.node_ip, world.out.ns)):
            c = via.socket(socket.SOCK_DGRAM) if via else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with c:
                c.settimeout(3)
                c.sendto(dst.encode(), (dst, HP_U))
                assert c.recvfrom(100)[0] == b"pong:" + dst.encode()
    finally:
        t.join(5)
        srv.close()
    assert got == [(b"127.0.0.1", str(world.cfg.gateway_ip)), (world.out.node_ip.encode(), world.out.ip)]


def test_hostport_with_host_ip_listens_only_there(world):
    assert http_get(world.out.node_ip, HP_C) == "pod-c"
    assert http_get(world.out.node_ip, HP_C, ns=world.out.ns) == "pod-c"
    with pytest.raises(ConnectionRefusedError):
        http_get("127.0.0.1", HP_C)          # not DNATed: nothing listens there on the node


def test_second_pod_asking_for_the_same_hostport_fails_and_leaves_nothing(world):
    (d,) = Netns.create_many(1)
    try:
        before_files = allocation_files(world.cfg)
        before_rules = saved_rules(world.cfg)
        with pytest.raises(PortConflict) as e:
            setup_pod_network("pod-d", d.path, [{"containerPort": 80}, {"containerPort": 80, "hostPort": HP_A}],
                              config=world.cfg)
        assert e.value.owner == "pod-a" and e.value.field == "ports[1].hostPort" and str(HP_A) in str(e.value)
        assert allocation_files(world.cfg) == before_files
        assert saved_rules(world.cfg) == before_rules
        assert not netlink.link_exists(plan.host_veth_name(world.cfg, "pod-d"))
        assert "eth0" not in d.exec("ip", "-o", "link").stdout
        assert http_get("127.0.0.1", HP_A) == "pod-a"        # the first pod keeps its port
    finally:
        Netns.delete_many([d])
