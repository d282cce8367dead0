"""The node endpoints through a real daemon started with `--listen PORT --token-file`: a pod
burning CPU under a 200m limit, with an exec readiness probe. Over the unix socket: /healthz,
/pods, /stats/summary (its container's usageNanoCores > 0 and its memory), /metrics (pod start
duration observed, the pod's prober_probe_total, a crash-looping pod's restarts and BackOff
errors); over TCP: /healthz open, the rest refused
without the token and answered with it, apply and logs not there at all; `top pods` lists the
pod and `top node` the node."""

from __future__ import annotations

import json
import re
import secrets
import socket
import time
import urllib.error
import urllib.request

import pytest

from kubelet_py.client import SyncClient
from tests.e2e.daemon import Daemon, condition, status_of

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"
POD = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "burn"},
                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                      "name": "spin", "image": IMAGE, "command": ["sh", "-c", "while :; do :; done"],
                      "resources": {"limits": {"cpu": "200m", "memory": "32Mi"}},
                      "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}})
CRASH = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crash"},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                        "name": "c", "image": IMAGE, "command": ["sh", "-c", "sleep 0.2; exit 1"]}]}})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(port: int, path: str, token: str | None = None, method: str = "GET", data: bytes | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _sample(text: str, name: str, **labels) -> float | None:
    """The value of the first sample of `name` whose labels include `labels`."""
    for line in text.splitlines():
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_node_endpoints_socket_tcp_and_top(tmp_path):
    token = secrets.token_hex(16)
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    tf.chmod(0o600)
    port = _free_port()
    d = Daemon(tmp_path, extra=["--listen", str(port), "--token-file", str(tf)])
    try:
        d.start()
        d.apply(POD)
        pod = d.wait_for("burn", lambda p: condition(p, "Ready") == "True", timeout=90, what="Ready")
        uid = pod["metadata"]["uid"]
        c = SyncClient(d.socket)

        # ---- the unix socket
        with c.stream("/healthz") as s:
            assert s.read() == b"ok"
        pods = c.get("/pods")
        assert pods["kind"] == "PodList" and [p["metadata"]["name"] for p in pods["items"]] == ["burn"]
        summary = c.get("/stats/summary")
        mine = [p for p in summary["pods"] if p["podRef"]["uid"] == uid]
        assert len(mine) == 1, summary
        p = mine[0]
        assert p["podRef"] == {"name": "burn", "namespace": "default", "uid": uid}
        (ctr,) = p["containers"]
        assert ctr["name"] == "spin"
        # a 200m limit: about 200,000,000 nanocores (between 50m and 400m on a busy 2-core host)
        assert 50_000_000 < ctr["cpu"]["usageNanoCores"] < 400_000_000, ctr
        assert ctr["cpu"]["usageCoreNanoSeconds"] > 0
        assert 0 < ctr["memory"]["workingSetBytes"] <= ctr["memory"]["usageBytes"] <= 32 << 20, ctr
        assert ctr["memory"]["rssBytes"] > 0
        assert p["cpu"]["usageNanoCores"] > 0 and p["process_stats"]["process_count"] >= 1
        node = summary["node"]
        assert node["nodeName"] and node["cpu"]["usageNanoCores"] > 0 and node["memory"]["workingSetBytes"] > 0
        with c.stream("/metrics") as s:
            metrics = s.read().decode()
        assert _sample(metrics, "kubelet_pod_start_duration_seconds_count") >= 1
        assert _sample(metrics, "prober_probe_total", pod="burn", namespace="default", container="spin",
                       probe_type="readiness", result="successful") >= 1
        assert _sample(metrics, "prober_probe_duration_seconds_count", pod="burn", probe_type="readiness") >= 1
        assert _sample(metrics, "kubeproxy_sync_proxy_rules_duration_seconds_count") >= 1  # the Services' first sync
        assert _sample(metrics, "kubelet_running_pods") == 1
        assert _sample(metrics, "kubelet_running_containers", container_state="running") == 1

        # a crash-looping pod: its restarts counted, its BackOff events among the errors
        d.apply(CRASH)
        d.wait_for("crash", lambda p: status_of(p, "c").get("restartCount", 0) >= 2, timeout=60, what="2 restarts")
        with c.stream("/metrics") as s:
            metrics = s.read().decode()
        assert _sample(metrics, "kubelet_py_container_restarts_total", pod="crash", container="c") >= 2
        assert _sample(metrics, "kubelet_py_errors_total", kind="BackOff") >= 1
        assert _sample(metrics, "kubelet_running_pods") >= 1
        assert _sample(metrics, "kubelet_running_containers", container_state="running") >= 1

        # ---- TCP: /healthz open, the rest with the token only, nothing that writes or reads logs
        assert _http(port, "/healthz") == (200, b"ok")
        assert _http(port, "/pods")[0] == 401
        assert _http(port, "/pods", token="not-" + token)[0] == 401
        status, body = _http(port, "/pods", token=token)
        assert status == 200 and uid in [p["metadata"]["uid"] for p in json.loads(body)["items"]]
        status, body = _http(port, "/stats/summary", token=token)
        assert status == 200 and any(x["podRef"]["uid"] == uid for x in json.loads(body)["pods"])
        status, body = _http(port, "/metrics", token=token)
        assert status == 200 and _sample(body.decode(), "prober_probe_total", pod="burn") >= 1
        assert _http(port, "/apis/kubelet-py/v1/apply", token=token, method="POST",
                     data=json.dumps({"items": []}).encode())[0] in (404, 405)
        assert _http(port, "/api/v1/namespaces/default/pods/burn", token=token, method="DELETE")[0] in (404, 405)
        assert _http(port, "/api/v1/namespaces/default/pods/burn/log", token=token)[0] == 404
        assert _http(port, "/api/v1/namespaces/default/pods/burn/exec?command=true", token=token)[0] == 404
        assert d.pod("burn")["metadata"].get("deletionTimestamp") is None

        # ---- top
        out = d.cli("top", "pods").stdout
        lines = out.splitlines()
        assert lines[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"], out
        row = next(ln.split() for ln in lines[1:] if ln.split()[0] == "burn")
        assert re.fullmatch(r"\d+m", row[1]) and int(row[1][:-1]) > 0 and re.fullmatch(r"\d+Mi", row[2]), out
        out = d.cli("top", "pods", "-A").stdout
        assert out.splitlines()[0].split()[0] == "NAMESPACE" and "burn" in out
        out = d.cli("top", "node").stdout
        assert out.splitlines()[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], out
        assert re.fullmatch(r"\d+m", out.splitlines()[1].split()[1]), out
    finally:
        leaks = d.cleanup()
    assert leaks == [], leaks


def test_listen_without_token_serves_only_healthz(tmp_path):
    port = _free_port()
    d = Daemon(tmp_path, extra=["--listen", f"127.0.0.1:{port}"])
    try:
        d.start()
        deadline = time.monotonic() + 10
        while _http(port, "/healthz") != (200, b"ok") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _http(port, "/healthz") == (200, b"ok")
        for path in ("/pods", "/stats/summary", "/metrics"):
            assert _http(port, path, token="anything")[0] == 403
    finally:
        leaks = d.cleanup()
    assert leaks == [], leaks
