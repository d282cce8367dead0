"""What a SIGKILLed foreground `runtime run` leaves (its overlay, pinned namespaces, cgroups, the
container process) is listed by `runtime ls` as an orphan and removed by `runtime gc`; a gc
SIGKILLed in its turn converges when run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from runtime.image.testimages import DEFAULT_IMAGE
from tests.integration.leaks import assert_no_leaks, cgroups_under, mounts_under
from tests.integration.runtime_helpers import runtime_env

pytestmark = [pytest.mark.root]


@pytest.fixture
def env(tmp_path):
    yield from runtime_env(tmp_path)


def _cli(env, *args, **kw):
    return subprocess.run([sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
                           "--cgroup-root", env["cg"], *args], capture_output=True, text=True, timeout=60, **kw)


def _ls(env) -> list[dict]:
    p = _cli(env, "runtime", "ls", "-o", "json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _left(env) -> bool:
    pods = os.path.join(env["run"], "pods")
    ctrs = os.path.join(env["run"], "containers")
    return bool(mounts_under(env["root"], env["run"]) or cgroups_under(env["cg"])
                or (os.path.isdir(pods) and os.listdir(pods)) or (os.path.isdir(ctrs) and os.listdir(ctrs)))


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4, 0.8, 1.5])
def test_a_sigkilled_foreground_run_is_an_orphan_that_gc_removes(env, delay):
    marker = f"kpy-gc-{os.path.basename(env['cg'])}"
    run = subprocess.Popen([sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
                            "--cgroup-root", env["cg"], "runtime", "run", "--image", DEFAULT_IMAGE, "--",
                            "sh", "-c", f"echo {marker}; exec sleep 600"], stdout=subprocess.PIPE, text=True)
    if delay >= 1.5:  # late: the container runs for sure
        assert run.stdout.readline().strip() == marker
    else:
        time.sleep(delay)
    run.send_signal(signal.SIGKILL)
    run.wait()
    objs = _ls(env)
    assert all(o["state"] in ("orphan", "creating") for o in objs), objs
    if delay >= 1.5:
        assert [(o["kind"], o["state"]) for o in objs] == [("pod", "orphan"), ("container", "orphan")], objs
        assert _left(env)
    p = _cli(env, "runtime", "gc")
    assert p.returncode == 0, p.stderr
    if [o for o in objs if o["state"] == "creating"]:  # killed while its sandbox was half made
        assert "removed" not in p.stdout
        return  # the fixture's leak check fails if anything outlives the grace: see next test
    assert not _left(env), p.stdout
    assert _ls(env) == []
    assert_no_leaks(env["root"], env["run"], env["cg"])
    if delay >= 1.5:
        assert "removed pod" in p.stdout
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1  # the container died


def test_a_sigkilled_gc_converges_when_run_again(env):
    runs = []
    for i in range(3):
        runs.append(subprocess.Popen([sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root",
                                      env["run"], "--cgroup-root", env["cg"], "runtime", "run", "--image", DEFAULT_IMAGE,
                                      "--", "sh", "-c", "echo up; exec sleep 600"], stdout=subprocess.PIPE, text=True))
    for r in runs:
        assert r.stdout.readline().strip() == "up"
        r.send_signal(signal.SIGKILL)
        r.wait()
    for delay in (0.05, 0.15, 0.3):  # gc killed at several points of its work
        gc = subprocess.Popen([sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
                               "--cgroup-root", env["cg"], "runtime", "gc"], stdout=subprocess.DEVNULL)
        time.sleep(delay)
        gc.send_signal(signal.SIGKILL)
        gc.wait()
    p = _cli(env, "runtime", "gc")
    assert p.returncode == 0, p.stderr
    assert _ls(env) == [] and not _left(env)


def test_ls_shows_live_pods_and_gc_keeps_them(env):
    d = _cli(env, "runtime", "run", "-d", "--image", DEFAULT_IMAGE, "--", "sleep", "600")
    assert d.returncode == 0, d.stderr
    cid = d.stdout.strip()
    fg = subprocess.Popen([sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
                           "--cgroup-root", env["cg"], "runtime", "run", "--image", DEFAULT_IMAGE, "--",
                           "sh", "-c", "trap 'exit 0' TERM; echo up; sleep 600 & wait"], stdout=subprocess.PIPE, text=True)
    try:
        assert fg.stdout.readline().strip() == "up"
        states = sorted((o["kind"], o["state"]) for o in _ls(env))
        assert states == [("container", "created"), ("container", "running"), ("pod", "owned"), ("pod", "supervised")], states
        table = _cli(env, "runtime", "ls").stdout.splitlines()
        assert table[0].split()[:5] == ["KIND", "ID", "STATE", "POD", "CREATED"] and any(cid in ln for ln in table)
        p = _cli(env, "runtime", "gc")
        assert p.returncode == 0 and p.stdout == "", (p.stdout, p.stderr)
        assert len(_ls(env)) == 4
    finally:
        fg.send_signal(signal.SIGTERM)
        fg.wait(timeout=30)
        assert _cli(env, "runtime", "rm", "-t", "0", cid).returncode == 0
    assert _ls(env) == []
