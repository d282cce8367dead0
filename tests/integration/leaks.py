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


def cgroup_dirs_of(pid: int | str = "self") -> list[tuple[str, str]]:
    """(mount point, the dir of `pid`'s cgroup in it) for every cgroup hierarchy mounted under
    /sys/fs/cgroup, v1 and v2 (a hybrid host has both), from /proc/self/mountinfo and
    /proc/<pid>/cgroup."""
    cg: dict[frozenset, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _id, ctrls, path = line.rstrip("\n").split(":", 2)
            cg[frozenset(ctrls.split(",")) if ctrls else frozenset()] = path
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fields, (fstype, _source, sopts) = left.split(), right.split()[:3]
            mnt_root, point = fields[3], fields[4]
            if fstype not in ("cgroup", "cgroup2") or not (point + "/").startswith("/sys/fs/cgroup/"):
                continue
            if fstype == "cgroup2":
                path = cg.get(frozenset())
            else:  # the v1 hierarchy whose controllers (or name=) are all among the mount's options
                opts = set(sopts.split(","))
                path = next((p for k, p in cg.items() if k and k <= opts), None)
            if path is None:
                continue
            inside = (path + "/").startswith(mnt_root.rstrip("/") + "/")
            out.append((point, os.path.normpath(f"{point}/{os.path.relpath(path, mnt_root) if inside else '.'}")))
    return out


def cgroup_hierarchies() -> list[tuple[str, str]]:
    """(mount point, this process's cgroup dir in it) of every hierarchy (cgroup_dirs_of)."""
    return cgroup_dirs_of("self")


def cgroup_places(name: str) -> list[str]:
    """Every existing dir where a cgroupsPath starting with `name` could have put its cgroups: at
    each hierarchy's root (an absolute cgroupsPath; kubelet-py's relative one too), below this
    process's own cgroup (runc's relative one on v1) and below that cgroup's parent (runc's
    relative one on v2: its own cgroup most probably has processes already)."""
    out = set()
    for point, mine in cgroup_hierarchies():
        for base in (point, mine, os.path.dirname(mine) if mine != point else point):
            d = os.path.join(base, name.strip("/"))
            if os.path.isdir(d):
                out.add(d)
    return sorted(out)


def cgroups_under(cgroup_root: str) -> list[str]:
    """Pod and container cgroups left below `cgroup_root` (QoS levels do not count), in every
    hierarchy and wherever a runtime could have put them (cgroup_places)."""
    out = []
    for base in sorted(set(cgroup_bases(cgroup_root)) | set(cgroup_places(cgroup_root))):
        for dirpath, dirs, _files in os.walk(base):
            out += [os.path.join(dirpath, n) for n in dirs if n not in QOS_LEVELS]
            dirs[:] = [n for n in dirs if n in QOS_LEVELS]
    return out


def remove_cgroup_tree(cgroup_root: str, if_empty: bool = False) -> None:
    """Remove `cgroup_root` and all below it in every hierarchy (runc and podman make theirs in
    all v1 hierarchies, not only the ones we manage). `if_empty`: keep whatever is still in use
    (a peer's shared parent) instead of failing."""
    bases = glob.glob(f"/sys/fs/cgroup/*/{cgroup_root}") + glob.glob(f"/sys/fs/cgroup/{cgroup_root}")
    bases += cgroup_places(cgroup_root)  # also below this process's cgroup and its parent
    for base in sorted(set(bases)):
        for dirpath, _dirs, _files in os.walk(base, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                if not if_empty:
                    raise


def own_children(but=()) -> list[int]:
    """This process's children (from /proc), less `but` (e.g. the supervisors' zygote, which an
    earlier test of this process may have started)."""
    me, out = os.getpid(), []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]) == me:
                out.append(int(p))
        except OSError:
            pass
    return [p for p in out if p not in but]


def processes_naming(path: str) -> list[int]:
    """Pids whose command line names `path`, or that hold a file under it open (a supervisor of
    a pod under a run root holds its pod dir: supervisors share their zygote's command line)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if path.encode() in f.read() or _holds_under(p, path):
                        out.append(int(p))
            except OSError:
                pass
    return out


def _holds_under(pid: str, path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if (os.readlink(f"/proc/{pid}/fd/{fd}") + "/").startswith(prefix):
                return True
        except OSError:
            pass
    return False


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
