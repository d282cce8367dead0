"""kubelet_py.api.defaults: what the API server fills in, idempotent, never changing its input."""

from __future__ import annotations

import copy

import pytest

from kubelet_py.api.defaults import image_tag, pull_policy_for, set_defaults


def pod(**spec) -> dict:
    base = {"containers": [{"name": "c", "image": "nginx"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": base}


def test_pod_defaults():
    out = set_defaults(pod())
    assert out["metadata"]["namespace"] == "default"
    spec = out["spec"]
    assert {k: v for k, v in spec.items() if k != "containers"} == {
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
        "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler", "enableServiceLinks": True,
        "serviceAccountName": "default", "serviceAccount": "default", "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority"}
    assert spec["containers"][0] == {"name": "c", "image": "nginx", "imagePullPolicy": "Always",
                                     "terminationMessagePath": "/dev/termination-log",
                                     "terminationMessagePolicy": "File"}


@pytest.mark.parametrize("image,tag,policy", [
    ("nginx", "latest", "Always"), ("nginx:latest", "latest", "Always"), ("nginx:1.25", "1.25", "IfNotPresent"),
    ("localhost:5000/nginx", "latest", "Always"), ("localhost:5000/nginx:v1", "v1", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "", "IfNotPresent"), ("nginx:latest@sha256:" + "a" * 64, "latest", "Always"),
    ("registry.k8s.io/busybox:1.27.2", "1.27.2", "IfNotPresent"),
])
def test_image_pull_policy_by_tag(image, tag, policy):
    assert image_tag(image) == tag
    assert pull_policy_for(image) == policy
    assert set_defaults(pod(containers=[{"name": "c", "image": image}]))["spec"]["containers"][0][
        "imagePullPolicy"] == policy


def test_explicit_values_are_kept():
    spec = dict(dnsPolicy="Default", restartPolicy="Never", terminationGracePeriodSeconds=0, schedulerName="s",
                enableServiceLinks=False, serviceAccountName="robot", priority=7, preemptionPolicy="Never",
                securityContext={"runAsUser": 1})
    out = set_defaults(pod(**spec))["spec"]
    for k, v in spec.items():
        assert out[k] == v, k
    assert out["serviceAccount"] == "robot"


def test_deprecated_service_account_fills_the_name():
    assert set_defaults(pod(serviceAccount="old"))["spec"]["serviceAccountName"] == "old"


def test_no_service_account_default_for_static_pods():
    spec = set_defaults(pod(), service_account=False)["spec"]
    assert "serviceAccountName" not in spec and "serviceAccount" not in spec


def test_system_priority_classes():
    assert set_defaults(pod(priorityClassName="system-node-critical"))["spec"]["priority"] == 2000001000


def test_probe_and_handler_defaults():
    c = {"name": "c", "image": "i",
         "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 0},
         "readinessProbe": {"grpc": {"port": 9}, "timeoutSeconds": 5},
         "startupProbe": {"tcpSocket": {"port": "http"}},
         "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}}}
    out = set_defaults(pod(containers=[c]))["spec"]["containers"][0]
    assert out["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "periodSeconds": 10,
                                    "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    assert out["readinessProbe"]["grpc"] == {"port": 9, "service": ""}
    assert out["readinessProbe"]["timeoutSeconds"] == 5
    assert out["startupProbe"]["failureThreshold"] == 3
    assert out["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/quit", "scheme": "HTTP"}


def test_ports_env_and_resources():
    c = {"name": "c", "image": "i", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
         "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
         "resources": {"limits": {"cpu": "0.0001", "memory": "128Mi"}, "requests": {"cpu": "100u"}}}
    out = set_defaults(pod(containers=[c]))["spec"]["containers"][0]
    assert [p["protocol"] for p in out["ports"]] == ["TCP", "UDP"]
    assert out["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "metadata.name", "apiVersion": "v1"}
    assert out["resources"] == {"limits": {"cpu": "1m", "memory": "128Mi"},
                                "requests": {"cpu": "1m", "memory": "128Mi"}}


def test_init_container_requests_from_limits():
    init = {"name": "i", "image": "i", "resources": {"limits": {"cpu": "1"}}}
    out = set_defaults(pod(initContainers=[init]))["spec"]["initContainers"][0]
    assert out["resources"]["requests"] == {"cpu": "1"}
    assert out["imagePullPolicy"] == "Always"


def test_host_network_ports_default_host_port():
    c = {"name": "c", "image": "i", "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 81}]}
    out = set_defaults(pod(hostNetwork=True, containers=[c]))["spec"]["containers"][0]
    assert [p["hostPort"] for p in out["ports"]] == [80, 81]
    plain = set_defaults(pod(containers=[copy.deepcopy(c)]))["spec"]["containers"][0]
    assert "hostPort" not in plain["ports"][0]


def test_volume_defaults():
    vols = [{"name": "scratch"}, {"name": "s", "secret": {"secretName": "x"}}, {"name": "c", "configMap": {"name": "x"}},
            {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
            {"name": "h", "hostPath": {"path": "/x"}}, {"name": "m", "secret": {"secretName": "y", "defaultMode": 0o400}},
            {"name": "img", "image": {"reference": "busybox"}}]
    out = {v["name"]: v for v in set_defaults(pod(volumes=vols))["spec"]["volumes"]}
    assert out["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert out["s"]["secret"]["defaultMode"] == 420 and out["c"]["configMap"]["defaultMode"] == 420
    assert out["d"]["downwardAPI"] == {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name",
                                                                             "apiVersion": "v1"}}], "defaultMode": 420}
    assert out["p"]["projected"] == {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}],
                                     "defaultMode": 420}
    assert out["h"]["hostPath"] == {"path": "/x", "type": ""}
    assert out["m"]["secret"]["defaultMode"] == 0o400
    assert out["img"]["image"]["pullPolicy"] == "Always"


def test_namespace_defaults_and_cluster_scope():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "namespace": "x"}}
    out = set_defaults(ns)
    assert out == {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "prod", "labels": {"kubernetes.io/metadata.name": "prod"}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def test_secret_and_config_map_defaults():
    s = set_defaults({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"u": "é"}})
    assert s["type"] == "Opaque" and s["data"] == {"u": "w6k="} and s["metadata"]["namespace"] == "default"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns1"}}
    assert set_defaults(cm) == cm


@pytest.mark.parametrize("obj", [
    pod(), pod(hostNetwork=True, containers=[{"name": "c", "image": "i", "ports": [{"containerPort": 1}],
                                              "resources": {"limits": {"cpu": "0.5"}},
                                              "livenessProbe": {"httpGet": {"port": 1}}}],
               volumes=[{"name": "v"}]),
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}},
])
def test_idempotent_and_input_untouched(obj):
    before = copy.deepcopy(obj)
    once = set_defaults(obj)
    assert obj == before
    assert set_defaults(once) == once
    assert once is not obj
