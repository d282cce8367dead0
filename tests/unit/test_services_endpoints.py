"""The EndpointSlice controller, mirroring and legacy Endpoints, and service env vars."""

from kubelet_py.services import endpoints as E
from kubelet_py.services.envvars import from_services, merge, service_env


def pod(name, ip, ready=True, labels=None, ns="default", deleting=False, phase="Running", ports=None, **spec):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels or {"app": "web"}},
         "spec": {"nodeName": "node1", "containers": [{"name": "c", "ports": ports or [
             {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}], **spec},
         "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return p


def svc(name="web", ns="default", ports=None, selector=None, cluster_ip="10.96.0.50", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "uid": f"s-{name}",
                                                                  "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"} if selector is None else selector, "clusterIP": cluster_ip,
                     "type": "ClusterIP",
                     "ports": ports if ports is not None else [
                         {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}], **spec}}


def test_slice_conditions_target_ref_ports_and_labels():
    pods = [pod("b", "10.244.0.12", ready=False), pod("a", "10.244.0.3"), pod("t", "10.244.0.9", deleting=True),
            pod("done", "10.244.0.4", phase="Succeeded"), pod("noip", ""),
            pod("other", "10.244.0.5", labels={"x": "y"}),
            pod("elsewhere", "10.244.0.6", ns="prod")]
    [s] = E.controller_slices(svc(), pods)
    assert s["addressType"] == "IPv4" and s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert s["metadata"]["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert s["metadata"]["name"].startswith("web-") and len(s["metadata"]["name"]) == 9
    assert s["metadata"]["ownerReferences"][0]["uid"] == "s-web"
    assert [(e["addresses"], e["conditions"]) for e in s["endpoints"]] == [
        (["10.244.0.3"], {"ready": True, "serving": True, "terminating": False}),
        (["10.244.0.9"], {"ready": False, "serving": True, "terminating": True}),
        (["10.244.0.12"], {"ready": False, "serving": False, "terminating": False})]
    assert s["endpoints"][0]["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}
    assert s["endpoints"][0]["nodeName"] == "node1"
    # the same inputs give the same names (the daemon diffs by name)
    assert E.controller_slices(svc(), list(reversed(pods))) == [s]


def test_publish_not_ready_addresses_and_hostname():
    [s] = E.controller_slices(svc(publishNotReadyAddresses=True, cluster_ip="None"),
                              [pod("b", "10.244.0.12", ready=False, hostname="b", subdomain="web")])
    assert s["endpoints"][0]["conditions"] == {"ready": True, "serving": False, "terminating": False}
    assert s["endpoints"][0]["hostname"] == "b" and s["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


def test_named_target_port_resolved_per_pod_and_placeholder():
    other_port = pod("c", "10.244.0.7", ports=[{"name": "http", "containerPort": 9090, "protocol": "TCP"}])
    no_port = pod("d", "10.244.0.8", ports=[{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}])
    slices = E.controller_slices(svc(), [pod("a", "10.244.0.3"), other_port, no_port])
    assert sorted((tuple(p["port"] for p in s["ports"]), tuple(e["addresses"][0] for e in s["endpoints"]))
                  for s in slices) == [((), ("10.244.0.8",)), ((8080,), ("10.244.0.3",)), ((9090,), ("10.244.0.7",))]
    assert len({s["metadata"]["name"] for s in slices}) == 3
    [empty] = E.controller_slices(svc(), [])
    assert empty["endpoints"] == [] and empty["ports"] == []
    assert E.controller_slices(svc(selector={}), [pod("a", "10.244.0.3")]) == []


def test_more_than_100_endpoints_split():
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(230)]
    assert [len(s["endpoints"]) for s in E.controller_slices(svc(), pods)] == [100, 100, 30]


def test_selectorless_service_mirrors_endpoints_and_reconcile():
    ext = svc("ext", selector={}, ports=[{"name": "", "port": 5432, "protocol": "TCP", "targetPort": 5432}])
    eps = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext", "namespace": "default"},
           "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "notReadyAddresses": [{"ip": "192.0.2.11"}],
                        "ports": [{"name": "", "port": 5432, "protocol": "TCP"}]}]}
    [m] = E.mirrored_slices(ext, eps)
    assert m["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == E.MIRRORING_CONTROLLER
    assert [(e["addresses"][0], e["conditions"]["ready"]) for e in m["endpoints"]] == [("192.0.2.10", True),
                                                                                      ("192.0.2.11", False)]
    user = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "ext-manual", "namespace": "default", "labels": {E.LABEL_SERVICE_NAME: "ext"}},
            "addressType": "IPv4", "endpoints": [], "ports": []}
    stale = {"metadata": {"name": "gone-abcde", "namespace": "default",
                          "labels": {E.LABEL_MANAGED_BY: E.CONTROLLER, E.LABEL_SERVICE_NAME: "gone"}}}
    old = {"kind": "Endpoints", "metadata": {"name": "gone", "namespace": "default",
                                             "labels": {E.LABEL_ENDPOINTS_MANAGED_BY: E.ENDPOINTS_CONTROLLER}}}
    r = E.reconcile([svc(), ext], [pod("a", "10.244.0.3")], [user, stale], [eps, old])
    assert {s["metadata"]["labels"][E.LABEL_MANAGED_BY] for s in r.slices} == {E.CONTROLLER, E.MIRRORING_CONTROLLER}
    assert r.delete == [("default", "gone-abcde")] and r.delete_endpoints == [("default", "gone")]
    assert [e["metadata"]["name"] for e in r.endpoints] == ["web"]
    assert E.slices_of(ext, [user, stale, m]) == [user, m]


def test_legacy_endpoints():
    ep = E.legacy_endpoints(svc(), [pod("b", "10.244.0.12", ready=False), pod("a", "10.244.0.3"),
                                    pod("t", "10.244.0.9", deleting=True)])
    assert ep["metadata"]["labels"] == {"team": "a", "endpoints.kubernetes.io/managed-by": "endpoint-controller"}
    assert ep["subsets"] == [{
        "addresses": [{"ip": "10.244.0.3", "nodeName": "node1",
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [{"ip": "10.244.0.12", "nodeName": "node1",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


def test_service_env_vars():
    redis = svc("redis-primary", cluster_ip="10.0.0.11", ports=[
        {"name": "db", "port": 6379, "protocol": "TCP", "targetPort": 6379},
        {"name": "", "port": 53, "protocol": "UDP", "targetPort": 53}])
    assert from_services([redis]) == [
        ("REDIS_PRIMARY_SERVICE_HOST", "10.0.0.11"), ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
        ("REDIS_PRIMARY_SERVICE_PORT_DB", "6379"), ("REDIS_PRIMARY_PORT", "tcp://10.0.0.11:6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.0.0.11:6379"), ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
        ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"), ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.0.0.11"),
        ("REDIS_PRIMARY_PORT_53_UDP", "udp://10.0.0.11:53"), ("REDIS_PRIMARY_PORT_53_UDP_PROTO", "udp"),
        ("REDIS_PRIMARY_PORT_53_UDP_PORT", "53"), ("REDIS_PRIMARY_PORT_53_UDP_ADDR", "10.0.0.11")]
    kube = svc("kubernetes", cluster_ip="10.96.0.1", ports=[{"name": "https", "port": 443, "protocol": "TCP"}])
    headless = svc("h", cluster_ip="None")
    other_ns = svc("far", ns="prod")
    env = service_env("default", True, [redis, kube, headless, other_ns])
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and "REDIS_PRIMARY_SERVICE_HOST" in env
    assert not any(k.startswith(("H_", "FAR_")) for k in env)
    assert set(service_env("default", False, [redis, kube])) == {k for k, _ in from_services([kube])}
    assert service_env("prod", True, [kube, other_ns])["FAR_SERVICE_HOST"] == "10.96.0.50"
    assert merge({"REDIS_PRIMARY_SERVICE_HOST": "mine"}, env)["REDIS_PRIMARY_SERVICE_HOST"] == "mine"


def test_differs_ignores_system_fields():
    [s] = E.controller_slices(svc(), [pod("a", "10.244.0.3")])
    stored = {**s, "metadata": {**s["metadata"], "uid": "x", "resourceVersion": "7",
                                "creationTimestamp": "2026-01-01T00:00:00Z"}}
    assert not E.differs(stored, s)
    [moved] = E.controller_slices(svc(), [pod("a", "10.244.0.4")])
    assert E.differs(stored, moved)
    relabelled = {**s, "metadata": {**s["metadata"], "labels": {**s["metadata"]["labels"], "team": "b"}}}
    assert E.differs(stored, relabelled)
