"""`get services|endpointslices|endpoints` and `describe service` as kubectl prints them."""

from kubelet_py.services.endpoints import controller_slices, legacy_endpoints
from kubelet_py.status.describe import describe_service, format_endpoint_slices
from kubelet_py.status.printers import endpoint_slices_table, endpoints_table, services_table
from kubelet_py.status.timefmt import parse_rfc3339
from tests.unit.test_services_endpoints import pod, svc

CREATED = "2026-01-01T00:00:00Z"
NOW = parse_rfc3339(CREATED) + 300


def stamped(o):
    o["metadata"]["creationTimestamp"] = CREATED
    return o


def services():
    web = stamped(svc("web", cluster_ip="10.96.0.50"))
    web["spec"]["clusterIPs"] = ["10.96.0.50"]
    np = stamped(svc("np", cluster_ip="10.96.0.51", type="NodePort", ports=[
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53, "nodePort": 30053}]))
    np["spec"]["clusterIPs"] = ["10.96.0.51"]
    lb = stamped(svc("lb", cluster_ip="10.96.0.52", type="LoadBalancer", externalIPs=["192.0.2.9"]))
    lb["spec"]["clusterIPs"] = ["10.96.0.52"]
    lb2 = stamped(svc("lb2", cluster_ip="10.96.0.53", type="LoadBalancer"))
    lb2["spec"]["clusterIPs"] = ["10.96.0.53"]
    head = stamped(svc("head", cluster_ip="None", ports=[]))
    head["spec"]["clusterIPs"] = ["None"]
    ext = stamped({"metadata": {"name": "ext", "namespace": "default"},
                   "spec": {"type": "ExternalName", "externalName": "example.org"}})
    return [web, np, lb, lb2, head, ext]


def test_get_services():
    assert services_table(services(), NOW) == (
        "NAME   TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)                     AGE\n"
        "web    ClusterIP      10.96.0.50   <none>        80/TCP                      5m\n"
        "np     NodePort       10.96.0.51   <none>        80:30080/TCP,53:30053/UDP   5m\n"
        "lb     LoadBalancer   10.96.0.52   192.0.2.9     80/TCP                      5m\n"
        "lb2    LoadBalancer   10.96.0.53   <pending>     80/TCP                      5m\n"
        "head   ClusterIP      None         <none>        <none>                      5m\n"
        "ext    ExternalName   <none>       example.org   <none>                      5m\n")
    wide = services_table(services()[:1], NOW, wide=True, all_namespaces=True)
    assert wide.splitlines()[0].split() == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)",
                                            "AGE", "SELECTOR"]
    assert wide.splitlines()[1].split()[-1] == "app=web"


def pods():
    return [pod(f"p{i}", f"10.244.0.{i + 1}", ready=i != 4) for i in range(5)]


def test_get_endpointslices_and_endpoints():
    [s] = controller_slices(svc(), pods())
    stamped(s)
    [empty] = controller_slices(svc("idle", selector={"app": "none"}), [])
    stamped(empty)
    out = endpoint_slices_table([s, empty], NOW)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert lines[1].split()[1:] == ["IPv4", "8080", "10.244.0.1,10.244.0.2,10.244.0.3", "+", "2", "more...", "5m"]
    assert lines[2].split()[1:] == ["IPv4", "<unset>", "<unset>", "5m"]
    ep = stamped(legacy_endpoints(svc(), pods()))
    none = stamped({"metadata": {"name": "idle", "namespace": "default"}})
    assert endpoints_table([ep, none], NOW) == (
        "NAME   ENDPOINTS                                                     AGE\n"
        "web    10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 1 more...   5m\n"
        "idle   <none>                                                        5m\n")


def test_describe_service():
    np = services()[1]
    np["spec"].update(sessionAffinity="None", externalTrafficPolicy="Cluster", internalTrafficPolicy="Cluster",
                      ipFamilyPolicy="SingleStack", ipFamilies=["IPv4"])
    np["spec"]["ports"][0]["targetPort"] = "http"
    slices = controller_slices(np, [pod("a", "10.244.0.3")])
    text = describe_service(np, slices, [], NOW)
    assert text == (
        "Name:                     np\n"
        "Namespace:                default\n"
        "Labels:                   team=a\n"
        "Annotations:              <none>\n"
        "Selector:                 app=web\n"
        "Type:                     NodePort\n"
        "IP Family Policy:         SingleStack\n"
        "IP Families:              IPv4\n"
        "IP:                       10.96.0.51\n"
        "IPs:                      10.96.0.51\n"
        "Port:                     http  80/TCP\n"
        "TargetPort:               http/TCP\n"
        "NodePort:                 http  30080/TCP\n"
        "Endpoints:                10.244.0.3:8080\n"
        "Port:                     dns  53/UDP\n"
        "TargetPort:               53/UDP\n"
        "NodePort:                 dns  30053/UDP\n"
        "Endpoints:                10.244.0.3:53\n"
        "Session Affinity:         None\n"
        "External Traffic Policy:  Cluster\n"
        "Internal Traffic Policy:  Cluster\n"
        "Events:                   <none>\n")


def test_format_endpoint_slices_skips_not_ready_and_counts_more():
    slices = controller_slices(svc(), pods())
    assert format_endpoint_slices(slices, {"http"}) == "10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 1 more..."
    assert format_endpoint_slices(slices, {"other"}) == ""
    assert format_endpoint_slices([], {"http"}) == "<none>"
