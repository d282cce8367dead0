#!/usr/bin/env python3
"""The kubelet daemon against `podman kube play`, run by hand as root (never in CI):

    .venv/bin/python tests/bench/bench_kubelet.py [--runs 20] [--only start,many,exec] [--pods 100]
                                                  [--window 30] [--no-podman] [--delete-timeout 120]
                                                  [--profile FILE] [--keep-log FILE]

A private `kubelet-py serve` (tests/e2e/daemon.py: its own roots, socket, cgroup root, bridge,
CIDR and chain prefix, the built-in busybox image imported) and podman as ../shared/peers/ runs
it (Debian's podman 4.3, runc, netavark; the isolated configuration of common.sh) with the same
image imported into its own store under the same name. Every figure is a median; every ratio is
kubelet-py's median over podman's median measured in the same run, the systems taking turns.

1. start (`--only start`), per shape (1 container; 3 containers each on its own port), each a
   busybox httpd (`sh -c "trap 'exit 0' TERM; httpd -f -p PORT -h /www & wait"`), no probes:
   - kubelet-py `apply -f` (the CLI, a fresh process, as a user types it) and a POST of the same
     object to the daemon's apply API (what the daemon itself costs): time from just before the
     request to the watch event (`?watch=1`, opened beforehand) in which every container is
     `running`, and to the first HTTP 200 from the pod IP (read from that watch) on every port,
     polled from the host every 5 ms;
   - podman `kube play` of the same YAML (its own --network: a private subnet and bridge):
     until the `start` event of the pod's last app container in podman's events file (what
     podman's own `ps` reports as Up; the file is read afterwards, so the poll costs podman
     nothing), until `kube play` returns (the pod is Running then), and until the first HTTP
     200 from the pod IP (found as ../shared/peers/play_until_ready.sh does: the new
     /run/netns entry, then `ip -n NS addr`), polled from the host the same way.
   delete: kubelet-py `delete pod NAME` (the CLI, which waits until the pod is gone) and the
   delete API until the watch's DELETED event (the daemon removes the object once the
   containers, the sandbox and the network are gone); podman `kube down` (SIGKILL, remove).
   The containers exit on SIGTERM. Targets: start <= 0.25x podman; delete < 0.1x podman.
2. many (`--only many`): `--pods` pods in one multi-document file through `apply -f`, each an
   httpd with an httpGet readiness probe and a tcpSocket liveness probe, both period 1 s:
   the time until all are Ready (target < 20 s), the daemon's RSS then (target < 150 MB, from
   /proc/<pid>/status) and each supervisor's (target < 12 MB; processes named kpy-supervisor
   that hold a pod dir of this daemon's run root open); then the daemon's CPU over
   `--window` seconds (utime+stime from /proc/<pid>/stat; target < 10 % of one core), the
   supervisors' and the whole machine's alongside.
3. exec (`--only exec`): the same pods with exec probes (readiness `wget` of the page, liveness
   `nc` to the port), the same figures (the issue asks them reported, no target).
   bare (`--only bare`, not in the default set): the same pods with no probe, the same figures: the
   daemon's CPU floor with that many pods, which the probe figures include.
   After each of these the pods are deleted (`delete pods --all --no-wait`) and the time until
   the watch has seen them all go is printed, or how many are still there after --delete-timeout.
   `--profile FILE`: py-spy's collapsed stacks of the daemon, FILE for the start rounds,
   FILE.http / FILE.exec over a second window after each CPU window (py-spy from PATH, next to
   this Python, or $PY_SPY; `pip install py-spy` into the venv, it is no project dependency).

Everything is removed at the end (pods through the daemon, then Daemon.cleanup's leak check;
podman's pods, network, store; the host state podman changes, put back as ../shared/peers/bench.sh
does), and what could not be is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import datetime
import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

import yaml  # noqa: E402

from kubelet_py.client import Client, pod_path  # noqa: E402
from tests.bench.kubelet_bench_podman import NETNS_DIR, HostState, Podman  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.integration.leaks import processes_naming  # noqa: E402
from tests.integration.netns_helpers import free_subnets  # noqa: E402

IMAGE = "kubelet-py.local/busybox:1.35"
KPY = os.path.join(os.path.dirname(sys.executable), "kubelet-py")  # the command a user runs (bin/kubelet-py)
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL = 0.005


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- pods ------------------------------------------------------------------------------------

def web(name: str, port: int, **kw) -> dict:
    return {"name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", f"trap 'exit 0' TERM; httpd -f -p {port} -h /www & wait"], **kw}


def shape_pod(name: str, n: int) -> dict:
    cs = [web("web", 8080)] if n == 1 else [web(f"web{i}", 8080 + i) for i in range(n)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "kpy-bench"}},
            "spec": {"restartPolicy": "Always", "containers": cs}}


def probed_pod(name: str, kind: str) -> dict:
    if kind == "none":
        probes = {}
    elif kind == "http":
        probes = {"readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                  "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    else:
        probes = {"readinessProbe": {"exec": {"command": ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]},
                                     "periodSeconds": 1},
                  "livenessProbe": {"exec": {"command": ["sh", "-c", "nc -w 1 127.0.0.1 8080 </dev/null"]},
                                    "periodSeconds": 1}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "kpy-bench-many"}},
            "spec": {"containers": [web("web", 8080, **probes)]}}


def write_yaml(path: str, docs: list[dict]) -> str:
    with open(path, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)
    return path


def all_running(pod: dict | None, n: int) -> bool:
    cs = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return len(cs) == n and all("running" in (c.get("state") or {}) for c in cs)


def is_ready(pod: dict | None) -> bool:
    conds = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


# ---- the daemon's watch, as a client sees it ------------------------------------------------------

class Watch:
    """One `?watch=1` stream of the namespace's pods: the latest object of each, and waiters whose
    predicate is checked at each event (the event's arrival time is what they get)."""

    def __init__(self, client: Client):
        self.client = client
        self.pods: dict[str, dict] = {}
        self.waiters: list[tuple] = []
        self.events = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.client.watch(pod_path("default")):
            t = time.perf_counter()
            self.events += 1
            name = ev["object"]["metadata"]["name"]
            if ev["type"] == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = ev["object"]
            for w in list(self.waiters):
                pred, fut = w
                if not fut.done() and pred(self.pods):
                    fut.set_result(t)
                    self.waiters.remove(w)

    async def until(self, pred, timeout: float, what: str) -> float:
        fut = asyncio.get_running_loop().create_future()
        if pred(self.pods):
            return time.perf_counter()
        self.waiters.append((pred, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{what}: not within {timeout:g}s") from None

    def close(self) -> None:
        self.task.cancel()


async def http_ok(ip: str, port: int, timeout: float = 30.0) -> float:
    """The time of the first HTTP 200 from ip:port, polled every POLL seconds."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(ip, port), 0.5)
            try:
                w.write(b"GET / HTTP/1.0\r\n\r\n")
                line = await asyncio.wait_for(r.readline(), 2)
            finally:
                w.close()
            if line.split()[1:2] == [b"200"]:
                return time.perf_counter()
        except (OSError, asyncio.TimeoutError):
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no HTTP 200 from {ip}:{port} within {timeout:g}s")
        await asyncio.sleep(POLL)


async def run_cmd(argv: list[str], env=None) -> tuple[int, str, float]:
    p = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                                             env=env)
    _, err = await p.communicate()
    return p.returncode, err.decode(errors="replace"), time.perf_counter()


def _podman_time(s: str) -> float:
    """podman's event time (RFC 3339 with nanoseconds, UTC) as seconds since the epoch."""
    if s.endswith("Z"):
        base, _, frac = s[:-1].partition(".")
        return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or '0'}")
    head, frac = s[:19], s[19:]
    digits = frac[1:].split("+")[0].split("-")[0] if frac.startswith(".") else "0"
    tz = frac[len(digits) + 1:] if frac.startswith(".") else frac
    return datetime.datetime.fromisoformat(head + tz).timestamp() + float(f"0.{digits}")


# ---- one start + delete of each system ------------------------------------------------------------

class Bench:
    def __init__(self, args, work: str):
        self.args = args
        self.work = work
        self.d: Daemon | None = None
        self.pm: Podman | None = None
        self.host: HostState | None = None
        self.client: Client | None = None
        self.watch: Watch | None = None
        self.seq = 0
        self.conmon_rss: list[int] = []
        self.res: dict = {}

    def cli(self, *args: str) -> list[str]:
        return [KPY] + self.d.base()[3:] + list(args)

    def name(self, what: str) -> str:
        self.seq += 1
        return f"bench-{what}-{self.seq}"

    async def kpy_cycle(self, n: int, mode: str) -> dict:
        name = self.name(f"{n}c{mode[0]}")
        doc = shape_pod(name, n)
        ports = [8080 + i for i in range(n)]
        path = write_yaml(os.path.join(self.work, f"{name}.yaml"), [doc]) if mode == "cli" else None
        w = self.watch
        running = asyncio.ensure_future(w.until(lambda p: all_running(p.get(name), n), 60, f"{name} running"))
        got_ip = asyncio.ensure_future(w.until(lambda p: ((p.get(name) or {}).get("status") or {}).get("podIP"), 60,
                                               f"{name} podIP"))
        t0 = time.perf_counter()
        if mode == "cli":
            cli_done = asyncio.ensure_future(run_cmd(self.cli("apply", "-f", path)))
        else:
            await self.client.apply([doc])
        await got_ip
        ip = w.pods[name]["status"]["podIP"]
        t_http = max(await asyncio.gather(*(http_ok(ip, p) for p in ports)))
        t_run = await running
        out = {"running": t_run - t0, "http": t_http - t0}
        if mode == "cli":
            rc, err, t_exit = await cli_done
            if rc != 0:
                raise RuntimeError(f"kubelet-py apply: {err}")
            out["cli_exit"] = t_exit - t0
        # delete: the containers exit on SIGTERM
        gone = asyncio.ensure_future(w.until(lambda p: name not in p, 60, f"{name} gone"))
        t0 = time.perf_counter()
        if mode == "cli":
            rc, err, t_exit = await run_cmd(self.cli("delete", "pod", name))
            if rc != 0:
                raise RuntimeError(f"kubelet-py delete: {err}")
            out["delete"] = t_exit - t0
            out["delete_gone"] = await gone - t0
        else:
            await self.client.delete(pod_path("default", name))
            out["delete"] = out["delete_gone"] = await gone - t0
        if path:
            os.unlink(path)
        return out

    async def podman_ip(self, before: set[str], timeout: float = 30.0) -> str:
        net = ipaddress.ip_network(self.pm.subnet)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for ns in sorted(set(os.listdir(NETNS_DIR)) - before):
                if not ns.startswith("netns-"):
                    continue
                p = await asyncio.create_subprocess_exec(
                    "ip", "-n", ns, "-4", "-o", "addr", "show", "eth0",
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
                out, _ = await p.communicate()
                for word in out.decode().split():
                    if "/" in word:
                        try:
                            ip = ipaddress.ip_interface(word).ip
                        except ValueError:
                            continue
                        if ip in net:
                            return str(ip)
            await asyncio.sleep(0.002)
        raise TimeoutError("podman: no pod IP")

    async def podman_cycle(self, n: int) -> dict:
        pm = self.pm
        name = f"kpyb-p{n}"
        path = os.path.join(self.work, f"podman-{n}.yaml")
        if not os.path.exists(path):
            write_yaml(path, [shape_pod(name, n)])
        ports = [8080 + i for i in range(n)]
        before = set(os.listdir(NETNS_DIR))
        off = pm.events_offset()
        t0w, t0 = time.time(), time.perf_counter()
        play = asyncio.ensure_future(run_cmd(["podman", "kube", "play", "--network", pm.network, path], env=pm.env))
        ip = await self.podman_ip(before)
        t_http = max(await asyncio.gather(*(http_ok(ip, p) for p in ports)))
        rc, err, t_exit = await play
        if rc != 0:
            raise RuntimeError(f"podman kube play: {err}")
        evs = pm.events_since(off)
        pod_id = next(e["ID"] for e in evs
                      if e.get("Type") == "pod" and e.get("Status") == "create" and e.get("Name") == name)
        starts = [_podman_time(e["Time"]) for e in evs if e.get("Type") == "container" and e.get("Status") == "start"
                  and e.get("PodID") == pod_id and not e.get("Name", "").endswith("-infra")]
        if len(starts) != n:
            raise RuntimeError(f"podman: {len(starts)} start events for {n} containers")
        state = pm.run("pod", "inspect", name, "--format", "{{.State}}").stdout.strip()
        if state != "Running":
            raise RuntimeError(f"podman pod {name} is {state} after kube play")
        out = {"running": max(starts) - t0w, "http": t_http - t0, "cli_exit": t_exit - t0}
        if not self.conmon_rss:  # once: the pod's conmons, for comparison with the supervisors
            self.conmon_rss = [_status_kib(pid, "VmRSS") for pid in pm.conmons()]
        t0 = time.perf_counter()
        rc, err, t_exit = await run_cmd(["podman", "kube", "down", path], env=pm.env)
        if rc != 0:
            raise RuntimeError(f"podman kube down: {err}")
        out["delete"] = t_exit - t0
        return out

    async def start_rounds(self) -> dict:
        res = self.res.setdefault("start", {})  # kept as it grows: a failure later keeps the rounds done
        systems = ["kpy-cli", "kpy-api"] + ([] if self.args.no_podman else ["podman"])

        async def one(system: str, n: int) -> dict:
            if system == "podman":
                return await self.podman_cycle(n)
            return await self.kpy_cycle(n, system[4:])
        m0, t0 = _machine_ticks(), time.perf_counter()
        for n in (1, 3):
            log(f"start/delete, {n} container(s): warm-up")
            for s in systems:
                await one(s, n)
            for r in range(self.args.runs):
                order = systems[r % len(systems):] + systems[:r % len(systems)]  # take turns at going first
                for s in order:
                    for k, v in (await one(s, n)).items():
                        res.setdefault((n, s, k), []).append(v)
            res["conmon_rss"] = self.conmon_rss
            log(f"  {n}c done: " + ", ".join(f"{s} start {statistics.median(res[(n, s, 'running')]) * 1000:.0f} ms"
                                              for s in systems))
        m1 = _machine_ticks()
        res["machine_busy"] = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count()
        res["seconds"] = time.perf_counter() - t0
        return res

    # ---- many pods with probes ------------------------------------------------------------------
    def supervisors(self) -> list[int]:
        """The pods' supervisors: processes named kpy-supervisor that hold a pod dir of this
        daemon's run root open (supervisors share their zygote's command line), less their own
        forks (an exec runs in a fork of the supervisor until it execs)."""
        found = {}
        for pid in processes_naming(self.d.run):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "kpy-supervisor":
                        found[pid] = _status_kib(pid, "PPid")
            except OSError:
                continue
        return [p for p, ppid in found.items() if ppid not in found]

    async def many(self, kind: str) -> dict:
        n = self.args.pods
        names = [f"bench-{kind}-{i:03d}" for i in range(n)]
        path = write_yaml(os.path.join(self.work, f"many-{kind}.yaml"), [probed_pod(nm, kind) for nm in names])
        w = self.watch
        log(f"{n} pods with {kind} probes: apply -f (one file)")
        running = asyncio.ensure_future(w.until(lambda p: all(all_running(p.get(x), 1) for x in names), 300,
                                                "all running"))
        ready = asyncio.ensure_future(w.until(lambda p: all(is_ready(p.get(x)) for x in names), 300, "all Ready"))
        t0 = time.perf_counter()
        rc, err, t_exit = await run_cmd(self.cli("apply", "-f", path))
        if rc != 0:
            raise RuntimeError(f"apply: {err}")
        out = {"apply_exit": t_exit - t0}
        try:
            out["all_running"] = await running - t0
            out["all_ready"] = await ready - t0
        except TimeoutError as e:
            out["error"] = str(e)
            out["ready_count"] = sum(is_ready(w.pods.get(x)) for x in names)
        else:
            await self.steady(out, names)
        await self.delete_many(out, names)
        os.unlink(path)
        return out

    async def steady(self, out: dict, names: list[str]) -> None:
        """RSS with the pods Ready, then CPU over the window."""
        w = self.watch
        log(f"  all Ready after {out['all_ready']:.1f} s; settling 5 s")
        await asyncio.sleep(5)
        dpid = self.d.proc.pid
        sups = self.supervisors()
        out["daemon_rss_kib"] = _status_kib(dpid, "VmRSS")
        out["daemon_hwm_kib"] = _status_kib(dpid, "VmHWM")
        out["daemon_pss_kib"] = _pss_kib(dpid)
        out["sup_rss_kib"] = [_status_kib(p, "VmRSS") for p in sups]
        out["sup_pss_kib"] = [_pss_kib(p) for p in sups]
        out["supervisors"] = len(sups)
        # CPU over the window
        log(f"  CPU over {self.args.window:g} s")
        u0 = _utime(dpid)
        d0, s0, m0, t0 = _ticks(dpid), {p: _ticks(p, True) for p in sups}, _machine_ticks(), time.perf_counter()
        ev0 = w.events
        await asyncio.sleep(self.args.window)
        d1, s1, m1, t1 = _ticks(dpid), {p: _ticks(p, True) for p in sups}, _machine_ticks(), time.perf_counter()
        span = t1 - t0
        out["daemon_cpu"] = (d1 - d0) / CLK_TCK / span
        out["daemon_user_cpu"] = (_utime(dpid) - u0) / CLK_TCK / span  # the rest is system time (sockets...)
        out["sup_cpu"] = sum(max(0, s1[p][0] - s0[p][0]) for p in sups) / CLK_TCK / span
        out["sup_cpu_children"] = sum(max(0, s1[p][1] - s0[p][1]) for p in sups) / CLK_TCK / span
        out["machine_busy"] = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count()  # cores busy
        out["watch_events_in_window"] = w.events - ev0
        out["not_ready_after"] = sum(not is_ready(w.pods.get(x)) for x in names)
        out["restarts_after"] = sum(c.get("restartCount", 0) for x in names
                                    for c in ((w.pods.get(x) or {}).get("status") or {}).get("containerStatuses") or [])
        log(f"  daemon CPU {out['daemon_cpu'] * 100:.1f} % of a core")
        if self.args.profile:  # after the window, so that py-spy's own load is not in the figure
            prof = f"{self.args.profile}.{names[0].split('-')[1]}"
            log(f"  profiling the daemon for {self.args.window:g} s into {prof}")
            spy = self.profile_start(prof, idle=False)
            await asyncio.sleep(self.args.window)
            self.profile_stop(spy)

    async def delete_many(self, out: dict, names: list[str]) -> None:
        w, n = self.watch, len(names)
        log(f"  deleting the {n} pods")
        gone = asyncio.ensure_future(w.until(lambda p: not any(x in p for x in names), self.args.delete_timeout,
                                             "all gone"))
        t0 = time.perf_counter()
        rc, err, _ = await run_cmd(self.cli("delete", "pods", "--all", "--no-wait"))
        if rc != 0:
            raise RuntimeError(f"delete --all: {err}")
        try:
            out["delete_all"] = await gone - t0
        except TimeoutError:  # pods stuck in Terminating: counted, the clean-up deals with them
            out["delete_stuck"] = sum(x in w.pods for x in names)
            out["delete_all"] = None
            log(f"  {out['delete_stuck']} of {n} pods still there {self.args.delete_timeout:g} s after the delete")

    async def idle_cpu(self, seconds: float) -> float:
        pid = self.d.proc.pid
        a, t0 = _ticks(pid), time.perf_counter()
        await asyncio.sleep(seconds)
        return (_ticks(pid) - a) / CLK_TCK / (time.perf_counter() - t0)

    async def main(self) -> None:
        """Each phase's figures land in self.res as soon as it is over (a later failure keeps them)."""
        res = self.res
        async with Client(self.d.socket) as c:
            self.client = c
            self.watch = Watch(c)
            await asyncio.sleep(0.2)
            res["idle_cpu"] = await self.idle_cpu(10)
            log(f"idle daemon CPU {res['idle_cpu'] * 100:.2f} % of a core")
            spy = self.profile_start(self.args.profile) if "start" in self.args.only else None
            try:
                if "start" in self.args.only:
                    res["start"] = await self.start_rounds()
            finally:
                self.profile_stop(spy)
            for kind, key in (("http", "many"), ("exec", "exec"), ("none", "bare")):
                if key in self.args.only:
                    res[kind] = await self.many(kind)
            self.watch.close()

    def profile_start(self, path: str | None, idle: bool = True):
        """--profile: py-spy (PATH, or $PY_SPY) samples the daemon into `path` (collapsed stacks):
        during the start/delete rounds idle threads included (a thread waiting for a supervisor or
        a netlink answer shows where a start's wall time goes); for many/exec, over a second window
        after the CPU one, busy samples only (where the probes' CPU goes). It costs CPU: not for figures."""
        if not path:
            return None
        spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or shutil.which(
            "py-spy", path=os.path.dirname(sys.executable))
        if not spy:
            log("--profile: no py-spy (set PY_SPY)")
            return None
        return subprocess.Popen([spy, "record", "--pid", str(self.d.proc.pid), *(["--idle"] if idle else []),
                                 "--threads", "--rate", "250", "--format", "raw", "--output", path, "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @staticmethod
    def profile_stop(spy) -> None:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(timeout=60)


# ---- /proc readings ------------------------------------------------------------------------------

def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith(key + ":"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def _ticks(pid: int, children: bool = False):
    """utime + stime of pid; with children: (that, cutime + cstime: its reaped children's)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return (0, 0) if children else 0
    own = int(fields[11]) + int(fields[12])
    return (own, int(fields[13]) + int(fields[14])) if children else own


def _utime(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[11])
    except OSError:
        return 0


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


# ---- report ---------------------------------------------------------------------------------------

def _ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.0f} ms" if xs else "-"


def _spread(xs: list[float]) -> str:
    return f"{min(xs) * 1000:.0f}-{max(xs) * 1000:.0f}" if xs else "-"


def report(res: dict, args) -> None:
    print(f"\n# kubelet-py vs podman kube play, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"medians of {args.runs}, {os.cpu_count()} CPUs, load before {res.get('load0', '?')}")
    if "idle_cpu" in res:
        print(f"idle daemon: {res['idle_cpu'] * 100:.2f} % of a core")
    st = res.get("start")
    if st:
        print("\n| pod | measure | kubelet-py apply -f (CLI) | kubelet-py apply API | podman kube play | CLI/podman "
              "| API/podman |")
        print("|---|---|---|---|---|---|---|")
        for n in (1, 3):
            for key, label in (("running", "apply -> all Running"), ("http", "apply -> HTTP 200 (all ports)"),
                               ("cli_exit", "command returns"), ("delete", "delete -> gone"),
                               ("delete_gone", "delete -> DELETED event")):
                cli_, api, pm = (st.get((n, s, key), []) for s in ("kpy-cli", "kpy-api", "podman"))
                if key == "delete_gone":
                    pm = st.get((n, "podman", "delete"), [])
                if not (cli_ or api or pm):
                    continue
                r = lambda a: f"{statistics.median(a) / statistics.median(pm):.2f}x" if a and pm else "-"  # noqa: E731
                print(f"| {n}c | {label} | {_ms(cli_)} ({_spread(cli_)}) | {_ms(api)} ({_spread(api)}) | "
                      f"{_ms(pm)} ({_spread(pm)}) | {r(cli_)} | {r(api)} |")
        if "seconds" in st:
            print(f"\n{st['seconds']:.0f} s in all; the whole machine was {st['machine_busy'] * 100:.0f} % of one core "
              f"busy on average meanwhile (this bench included)")
        if st.get("conmon_rss"):
            print(f"\npodman's conmon VmRSS (same run): {max(st['conmon_rss']) / 1024:.1f} MiB max of "
                  f"{len(st['conmon_rss'])}")
    for kind in ("http", "exec", "none"):
        m = res.get(kind)
        if not m:
            continue
        print(f"\n## {args.pods} pods, " + ("no probes (the daemon's floor with that many pods)" if kind == "none" else
                                           f"{kind} probes (readiness + liveness, period 1 s)"))
        if "error" in m:
            print(f"FAILED: {m['error']} ({m.get('ready_count')} Ready)")
            continue
        sup = m["sup_rss_kib"] or [0]
        spss = m["sup_pss_kib"] or [0]
        print(f"apply -f returned {m['apply_exit']:.2f} s; all Running {m['all_running']:.2f} s; "
              f"all Ready {m['all_ready']:.2f} s" + (" (target < 20 s)" if kind == "http" else ""))
        print(f"daemon RSS {m['daemon_rss_kib'] / 1024:.1f} MiB (HWM {m['daemon_hwm_kib'] / 1024:.1f}, PSS "
              f"{m['daemon_pss_kib'] / 1024:.1f})" + (" (target < 150 MB)" if kind == "http" else ""))
        print(f"supervisors: {m['supervisors']}, RSS median {statistics.median(sup) / 1024:.1f} MiB, max "
              f"{max(sup) / 1024:.1f} MiB; PSS median {statistics.median(spss) / 1024:.1f} MiB; "
              f"sum RSS {sum(sup) / 1024:.0f} MiB, sum PSS {sum(spss) / 1024:.0f} MiB (target < 12 MB each)")
        print(f"CPU over {args.window:g} s: daemon {m['daemon_cpu'] * 100:.1f} % of a core "
              f"(user {m.get('daemon_user_cpu', 0) * 100:.1f} %, the rest system)"
              + (" (target < 10 %)" if kind == "http" else "") +
              f"; supervisors together {m['sup_cpu'] * 100:.1f} % "
              f"(+ {m.get('sup_cpu_children', 0) * 100:.1f} % in their "
              f"reaped children: exec forks and the probe commands); whole machine {m['machine_busy'] * 100:.0f} % "
              f"of one core busy; watch events in the window {m['watch_events_in_window']}")
        gone = f"{m['delete_all']:.1f} s" if m.get("delete_all") is not None else \
            f"NOT within {args.delete_timeout:g} s: {m.get('delete_stuck')} pods stuck in Terminating"
        print(f"after the window: {m['not_ready_after']} not Ready, {m['restarts_after']} restarts; "
              f"delete --all -> all gone {gone}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="start/delete rounds per shape (default 20)")
    ap.add_argument("--only", default="start,many,exec", help="comma list of start, many, exec, bare")
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--window", type=float, default=30.0, help="seconds of CPU accounting (default 30)")
    ap.add_argument("--no-podman", action="store_true", help="kubelet-py only (no ratios)")
    ap.add_argument("--keep-log", help="copy the daemon's log here at the end")
    ap.add_argument("--delete-timeout", type=float, default=120.0,
                    help="seconds for the many pods to be gone after delete (default 120)")
    ap.add_argument("--profile", help="py-spy collapsed stacks of the daemon: FILE for the start rounds, "
                    "FILE.http / FILE.exec / FILE.none for a window after each CPU window of many / exec / bare")
    args = ap.parse_args()
    args.only = set(args.only.split(","))
    if os.geteuid() != 0:
        sys.exit("bench_kubelet: run as root")
    use_podman = "start" in args.only and not args.no_podman
    if use_podman and not shutil.which("podman"):
        sys.exit("bench_kubelet: podman is missing (see ../shared/peers/README.md) or pass --no-podman")
    # byte-compiled first, as an installed package is: with PYTHONDONTWRITEBYTECODE set and an
    # editable install, every CLI command (and the zygote) would compile the sources again
    import compileall
    for pkg in ("kubelet_py", "runtime", "netns"):
        compileall.compile_dir(os.path.join(TOP, pkg), quiet=1)
    with open("/proc/loadavg") as f:
        load0 = " ".join(f.read().split()[:3])
    # hex only: podman reads the layout's path as an image name (a '_' at a component's edge,
    # which mkdtemp may put there, fails its pull)
    work = os.path.join(tempfile.gettempdir(), f"kpy-bench-kubelet-{secrets.token_hex(4)}")
    os.mkdir(work, 0o700)
    b = Bench(args, work)
    problems: list[str] = []
    failed = None
    try:
        b.d = Daemon(pathlib.Path(work), extra=["--log-level", "info", "--max-pods", str(max(110, args.pods + 10))])
        if use_podman:
            b.host = HostState.snapshot()
            b.pm = Podman(work, free_subnets(1)[0])
            b.pm.setup(os.path.join(work, "layout"))
        b.d.start()
        log(f"daemon pid {b.d.proc.pid} on {b.d.socket}, pods on {b.d.subnet}")
        asyncio.run(b.main())
    except BaseException as e:  # noqa: BLE001 - reported with what was measured; the clean-up runs
        failed = e
        import traceback
        traceback.print_exc()
    finally:
        b.res["load0"] = load0
        if b.d is not None:
            if args.keep_log:
                shutil.copy(b.d.log_file, args.keep_log)
            problems += finish_daemon(b.d)
        if b.pm is not None:
            problems += b.pm.cleanup()
        if b.host is not None:
            for x in b.host.restore():
                log(f"put back: {x}")
        with open("/proc/self/mounts") as f:
            mounted = [ln.split()[1] for ln in f if ln.split()[1].startswith(work)]
        if mounted:
            problems.append(f"mounts under {work} (kept): {mounted}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(b.res, args)
    if failed is not None:
        print(f"\nFAILED: {type(failed).__name__}: {failed}")
    print("\nleft behind: " + ("; ".join(problems) if problems else "nothing"))
    if failed is not None:
        sys.exit(1)


def _pods_left(d: Daemon) -> list[str]:
    p = d.cli("get", "pods", "-A", "-o", "json", check=False, timeout=60)
    try:
        return [x["metadata"]["name"] for x in json.loads(p.stdout)["items"]]
    except (ValueError, KeyError):
        return []


def finish_daemon(d: Daemon) -> list[str]:
    """Delete every pod, stop the daemon, check for leaks and remove them (Daemon.cleanup), and
    report: pods the daemon cannot finish deleting (stuck in Terminating) are finished by
    restarting it (it completes a deletion when it adopts the pod); if Daemon.cleanup fails
    half-way, its removal steps run anyway."""
    out = []
    try:
        if d.proc and d.proc.poll() is None:
            d.cli("delete", "pods", "--all", "-n", "default", "--grace-period", "1", "--no-wait",
                  check=False, timeout=120)
            deadline = time.monotonic() + 60
            while (left := _pods_left(d)) and time.monotonic() < deadline:
                time.sleep(1)
            if left:
                out.append(f"{len(left)} pods still Terminating 60 s after delete (a daemon bug): restarted the "
                           f"daemon to finish them")
                d.stop()
                d.start()
                deadline = time.monotonic() + 120
                while (left := _pods_left(d)) and time.monotonic() < deadline:
                    time.sleep(1)
                if left:
                    out.append(f"still there after the restart: {left[:5]}...")
        out += [f"kubelet-py left: {x}" for x in d.cleanup()]
    except Exception as e:  # noqa: BLE001 - the removal below still runs
        out.append(f"kubelet-py clean-up: {type(e).__name__}: {e}")
        d.stop()
        try:
            from runtime import pod as rt
            from runtime.container import Paths
            from runtime.image.store import ImageStore
            import netns
            from kubelet_py.node import _gateway_of
            from tests.integration.leaks import remove_cgroup_tree
            rt.gc(ImageStore(d.root), Paths(d.root, d.run, d.cg))
            netns.remove_network(netns.NetworkConfig(state_root=d.root, bridge=d.bridge,
                                                     gateway=_gateway_of(str(d.subnet)), chain_prefix=d.chain,
                                                     veth_prefix=d.bridge[:7]))
            remove_cgroup_tree(d.cg, if_empty=True)
        except Exception as e2:  # noqa: BLE001
            out.append(f"kubelet-py removal: {type(e2).__name__}: {e2}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
    ours = [ln.split(": ")[1] for ln in links if ln.split(": ")[1].startswith(d.bridge[:7])]
    if ours:  # the bridge, or a veth (their prefix is the bridge's first 7 characters)
        out.append(f"kubelet-py left links {ours}")
    rules = subprocess.run("iptables-legacy-save 2>/dev/null; iptables-nft-save 2>/dev/null", shell=True,
                           capture_output=True, text=True).stdout
    if d.chain in rules:
        out.append(f"kubelet-py left iptables chains {d.chain}*")
    return out


if __name__ == "__main__":
    main()
