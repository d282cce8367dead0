"""The kubelet's Summary API (`/stats/summary`) from the cgroups: node, pods and containers with
CPU (usageNanoCores, usageCoreNanoSeconds), memory (usageBytes, workingSetBytes, rssBytes) and
pids, on cgroup v1 and v2 (runtime.cgroups reads the files of either).

    StatsProvider(agent).summary()   async: a snapshot of the node's pods taken on the event loop,
                                     the cgroup files read in a worker thread, the document built

The pure part: `RateTracker` (usageNanoCores needs two samples: the last sample of each node,
pod and container is kept and the rate is the CPU time between it and the new one over the
wall time between them, as cAdvisor computes it from its housekeeping samples), the /proc
parsers for the node, and `build_summary`, which lays out upstream's shape
(statsapi.Summary: `{node, pods: [{podRef, startTime, containers, cpu, memory, process_stats}]}`).

Where no earlier sample exists (the first request, a new container), the reading is taken again
after PRIME_S in the worker thread, so usageNanoCores is there from the first answer.

A kubelet-py addition: `node.allocatable` ({cpu, memory} as quantity strings, what the node
would report in status.allocatable), which `kubelet-py top node` divides by (kubectl reads it
from the Node object, which this agent does not serve)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

log = logging.getLogger("kubelet_py.stats")
MIN_WINDOW_NS = 500_000_000  # a rate over less wall time than this is noise: the last one is kept
PRIME_S = 0.5  # how long to wait for a second sample when there is no earlier one
NODE_KEY = ("node",)


@dataclass(frozen=True)
class Reading:
    """One sample of a cgroup (or of the node): CPU time, memory, pids, and when (monotonic ns
    for rates, wall seconds for the `time` fields)."""
    cpu_ns: int
    usage: int
    working_set: int
    rss: int
    pids: int
    t_ns: int
    wall: float
    available: int | None = None  # the node's MemAvailable (pods and containers: none)


@dataclass(frozen=True)
class ContainerTarget:
    name: str
    cid: str
    cgroup: str
    start_time: str | None


@dataclass(frozen=True)
class PodTarget:
    name: str
    namespace: str
    uid: str
    start_time: str | None
    cgroup: str
    containers: tuple[ContainerTarget, ...]


# ---- rates (pure) -----------------------------------------------------------------------------

class RateTracker:
    """The last sample per key and the rate computed from it (nanocores: CPU ns per wall s)."""

    def __init__(self, min_window_ns: int = MIN_WINDOW_NS):
        self.min_window_ns = min_window_ns
        self._last: dict[tuple, tuple[int, int]] = {}  # key -> (t_ns, cpu_ns)
        self._rate: dict[tuple, int] = {}

    def has_sample(self, key: tuple) -> bool:
        return key in self._last

    def observe(self, key: tuple, t_ns: int, cpu_ns: int) -> int | None:
        """The key's usageNanoCores after this sample, None while there is no rate yet. A sample
        closer than min_window to the last one leaves the last in place (its rate is answered);
        CPU time going backwards (a new cgroup under the same key) starts the key afresh."""
        last = self._last.get(key)
        if last is None or cpu_ns < last[1] or t_ns <= last[0]:
            self._last[key] = (t_ns, cpu_ns)
            self._rate.pop(key, None)
            return None
        dt = t_ns - last[0]
        if dt < self.min_window_ns:
            return self._rate.get(key)
        rate = (cpu_ns - last[1]) * 1_000_000_000 // dt
        self._last[key], self._rate[key] = (t_ns, cpu_ns), rate
        return rate

    def forget_others(self, keys: Iterable[tuple]) -> None:
        """Drop every key not in `keys` (containers and pods that are gone)."""
        keep = set(keys)
        for k in [k for k in self._last if k not in keep]:
            self._last.pop(k, None)
            self._rate.pop(k, None)


# ---- the node, from /proc (pure parsers) ------------------------------------------------------

def parse_proc_stat(text: str, clk_tck: int = 100) -> int:
    """The node's CPU time in ns from /proc/stat's `cpu` line: user, nice, system, irq, softirq
    and steal (guest time is inside user; idle and iowait are not use)."""
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == "cpu":
            v = [int(x) for x in f[1:]] + [0] * 8
            busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
            return busy * 1_000_000_000 // clk_tck
    raise ValueError("/proc/stat: no cpu line")


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as bytes per field."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        f = rest.split()
        if f and f[0].isdigit():
            out[name.strip()] = int(f[0]) * (1024 if len(f) > 1 and f[1] == "kB" else 1)
    return out


def node_memory(meminfo: Mapping[str, int]) -> tuple[int, int, int, int]:
    """(usage, working set, rss, available) of the node: usage is what is not free, the working
    set that less the inactive file pages (cAdvisor's formula), rss the anonymous pages."""
    usage = meminfo.get("MemTotal", 0) - meminfo.get("MemFree", 0)
    working = max(0, usage - meminfo.get("Inactive(file)", 0))
    return usage, working, meminfo.get("AnonPages", 0), meminfo.get("MemAvailable", 0)


def parse_loadavg_threads(text: str) -> int:
    """The number of threads the kernel schedules (/proc/loadavg's `running/total`)."""
    return int(text.split()[3].split("/")[1])


# ---- the document (pure) ----------------------------------------------------------------------

def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def cpu_stats(r: Reading, rate: int | None) -> dict:
    out = {"time": _rfc3339(r.wall)}
    if rate is not None:
        out["usageNanoCores"] = rate
    out["usageCoreNanoSeconds"] = r.cpu_ns
    return out


def memory_stats(r: Reading) -> dict:
    out = {"time": _rfc3339(r.wall)}
    if r.available is not None:
        out["availableBytes"] = r.available
    out.update(usageBytes=r.usage, workingSetBytes=r.working_set, rssBytes=r.rss)
    return out


def build_summary(node_name: str, boot_time: float, node: Reading | None, node_extra: Mapping,
                  pods: Iterable[tuple[PodTarget, Reading | None, list[tuple[ContainerTarget, Reading]]]],
                  rates: Mapping[tuple, int | None]) -> dict:
    """statsapi.Summary from the readings: a pod without a reading of its own cgroup still lists
    its containers; a container without a reading is left out (it was not running)."""
    n: dict = {"nodeName": node_name, "startTime": _rfc3339(boot_time)}
    if node is not None:
        n["cpu"] = cpu_stats(node, rates.get(NODE_KEY))
        n["memory"] = memory_stats(node)
        n["rlimit"] = {"time": _rfc3339(node.wall), **node_extra.get("rlimit", {}), "curproc": node.pids}
    if "allocatable" in node_extra:
        n["allocatable"] = dict(node_extra["allocatable"])
    out_pods = []
    for p, pr, containers in pods:
        doc: dict = {"podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid}}
        if p.start_time:
            doc["startTime"] = p.start_time
        doc["containers"] = []
        for c, cr in containers:
            cd: dict = {"name": c.name}
            if c.start_time:
                cd["startTime"] = c.start_time
            cd["cpu"] = cpu_stats(cr, rates.get(("container", p.uid, c.cid)))
            cd["memory"] = memory_stats(cr)
            doc["containers"].append(cd)
        if pr is not None:
            doc["cpu"] = cpu_stats(pr, rates.get(("pod", p.uid)))
            doc["memory"] = memory_stats(pr)
            doc["process_stats"] = {"process_count": pr.pids}
        out_pods.append(doc)
    return {"node": n, "pods": out_pods}


# ---- the edge: snapshot on the loop, readings in a thread -------------------------------------

def snapshot(agent) -> list[PodTarget]:
    """On the event loop: what to read for each pod with a sandbox (its cgroup, its running
    containers' cgroups), from the workers' records."""
    out = []
    for w in list(agent.workers.values()):
        sb = w.sandbox
        if sb is None:
            continue
        md = w.pod["metadata"]
        cs = []
        for name, rec in w.record.containers.items():
            cid = w.cids.get(name)
            if cid and rec.current is not None and rec.current.state == "running":
                cs.append(ContainerTarget(name, cid, sb.container_cgroup(cid), rec.current.started_at))
        out.append(PodTarget(md["name"], md.get("namespace") or "default", w.uid, w.record.start_time,
                             sb.cgroup_path, tuple(cs)))
    return out


def read_cgroup(path: str) -> Reading | None:
    from runtime.cgroups import Cgroup, CgroupError
    try:
        s = Cgroup(path).stats()
    except (OSError, CgroupError, KeyError, ValueError) as e:  # gone meanwhile: not listed
        log.debug("stats: cgroup %s: %s", path, e)
        return None
    return Reading(s.cpu_usage_ns, s.memory_usage, s.memory_working_set, s.rss, s.pids, time.monotonic_ns(),
                   time.time())


def read_node() -> Reading | None:
    try:
        with open("/proc/stat") as f:
            cpu = parse_proc_stat(f.read(), os.sysconf("SC_CLK_TCK"))
        with open("/proc/meminfo") as f:
            usage, working, rss, available = node_memory(parse_meminfo(f.read()))
        with open("/proc/loadavg") as f:
            threads = parse_loadavg_threads(f.read())
    except (OSError, ValueError, IndexError) as e:
        log.warning("stats: node: %s", e)
        return None
    return Reading(cpu, usage, working, rss, threads, time.monotonic_ns(), time.time(), available)


def _boot_time() -> float:
    try:
        with open("/proc/stat") as f:
            return float(next(ln.split()[1] for ln in f if ln.startswith("btime ")))
    except (OSError, StopIteration, ValueError):
        return 0.0


def _pid_max() -> int | None:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class StatsProvider:
    """One per daemon (the unix socket and the TCP listener share it, and so its rates)."""

    def __init__(self, agent, read_cg=read_cgroup, read_nd=read_node, prime_s: float = PRIME_S):
        self.agent = agent
        self.rates = RateTracker()
        self._read_cg, self._read_nd, self.prime_s = read_cg, read_nd, prime_s
        self._lock = threading.Lock()
        self._boot = _boot_time()

    def _read_all(self, targets: list[PodTarget]) -> tuple[Reading | None, dict, dict]:
        node = self._read_nd()
        pods, ctrs = {}, {}
        for p in targets:
            pods[p.uid] = self._read_cg(p.cgroup)
            for c in p.containers:
                ctrs[(p.uid, c.cid)] = self._read_cg(c.cgroup)
        return node, pods, ctrs

    def _observe(self, node, pods, ctrs) -> dict:
        rates: dict[tuple, int | None] = {}
        samples = [(NODE_KEY, node)] + [(("pod", u), r) for u, r in pods.items()] + \
                  [(("container",) + k, r) for k, r in ctrs.items()]
        for key, r in samples:
            if r is not None:
                rates[key] = self.rates.observe(key, r.t_ns, r.cpu_ns)
        return rates

    def gather(self, targets: list[PodTarget], node_extra: Mapping) -> dict:
        """Blocking (a worker thread): read, rate, and build the summary."""
        pid_max = _pid_max()
        if pid_max is not None:
            node_extra = {**node_extra, "rlimit": {"maxpid": pid_max}}
        with self._lock:
            node, pods, ctrs = self._read_all(targets)
            rates = self._observe(node, pods, ctrs)
            if self.prime_s and any(v is None for v in rates.values()):
                time.sleep(self.prime_s)  # a second sample for the keys seen for the first time
                node, pods, ctrs = self._read_all(targets)
                rates = self._observe(node, pods, ctrs)
            self.rates.forget_others(rates.keys())
        rows = [(p, pods.get(p.uid), [(c, ctrs[(p.uid, c.cid)]) for c in p.containers
                                      if ctrs.get((p.uid, c.cid)) is not None]) for p in targets]
        return build_summary(self.agent.node_name, self._boot, node, node_extra, rows, rates)

    async def summary(self) -> dict:
        import asyncio
        targets = snapshot(self.agent)

        def work() -> dict:  # allocatable reads /proc/meminfo and statvfs the first time: here too
            alloc = self.agent.allocatable()
            return self.gather(targets, {"allocatable": {k: v for k, v in alloc.items() if k in ("cpu", "memory")}})
        return await asyncio.to_thread(work)
