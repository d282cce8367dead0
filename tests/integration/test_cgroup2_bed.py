"""Proof that the cgroup v2 test bed is what the runtime's v2 tests need: a unified hierarchy
with its controllers, limits that read back, and an OOM kill the kernel reports."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

pytestmark = [pytest.mark.root, pytest.mark.cgroup2]
ROOT = "/sys/fs/cgroup"


@pytest.fixture
def cgroup():
    """A fresh child of the root with cpu, memory and pids enabled; removed afterwards."""
    with open(f"{ROOT}/cgroup.subtree_control", "w") as f:
        f.write("+cpu +memory +pids")
    path = f"{ROOT}/kpy-test-{uuid.uuid4().hex[:8]}"
    os.mkdir(path)
    yield path
    with open(f"{path}/cgroup.procs") as f:
        for pid in f.read().split():
            subprocess.run(["kill", "-9", pid])
    os.rmdir(path)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def test_unified_hierarchy_with_controllers():
    with open("/proc/self/mounts") as f:
        types = {line.split()[1]: line.split()[2] for line in f}
    assert types.get(ROOT) == "cgroup2"
    assert {"cpu", "memory", "pids"} <= set(read(f"{ROOT}/cgroup.controllers").split())


def test_limits_read_back(cgroup):
    assert {"cpu", "memory", "pids"} <= set(read(f"{cgroup}/cgroup.controllers").split())
    write(f"{cgroup}/cpu.weight", "50")
    write(f"{cgroup}/cpu.max", "50000 100000")
    write(f"{cgroup}/memory.max", str(16 << 20))
    write(f"{cgroup}/pids.max", "10")
    assert read(f"{cgroup}/cpu.weight") == "50"
    assert read(f"{cgroup}/cpu.max") == "50000 100000"
    assert read(f"{cgroup}/memory.max") == str(16 << 20)
    assert read(f"{cgroup}/pids.max") == "10"


def test_oom_kill_is_reported(cgroup):
    write(f"{cgroup}/memory.max", str(16 << 20))
    write(f"{cgroup}/memory.swap.max", "0")
    hog = "import os; open(%r, 'w').write(str(os.getpid())); b = bytearray(64 << 20); b[::4096] = b'x' * (16384)"
    p = subprocess.run([sys.executable, "-c", hog % f"{cgroup}/cgroup.procs"], capture_output=True)
    assert p.returncode == -9  # SIGKILL from the OOM killer
    events = dict(line.split() for line in read(f"{cgroup}/memory.events").splitlines())
    assert int(events["oom_kill"]) >= 1
