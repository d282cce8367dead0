"""/etc/hosts, /etc/hostname and /etc/resolv.conf contents (kubelet-semantics.md 4.5)."""

from __future__ import annotations

import pytest

from netns.dnsfiles import (DNSConfig, DNSOption, HostAlias, PodDNS, ResolvConf, host_network_hosts_file,
                            hosts_file, parse_resolv_conf, pod_dns_from_spec, pod_hostname, resolv_conf, validate)
from netns.errors import PodSpecError

HEAD = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
HOST = ResolvConf(("192.0.2.53", "192.0.2.54"), ("corp.example", "example"), ("ndots:1", "timeout:2"))
CLUSTER = ("10.96.0.10",)


def test_hosts_without_subdomain():
    assert hosts_file(PodDNS("web-0", "ns1"), ("10.244.0.5",), "cluster.local") == HEAD + "10.244.0.5\tweb-0\n"


def test_hosts_with_subdomain_hostname_and_aliases():
    pod = PodDNS("web-0", "ns1", hostname="db", subdomain="svc1",
                 host_aliases=(HostAlias("10.1.2.3", ("foo.local", "bar.local")), HostAlias("10.1.2.4", ("baz",))))
    assert hosts_file(pod, ("10.244.0.5",), "cluster.local") == (
        HEAD + "10.244.0.5\tdb.svc1.ns1.svc.cluster.local\tdb\n"
        "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n10.1.2.4\tbaz\n")


def test_host_network_hosts_file():
    pod = PodDNS("p", host_aliases=(HostAlias("10.1.2.3", ("foo",)),))
    assert host_network_hosts_file(pod, "127.0.0.1 localhost\n192.0.2.9 node1") == (
        "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n192.0.2.9 node1\n"
        "\n# Entries added by HostAliases.\n10.1.2.3\tfoo\n")


def test_hostname_is_cut_to_63_without_trailing_dash_or_dot():
    assert pod_hostname(PodDNS("a" * 62 + "-b")) == "a" * 62
    assert pod_hostname(PodDNS("a" * 61 + ".-x")) == "a" * 61
    assert pod_hostname(PodDNS("x", hostname="given")) == "given"


def test_cluster_first():
    rc, warn = resolv_conf(PodDNS("p", "ns1"), HOST, CLUSTER, "cluster.local")
    assert rc.render() == ("search ns1.svc.cluster.local svc.cluster.local cluster.local corp.example example\n"
                           "nameserver 10.96.0.10\noptions ndots:5\n")
    assert warn == ()


def test_cluster_first_search_dedup_with_host():
    host = ResolvConf(("192.0.2.53",), ("cluster.local", "corp"), ())
    rc, _ = resolv_conf(PodDNS("p", "ns1"), host, CLUSTER, "cluster.local")
    assert rc.searches == ("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp")


def test_default_is_the_hosts_and_host_network_cluster_first_acts_as_default():
    for pod, hn in ((PodDNS("p", dns_policy="Default"), False), (PodDNS("p"), True)):
        rc, _ = resolv_conf(pod, HOST, CLUSTER, "cluster.local", host_network=hn)
        assert rc == HOST
    rc, _ = resolv_conf(PodDNS("p", "n", dns_policy="ClusterFirstWithHostNet"), HOST, CLUSTER, "cluster.local", True)
    assert rc.nameservers == CLUSTER and rc.options == ("ndots:5",)


def test_no_cluster_dns_falls_back_to_default_with_a_warning():
    rc, warn = resolv_conf(PodDNS("p"), HOST, (), "cluster.local")
    assert rc == HOST and warn and warn[0].startswith("MissingClusterDNS")


def test_dns_config_merges_and_none_uses_only_it():
    cfg = DNSConfig(("10.0.0.53", "10.96.0.10"), ("extra.example.",),
                    (DNSOption("ndots", "2"), DNSOption("edns0"), DNSOption("timeout", "3")))
    rc, _ = resolv_conf(PodDNS("p", "ns1", dns_config=cfg), HOST, CLUSTER, "cluster.local")
    assert rc.nameservers == ("10.96.0.10", "10.0.0.53")
    assert rc.searches[-1] == "extra.example" and rc.searches[0] == "ns1.svc.cluster.local"
    assert rc.options == ("ndots:2", "edns0", "timeout:3")
    rc, _ = resolv_conf(PodDNS("p", dns_policy="None", dns_config=DNSConfig(("1.2.3.4",), ("a.b",))),
                        HOST, CLUSTER, "cluster.local")
    assert rc.render() == "search a.b\nnameserver 1.2.3.4\n"


def test_limits_truncate_with_warnings():
    host = ResolvConf(("1.1.1.1", "2.2.2.2", "3.3.3.3"), tuple(f"d{i}.example" for i in range(40)), ())
    rc, warn = resolv_conf(PodDNS("p", dns_policy="Default", dns_config=DNSConfig(("4.4.4.4",))), host, CLUSTER,
                           "cluster.local")
    assert rc.nameservers == ("1.1.1.1", "2.2.2.2", "3.3.3.3") and len(rc.searches) == 32
    assert len(warn) == 2 and all(w.startswith("DNSConfigForming") for w in warn)


def test_parse_host_resolv_conf_like_the_kubelet():
    text = ("# comment\nnameserver 192.0.2.53\nsearch old.example\nsearch corp.example. . example ; x\n"
            "options ndots:1\noptions timeout:2 ndots:3\nnameserver 192.0.2.54 # second\n")
    assert parse_resolv_conf(text) == ResolvConf(("192.0.2.53", "192.0.2.54"), ("corp.example", "example"),
                                                 ("ndots:3", "timeout:2"))


def test_from_spec_and_validation_name_the_field():
    dns = pod_dns_from_spec("u", "p", "ns", {"hostname": "h", "subdomain": "s", "dnsPolicy": "None",
                                             "dnsConfig": {"nameservers": ["1.2.3.4"], "options": [{"name": "ndots", "value": 2}]},
                                             "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}]})
    assert dns.dns_config.options == (DNSOption("ndots", "2"),) and dns.host_aliases == (HostAlias("10.0.0.1", ("a",)),)
    bad = [
        ({"hostname": "Bad_Name"}, "spec.hostname"),
        ({"subdomain": "a.b"}, "spec.subdomain"),
        ({"dnsPolicy": "Cluster"}, "spec.dnsPolicy"),
        ({"dnsPolicy": "None"}, "spec.dnsConfig.nameservers"),
        ({"hostAliases": [{"ip": "nope", "hostnames": ["a"]}]}, "spec.hostAliases[0].ip"),
        ({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a b"]}]}, "spec.hostAliases[0].hostnames[0]"),
        ({"dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]}}, "spec.dnsConfig.nameservers"),
        ({"dnsConfig": {"nameservers": ["x"]}}, "spec.dnsConfig.nameservers[0]"),
        ({"dnsConfig": {"searches": [f"d{i}" for i in range(33)]}}, "spec.dnsConfig.searches"),
        ({"dnsConfig": {"options": [{"value": "1"}]}}, "spec.dnsConfig.options[0]"),
    ]
    for spec, field in bad:
        with pytest.raises(PodSpecError) as e:
            pod_dns_from_spec("u", "p", "ns", spec)
        assert e.value.field == field, spec
    validate("u", PodDNS("p"))
