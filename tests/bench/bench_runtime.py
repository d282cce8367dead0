#!/usr/bin/env python3
"""Container start benchmark, run by hand (never in CI); prints ratios against runc and crun.

    .venv/bin/python tests/bench/bench_runtime.py [--runs 20]

The same bundle (busybox rootfs, config.json from our generator, args `true`) is run to
completion by: `runc run`, `crun run`, kubelet-py's executor in-process (what the supervisor will
do for a container in an existing sandbox: no interpreter start-up), and `kubelet-py runtime run
--bundle` (a fresh Python process each time). Runs are interleaved. Target (issue): a start in an
existing sandbox <= 1.0x `runc run`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

from runtime.cgroups import detect  # noqa: E402
from runtime.image.manifest import ImageConfig  # noqa: E402
from runtime.image.testimages import busybox_image  # noqa: E402
from runtime.oci.run import load_bundle, run  # noqa: E402
from runtime.oci.spec import ContainerRequest, generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_runtime: run as root")
    with tempfile.TemporaryDirectory(prefix="kpy-bench-rt-", dir="/var/tmp") as work:
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(rootfs)
        blob = os.path.join(work, "layer.tgz")
        with open(blob, "wb") as f:
            f.write(busybox_image().layers[0].blob)
        subprocess.run(["tar", "-xzf", blob, "-C", rootfs], check=True)
        cfg = ImageConfig("amd64", "linux", (), cmd=("true",))
        doc = generate(ContainerRequest(name="bench"), cfg, rootfs, "kpybench/x", detect())
        doc["root"]["readonly"] = True

        def bundle(name: str) -> str:
            b = os.path.join(work, name)
            os.makedirs(b, exist_ok=True)
            d = json.loads(json.dumps(doc))
            d["linux"]["cgroupsPath"] = f"kpybench/{name}-{uuid.uuid4().hex[:6]}"
            with open(os.path.join(b, "config.json"), "w") as f:
                json.dump(d, f)
            return b

        peers = {}
        for tool in ("runc", "crun"):
            if shutil.which(tool):
                b = bundle(tool)
                state = os.path.join(work, f"{tool}-state")
                wrap = []
                if tool == "crun" and os.path.ismount("/sys/fs/cgroup/unified"):
                    # crun on a hybrid host: a private mount ns without the empty cgroup2 mount,
                    # as ../shared/peers/bench.sh runs it (R2); the unshare costs ~2 ms
                    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                            'umount /sys/fs/cgroup/unified && exec "$@"', "-"]
                peers[f"{tool} run"] = (lambda t=tool, b=b, s=state, w=wrap: subprocess.run(
                    w + [t, "--root", s, "run", "--bundle", b, f"kpyb{uuid.uuid4().hex[:8]}"], check=True,
                    stdin=subprocess.DEVNULL, capture_output=True))
            else:
                print(f"{tool}: not installed")
        ours_b = bundle("ours")

        def in_process():
            spec, rfs = load_bundle(ours_b)
            st = run(spec, rfs, "b" + uuid.uuid4().hex[:8], "kpybench")
            assert st.code == 0
        peers["kubelet-py executor (in-process)"] = in_process
        cli = os.path.join(os.path.dirname(sys.executable), "kubelet-py")
        peers["kubelet-py runtime run --bundle (CLI)"] = lambda: subprocess.run(
            [cli, "runtime", "run", "--bundle", ours_b], check=True, capture_output=True)
        times = {k: [] for k in peers}
        for _ in range(a.runs):
            for k, fn in peers.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        print(f"container create+start+exit+remove of `true`, median of {a.runs}, "
              f"{time.strftime('%Y-%m-%d')}, cgroup {detect()}")
        ref = statistics.median(times["runc run"]) if "runc run" in times else None
        for k, xs in times.items():
            m = statistics.median(xs)
            ratio = f"  {m / ref:5.2f}x runc" if ref else ""
            print(f"  {k:<42} {m * 1000:8.1f} ms (min {min(xs) * 1000:.1f}){ratio}")
        for c in ("cpu", "cpuacct", "memory", "pids", "devices", "cpuset", "blkio", "freezer", "systemd", ""):
            d = f"/sys/fs/cgroup/{c}/kpybench".replace("//", "/")
            if os.path.isdir(d):
                for sub in os.listdir(d):
                    if os.path.isdir(f"{d}/{sub}"):
                        os.rmdir(f"{d}/{sub}")
                os.rmdir(d)


if __name__ == "__main__":
    main()
