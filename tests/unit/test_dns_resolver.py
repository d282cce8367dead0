"""Cluster DNS records as CoreDNS's kubernetes plugin answers them (pure)."""

from dnslib import QTYPE, RCODE

from kubelet_py.dns import Resolver
from kubelet_py.services.endpoints import controller_slices
from tests.unit.test_services_endpoints import pod, svc


def world():
    web = svc("web", cluster_ip="10.96.0.50", ports=[
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}])
    db = svc("db", cluster_ip="None", selector={"app": "db"},
             ports=[{"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": 5432}])
    empty = svc("empty", cluster_ip="None", selector={"app": "nobody"})
    ext = {"kind": "Service", "metadata": {"name": "ext", "namespace": "default"},
           "spec": {"type": "ExternalName", "externalName": "example.org"}}
    pods = [pod("w1", "10.244.0.3"), pod("d0", "10.244.0.7", labels={"app": "db"}, hostname="d0", subdomain="db"),
            pod("d1", "10.244.0.8", labels={"app": "db"}), pod("d2", "10.244.0.9", labels={"app": "db"}, ready=False)]
    slices = [s for x in (web, db, empty) for s in controller_slices(x, pods)]
    return Resolver.build([web, db, empty, ext], slices, pods, ["default", "kube-system"], serial=7,
                          dns_ip="10.96.0.10")


R = world()


def rdatas(result):
    return [str(rr.rdata) for rr in result.answer]


def test_cluster_ip_service_a_ttl_and_case():
    r = R.resolve("Web.Default.svc.cluster.local.", QTYPE.A)
    assert r.rcode == RCODE.NOERROR and rdatas(r) == ["10.96.0.50"]
    assert r.answer[0].ttl == 30 and str(r.answer[0].rname) == "Web.Default.svc.cluster.local."


def test_headless_answers_ready_pod_ips_and_nxdomain_without_any():
    assert sorted(rdatas(R.resolve("db.default.svc.cluster.local", QTYPE.A))) == ["10.244.0.7", "10.244.0.8"]
    assert R.resolve("empty.default.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_srv_for_named_ports():
    r = R.resolve("_http._tcp.web.default.svc.cluster.local", QTYPE.SRV)
    assert rdatas(r) == ["0 100 80 web.default.svc.cluster.local."]
    assert [str(rr.rdata) for rr in r.additional] == ["10.96.0.50"]
    r = R.resolve("_dns._udp.web.default.svc.cluster.local", QTYPE.SRV)
    assert rdatas(r) == ["0 100 53 web.default.svc.cluster.local."]
    assert R.resolve("_dns._tcp.web.default.svc.cluster.local", QTYPE.SRV).rcode == RCODE.NXDOMAIN
    r = R.resolve("_pg._tcp.db.default.svc.cluster.local", QTYPE.SRV)
    assert sorted(rdatas(r)) == ["0 50 5432 10-244-0-8.db.default.svc.cluster.local.",
                                 "0 50 5432 d0.db.default.svc.cluster.local."]
    assert sorted(str(rr.rdata) for rr in r.additional) == ["10.244.0.7", "10.244.0.8"]
    assert len(rdatas(R.resolve("web.default.svc.cluster.local", QTYPE.SRV))) == 2  # the bare name: every port


def test_pod_hostname_subdomain_and_endpoint_names():
    assert rdatas(R.resolve("d0.db.default.svc.cluster.local", QTYPE.A)) == ["10.244.0.7"]
    assert rdatas(R.resolve("10-244-0-8.db.default.svc.cluster.local", QTYPE.A)) == ["10.244.0.8"]
    assert R.resolve("10-244-0-9.db.default.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN  # not ready


def test_pod_records_verified():
    assert rdatas(R.resolve("10-244-0-3.default.pod.cluster.local", QTYPE.A)) == ["10.244.0.3"]
    assert R.resolve("10-244-0-3.kube-system.pod.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert R.resolve("10-1-1-1.default.pod.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_nxdomain_nodata_and_soa():
    for name in ("nope.default.svc.cluster.local", "google.com.default.svc.cluster.local",
                 "web.nons.svc.cluster.local", "x.cluster.local"):
        r = R.resolve(name, QTYPE.A)
        assert r.rcode == RCODE.NXDOMAIN and r.answer == () and r.authority[0].rtype == QTYPE.SOA, name
    soa = R.resolve("web.default.svc.cluster.local", QTYPE.AAAA)
    assert soa.rcode == RCODE.NOERROR and soa.answer == ()
    assert str(soa.authority[0].rdata) == "ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 30"
    assert R.resolve("default.svc.cluster.local", QTYPE.A).answer == ()
    assert R.resolve("default.svc.cluster.local", QTYPE.A).rcode == RCODE.NOERROR
    assert rdatas(R.resolve("cluster.local", QTYPE.NS)) == ["ns.dns.cluster.local."]


def test_external_name_cname_ptr_and_outside_names():
    r = R.resolve("ext.default.svc.cluster.local", QTYPE.A)
    assert [(rr.rtype, str(rr.rdata)) for rr in r.answer] == [(QTYPE.CNAME, "example.org.")]
    assert rdatas(R.resolve("50.0.96.10.in-addr.arpa", QTYPE.PTR)) == ["web.default.svc.cluster.local."]
    assert rdatas(R.resolve("7.0.244.10.in-addr.arpa.", QTYPE.PTR)) == ["d0.db.default.svc.cluster.local."]
    assert R.resolve("8.8.8.8.in-addr.arpa", QTYPE.PTR) is None
    assert R.resolve("example.org", QTYPE.A) is None
    assert R.resolve("cluster.local.example.org", QTYPE.A) is None


def test_memoised_answers_match_and_stay_bounded():
    first = R.resolve("web.default.svc.cluster.local", QTYPE.A)
    assert R.resolve("web.default.svc.cluster.local.", QTYPE.A) is first
    assert rdatas(R.resolve("WEB.default.svc.cluster.local", QTYPE.A)) == rdatas(first)
    assert R.resolve("web.default.svc.cluster.local", QTYPE.AAAA).answer == ()
    for qtype in range(1000, 1100):  # odd types get NODATA, but are not remembered
        assert R.resolve("web.default.svc.cluster.local", qtype).answer == ()
    assert all(t < 1000 for t in R.names["web.default.svc.cluster.local"].answers)


def test_cluster_dns_objects_admit_allocate_and_resolve():
    from kubelet_py.api import admit
    from kubelet_py.dns.objects import cluster_dns_objects
    from kubelet_py.services.alloc import allocate
    from kubelet_py.services.endpoints import reconcile, slices_of
    svc_obj, eps = (admit(o).obj for o in cluster_dns_objects("10.244.0.1", node_name="node1"))
    svc_obj = allocate(svc_obj, [])
    assert svc_obj["spec"]["clusterIP"] == "10.96.0.10" and svc_obj["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert slices_of(svc_obj, [eps]) == [eps] and reconcile([svc_obj], [], [eps]).delete == []
    r = Resolver.build([svc_obj], [eps], [], ["kube-system"])
    assert rdatas(r.resolve("kube-dns.kube-system.svc.cluster.local", QTYPE.A)) == ["10.96.0.10"]
    assert rdatas(r.resolve("_dns._udp.kube-dns.kube-system.svc.cluster.local", QTYPE.SRV)) == [
        "0 100 53 kube-dns.kube-system.svc.cluster.local."]
