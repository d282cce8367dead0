"""Cgroups, one interface over v1 (cgroupspy and files) and v2 (cgroup2 files written directly).

The OCI `linux.resources` of a container become files here; `cgroupsPath` is relative to the
hierarchy root (e.g. `kpy-test/kubepods/besteffort/pod<uid>/<ctr>`). Which backend is used is
detected from the host: a unified hierarchy with controllers means v2. Both are held to the same
tests (v2 in the VM test bed).

On v1 a cgroup is made in every hierarchy mounted under /sys/fs/cgroup (blkio, cpuset, freezer,
name=systemd, ..., and the empty cgroup2 of a hybrid host), as runc makes it: the container sees
its own cgroup in each (its /proc/self/cgroup and /sys/fs/cgroup are runc's), and removal covers
them all. Limits are written to the controllers that have them."""

from __future__ import annotations

from .errors import INVALID_ARGUMENT, RuntimeFailure

import errno
import os
import signal
import time
from collections import namedtuple  # not dataclasses: see oci/spec.py (the supervisor's RSS)

ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "devices")  # the ones with limits or stats of ours
# runc's AllowedDevices, granted before the spec's own rules (type, major, minor, access)
DEFAULT_DEVICE_RULES = [
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},  # pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # net/tun (runc 1.1; 1.2 restored it)
]  # the console (c 5:1) is not runc's: containerd's spec adds it (oci/spec.py)


class CgroupError(RuntimeFailure):
    """A cgroup the kernel refused to make, write or remove (INTERNAL); a value of config.json
    the kernel refuses is INVALID_ARGUMENT with `field` its spec path."""

    def __init__(self, path: str, why: str, field: str | None = None):
        super().__init__(f"cgroup {path}: {field + ': ' if field else ''}{why}", field=field,
                         kind=INVALID_ARGUMENT if field else None)
        self.path = path


class Resources(namedtuple("Resources", "cpu_shares cpu_quota cpu_period memory_limit memory_swap pids_limit devices "
                                      "memory_reservation memory_swappiness disable_oom_killer cpuset_cpus cpuset_mems",
                           defaults=(None, None, None, None, None, None, (), None, None, False, None, None))):
    """What a container's cgroup holds (from OCI linux.resources); None: leave it as it is.
    cpu_quota: µs per cpu_period; memory_limit and memory_reservation (v1 soft limit, v2
    memory.low): bytes; memory_swap: memory+swap (OCI semantics; == limit means no swap);
    devices: OCI device rules in order (empty: leave the device controller alone);
    memory_swappiness and disable_oom_killer: v1 only; cpuset_cpus and cpuset_mems: cpu and
    memory node lists as the kernel writes them (`0-3,6`)."""
    __slots__ = ()


class Stats(namedtuple("Stats", "cpu_usage_ns memory_usage memory_working_set pids rss", defaults=(0,))):
    """cpu_usage_ns: CPU time since the cgroup was made; memory_usage: bytes, page cache
    included; memory_working_set: what the kubelet evicts and OOM-scores by; pids: count;
    rss: anonymous memory (v2 memory.stat anon, v1 total_rss: cAdvisor's rssBytes)."""
    __slots__ = ()


def device_rule_line(rule: dict) -> str:
    """`c 1:3 rwm`, `a *:* rwm` (the v1 devices.allow/deny syntax)."""
    t = rule.get("type") or "a"
    if t == "a":
        return "a *:* rwm" if not rule.get("access") else f"a *:* {rule['access']}"
    major = "*" if rule.get("major") in (None, -1) else rule["major"]
    minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
    return f"{t} {major}:{minor} {rule.get('access') or 'rwm'}"


def effective_device_rules(spec_rules) -> list[dict]:
    """What the container gets: the spec's rules, with runc's default allow-list right after a
    leading deny-all (as runc's specconv does for every container)."""
    rules = list(spec_rules or [])
    if rules and not rules[0].get("allow") and (rules[0].get("type") in (None, "a")) and \
            rules[0].get("major") in (None, -1) and rules[0].get("minor") in (None, -1):
        return rules[:1] + DEFAULT_DEVICE_RULES + rules[1:]
    return rules


def resources_from_spec(res: dict | None) -> Resources:
    res = res or {}
    cpu, mem, pids = res.get("cpu") or {}, res.get("memory") or {}, res.get("pids") or {}
    return Resources(cpu.get("shares"), cpu.get("quota") if cpu.get("quota", -1) > 0 else None, cpu.get("period"),
                     mem.get("limit") if mem.get("limit", -1) > 0 else None,
                     mem.get("swap") if mem.get("swap", -1) > 0 else None,
                     pids.get("limit") if pids.get("limit", 0) > 0 else None,
                     tuple(effective_device_rules(res.get("devices"))),
                     mem.get("reservation") if mem.get("reservation", -1) > 0 else None,
                     mem.get("swappiness") if mem.get("swappiness") not in (None, -1, 2**64 - 1) else None,
                     bool(mem.get("disableOOMKiller")), cpu.get("cpus") or None, cpu.get("mems") or None)


def shares_to_weight(shares: int) -> int:
    """runc < 1.4 and the kubelet's pod cgroups: 1 + (shares-2)*9999/262142."""
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    return 1 + (shares - 2) * 9999 // 262142


def parse_hierarchies(mountinfo: str, root: str = ROOT) -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of each cgroup hierarchy mounted right below `root`
    (v1, and the cgroup2 of a hybrid host), from the text of /proc/self/mountinfo (pure). A
    hierarchy mounted twice (same device) counts once, where it is first listed."""
    out, seen = [], set()
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        f, r = left.split(" "), right.split(" ")
        if not sep or len(f) < 5 or len(r) < 3 or r[0] not in ("cgroup", "cgroup2"):
            continue
        point = f[4]
        if os.path.dirname(point) != root or f[2] in seen:
            continue
        seen.add(f[2])
        out.append((point, r[0], r[2]))
    return out


_hierarchies: list | None = None


def v1_hierarchies() -> list[tuple[str, str, str]]:
    """parse_hierarchies of this host (read once per process: hierarchies are mounted at boot)."""
    global _hierarchies
    if _hierarchies is None:
        with open("/proc/self/mountinfo") as f:
            _hierarchies = parse_hierarchies(f.read())
    return _hierarchies


def detect() -> str:
    try:
        with open(f"{ROOT}/cgroup.controllers") as f:
            if f.read().split():
                return "v2"
    except OSError:
        pass
    return "v1"


def warm_migrations() -> None:
    """Move the calling process into its own cgroup: a migration that changes nothing but the
    kernel's state. The first migration after a quiet spell waits for an RCU grace period (the
    rcu_sync of the global cgroup_threadgroup_rwsem: 8-16 ms here), the ones that follow it
    within ~10 ms take 0.1 ms (measured). Begun in a thread as a container's creation begins,
    it overlaps that wait with the bundle and the cgroup's mkdirs: a first container created
    20-30 ms after its pod's sandbox was 8 ms faster. It only saves time: a refusal is ignored."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [ln.split(":", 2) for ln in f.read().splitlines()]
        if detect() == "v2":
            rel = next(p for _i, ctrls, p in lines if not ctrls)
            procs = f"{ROOT}{rel}/cgroup.procs"
        else:
            rel = next(p for _i, ctrls, p in lines if "pids" in ctrls.split(","))
            procs = f"{ROOT}/pids{rel}/cgroup.procs"
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    except (OSError, StopIteration, ValueError):
        pass


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CgroupError(os.path.dirname(path), f"writing {value!r} to {os.path.basename(path)}: {e.strerror}") from None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


class Cgroup:
    """A container's (or pod's) cgroup at `path` (relative to the hierarchy root)."""

    def __init__(self, path: str, version: str | None = None):
        path = path.strip("/")
        if not path or ".." in path.split("/"):
            raise CgroupError(path, "must be a relative path below the hierarchy root")
        self.path = path
        self.version = version or detect()

    # ---- where ---------------------------------------------------------------------------
    def dirs(self) -> list[str]:
        """This cgroup's dir in every hierarchy (v1: each one under /sys/fs/cgroup, the hybrid
        cgroup2 included)."""
        if self.version == "v2":
            return [f"{ROOT}/{self.path}"]
        return [f"{point}/{self.path}" for point, _t, _o in v1_hierarchies()]

    def v1_mounts(self) -> list[tuple[str, str]]:
        """(name under /sys/fs/cgroup, dir of this cgroup) of each v1 hierarchy: what runc
        binds into a container's /sys/fs/cgroup (not the hybrid cgroup2)."""
        return [(os.path.basename(point), f"{point}/{self.path}") for point, t, _o in v1_hierarchies() if t == "cgroup"]

    def dir(self, controller: str) -> str:
        return f"{ROOT}/{self.path}" if self.version == "v2" else f"{ROOT}/{controller}/{self.path}"

    # ---- life ----------------------------------------------------------------------------
    def create(self) -> None:
        if self.version == "v2":
            self._enable_v2_controllers()
            os.makedirs(self.dir("memory"), exist_ok=True)
        else:
            for point, _t, opts in v1_hierarchies():
                cpuset = "cpuset" in opts.split(",")
                cur = point
                for comp in self.path.split("/"):
                    cur = f"{cur}/{comp}"
                    try:
                        os.mkdir(cur, 0o755)
                    except FileExistsError:
                        pass
                    except OSError as e:
                        raise CgroupError(self.path, f"mkdir {cur}: {e.strerror}") from None
                    if cpuset:
                        _cpuset_from_parent(cur)

    def _v1_node(self, ctrl: str):
        """The cgroupspy node of this cgroup under controller `ctrl`."""
        from cgroupspy.nodes import Node
        node = Node(ctrl.encode(), parent=Node(f"{ROOT}/".encode()))
        for comp in self.path.split("/"):
            node = Node(comp.encode(), parent=node)
        return node

    def _enable_v2_controllers(self, need: set[str] = frozenset(("cpu", "memory", "pids"))) -> None:
        """Every controller the parent has, enabled at each level above this cgroup, as runc
        does (so the container sees runc's files); one that the kernel refuses is an error only
        when in `need` (runc ignores them all, and fails when it writes a limit)."""
        cur = ROOT
        for comp in self.path.split("/"):
            avail = _read(f"{cur}/cgroup.controllers").split()
            enabled = set(_read(f"{cur}/cgroup.subtree_control").split())
            missing = [c for c in avail if c not in enabled]
            if missing:
                try:
                    _write(f"{cur}/cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
                except CgroupError:  # one by one: which one the kernel refuses
                    for c in missing:
                        try:
                            _write(f"{cur}/cgroup.subtree_control", f"+{c}")
                        except CgroupError:
                            if c in need:
                                raise
            cur = f"{cur}/{comp}"
            os.makedirs(cur, exist_ok=True)

    def apply(self, r: Resources) -> None:
        if self.version == "v2":
            d = self.dir("cpu")
            if r.cpuset_cpus is not None or r.cpuset_mems is not None:
                self._enable_v2_controllers({"cpuset"})
                self._cpuset(d, r)
            if r.cpu_shares is not None:
                _write(f"{d}/cpu.weight", str(shares_to_weight(r.cpu_shares)))
            if r.cpu_quota is not None or r.cpu_period is not None:
                _write(f"{d}/cpu.max", f"{r.cpu_quota if r.cpu_quota else 'max'} {r.cpu_period or 100000}")
            if r.memory_limit is not None:
                _write(f"{d}/memory.max", str(r.memory_limit))
                if r.memory_swap is not None and os.path.exists(f"{d}/memory.swap.max"):
                    _write(f"{d}/memory.swap.max", str(max(0, r.memory_swap - r.memory_limit)))
            if r.pids_limit is not None:
                _write(f"{d}/pids.max", str(r.pids_limit))
            if r.memory_reservation is not None:
                _write(f"{d}/memory.low", str(r.memory_reservation))
            if r.memory_swappiness is not None or r.disable_oom_killer:
                what = "memory.swappiness" if r.memory_swappiness is not None else "memory.disableOOMKiller"
                raise CgroupError(self.path, f"linux.resources.{what}: cgroup v2 has no such control")
            if r.devices:
                from .linux.devfilter import attach_device_filter
                attach_device_filter(d, list(r.devices))
            return
        if r.cpuset_cpus is not None or r.cpuset_mems is not None:
            self._cpuset(self.dir("cpuset"), r)
        if r.cpu_shares is not None:
            _write(f"{self.dir('cpu')}/cpu.shares", str(r.cpu_shares))
        if r.cpu_period is not None:
            _write(f"{self.dir('cpu')}/cpu.cfs_period_us", str(r.cpu_period))
        if r.cpu_quota is not None:
            _write(f"{self.dir('cpu')}/cpu.cfs_quota_us", str(r.cpu_quota))
        if r.memory_limit is not None:
            mem = self._v1_node("memory")
            try:
                mem.controller.limit_in_bytes = r.memory_limit
                if r.memory_swap is not None and os.path.exists(f"{self.dir('memory')}/memory.memsw.limit_in_bytes"):
                    mem.controller.memsw_limit_in_bytes = r.memory_swap
            except OSError as e:
                raise CgroupError(self.path, f"memory limit {r.memory_limit}: {e.strerror}") from None
        if r.memory_reservation is not None:
            _write(f"{self.dir('memory')}/memory.soft_limit_in_bytes", str(r.memory_reservation))
        if r.memory_swappiness is not None:
            _write(f"{self.dir('memory')}/memory.swappiness", str(r.memory_swappiness))
        if r.disable_oom_killer:
            _write(f"{self.dir('memory')}/memory.oom_control", "1")
        if r.pids_limit is not None and os.path.isdir(self.dir("pids")):
            _write(f"{self.dir('pids')}/pids.max", str(r.pids_limit))
        for rule in r.devices:
            _write(f"{self.dir('devices')}/devices.{'allow' if rule.get('allow') else 'deny'}", device_rule_line(rule))

    def _cpuset(self, d: str, r: Resources) -> None:
        """cpuset.cpus, then cpuset.mems (runc's order); a list the kernel refuses (a cpu the
        parent does not have) is an error naming the field."""
        for f, v, field in (("cpuset.cpus", r.cpuset_cpus, "linux.resources.cpu.cpus"),
                            ("cpuset.mems", r.cpuset_mems, "linux.resources.cpu.mems")):
            if v is None:
                continue
            try:
                with open(f"{d}/{f}", "w") as fh:
                    fh.write(v)
            except OSError as e:
                raise CgroupError(self.path, f"writing {v!r} to {f}: {e.strerror}", field) from None

    def add(self, pid: int) -> None:
        if self.version == "v2":
            _write(f"{self.dir('cpu')}/cgroup.procs", str(pid))
            return
        for point, _t, opts in v1_hierarchies():
            d = f"{point}/{self.path}"
            if not os.path.isdir(d) and not set(opts.split(",")) & set(V1_CONTROLLERS):
                continue  # made before cgroups were made in every hierarchy (an exec into it)
            _write(f"{d}/cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        out = set()
        for d in self.dirs():
            try:
                out.update(int(p) for p in _read(f"{d}/cgroup.procs").split())
            except FileNotFoundError:
                pass
        return sorted(out)

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup until it is empty; a process that outlives
        `timeout` (stuck in the kernel, D state) is an error naming it."""
        if self.version == "v2" and os.path.exists(f"{self.dir('cpu')}/cgroup.kill"):
            _write(f"{self.dir('cpu')}/cgroup.kill", "1")
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            if time.monotonic() >= deadline:
                raise CgroupError(self.path, f"processes {pids[:10]} survived SIGKILL for {timeout:g}s")
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)

    def stats(self) -> Stats:
        """What the kubelet's summary API reports for a container, from the cgroup files:
        CPU time, memory usage and working set (usage minus inactive file pages, cAdvisor's
        formula), pid count."""
        if self.version == "v2":
            d = self.dir("cpu")
            cpu = dict(ln.split() for ln in _read(f"{d}/cpu.stat").splitlines())
            usage = int(_read(f"{d}/memory.current"))
            mstat = dict(ln.split() for ln in _read(f"{d}/memory.stat").splitlines())
            inactive, rss = int(mstat.get("inactive_file", 0)), int(mstat.get("anon", 0))
            pids = _read(f"{d}/pids.current") if os.path.exists(f"{d}/pids.current") else None
            cpu_ns = int(cpu["usage_usec"]) * 1000
        else:
            cpu_ns = int(_read(f"{self.dir('cpuacct')}/cpuacct.usage"))
            usage = int(_read(f"{self.dir('memory')}/memory.usage_in_bytes"))
            mstat = dict(ln.split() for ln in _read(f"{self.dir('memory')}/memory.stat").splitlines())
            inactive, rss = int(mstat.get("total_inactive_file", 0)), int(mstat.get("total_rss", 0))
            pf = f"{self.dir('pids')}/pids.current"
            pids = _read(pf) if os.path.exists(pf) else None
        return Stats(cpu_usage_ns=cpu_ns, memory_usage=usage, memory_working_set=max(0, usage - inactive),
                     pids=int(pids) if pids is not None else len(self.pids()), rss=rss)

    def oom_killed(self) -> bool:
        try:
            if self.version == "v2":
                events = dict(line.split() for line in _read(f"{self.dir('memory')}/memory.events").splitlines())
                return int(events.get("oom_kill", 0)) > 0
            ctl = dict(line.split() for line in _read(f"{self.dir('memory')}/memory.oom_control").splitlines())
            return int(ctl.get("oom_kill", 0)) > 0
        except (OSError, ValueError):
            return False

    def destroy(self, timeout: float = 2.0) -> None:
        """Remove the cgroup dirs (deepest component only); idempotent. A cgroup that stays
        busy (processes, or child cgroups) past `timeout` is an error naming what holds it."""
        for d in self.dirs():
            _rmdir(d, self.path, timeout)

    def remove_tree(self) -> None:
        """Kill every process in this cgroup and every cgroup below it, then remove them all,
        deepest first, in every hierarchy; idempotent."""
        for base in self.dirs():
            for dirpath, _dirs, _files in os.walk(base, topdown=False):
                rel = os.path.relpath(dirpath, base)
                Cgroup(self.path if rel == "." else f"{self.path}/{rel}", self.version).kill_all()
                _rmdir(dirpath, self.path)


def _cpuset_from_parent(d: str) -> None:
    """A new v1 cpuset cgroup starts with no cpus and no mems, and no process can join it: each
    is copied from the parent while empty (runc's cpuset ensureParent)."""
    parent = os.path.dirname(d)
    for f in ("cpuset.cpus", "cpuset.mems"):
        if not _read(f"{d}/{f}"):
            _write(f"{d}/{f}", _read(f"{parent}/{f}"))


def _rmdir(d: str, path: str, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise CgroupError(path, f"rmdir {d}: {e.strerror}") from None
            if time.monotonic() >= deadline:
                procs = _read(f"{d}/cgroup.procs").split() if os.path.exists(f"{d}/cgroup.procs") else []
                subs = [n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n))]
                raise CgroupError(path, f"{d} still busy after {timeout:g}s (processes {procs[:10]}, "
                                  f"child cgroups {subs[:10]})") from None
            time.sleep(0.01)
