#!/usr/bin/env python3
"""Volumes and the environment, benchmarked by hand as root (never in CI):

    .venv/bin/python tests/bench/bench_volumes.py [--runs 15] [--pods 50] [--only start,update,setup]

A private `kubelet-py serve` (tests/e2e/daemon.py: own roots, socket, cgroup root, bridge, CIDR,
chain prefix; the built-in busybox image).

1. start (`--only start`): a one-container pod (`sleep 3600`) with 5 volumes (3 configMaps, 2
   secrets, each mounted) and 20 env references (configMapKeyRef, secretKeyRef, fieldRef,
   resourceFieldRef), against the same pod without them, taking turns: time from just before
   the apply API call to the watch event in which the container is running; the pod is then
   deleted (not timed). Reported: both medians and the added cost (target < 20 ms).
2. setup (`--only setup`): the same work in-process, without the daemon's noise: the
   VolumeManager's setup of the 5 volumes and the env builder's 20 references, then teardown
   (each a median over --runs*10).
3. update (`--only update`): --pods pods each mounting one ConfigMap, all Running; the
   ConfigMap is changed through the apply API and the time is taken until every pod's volume
   shows the new value (read on the host through each volume's ..data: the very directory bound
   into the container; 2 ms polls); one pod is then checked from inside with exec. The daemon
   rewrites on the ConfigMap's watch event, and again every 10 s (its sync period). Target:
   under 2 s after the change.

Everything is removed at the end, and what could not be is printed.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

from kubelet_py.client import SyncClient, pod_path  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402

IMAGE = "kubelet-py.local/busybox:1.35"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def objects() -> list[dict]:
    out = []
    for i in range(3):
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"bench-cm{i}"},
                    "data": {f"k{j}": f"value-{i}-{j}" for j in range(5)}})
    for i in range(2):
        out.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"bench-sec{i}"},
                    "data": {f"s{j}": base64.b64encode(f"secret-{i}-{j}".encode()).decode() for j in range(5)}})
    return out


def env_refs() -> list[dict]:
    env = []
    for j in range(8):
        ref = {"name": f"bench-cm{j % 3}", "key": f"k{j % 5}"}
        env.append({"name": f"CM_{j}", "valueFrom": {"configMapKeyRef": ref}})
    for j in range(6):
        ref = {"name": f"bench-sec{j % 2}", "key": f"s{j % 5}"}
        env.append({"name": f"SEC_{j}", "valueFrom": {"secretKeyRef": ref}})
    for j, f in enumerate(("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "status.podIP")):
        env.append({"name": f"F_{j}", "valueFrom": {"fieldRef": {"fieldPath": f}}})
    env.append({"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}})
    return env


def bench_pod(name: str, loaded: bool) -> dict:
    c = {"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
         "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}
    spec: dict = {"containers": [c], "terminationGracePeriodSeconds": 1}
    if loaded:
        c["env"] = env_refs()
        c["volumeMounts"] = [{"name": f"cm{i}", "mountPath": f"/cm{i}"} for i in range(3)] + \
                            [{"name": f"sec{i}", "mountPath": f"/sec{i}"} for i in range(2)]
        spec["volumes"] = [{"name": f"cm{i}", "configMap": {"name": f"bench-cm{i}"}} for i in range(3)] + \
                          [{"name": f"sec{i}", "secret": {"secretName": f"bench-sec{i}"}} for i in range(2)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def running(pod: dict) -> bool:
    cs = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(cs) and all("running" in (c.get("state") or {}) for c in cs)


def until(watch, pred, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = watch.next_event()
        if ev is None:
            break
        if pred(ev):
            return time.perf_counter()
    raise TimeoutError(what)


def start_once(c: SyncClient, name: str, loaded: bool) -> float:
    w = c.watch(pod_path("default"))
    try:
        t0 = time.perf_counter()
        c.apply([bench_pod(name, loaded)])
        t1 = until(w, lambda ev: ev["object"]["metadata"]["name"] == name and ev["type"] != "DELETED"
                   and running(ev["object"]), 60, f"{name} running")
        c.delete(pod_path("default", name), {"gracePeriodSeconds": "1"})
        until(w, lambda ev: ev["object"]["metadata"]["name"] == name and ev["type"] == "DELETED", 60, f"{name} gone")
    finally:
        w.abort()
        w.close()
    return (t1 - t0) * 1000


def bench_start(d: Daemon, runs: int) -> dict:
    c = SyncClient(d.socket)
    c.apply(objects())
    start_once(c, "warm-a", True)
    start_once(c, "warm-b", False)
    plain, loaded = [], []
    for i in range(runs):
        for is_loaded in ((True, False) if i % 2 else (False, True)):
            ms = start_once(c, f"start-{'v' if is_loaded else 'p'}{i}", is_loaded)
            (loaded if is_loaded else plain).append(ms)
    return {"plain": plain, "loaded": loaded}


def bench_setup(runs: int) -> dict:
    from kubelet_py.pods.env import PodFacts, make_environment
    from kubelet_py.volumes.content import referenced
    from kubelet_py.volumes.manager import VolumeManager
    root = tempfile.mkdtemp(prefix="kpy-bench-vol-")
    objs = {(o["kind"], o["metadata"]["name"]): o for o in objects()}
    pod = bench_pod("p", True)
    pod["metadata"].update(uid="bench-uid", namespace="default")
    vm = VolumeManager(root, lambda: {"cpu": "2", "memory": "4Gi"})
    setup, mounts, env, down = [], [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        vm.setup(pod, {k: objs.get(k) for k in referenced(pod)})
        t1 = time.perf_counter()
        vm.mounts(pod, "containers", 0)
        t2 = time.perf_counter()
        make_environment(pod, pod["spec"]["containers"][0], lambda kind, name: objs.get((kind, name)),
                         PodFacts(pod_ips=("10.0.0.2",), host_ips=("10.0.0.1",),
                                  allocatable={"cpu": "2", "memory": "4Gi"}))
        t3 = time.perf_counter()
        vm.teardown("bench-uid")
        t4 = time.perf_counter()
        setup.append((t1 - t0) * 1000)
        mounts.append((t2 - t1) * 1000)
        env.append((t3 - t2) * 1000)
        down.append((t4 - t3) * 1000)
    from kubelet_py.volumes.tree import remove_tree
    remove_tree(root)  # <root>/kubelet/pods, empty
    return {"setup": setup, "mounts": mounts, "env": env, "teardown": down}


def bench_update(d: Daemon, pods: int) -> dict:
    c = SyncClient(d.socket)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bench-shared"}, "data": {"v": "0"}}
    c.apply([cm])
    docs = []
    for i in range(pods):
        p = bench_pod(f"upd-{i}", False)
        p["spec"]["containers"][0]["volumeMounts"] = [{"name": "shared", "mountPath": "/shared"}]
        p["spec"]["volumes"] = [{"name": "shared", "configMap": {"name": "bench-shared"}}]
        docs.append(p)
    t0 = time.perf_counter()
    c.apply(docs)
    deadline = time.monotonic() + 300
    items = []
    while time.monotonic() < deadline:
        items = c.get(pod_path("default"))["items"]
        if len([p for p in items if running(p)]) == pods:
            break
        time.sleep(0.5)
    else:
        raise TimeoutError(f"{pods} pods not running in 300 s")
    log(f"{pods} pods running after {time.perf_counter() - t0:.1f}s")
    paths = [os.path.join(d.root, "kubelet", "pods", p["metadata"]["uid"], "volumes", "kubernetes.io~configmap",
                          "shared", "v") for p in items]
    rounds = []
    for r in range(1, 4):
        want = str(r).encode()
        time.sleep(1.0)
        t0 = time.perf_counter()
        c.apply([{**cm, "data": {"v": want.decode()}}])
        t_applied = time.perf_counter()
        left = set(paths)
        seen_at = []
        while left and time.perf_counter() - t0 < 30:
            for p in list(left):
                try:
                    with open(p, "rb") as f:
                        if f.read() == want:
                            left.discard(p)
                            seen_at.append(time.perf_counter())
                except FileNotFoundError:
                    pass
            time.sleep(0.002)
        if left:
            raise TimeoutError(f"round {r}: {len(left)} pods did not see the update in 30 s")
        rounds.append({"all": (max(seen_at) - t0) * 1000, "first": (min(seen_at) - t0) * 1000,
                       "apply": (t_applied - t0) * 1000})
        inside = d.cli("exec", items[0]["metadata"]["name"], "--", "cat", "/shared/v").stdout
        assert inside == want.decode(), (inside, want)
    return {"rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--only", default="start,setup,update")
    args = ap.parse_args()
    only = set(args.only.split(","))
    res: dict = {}
    if "setup" in only:
        res["setup"] = bench_setup(args.runs * 10)
    if only & {"start", "update"}:
        tmp = tempfile.mkdtemp(prefix="kpy-bench-volumes-")
        from pathlib import Path
        d = Daemon(Path(tmp), extra=["--log-level", "warning"]).start()
        try:
            if "start" in only:
                res["start"] = bench_start(d, args.runs)
            if "update" in only:
                res["update"] = bench_update(d, args.pods)
        finally:
            leaks = d.cleanup()
            if leaks:
                log(f"LEFT BEHIND: {leaks}")
    med = statistics.median
    if "setup" in res:
        s = res["setup"]
        print("in-process, median ms: volume setup %.2f, mounts %.2f, env (20 refs) %.2f, teardown %.2f"
              % tuple(med(s[k]) for k in ("setup", "mounts", "env", "teardown")))
    if "start" in res:
        s = res["start"]
        a, b = med(s["plain"]), med(s["loaded"])
        print(f"pod start to running, median of {len(s['plain'])}: plain {a:.1f} ms, with 5 volumes + 20 env refs "
              f"{b:.1f} ms: added {b - a:+.1f} ms (target < 20 ms); spread plain {min(s['plain']):.0f}-"
              f"{max(s['plain']):.0f}, loaded {min(s['loaded']):.0f}-{max(s['loaded']):.0f}")
    if "update" in res:
        for i, r in enumerate(res["update"]["rounds"], 1):
            print(f"update round {i}: apply returned {r['apply']:.1f} ms, first pod {r['first']:.1f} ms, all "
                  f"{args.pods} pods {r['all']:.1f} ms after the change (target < 2000 ms)")


if __name__ == "__main__":
    main()
