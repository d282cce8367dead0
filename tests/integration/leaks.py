"""Leak checks for runtime tests: after a container is removed, nothing of it may remain."""

from __future__ import annotations

import glob
import os


def mounts_under(*prefixes: str) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if any(p.startswith(x) for x in prefixes)]


QOS_LEVELS = {"kubepods", "burstable", "besteffort"}  # kept, as the kubelet keeps its QoS cgroups


def cgroup_bases(cgroup_root: str) -> list[str]:
    return [d for d in [f"{b}/{cgroup_root}" for b in ("/sys/fs/cgroup", *(
        f"/sys/fs/cgroup/{c}" for c in ("cpu", "cpuacct", "memory", "pids", "devices")))] if os.path.isdir(d)]


def cgroups_under(cgroup_root: str) -> list[str]:
    """Pod and container cgroups left below `cgroup_root` (QoS levels do not count)."""
    out = []
    for base in cgroup_bases(cgroup_root):
        for dirpath, dirs, _files in os.walk(base):
            out += [os.path.join(dirpath, n) for n in dirs if n not in QOS_LEVELS]
            dirs[:] = [n for n in dirs if n in QOS_LEVELS]
    return out


def remove_cgroup_tree(cgroup_root: str, if_empty: bool = False) -> None:
    """Remove `cgroup_root` and all below it in every hierarchy (runc and podman make theirs in
    all v1 hierarchies, not only the ones we manage). `if_empty`: keep whatever is still in use
    (a peer's shared parent) instead of failing."""
    bases = glob.glob(f"/sys/fs/cgroup/*/{cgroup_root}") + glob.glob(f"/sys/fs/cgroup/{cgroup_root}")
    for base in sorted(set(bases)):
        for dirpath, _dirs, _files in os.walk(base, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                if not if_empty:
                    raise


def processes_naming(path: str) -> list[int]:
    """Pids whose command line names `path` (a supervisor of a pod under a run root)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if path.encode() in f.read():
                        out.append(int(p))
            except OSError:
                pass
    return out


def assert_no_leaks(root: str, run_root: str, cgroup_root: str) -> None:
    assert mounts_under(root, run_root) == [], "a rootfs or other mount was left behind"
    left = processes_naming(run_root)
    assert left == [], f"a supervisor was left running: {[open(f'/proc/{p}/cmdline', 'rb').read() for p in left]}"
    pods = os.path.join(run_root, "pods")
    assert not os.path.isdir(pods) or os.listdir(pods) == [], f"pod dirs left in {pods}"
    assert cgroups_under(cgroup_root) == [], "a container cgroup was left behind"
    for d in (os.path.join(root, "containers"), os.path.join(run_root, "containers")):
        assert not os.path.isdir(d) or os.listdir(d) == [], f"container state left in {d}"
    leases = os.path.join(root, "images", "leases")
    assert not os.path.isdir(leases) or os.listdir(leases) == [], "an image lease was left behind"
