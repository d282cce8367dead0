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
