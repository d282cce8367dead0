"""ClusterIP and nodePort allocation: from the stored Services alone (survives restarts),
requested values honoured or refused with upstream's words, reserved .1 and .10."""

import ipaddress
import random

import pytest

from kubelet_py.api import ApiError
from kubelet_py.services.alloc import DEFAULT, AllocConfig, allocate, taken


def svc(name, ns="default", type_="ClusterIP", cluster_ip=None, ports=((80, None),), selector=True):
    spec = {"type": type_, "ports": [{"port": p, "protocol": "TCP", "targetPort": p,
                                      **({"nodePort": n} if n else {})} for p, n in ports]}
    if selector:
        spec["selector"] = {"app": name}
    if cluster_ip:
        spec["clusterIP"], spec["clusterIPs"] = cluster_ip, [cluster_ip]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def errors(fn):
    with pytest.raises(ApiError) as e:
        fn()
    return [str(x) for x in e.value.errors]


def test_allocates_in_range_not_reserved_and_sets_families():
    out = allocate(svc("web"), [], rng=random.Random(1))
    ip = out["spec"]["clusterIP"]
    assert out["spec"]["clusterIPs"] == [ip]
    assert DEFAULT.first <= int(ipaddress.IPv4Address(ip)) <= DEFAULT.last
    assert ip not in ("10.96.0.1", "10.96.0.10")
    assert out["spec"]["ipFamilies"] == ["IPv4"] and out["spec"]["ipFamilyPolicy"] == "SingleStack"


def test_reserved_addresses_go_to_their_owner_only():
    assert allocate(svc("kubernetes"), [])["spec"]["clusterIP"] == "10.96.0.1"
    assert allocate(svc("kube-dns", ns="kube-system"), [])["spec"]["clusterIP"] == "10.96.0.10"
    assert errors(lambda: allocate(svc("web", cluster_ip="10.96.0.10"), [])) == [
        'service default/web: spec.clusterIPs: Invalid value: ["10.96.0.10"]: failed to allocate IP 10.96.0.10: '
        "provided IP is already allocated"]


def test_requested_ip_honoured_when_free_refused_when_taken_or_out_of_range():
    a = allocate(svc("a", cluster_ip="10.96.3.4"), [])
    assert a["spec"]["clusterIP"] == "10.96.3.4"
    assert errors(lambda: allocate(svc("b", cluster_ip="10.96.3.4"), [a])) == [
        'service default/b: spec.clusterIPs: Invalid value: ["10.96.3.4"]: failed to allocate IP 10.96.3.4: '
        "provided IP is already allocated"]
    assert errors(lambda: allocate(svc("b", cluster_ip="10.200.0.1"), [a])) == [
        'service default/b: spec.clusterIPs: Invalid value: ["10.200.0.1"]: failed to allocate IP 10.200.0.1: '
        "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"]
    # a Service is never in its own way (an update re-allocates what it holds)
    assert allocate(a, [a])["spec"]["clusterIP"] == "10.96.3.4"


def test_state_is_rebuilt_from_stored_services_and_a_full_range_is_an_error():
    cfg = AllocConfig(cidr=ipaddress.IPv4Network("10.0.0.0/29"), reserved={})
    stored = []
    for i in range(6):  # .1-.6 usable in a /29
        stored.append(allocate(svc(f"s{i}"), stored, cfg, rng=random.Random(i)))
    assert sorted(s["spec"]["clusterIP"] for s in stored) == [f"10.0.0.{i}" for i in range(1, 7)]
    assert errors(lambda: allocate(svc("x"), stored, cfg)) == [
        "service default/x: spec.clusterIPs: Internal error: failed to allocate a serviceIP: range is full"]
    # "restart": nothing but the stored objects, same answer
    assert taken(stored).ips == {s["spec"]["clusterIP"]: ("default", s["metadata"]["name"]) for s in stored}


def test_headless_and_external_name_get_no_address():
    h = allocate(svc("h", cluster_ip="None"), [])
    assert h["spec"]["clusterIP"] == "None" and h["spec"]["ipFamilyPolicy"] == "SingleStack"
    e = {"kind": "Service", "metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "x.org"}}
    assert allocate(e, []) == e


def test_node_ports_given_allocated_shared_across_protocols_and_refused():
    a = allocate(svc("a", type_="NodePort", ports=((80, 30080), (81, None))), [], rng=random.Random(2))
    ports = [p["nodePort"] for p in a["spec"]["ports"]]
    assert ports[0] == 30080 and 30000 <= ports[1] <= 32767 and ports[1] != 30080
    dns = svc("d", type_="NodePort", ports=((53, None),))
    dns["spec"]["ports"].append({"port": 53, "protocol": "UDP", "targetPort": 53})
    d = allocate(dns, [a], rng=random.Random(3))
    assert d["spec"]["ports"][0]["nodePort"] == d["spec"]["ports"][1]["nodePort"]
    assert errors(lambda: allocate(svc("b", type_="NodePort", ports=((80, 30080), (90, 8080))), [a])) == [
        "service default/b: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        "service default/b: spec.ports[1].nodePort: Invalid value: 8080: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767"]


def test_dual_stack_refused():
    s = svc("v6")
    s["spec"]["ipFamilyPolicy"] = "RequireDualStack"
    s["spec"]["ipFamilies"] = ["IPv4", "IPv6"]
    assert errors(lambda: allocate(s, [])) == [
        'service default/v6: spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured '
        "for dual-stack services",
        'service default/v6: spec.ipFamilies[1]: Invalid value: "IPv6": not configured on this cluster']


def test_conflicting_stored_services_are_reported():
    a, b = svc("a", cluster_ip="10.96.1.1"), svc("b", cluster_ip="10.96.1.1")
    assert taken([a, b]).conflicts == ["clusterIP 10.96.1.1 of default/b is also default/a's"]


def test_update_flow_keeps_what_is_held_and_allocates_what_is_new():
    from kubelet_py.api import create, load, update
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  selector: {app: web}\n"
            "  ports: [{port: 80, name: http}]\n")
    first = allocate(create(load(text, "s.yaml")[0].obj, 0, lambda: "uid-1"), [], rng=random.Random(5))
    ip, np = first["spec"]["clusterIP"], first["spec"]["ports"][0]["nodePort"]
    text2 = text.replace("[{port: 80, name: http}]", "[{port: 80, name: http}, {port: 443, name: https}]")
    second = allocate(update(first, load(text2, "s.yaml")[0].obj), [first], rng=random.Random(6))
    assert second["spec"]["clusterIP"] == ip and second["spec"]["ports"][0]["nodePort"] == np
    new_np = second["spec"]["ports"][1]["nodePort"]
    assert 30000 <= new_np <= 32767 and new_np != np
    third = allocate(update(second, load(text2.replace("NodePort", "ClusterIP"), "s.yaml")[0].obj), [second])
    assert third["spec"]["clusterIP"] == ip and all("nodePort" not in p for p in third["spec"]["ports"])
