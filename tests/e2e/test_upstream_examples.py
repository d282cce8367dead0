"""The upstream Kubernetes examples (../shared/examples/upstream/, copied unedited to
tests/data/upstream_examples/ with its INDEX.md and licence) whose kinds the agent implements
(Pods, ConfigMaps, Secrets, volumes, the downward API, Services) and whose images the built-in
busybox can stand in for, each run unchanged through `kubelet-py apply -f` against a real daemon,
reaching the outcome INDEX.md describes. Their busybox images are served by the built-in one
(tagged under their names; IfNotPresent, so nothing is pulled); a Service's backends are busybox
stand-ins with the labels and ports it selects."""

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


# ---- volumes and the security context (the pod-configuration issue, second part) -----------------

def _ex(d, name: str, script: str, container: str | None = None) -> str:
    return d.cli("exec", name, *(["-c", container] if container else []), "--", "sh", "-c", script).stdout


def _running(d, name: str, container: str, timeout: float = 60) -> dict:
    return d.wait_for(name, lambda p: "running" in status_of(p, container).get("state", {}), timeout, what="running")


def test_configmap_volume_examples_in_turn(d):
    """Both dapi-test-pod volume files (same pod name), on configmap-multikeys."""
    d.cli("apply", "-f", _file("configmap/configmap-multikeys.yaml"))
    d.cli("apply", "-f", _file("pods/pod-configmap-volume.yaml"))
    _succeeded(d, "dapi-test-pod")
    assert d.cli("logs", "dapi-test-pod").stdout.split() == ["SPECIAL_LEVEL", "SPECIAL_TYPE"]
    d.cli("delete", "pod", "dapi-test-pod", "--grace-period", "1")
    d.cli("apply", "-f", _file("pods/pod-configmap-volume-specific-key.yaml"))
    _succeeded(d, "dapi-test-pod")
    assert d.cli("logs", "dapi-test-pod").stdout.rstrip("\n") == "very"  # the file has no newline


def test_downward_api_volume_examples(d):
    d.cli("apply", "-f", _file("pods/inject/dapi-volume.yaml"))
    d.cli("apply", "-f", _file("pods/inject/dapi-volume-resources.yaml"))
    name = "kubernetes-downwardapi-volume-example"
    _running(d, name, "client-container")
    assert _ex(d, name, "cat /etc/podinfo/labels") == 'cluster="test-cluster1"\nrack="rack-22"\nzone="us-est-coast"'
    assert 'build="two"\nbuilder="john-doe"' in _ex(d, name, "cat /etc/podinfo/annotations")
    assert _ex(d, name, "readlink /etc/podinfo/labels; readlink /etc/podinfo/..data").startswith("..data/labels\n..20")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and 'rack="rack-22"' not in d.cli("logs", name).stdout:
        time.sleep(0.5)
    assert 'zone="us-est-coast"' in d.cli("logs", name).stdout
    res = "kubernetes-downwardapi-volume-example-2"
    _running(d, res, "client-container")
    assert _ex(d, res, "cd /etc/podinfo; cat cpu_limit; echo; cat cpu_request; echo; cat mem_limit; echo; "
                       "cat mem_request").split() == ["250", "125", "64", "32"]


def test_security_context_example(d):
    d.cli("apply", "-f", _file("pods/security/security-context.yaml"))
    _running(d, "security-context-demo", "sec-ctx-demo")
    out = _ex(d, "security-context-demo", "id; cd /data/demo && echo hello > testfile && stat -c '%g' . testfile; "
                                          "grep NoNewPrivs /proc/1/status")
    lines = out.splitlines()
    # upstream shows groups=2000,3000,4000 (the primary gid among the supplementary ones, as
    # containerd lists it); the stand-in image's uid 1000 is `app`, a member of `staff` (50) in
    # its /etc/group, which the default Merge policy adds
    assert re.match(r"uid=1000(\(\w+\))? gid=3000 groups=", lines[0]), lines[0]
    assert set(re.findall(r"(\d+)", lines[0].split("groups=")[1])) == {"50", "2000", "3000", "4000"}, lines[0]
    assert lines[1:3] == ["2000", "2000"] and lines[3].split() == ["NoNewPrivs:", "1"], out


def test_projected_volume_examples_with_their_inline_objects(d):
    """The Secrets and ConfigMap the docs create on the command line, then both volume-test files."""
    d.cli("create", "secret", "generic", "mysecret", "--from-literal", "username=admin",
          "--from-literal", "password=1f2d1e2e67df")
    d.cli("create", "secret", "generic", "mysecret2", "--from-literal", "password=pw2")
    d.cli("create", "configmap", "myconfigmap", "--from-literal", "config=cfg")
    d.cli("apply", "-f", _file("pods/storage/projected-secret-downwardapi-configmap.yaml"))
    pod = _running(d, "volume-test", "container-test")
    out = _ex(d, "volume-test", "cd /projected-volume; cat my-group/my-username; echo; cat my-group/my-config; echo; "
                                "cat cpu_limit; echo; cat labels | wc -c")
    cpus = str(len(os.sched_getaffinity(0)))
    assert out.split() == ["admin", "cfg", cpus, "0"], out  # no cpu limit: the node's allocatable cpus
    assert "ro," in _ex(d, "volume-test", "grep ' /projected-volume ' /proc/mounts")
    d.cli("delete", "pod", "volume-test", "--grace-period", "1")
    d.cli("apply", "-f", _file("pods/storage/projected-secrets-nondefault-permission-mode.yaml"))
    _running(d, "volume-test", "container-test")
    modes = _ex(d, "volume-test", "cd /projected-volume/my-group; stat -L -c '%a %n' my-password my-username; "
                                  "cat my-password")
    assert modes.splitlines() == ["777 my-password", "644 my-username", "pw2"], modes
    assert pod["metadata"]["uid"] not in open("/proc/self/mountinfo").read()


def test_streaming_sidecar_example_shares_an_empty_dir(d):
    d.cli("apply", "-f", _file("admin/logging/two-files-counter-pod-streaming-sidecar.yaml"))
    for c in ("count", "count-log-1", "count-log-2"):
        _running(d, "counter", c)
    time.sleep(3)
    # without tail's own word that it waited for the file (its container may start before the
    # counter's first write: the containers start in order, not a write apart)
    one = [ln for ln in d.cli("logs", "counter", "-c", "count-log-1").stdout.splitlines() if not ln.startswith("tail: ")]
    two = [ln for ln in d.cli("logs", "counter", "-c", "count-log-2").stdout.splitlines() if not ln.startswith("tail: ")]
    assert len(one) >= 2 and one[0].startswith("0: ") and one[1].startswith("1: "), one
    assert len(two) >= 2 and two[0].endswith(" INFO 0") and two[1].endswith(" INFO 1"), two


# ---- Services (issue 19) ----------------------------------------------------------------------

def _svc(d, name: str) -> dict:
    import json
    return json.loads(d.cli("get", "svc", name, "-o", "json").stdout)


def _connect(ip: str, port: int) -> str:
    """'ok' (a reply), 'refused' or 'timeout', from the node."""
    import socket
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((ip, port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return "ok" if s.recv(64) else "closed"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "timeout"
    finally:
        s.close()


def _until(pred, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _stand_in(d, name: str, labels: dict, port: int) -> None:
    """A busybox httpd with the labels and port an upstream Service selects (its real image is
    not here)."""
    import json
    d.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
                        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                            "name": "web", "image": "kubelet-py.local/busybox:1.35",
                            "command": ["sh", "-c", f"mkdir -p /www; echo {name} > /www/index.html; "
                                        f"exec httpd -f -p {port} -h /www"],
                            "ports": [{"containerPort": port}],
                            "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}]}}))
    d.wait_for(name, lambda p: any(c.get("type") == "Ready" and c.get("status") == "True"
                                   for c in (p.get("status") or {}).get("conditions") or []), 60, what="Ready")


def test_simple_and_nginx_services_refuse_without_endpoints_then_answer(d):
    """service/simple-service.yaml and service/nginx-service.yaml: a cluster IP each; no matching
    pod, so a connection is refused at once; a matching pod on the target port makes it answer."""
    d.cli("apply", "-f", _file("service/simple-service.yaml"))
    d.cli("apply", "-f", _file("service/nginx-service.yaml"))
    simple, nginx = _svc(d, "my-service"), _svc(d, "nginx-service")
    for svc, port in ((simple, 80), (nginx, 8000)):
        ip = svc["spec"]["clusterIP"]
        assert ip and ip != "None"
        assert _until(lambda: _connect(ip, port) == "refused", 10), (svc["metadata"]["name"], _connect(ip, port))
    _stand_in(d, "myapp", {"app.kubernetes.io/name": "MyApp"}, 9376)
    _stand_in(d, "nginx", {"app": "nginx"}, 80)
    for svc, port in ((simple, 80), (nginx, 8000)):
        ip = svc["spec"]["clusterIP"]
        assert _until(lambda: _connect(ip, port) == "ok", 15), (svc["metadata"]["name"], _connect(ip, port))


def test_mysql_services_headless_and_cluster_ip(d):
    """application/mysql/mysql-services.yaml: `mysql` gets no cluster IP and no rules,
    `mysql-read` gets one; neither has endpoints without pods labelled app=mysql."""
    import json
    d.cli("apply", "-f", _file("application/mysql/mysql-services.yaml"))
    headless, read = _svc(d, "mysql"), _svc(d, "mysql-read")
    assert headless["spec"]["clusterIP"] == "None" and read["spec"]["clusterIP"] not in ("", "None")
    slices = json.loads(d.cli("get", "endpointslices", "-o", "json").stdout)["items"]
    assert {s["metadata"]["labels"]["kubernetes.io/service-name"] for s in slices} == {"mysql", "mysql-read"}
    assert all(not s.get("endpoints") for s in slices)
    import subprocess
    saved = subprocess.run(["iptables-legacy-save"], capture_output=True, text=True, check=True).stdout
    ours = [ln for ln in saved.splitlines() if d.chain in ln and "default/mysql" in ln]
    # mysql-read, without endpoints, only its REJECT in filter; the headless one nothing at all
    assert ours and all("default/mysql-read" in ln and "REJECT" in ln for ln in ours), ours
