#!/usr/bin/env python3
"""What a kubelet's pod workers pay the runtime per event and per status, run by hand (never in CI).

    .venv/bin/python tests/bench/bench_supervisor.py [--runs 50]

- event: a container's exit to its `exited` event at a subscriber (runtime.pod.events). The
  bench SIGKILLs the container's init itself and times until the event is read: the kernel's
  kill and reap, the supervisor's cgroup clean-up, its record write and the event's delivery.
  Floor, measured in the same run: the same SIGKILL of a child of this process until waitpid
  returns. Target (issue): under 5 ms.
- pod_status of a 3-container pod (runtime.pod.pod_status: the sandbox record, a connection to
  the supervisor, its answer). Floor in the same run: one round trip of a 1-byte message over a
  unix socket pair. Target (issue): under 2 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

from runtime import pod as api  # noqa: E402
from runtime.cgroups import detect  # noqa: E402
from runtime.container import Paths  # noqa: E402
from runtime.image.archive import import_path  # noqa: E402
from runtime.image.build import write_oci_layout  # noqa: E402
from runtime.image.store import ImageStore  # noqa: E402
from runtime.image.testimages import DEFAULT_IMAGE, busybox_image  # noqa: E402
from runtime.oci.generate import ContainerRequest  # noqa: E402
from tests.integration.leaks import remove_cgroup_tree  # noqa: E402


def _median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_supervisor: run as root")
    cg = f"kpybench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="kpy-bench-sup-", dir="/run" if os.path.isdir("/run") else None) as work:
        root, run_root = os.path.join(work, "root"), os.path.join(work, "run")
        layout = os.path.join(work, "layout")
        write_oci_layout(layout, {DEFAULT_IMAGE: busybox_image()})
        store = ImageStore(root)
        import_path(store, layout)
        paths = Paths(root, run_root, cg)
        uid = "bench-sup"
        api.run_pod_sandbox(paths, api.PodConfig(uid=uid, name="bench", etc_files=False))
        try:
            def create(name: str, cmd: list[str]) -> str:
                return api.create_container(store, paths, uid, DEFAULT_IMAGE, ContainerRequest(name=name, command=cmd),
                                            log_path=os.path.join(work, "logs", name, "0.log"))

            # ---- exit -> event ----
            stream = api.events(paths, uid)
            ev_ms, floor_ms = [], []
            for i in range(a.runs):
                cid = create(f"e{i}", ["sleep", "3600"])
                pid = api.start_container(paths, uid, cid)
                while not any(e["type"] == "started" and e["id"] == cid for e in stream.poll(5)):
                    pass
                t0 = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                got = None
                while got is None:
                    got = next((e for e in stream.poll(5) if e["type"] == "exited" and e["id"] == cid), None)
                ev_ms.append(time.perf_counter() - t0)
                api.remove_container(store, paths, uid, cid)
                p = subprocess.Popen(["sleep", "3600"])
                t0 = time.perf_counter()
                p.send_signal(signal.SIGKILL)
                p.wait()
                floor_ms.append(time.perf_counter() - t0)
            stream.close()

            # ---- pod_status of 3 containers ----
            for n in ("a", "b", "c"):
                api.start_container(paths, uid, create(n, ["sleep", "3600"]))
            assert len(api.pod_status(paths, uid).containers) == 3
            st_ms, rt_ms = [], []
            x, y = socket.socketpair()
            for _ in range(a.runs * 4):
                t0 = time.perf_counter()
                api.pod_status(paths, uid)
                st_ms.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                x.send(b"x")
                y.recv(1)
                y.send(b"y")
                x.recv(1)
                rt_ms.append(time.perf_counter() - t0)
            x.close()
            y.close()
        finally:
            api.remove_pod_sandbox(store, paths, uid)
            remove_cgroup_tree(cg)
    print(f"supervisor events and status, {time.strftime('%Y-%m-%d')}, cgroup {detect()}, median of {a.runs}"
          f" ({a.runs * 4} for status)")
    e, f = _median_ms(ev_ms), _median_ms(floor_ms)
    print(f"  {'exit -> exited event at a subscriber':<44} {e:7.2f} ms  (max {max(ev_ms) * 1000:.2f}; "
          f"{e / f:5.1f}x the kill+waitpid floor of {f:.2f} ms; target < 5 ms)")
    s, r = _median_ms(st_ms), _median_ms(rt_ms)
    print(f"  {'pod_status of a 3-container pod':<44} {s:7.2f} ms  (max {max(st_ms) * 1000:.2f}; "
          f"{s / r:5.1f}x a unix socket round trip of {r * 1000:.0f} us; target < 2 ms)")


if __name__ == "__main__":
    main()
