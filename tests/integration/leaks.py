"""Leak checks for runtime tests: after a container is removed, nothing of it may remain."""

from __future__ import annotations

import os


def mounts_under(*prefixes: str) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if any(p.startswith(x) for x in prefixes)]


def cgroups_under(cgroup_root: str) -> list[str]:
    out = []
    for base in ("/sys/fs/cgroup", *(f"/sys/fs/cgroup/{c}" for c in ("cpu", "cpuacct", "memory", "pids"))):
        d = f"{base}/{cgroup_root}"
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in os.listdir(d) if os.path.isdir(os.path.join(d, n))]
    return out


def assert_no_leaks(root: str, run_root: str, cgroup_root: str) -> None:
    assert mounts_under(root, run_root) == [], "a rootfs or other mount was left behind"
    assert cgroups_under(cgroup_root) == [], "a container cgroup was left behind"
    for d in (os.path.join(root, "containers"), os.path.join(run_root, "containers")):
        assert not os.path.isdir(d) or os.listdir(d) == [], f"container state left in {d}"
    leases = os.path.join(root, "images", "leases")
    assert not os.path.isdir(leases) or os.listdir(leases) == [], "an image lease was left behind"
