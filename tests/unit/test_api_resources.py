"""kubelet_py.api.resources: QoS class (init containers included), container resources in
milli-cpu and bytes, effective pod requests with sidecars, port lookup, container order."""

from __future__ import annotations

import pathlib

import pytest

from kubelet_py.api import admit, load
from kubelet_py.api.resources import (BEST_EFFORT, BURSTABLE, GUARANTEED, ContainerKind, ContainerResources,
                                      container_port, container_resources, iter_containers, pod_requests, qos_class)

EXAMPLES = pathlib.Path(__file__).parent.parent / "data" / "upstream_examples"  # ../shared/examples/upstream, copied


def ctr(name="c", **res) -> dict:
    return {"name": name, "image": "i", "resources": res} if res else {"name": name, "image": "i"}


def spec_of(containers, init=()) -> dict:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": list(containers), "initContainers": list(init)}}
    return admit(obj).obj["spec"]


FULL = {"limits": {"cpu": "1", "memory": "1Gi"}}


@pytest.mark.parametrize("containers,init,expected", [
    ([ctr()], [], BEST_EFFORT),
    ([ctr(**FULL)], [], GUARANTEED),  # requests default to the limits
    ([ctr(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "500m"})], [], BURSTABLE),
    ([ctr(limits={"cpu": "1"})], [], BURSTABLE),
    ([ctr(**FULL), ctr("d")], [], BURSTABLE),
    ([ctr(**FULL)], [ctr("i")], BURSTABLE),  # the init container has no limits
    ([ctr(**FULL)], [ctr("i", **FULL)], GUARANTEED),
    ([ctr()], [ctr("i", requests={"memory": "1Mi"})], BURSTABLE),
    ([ctr(limits={"ephemeral-storage": "1Gi"})], [], BEST_EFFORT),  # only cpu and memory count
    ([ctr(requests={"cpu": "0"})], [], BEST_EFFORT),  # zero is no request
])
def test_qos_class(containers, init, expected):
    assert qos_class(spec_of(containers, init)) == expected


@pytest.mark.parametrize("rel,expected", [("pods/qos/qos-pod.yaml", GUARANTEED), ("pods/qos/qos-pod-2.yaml", BURSTABLE),
                                          ("pods/qos/qos-pod-3.yaml", BEST_EFFORT),
                                          ("pods/qos/qos-pod-4.yaml", BURSTABLE)])
def test_qos_of_the_upstream_examples(rel, expected):
    assert qos_class(load((EXAMPLES / rel).read_text(), rel)[0].obj["spec"]) == expected


def test_container_resources():
    spec = spec_of([ctr(limits={"cpu": "700m", "memory": "200Mi"}), ctr("d", requests={"cpu": "0.0001"}), ctr("e")])
    assert [container_resources(c) for c in spec["containers"]] == [
        ContainerResources(700, 700, 209715200, 209715200), ContainerResources(1, None, 0, None),
        ContainerResources(0, None, 0, None)]


def test_container_resources_of_an_undefaulted_container():
    assert container_resources({"resources": {"limits": {"cpu": "2"}}}) == ContainerResources(2000, 2000, 0, None)


def test_pod_requests_with_init_containers_and_sidecars():
    apps = [ctr("a", requests={"cpu": "100m", "memory": "10Mi"}), ctr("b", requests={"cpu": "200m"})]
    assert pod_requests(spec_of(apps)) == (300, 10 * 2**20)
    big_init = [ctr("i", requests={"cpu": "1", "memory": "1Mi"})]
    assert pod_requests(spec_of(apps, big_init)) == (1000, 10 * 2**20)
    sidecar = dict(ctr("s", requests={"cpu": "500m"}), restartPolicy="Always")
    after = ctr("j", requests={"cpu": "600m"})
    # the sidecar runs with the apps (300+500) and next to the later init container (500+600)
    assert pod_requests(spec_of(apps, [sidecar, after])) == (1100, 10 * 2**20)
    assert pod_requests(spec_of(apps, [after, sidecar])) == (800, 10 * 2**20)


def test_pod_requests_add_overhead():
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [ctr(requests={"cpu": "100m"})], "overhead": {"cpu": "50m", "memory": "1Ki"}}}
    assert pod_requests(admit(obj).obj["spec"]) == (150, 1024)


def test_container_port_by_number_or_name():
    c = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 9090}]}
    assert container_port(c, 80) == 80
    assert container_port(c, "grpc") == 9090
    assert container_port(c, "8081") == 8081
    assert container_port(c, "metrics") is None


def test_iter_containers_in_start_order():
    spec = {"initContainers": [{"name": "i1"}, {"name": "s", "restartPolicy": "Always"}, {"name": "i2"}],
            "containers": [{"name": "a"}, {"name": "b"}]}
    assert [(k, c["name"]) for k, c in iter_containers(spec)] == [
        (ContainerKind.INIT, "i1"), (ContainerKind.SIDECAR, "s"), (ContainerKind.INIT, "i2"),
        (ContainerKind.APP, "a"), (ContainerKind.APP, "b")]
