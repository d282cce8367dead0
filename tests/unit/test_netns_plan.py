"""Pure pod-network planning: config checks, kernel object names, hostPort parsing and conflicts,
IPAM arithmetic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netns.errors import ConfigError, PodSpecError, PortConflict
from netns.plan import (NetworkConfig, PortMapping, check_uid, find_conflict, host_veth_name, hostport_chain,
                        in_range, link_alias, masq_chain, next_free, parse_key, parse_link_alias, parse_ports)

CFG = NetworkConfig(state_root="/nonexistent", bridge="kpyt1", gateway="10.250.7.1/24", chain_prefix="KPYT1")


def test_pure_modules_do_not_load_the_kernel_libraries():
    code = ("import sys, netns, netns.plan, netns.rules, netns.dnsfiles; "
            "print(sorted(m for m in ('pyroute2', 'iptc', 'kubelet_py', 'runtime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_defaults_are_the_architecture_ones():
    c = NetworkConfig()
    assert (c.bridge, str(c.gateway_ip), str(c.cidr)) == ("kpy0", "10.244.0.1", "10.244.0.0/16")
    assert (c.postrouting_chain, c.hostports_chain) == ("KPY-POSTROUTING", "KPY-HOSTPORTS")
    assert c.ipam_dir == "/var/lib/kubelet-py/ipam"
    assert c.cluster_dns == ("10.96.0.10",)


@pytest.mark.parametrize("kw,field", [
    ({"bridge": "a" * 16}, "bridge"),
    ({"bridge": "bad/name"}, "bridge"),
    ({"bridge": ""}, "bridge"),
    ({"gateway": "10.244.0.0/16"}, "gateway"),          # the network address
    ({"gateway": "10.244.255.255/16"}, "gateway"),      # the broadcast address
    ({"gateway": "10.0.0.1/31"}, "gateway"),
    ({"gateway": "fd00::1/64"}, "gateway"),
    ({"gateway": "10.244.0.1"}, "gateway"),             # no prefix: a /32
    ({"gateway": "nonsense"}, "gateway"),
    ({"chain_prefix": "kpy"}, "chain_prefix"),
    ({"chain_prefix": "KPYTOOLONGPREFIX"}, "chain_prefix"),
    ({"veth_prefix": "kpyverylong"}, "veth_prefix"),
    ({"mtu": 10}, "mtu"),
    ({"hostport_mark": 0x3000}, "hostport_mark"),
    ({"cluster_dns": ("not-an-ip",)}, "cluster_dns[0]"),
    ({"node_ip": "x"}, "node_ip"),
])
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ConfigError) as e:
        NetworkConfig(**kw)
    assert e.value.field == field


def test_names_are_deterministic_short_and_distinct():
    a, b = "0b2e5e6c-0000-4000-8000-000000000001", "0b2e5e6c-0000-4000-8000-000000000002"
    assert host_veth_name(CFG, a) == host_veth_name(CFG, a)
    assert host_veth_name(CFG, a) != host_veth_name(CFG, b)
    name = host_veth_name(CFG, a)
    assert name.startswith("kpy") and len(name) == 15
    assert masq_chain(CFG, a) == "KPYT1-MASQ-" + name[3:]
    assert hostport_chain(CFG, a) == "KPYT1-HP-" + name[3:]
    assert len(masq_chain(NetworkConfig(chain_prefix="KPYT123456"), a)) <= 28
    assert parse_link_alias(link_alias(CFG, a)) == ("kpyt1", a)
    assert parse_link_alias("something else") is None and parse_link_alias(None) is None


@pytest.mark.parametrize("uid", ["", "a b", "x\n", "../etc", "a" * 129, None, 5, "-lead"])
def test_bad_pod_uid(uid):
    with pytest.raises(PodSpecError) as e:
        check_uid(uid)
    assert e.value.field == "pod_uid"


def test_ports_only_hostports_are_mappings():
    got = parse_ports("u", [
        {"containerPort": 80},
        {"name": "web", "containerPort": 8080, "hostPort": 18080},
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
    ])
    assert got == (PortMapping("tcp", 18080, 8080), PortMapping("udp", 5353, 53, "127.0.0.1"))
    assert got[0].source == "ports[1]" and got[1].source == "ports[2]"
    assert got[1].key == "udp-5353-127.0.0.1" and str(got[1]) == "127.0.0.1:5353/udp"
    assert parse_key(got[1].key) == PortMapping("udp", 5353, 0, "127.0.0.1")


def test_ports_with_host_network_default_host_port_to_container_port():
    assert parse_ports("u", [{"containerPort": 80}], host_network=True) == (PortMapping("tcp", 80, 80),)
    with pytest.raises(PodSpecError) as e:
        parse_ports("u", [{"containerPort": 80, "hostPort": 81}], host_network=True)
    assert e.value.field == "ports[0].hostPort"


@pytest.mark.parametrize("entry,field", [
    ({"containerPort": 0, "hostPort": 1}, "ports[0].containerPort"),
    ({"containerPort": 80, "hostPort": 70000}, "ports[0].hostPort"),
    ({"containerPort": "80", "hostPort": 1}, "ports[0].containerPort"),
    ({"containerPort": True, "hostPort": 1}, "ports[0].containerPort"),
    ({"containerPort": 80, "hostPort": 81, "protocol": "SCTP"}, "ports[0].protocol"),
    ({"containerPort": 80, "hostPort": 81, "hostIP": "fd00::1"}, "ports[0].hostIP"),
    ({"containerPort": 80, "hostPort": 81, "hostIP": "224.0.0.1"}, "ports[0].hostIP"),
    ({"containerPort": 80, "hostPort": 81, "hostPorts": 1}, "ports[0].hostPorts"),
    ("80:81", "ports[0]"),
])
def test_bad_ports_name_the_field(entry, field):
    with pytest.raises(PodSpecError) as e:
        parse_ports("uid-1", [entry])
    assert e.value.field == field and e.value.pod_uid == "uid-1"


def test_same_hostport_twice_in_one_pod_is_a_conflict():
    with pytest.raises(PortConflict) as e:
        parse_ports("u", [{"containerPort": 80, "hostPort": 8080},
                          {"containerPort": 81, "hostPort": 8080, "hostIP": "10.0.0.1"}])
    assert e.value.field == "ports[1].hostPort"
    # same number, other protocol: fine
    assert len(parse_ports("u", [{"containerPort": 80, "hostPort": 8080},
                                 {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}])) == 2


@pytest.mark.parametrize("held,wanted,conflict", [
    ("tcp-8080-0.0.0.0", PortMapping("tcp", 8080, 1), True),
    ("tcp-8080-0.0.0.0", PortMapping("tcp", 8080, 1, "10.0.0.1"), True),
    ("tcp-8080-10.0.0.1", PortMapping("tcp", 8080, 1), True),
    ("tcp-8080-10.0.0.1", PortMapping("tcp", 8080, 1, "10.0.0.1"), True),
    ("tcp-8080-10.0.0.1", PortMapping("tcp", 8080, 1, "10.0.0.2"), False),
    ("tcp-8080-0.0.0.0", PortMapping("udp", 8080, 1), False),
    ("tcp-8080-0.0.0.0", PortMapping("tcp", 8081, 1), False),
])
def test_hostport_overlap(held, wanted, conflict):
    hit = find_conflict([wanted], {held: "other"}, "me")
    assert (hit is not None) == conflict
    assert find_conflict([wanted], {held: "me"}, "me") is None   # a pod's own claim never conflicts


def test_ipam_starts_after_gateway_and_is_round_robin():
    assert next_free(CFG, [], None) == "10.250.7.2"
    assert next_free(CFG, ["10.250.7.2"], "10.250.7.2") == "10.250.7.3"
    # released .2 is not handed out again at once: round-robin from the last reserved
    assert next_free(CFG, ["10.250.7.3"], "10.250.7.3") == "10.250.7.4"
    # wrap around at the end of the range (broadcast .255 excluded), skipping the gateway
    assert next_free(CFG, [], "10.250.7.254") == "10.250.7.2"
    assert next_free(CFG, ["10.250.7.2"], "10.250.7.254") == "10.250.7.3"
    # a hint outside the range is ignored
    assert next_free(CFG, [], "192.168.0.9") == "10.250.7.2"
    assert next_free(CFG, [], "garbage") == "10.250.7.2"


def test_ipam_gateway_in_the_middle_and_exhaustion():
    cfg = NetworkConfig(gateway="10.250.7.6/29")      # .1-.6 usable, gateway .6
    taken = ["10.250.7.1", "10.250.7.2", "10.250.7.3", "10.250.7.4"]
    assert next_free(cfg, taken, "10.250.7.4") == "10.250.7.5"
    assert next_free(cfg, taken + ["10.250.7.5"], "10.250.7.5") is None
    small = NetworkConfig(gateway="10.250.7.1/30")     # one pod address: .2
    assert next_free(small, [], None) == "10.250.7.2"
    assert next_free(small, ["10.250.7.2"], None) is None
    assert in_range(small, "10.250.7.2") and not in_range(small, "10.250.7.1") and not in_range(small, "10.250.7.3")


def test_ipam_range_of_a_16_is_large():
    cfg = NetworkConfig()
    assert next_free(cfg, [], "10.244.0.255") == "10.244.1.0"     # .0 inside a /16 is a host address
    assert next_free(cfg, [], "10.244.255.254") == "10.244.0.2"
