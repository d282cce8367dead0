"""serve --cluster-cidr: pod traffic to other nodes' pod CIDRs keeps its source address (the
Kubernetes network model: pods reach pods on every node without NAT), while traffic leaving the
cluster's pod range is still masqueraded; without it only this node's pod CIDR is exempt."""

from __future__ import annotations

import pytest

from netns import rules
from netns.errors import ConfigError
from netns.plan import NetworkConfig, uid_hash

H = uid_hash("pod-a")


def masq_rules(cfg: NetworkConfig) -> list[str]:
    (nat,) = rules.setup_changes(cfg, "pod-a", "10.244.1.5", ())
    return [r.render() for r in nat.add[0].rules]


def test_cluster_cidr_is_returned_before_masquerade():
    cfg = NetworkConfig(bridge="kpyt1", gateway="10.244.1.1/24", chain_prefix="KPYT1", cluster_cidr="10.244.0.0/16")
    assert masq_rules(cfg) == [
        f'-A KPYT1-MASQ-{H} -d 10.244.0.0/16 -m comment --comment "kubelet-py pod pod-a: cluster network" -j RETURN',
        f'-A KPYT1-MASQ-{H} ! -d 224.0.0.0/4 -m comment --comment "kubelet-py pod pod-a" -j MASQUERADE',
    ]
    # what a repeated setup checks is the same rule set
    exp = [e for e in rules.pod_expectations(cfg, "pod-a", "10.244.1.5", ()) if e.chain == f"KPYT1-MASQ-{H}"]
    assert [r.render() for r in exp[0].rules] == masq_rules(cfg)


def test_without_cluster_cidr_only_the_node_pod_cidr_is_exempt():
    cfg = NetworkConfig(bridge="kpyt1", gateway="10.244.1.1/24", chain_prefix="KPYT1")
    assert masq_rules(cfg)[0].startswith(f"-A KPYT1-MASQ-{H} -d 10.244.1.0/24 ")


@pytest.mark.parametrize("value, why", [
    ("10.245.0.0/16", "must contain this node's pod CIDR 10.244.1.0/24"),
    ("10.244.1.128/25", "must contain this node's pod CIDR"),
    ("nonsense", "not an IPv4 network"),
])
def test_cluster_cidr_must_be_a_network_holding_the_pod_cidr(value, why):
    with pytest.raises(ConfigError) as e:
        NetworkConfig(gateway="10.244.1.1/24", cluster_cidr=value)
    assert why in str(e.value) and "cluster_cidr" in str(e.value)


@pytest.mark.parametrize("cluster, why", [
    ("10.252.0.0/16", "must contain this node's pod CIDR 10.251.1.0/24"),
    ("bogus", "not an IPv4 network"),
])
def test_serve_refuses_a_cluster_cidr_before_starting(tmp_path, cluster, why):
    """A bad --cluster-cidr (or clusterCidr in the config file) is a usage error naming the flag,
    before serve starts anything (its roots are never made)."""
    from click.testing import CliRunner

    from kubelet_py.cli import cli
    root = tmp_path / "root"
    r = CliRunner().invoke(cli, ["--root", str(root), "--run-root", str(tmp_path / "run"), "--socket",
                                 str(tmp_path / "s.sock"), "serve", "--pod-cidr", "10.251.1.0/24",
                                 "--cluster-cidr", cluster])
    assert r.exit_code == 2, r.output
    assert "Invalid value for --cluster-cidr" in r.output and why in r.output
    assert not root.exists()
