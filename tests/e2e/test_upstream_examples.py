"""The upstream Kubernetes examples (../shared/examples/upstream/, copied unedited to
tests/data/upstream_examples/ with its INDEX.md and licence) that need
only Pods and a busybox image, each run unchanged through `kubelet-py apply -f` against a real
daemon, reaching the outcome INDEX.md describes. Their busybox images are served by the built-in
one (tagged under their names; IfNotPresent, so nothing is pulled). The examples that need
ConfigMaps, Secrets, volumes, the downward API or Services belong to those issues."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.e2e.daemon import status_of

pytestmark = [pytest.mark.root]
UPSTREAM = os.path.join(os.path.dirname(__file__), "..", "data", "upstream_examples")  # see its INDEX.md


def _file(rel: str) -> str:
    return os.path.join(UPSTREAM, rel)


def test_counter_pod_logs_one_line_a_second(d):
    d.cli("apply", "-f", _file("debug/counter-pod.yaml"))
    d.wait_for("counter", lambda p: "running" in status_of(p, "count").get("state", {}), 30, what="running")
    time.sleep(3.5)
    lines = d.cli("logs", "counter").stdout.splitlines()
    assert len(lines) >= 3 and all(re.fullmatch(rf"{i}: \w{{3}} \w{{3}} +\d+ [\d:]+ \w+ \d{{4}}", ln)
                                   for i, ln in enumerate(lines)), lines
    tail = d.cli("logs", "counter", "--tail", "2").stdout.splitlines()
    assert len(tail) == 2 and int(tail[1].split(":")[0]) == int(tail[0].split(":")[0]) + 1
    assert int(tail[1].split(":")[0]) >= len(lines) - 1  # the newest lines, not the first


def test_hostaliases_pod_prints_the_managed_hosts_file(d):
    d.cli("apply", "-f", _file("service/networking/hostaliases-pod.yaml"))
    pod = d.wait_for("hostaliases-pod", lambda p: (p.get("status") or {}).get("phase") == "Succeeded", 30,
                     what="Succeeded")
    log = d.cli("logs", "hostaliases-pod").stdout
    assert log.startswith("# Kubernetes-managed hosts file.\n"), log
    assert f"{pod['status']['podIP']}\thostaliases-pod" in log
    assert "# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n" in log


def test_dependent_envars_expand_in_order_with_the_escape(d):
    d.cli("apply", "-f", _file("pods/inject/dependent-envars.yaml"))
    d.wait_for("dependent-envars-demo", lambda p: "running" in status_of(p, "dependent-envars-demo").get("state", {}),
               30, what="running")
    deadline = time.monotonic() + 10
    log = ""
    while time.monotonic() < deadline and "ESCAPED_REFERENCE" not in log:
        log = d.cli("logs", "dependent-envars-demo").stdout
        time.sleep(0.2)
    assert "UNCHANGED_REFERENCE=$(PROTOCOL)://172.17.0.1:80" in log
    assert "SERVICE_ADDRESS=https://172.17.0.1:80" in log
    assert "ESCAPED_REFERENCE=$(PROTOCOL)://172.17.0.1:80" in log


def test_exec_liveness_restarts_after_the_probe_fails(d):
    """Upstream's timeline: the probe fails from about 35 s, three failures (period 5 s) kill it
    at about 45 s; `sh` as PID 1 ignores SIGTERM, so SIGKILL ends it after the 30 s grace, and
    restartCount is 1 at about 75 s."""
    t0 = time.monotonic()
    d.cli("apply", "-f", _file("pods/probe/exec-liveness.yaml"))
    pod = d.wait_for("liveness-exec", lambda p: status_of(p, "liveness").get("restartCount", 0) >= 1, 120,
                     what="a restart")
    took = time.monotonic() - t0
    assert 60 < took < 100, took
    events = d.cli("describe", "pod", "liveness-exec").stdout
    assert "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory" in events, events
    last = status_of(pod, "liveness")["lastState"]["terminated"]
    assert last["exitCode"] == 137 and last["reason"] == "Error"


# ---- ConfigMaps, Secrets and the environment (the pod-configuration issue) -----------------------

def _succeeded(d, name: str, timeout: float = 30) -> dict:
    return d.wait_for(name, lambda p: (p.get("status") or {}).get("phase") == "Succeeded", timeout, what="Succeeded")


def test_configmap_env_examples_in_turn(d):
    """The three dapi-test-pod files, one after another (same pod name), on the two
    special-config ConfigMaps the INDEX names (configmap-multikeys first, configmaps.yaml last)."""
    d.cli("apply", "-f", _file("configmap/configmap-multikeys.yaml"))
    d.cli("apply", "-f", _file("pods/pod-configmap-env-var-valueFrom.yaml"))
    _succeeded(d, "dapi-test-pod")
    assert d.cli("logs", "dapi-test-pod").stdout == "very charm\n"
    d.cli("delete", "pod", "dapi-test-pod", "--grace-period", "1")
    d.cli("apply", "-f", _file("pods/pod-configmap-envFrom.yaml"))
    _succeeded(d, "dapi-test-pod")
    env = d.cli("logs", "dapi-test-pod").stdout.splitlines()
    assert "SPECIAL_LEVEL=very" in env and "SPECIAL_TYPE=charm" in env, env
    d.cli("delete", "pod", "dapi-test-pod", "--grace-period", "1")
    assert d.cli("apply", "-f", _file("configmap/configmaps.yaml")).stdout.splitlines() == [
        "configmap/special-config configured", "configmap/env-config created"]
    d.cli("apply", "-f", _file("pods/pod-multiple-configmap-env-variable.yaml"))
    _succeeded(d, "dapi-test-pod")
    env = d.cli("logs", "dapi-test-pod").stdout.splitlines()
    assert "SPECIAL_LEVEL_KEY=very" in env and "LOG_LEVEL=INFO" in env, env


def test_downward_api_env_examples(d):
    """Both dapi-envars files run unchanged. Their loops print with `printenv`, which Debian's
    busybox-static (the built-in stand-in) lacks, so the environment is read with `exec env`."""
    d.cli("apply", "-f", _file("pods/inject/dapi-envars-pod.yaml"))
    d.cli("apply", "-f", _file("pods/inject/dapi-envars-container.yaml"))
    pod = d.wait_for("dapi-envars-fieldref", lambda p: "running" in status_of(p, "test-container").get("state", {}),
                     30, what="running")
    d.wait_for("dapi-envars-resourcefieldref",
               lambda p: "running" in status_of(p, "test-container").get("state", {}), 30, what="running")

    def env(name: str) -> dict:
        return dict(ln.split("=", 1) for ln in d.cli("exec", name, "--", "env").stdout.splitlines() if "=" in ln)
    fields = env("dapi-envars-fieldref")
    assert [fields[k] for k in ("MY_NODE_NAME", "MY_POD_NAME", "MY_POD_NAMESPACE", "MY_POD_IP",
                                "MY_POD_SERVICE_ACCOUNT")] == [
        pod["spec"]["nodeName"], "dapi-envars-fieldref", "default", pod["status"]["podIP"], "default"]
    res = env("dapi-envars-resourcefieldref")
    # cpu rounded up to whole cores (divisor 1), memory in bytes
    assert [res[k] for k in ("MY_CPU_REQUEST", "MY_CPU_LIMIT", "MY_MEM_REQUEST", "MY_MEM_LIMIT")] == [
        "1", "1", "33554432", "67108864"]


def test_secret_and_immutable_configmap_examples(d):
    d.cli("apply", "-f", _file("pods/inject/secret.yaml"))
    d.cli("apply", "-f", _file("secret/basicauth-secret.yaml"))
    d.cli("apply", "-f", _file("configmap/immutable-configmap.yaml"))
    import base64
    import json
    test = json.loads(d.cli("get", "secret", "test-secret", "-o", "json").stdout)
    assert {k: base64.b64decode(v).decode() for k, v in test["data"].items()} == {"username": "my-app",
                                                                                 "password": "39528$vdg7Jb"}
    basic = json.loads(d.cli("get", "secret", "secret-basic-auth", "-o", "json").stdout)
    assert basic["type"] == "kubernetes.io/basic-auth" and "stringData" not in basic
    assert basic["data"] == {"username": "YWRtaW4=", "password": "dDBwLVNlY3JldA=="}
    text = open(_file("configmap/immutable-configmap.yaml")).read()
    p = d.cli("apply", "-f", "-", input=text.replace("ACME, Inc.", "ACME, Ltd."), check=False)
    assert p.returncode != 0 and "data: Forbidden: field is immutable when `immutable` is set" in p.stderr, p.stderr
    d.cli("delete", "configmap", "company-name-20150801")  # delete and recreate is the way
    assert d.cli("apply", "-f", "-", input=text.replace("ACME, Inc.", "ACME, Ltd.")).stdout == \
        "configmap/company-name-20150801 created\n"
