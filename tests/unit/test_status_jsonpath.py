"""`kubectl get -o jsonpath=...`: the common template forms and how kubectl prints results."""

from __future__ import annotations

import pytest

from kubelet_py.status import JSONPathError, jsonpath


def pod(name, phase="Running", ready=True, restarts=0):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"app": name, "tier": "web"},
                     "annotations": {"kubernetes.io/config.source": "file", "note": "<a&b>"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                 "ports": [{"name": "http", "containerPort": 80}, {"name": "metrics", "containerPort": 9090}]},
                                {"name": "side", "image": "busybox"}]},
        "status": {"phase": phase, "podIP": "10.244.0.5",
                   "conditions": [{"type": "Initialized", "status": "True", "lastProbeTime": None},
                                  {"type": "Ready", "status": "True" if ready else "False", "lastProbeTime": None}],
                   "containerStatuses": [{"name": "side", "ready": ready, "restartCount": restarts},
                                         {"name": "web", "ready": True, "restartCount": 0}]},
    }


LIST = {"apiVersion": "v1", "kind": "List",
        "items": [pod("a"), pod("b", phase="Pending", ready=False, restarts=3), pod("c", phase="Failed")]}
P = pod("web")


@pytest.mark.parametrize("template,data,out", [
    ("{.status.podIP}", P, "10.244.0.5"),
    ("{.items[*].metadata.name}", LIST, "a b c"),
    ('{range .items[*]}{.metadata.name}{"\\n"}{end}', LIST, "a\nb\nc\n"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}', LIST, "a\tRunning\nb\tPending\nc\tFailed\n"),
    ("{range .items[*]}[{.metadata.name}]{end}", LIST, "[a][b][c]"),
    ("name={.metadata.name} ns={.metadata.namespace}", P, "name=web ns=default"),
    ("{.metadata.labels}", P, '{"app":"web","tier":"web"}'),
    ("{.metadata.annotations.note}", P, "<a&b>"),                  # a string prints raw
    ("{.metadata.annotations}", P, '{"kubernetes.io/config.source":"file","note":"\\u003ca\\u0026b\\u003e"}'),
    ("{.metadata.annotations.kubernetes\\.io/config\\.source}", P, "file"),
    ("{.spec.containers[0].image}", P, "nginx:1.25"),
    ("{.spec.containers[-1].name}", P, "side"),
    ("{.spec.containers[0:1].name}", P, "web"),
    ("{.spec.containers[*].ports[*].containerPort}", P, "80 9090"),
    ("{.spec.containers[0].ports[1]}", P, '{"containerPort":9090,"name":"metrics"}'),
    ('{.status.conditions[?(@.type=="Ready")].status}', P, "True"),
    ("{.status.conditions[?(@.type!='Ready')].type}", P, "Initialized"),
    ('{.items[?(@.status.phase!="Running")].metadata.name}', LIST, "b c"),
    ("{.spec.containers[0].ports[?(@.containerPort>80)].name}", P, "metrics"),
    ("{.spec.containers[0].ports[?(@.containerPort<=80)].name}", P, "http"),
    ("{.spec.containers[?(@.ports)].name}", P, "web"),
    ("{.status.containerStatuses[*].ready}", P, "true true"),
    ("{.items[1].status.containerStatuses[*].restartCount}", LIST, "3 0"),
    ("{.status.conditions[0].lastProbeTime}", P, "null"),
    ("{['metadata']['name']}", P, "web"),
    ("{.metadata['name','namespace']}", P, "web default"),
    ("{$.kind}", LIST, "List"),
    ("{.kind}", P, "Pod"),
    ("{.status.missing}x", P, "x"),                                 # missing keys print nothing
    ("{.status.missing.deeper}", P, ""),
    ("{.metadata.labels.*}", P, "web web"),
    ("{..containerPort}", P, "80 9090"),
    ("{range .items[*]}{range .spec.containers[*]}{.name},{end};{end}", LIST, "web,side,;web,side,;web,side,;"),
    ("{range .items[*]}{$.kind} {end}", LIST, "List List List "),
    ("plain text", P, "plain text"),
    ("{'\\''}", P, "'"),
])
def test_templates(template, data, out):
    assert jsonpath(template, data) == out


@pytest.mark.parametrize("template", [
    "{.metadata.name", "{end}", "{range .items[*]}{.metadata.name}", "{.spec.containers[9].name}",
    "{.spec.containers[x]}", "{.a[?@.b]}",
])
def test_errors(template):
    with pytest.raises(JSONPathError):
        jsonpath(template, P)


def test_numbers_print_as_go_does():
    assert jsonpath("{.a} {.b} {.c} {.d}", {"a": 3, "b": 1.5, "c": 2.0, "d": False}) == "3 1.5 2 false"


def test_evaluate_is_the_same_entry_point():
    from kubelet_py.status.jsonpath import evaluate
    assert evaluate("{.metadata.name}", P) == "web"
