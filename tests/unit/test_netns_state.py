"""Pure checks of a pod network's completeness (netns/state.py), the record format, and the rule
expectations a repeated setup compares the live tables with (rules.pod_expectations)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netns import rules, state
from netns.plan import NetworkConfig, PodFiles, PodNetwork, PortMapping, host_veth_name, link_alias
from netns.state import Bridge, LinkState, PodSide

CFG = NetworkConfig(state_root="/nonexistent", bridge="kpyt1", gateway="10.250.7.1/24", chain_prefix="KPYT1")
VETH = host_veth_name(CFG, "u1")
BR = Bridge("kpyt1", 5, 1500)
GOOD_BR = LinkState("kpyt1", 5, "bridge", True, 1500, addresses=("10.250.7.1/24",))
GOOD_VETH = LinkState(VETH, 9, "veth", True, 1500, master=5, peer=2, alias=link_alias(CFG, "u1"), hairpin=True)
GOOD_POD = PodSide(LinkState("eth0", 2, "veth", True, 1500, peer=9, addresses=("10.250.7.2/24",)), True,
                   (("10.250.7.1", 2),))
NET = PodNetwork("u1", "10.250.7.2", "10.250.7.1", 24, host_veth=VETH, mtu=1500,
                 ports=(PortMapping("tcp", 8080, 80, source="ports[0]"), PortMapping("udp", 53, 53, "127.0.0.1",
                                                                                     source="ports[2]")),
                 files=PodFiles("/f/hosts", "/f/hostname", "/f/resolv.conf"), warnings=("too many searches",))


def fields(problems):
    return [f for f, _ in problems]


def test_a_complete_network_has_no_problem():
    assert state.bridge_problems(CFG, GOOD_BR) == []
    assert state.veth_problems(CFG, "u1", GOOD_VETH, BR) == []
    assert state.pod_side_problems(CFG, "10.250.7.2", GOOD_VETH, GOOD_POD) == []
    assert state.record_problems(CFG, NET, "10.250.7.2", ["tcp-8080-0.0.0.0", "udp-53-127.0.0.1"]) == []


@pytest.mark.parametrize("br, field", [
    (None, "bridge"), (replace(GOOD_BR, kind="veth"), "bridge"), (replace(GOOD_BR, up=False), "bridge"),
    (replace(GOOD_BR, addresses=()), "gateway"),
])
def test_bridge_problems(br, field):
    assert fields(state.bridge_problems(CFG, br)) == [field]


def test_bridge_mtu_counts_only_when_configured():
    assert state.bridge_problems(replace(CFG, mtu=1400), GOOD_BR) == [("mtu", "bridge kpyt1 has mtu 1500, not 1400")]


@pytest.mark.parametrize("veth, field", [
    (None, "host_veth"), (replace(GOOD_VETH, master=None), "host_veth"), (replace(GOOD_VETH, up=False), "host_veth"),
    (replace(GOOD_VETH, alias="someone else"), "host_veth"), (replace(GOOD_VETH, hairpin=False), "host_veth"),
    (replace(GOOD_VETH, mtu=9000), "mtu"), (replace(GOOD_VETH, kind="dummy"), "host_veth"),
])
def test_veth_problems(veth, field):
    assert fields(state.veth_problems(CFG, "u1", veth, BR)) == [field]


@pytest.mark.parametrize("pod, field", [
    (PodSide(None, True, ()), "ifname"),
    (replace(GOOD_POD, eth0=replace(GOOD_POD.eth0, peer=44)), "ifname"),
    (replace(GOOD_POD, eth0=replace(GOOD_POD.eth0, up=False)), "ifname"),
    (replace(GOOD_POD, eth0=replace(GOOD_POD.eth0, addresses=())), "ip"),
    (replace(GOOD_POD, eth0=replace(GOOD_POD.eth0, addresses=("10.250.7.2/24", "10.9.9.9/8"))), "ip"),
    (replace(GOOD_POD, eth0=replace(GOOD_POD.eth0, mtu=1400)), "mtu"),
    (replace(GOOD_POD, default_routes=()), "gateway"),
    (replace(GOOD_POD, default_routes=(("10.250.7.99", 2),)), "gateway"),
    (replace(GOOD_POD, lo_up=False), "ifname"),
])
def test_pod_side_problems(pod, field):
    assert fields(state.pod_side_problems(CFG, "10.250.7.2", GOOD_VETH, pod)) == [field]


def test_record_problems_against_the_disk():
    claims = ["tcp-8080-0.0.0.0", "udp-53-127.0.0.1"]
    assert fields(state.record_problems(CFG, NET, None, claims)) == ["ip"]
    assert "but 10.250.7.3 is allocated" in state.record_problems(CFG, NET, "10.250.7.3", claims)[0][1]
    assert fields(state.record_problems(CFG, NET, "10.250.7.2", claims[:1])) == ["ports"]
    other = replace(CFG, gateway="10.250.8.1/24")
    assert fields(state.record_problems(other, NET, "10.250.7.2", claims)) == ["ip", "gateway"]
    hostnet = PodNetwork("u1", "192.0.2.1", None, None, host_network=True, ifname=None)
    assert state.record_problems(CFG, hostnet, None, []) == []
    assert fields(state.record_problems(CFG, hostnet, "10.250.7.2", [])) == ["ip"]


def test_the_record_round_trips_every_field():
    back = state.from_record(state.to_record(NET))
    assert back == NET and repr(back) == repr(NET)          # repr: the ports' source too
    assert state.to_record(back) == state.to_record(NET)


@pytest.mark.parametrize("data, words", [
    (b"{", "not JSON"), (b"[]", "not a version 1"), (b'{"version": 2}', "not a version 1"),
    (b'{"version": 1}', "field 'ports' is missing"),
    (b'{"version": 1, "ports": 3, "files": {}}', "wrong type"),
])
def test_a_bad_record_is_refused_with_the_reason(data, words):
    with pytest.raises(ValueError) as e:
        state.from_record(data)
    assert words in str(e.value)


def _planned(changes):
    out = set()
    for ch in changes:
        out |= {(ch.table, r) for spec in ch.ensure + ch.add for r in spec.rules}
        out |= {(ch.table, r) for r in ch.jumps + ch.append}
    return out


@pytest.mark.parametrize("ports", [(), NET.ports])
def test_the_expectations_are_every_rule_setup_makes(ports):
    expects = rules.pod_expectations(CFG, "u1", "10.250.7.2", ports)
    expected = {(x.table, r) for x in expects for r in x.rules}
    assert expected == _planned(rules.setup_changes(CFG, "u1", "10.250.7.2", ports))
    hp = rules.hostport_chain(CFG, "u1")
    absent = [x.chain for x in expects if not x.present]
    assert absent == ([] if ports else [hp])
    # the pod's own chains are compared whole, the shared ones only for what jumps to the pod's
    whole = {x.chain for x in expects if x.target is None and x.present}
    assert whole == ({rules.masq_chain(CFG, "u1")} | ({hp, CFG.firewall_chain} if ports else set()))


def test_the_checks_and_the_double_load_no_kernel_library():
    import subprocess
    import sys
    code = ("import sys, netns.state, netns.fake, netns.errors, netns.atomicfile; "
            "print(sorted(m for m in ('pyroute2', 'iptc', 'kubelet_py', 'runtime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
