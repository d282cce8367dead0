"""`expose pod` as kubectl's generator makes the Service, then admitted like any manifest."""

import pytest

from kubelet_py.api import admit
from kubelet_py.services.expose import ExposeError, expose_pod
from tests.unit.test_services_endpoints import pod


def test_expose_with_port_target_port_and_type():
    p = pod("web", "10.244.0.3", labels={"app": "web", "tier": "fe"})
    svc = expose_pod(p, port=80, target_port="http", type_="NodePort", name="front")
    assert svc["metadata"] == {"name": "front", "namespace": "default", "labels": {"app": "web", "tier": "fe"}}
    assert svc["spec"] == {"ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}],
                           "selector": {"app": "web", "tier": "fe"}, "type": "NodePort"}
    admitted = admit(svc).obj
    assert admitted["spec"]["externalTrafficPolicy"] == "Cluster"
    assert expose_pod(p, port=8080, target_port="9090")["spec"]["ports"][0]["targetPort"] == 9090


def test_expose_copies_container_ports_and_refuses_what_kubectl_refuses():
    p = pod("dns", "10.244.0.4", ports=[{"containerPort": 53, "protocol": "UDP"},
                                        {"containerPort": 53, "protocol": "TCP"}])
    ports = expose_pod(p)["spec"]["ports"]
    assert ports == [{"name": "port-1", "port": 53, "protocol": "UDP", "targetPort": 53},
                     {"name": "port-2", "port": 53, "protocol": "TCP", "targetPort": 53}]
    assert expose_pod(p, port=5353, target_port=53)["spec"]["ports"][0]["protocol"] == "UDP"
    admit(expose_pod(p))
    bare = pod("bare", "10.244.0.5", labels={"a": "b"}, ports=[])
    bare["spec"]["containers"][0]["ports"] = []
    with pytest.raises(ExposeError, match="couldn't find port"):
        expose_pod(bare)
    bare["metadata"]["labels"] = {}
    with pytest.raises(ExposeError, match="has no labels"):
        expose_pod(bare, port=80)
