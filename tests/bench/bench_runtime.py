#!/usr/bin/env python3
"""Container start benchmark, run by hand (never in CI); prints ratios against runc and crun.

    .venv/bin/python tests/bench/bench_runtime.py [--runs 20]

The same bundle (busybox rootfs, config.json from our generator, args `true`) is run to
completion by: `runc run`, `crun run`, kubelet-py's executor in-process (no interpreter start-up),
the pod's supervisor asked over its socket (start, wait for the exit, forget: the path of a
container in an existing sandbox), and `kubelet-py runtime run --bundle` (a fresh Python process
each time, re-executed from the sealed interpreter). Runs are interleaved. Target (issue): a start in an
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
from tests.integration.leaks import remove_cgroup_tree  # noqa: E402
from runtime.image.manifest import ImageConfig  # noqa: E402
from runtime.image.testimages import busybox_image  # noqa: E402
from runtime.oci.run import load_bundle, run  # noqa: E402
from runtime.oci.generate import ContainerRequest, generate  # noqa: E402


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
        # the real path of a container in an existing sandbox: a request to the pod's
        # supervisor, which forks it, then the wait for its exit and the removal
        from runtime.sandbox import create_sandbox, remove_sandbox
        from runtime.supervisor.launch import start_supervisor
        sv_b = bundle("supervised")
        sb = create_sandbox(os.path.join(work, "run"), "bench-start", "bench", cgroup_root="kpybench", etc_files=False)
        client = start_supervisor(sb.dir, "kpybench")

        def supervised():
            client.call("create", id="c", bundle=sv_b, log_path=os.path.join(work, "logs", "c.log"))
            client.call("start", id="c")
            assert client.wait("c")["exit_code"] == 0
            client.call("remove", id="c")
        peers["kubelet-py supervisor (existing sandbox)"] = supervised
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
        client.call("shutdown")
        client.close()
        remove_sandbox(os.path.join(work, "run"), "bench-start", "kpybench")
        bench_exec(work, a.runs)
        remove_cgroup_tree("kpybench")


def bench_exec(work: str, runs: int) -> None:
    """`exec true` into a running container through its supervisor (a fork, no new interpreter),
    median of 50, and the supervisor's RSS. Targets: exec < 20 ms, supervisor < 12 MB."""
    from runtime import pod as api
    from runtime.container import Paths
    from runtime.image.archive import import_path
    from runtime.image.build import write_oci_layout
    from runtime.image.store import ImageStore
    from runtime.image.testimages import DEFAULT_IMAGE
    from runtime.supervisor.client import SupervisorClient
    root, run_root, cg = os.path.join(work, "root"), os.path.join(work, "run"), "kpybench"
    layout = os.path.join(work, "layout")
    write_oci_layout(layout, {DEFAULT_IMAGE: busybox_image()})
    store = ImageStore(root)
    import_path(store, layout)
    paths = Paths(root, run_root, cg)
    sb = api.run_pod_sandbox(paths, api.PodConfig(uid="bench-exec", name="bench", etc_files=False))
    try:
        api.create_container(store, paths, sb.uid, DEFAULT_IMAGE, ContainerRequest(name="c", command=["sleep", "3600"]),
                             cid="c", log_path=os.path.join(work, "logs", "c", "0.log"))
        api.start_container(paths, sb.uid, "c")
        client = SupervisorClient(sb.dir)
        xs = []
        for _ in range(50):
            t0 = time.perf_counter()
            code, _o, _e, _t = client.exec_sync("c", ["true"])
            xs.append(time.perf_counter() - t0)
            assert code == 0
        client.close()
        pid = api.pod_status(paths, sb.uid).sandbox.supervisor_pid
        rss = next(int(ln.split()[1]) for ln in open(f"/proc/{pid}/status") if ln.startswith("VmRSS"))
        # PSS: the interpreter's and libraries' pages are shared by every supervisor on the node
        pss = next(int(ln.split()[1]) for ln in open(f"/proc/{pid}/smaps_rollup") if ln.startswith("Pss:"))
        print(f"  {'exec true via the supervisor (median of 50)':<42} {statistics.median(xs) * 1000:8.1f} ms "
              f"(min {min(xs) * 1000:.1f}; target < 20 ms; podman exec ~170 ms)")
        print(f"  {'supervisor RSS with one container':<42} {rss / 1024:8.1f} MiB (target < 12; containerd shim ~13)")
        print(f"  {'supervisor PSS with one container':<42} {pss / 1024:8.1f} MiB (its own share of that RSS)")
    finally:
        api.remove_pod_sandbox(store, paths, "bench-exec", grace=2)


if __name__ == "__main__":
    main()
