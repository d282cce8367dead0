#!/usr/bin/env python3
"""kubelet-py-oci against runc and crun under the same podman and the same ctr; run by hand
(never in CI), prints medians and ratios measured in this run.

    .venv/bin/python tests/bench/bench_oci_cli.py [--runs 20]

Only the runtime changes: `podman --runtime R run --rm --network none IMAGE true` (podman 4.3,
conmon, cgroupfs, an isolated store in a temp dir, ulimits pinned as ../shared/peers/common.sh
does) and `ctr run --rm --runc-binary R IMAGE ID true` (containerd 1.6 with the runc v2 shim, a
private daemon in a temp dir). Runs are interleaved. crun 1.8 refuses this hybrid cgroup layout,
so its podman runs go through a private mount namespace without the empty cgroup2 mount, as the
peers' bench does (P8; the unshare costs ~3 ms). Also printed: start-up of the CLI's verbs (a
fresh interpreter per call) and the cost of the sealed re-exec (CVE-2019-5736) that create, run
and exec pay. Target (issue 11): podman run within 1.2x of runc.

The project's modules are byte-compiled first (`compileall`), as an installed package is: with
PYTHONDONTWRITEBYTECODE set and an editable install, every call would compile them again."""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

from runtime.image.build import write_oci_layout  # noqa: E402
from tests.integration.leaks import remove_cgroup_tree  # noqa: E402
from tests.peer_daemons import podman_env, start_containerd  # noqa: E402
from runtime.image.testimages import DEFAULT_IMAGE, busybox_image  # noqa: E402

OCI = os.path.join(os.path.dirname(sys.executable), "kubelet-py-oci")
IMAGE = "localhost/kpybench/busybox:1.35"
CRUN_WRAP = ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "-"]


def timed(fn, runs: int, label: str, times: dict) -> None:
    t0 = time.perf_counter()
    fn()
    times.setdefault(label, []).append(time.perf_counter() - t0)


def report(title: str, times: dict, ref: str) -> None:
    print(title)
    r = statistics.median(times[ref]) if ref in times else None
    for k, xs in times.items():
        m = statistics.median(xs)
        ratio = f"  {m / r:5.2f}x {ref}" if r else ""
        print(f"  {k:<44} {m * 1000:8.1f} ms (min {min(xs) * 1000:.1f}){ratio}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_oci_cli: run as root")
    compileall.compile_dir(os.path.join(TOP, "runtime"), quiet=1)
    runtimes = {"runc": shutil.which("runc"), "crun": shutil.which("crun"), "kubelet-py-oci": OCI}
    runtimes = {k: v for k, v in runtimes.items() if v}
    with tempfile.TemporaryDirectory(prefix="kpy-bench-oci-", dir="/var/tmp") as work:
        layout = f"{work}/layout"
        write_oci_layout(layout, {DEFAULT_IMAGE: busybox_image()})
        penv = podman_env(f"{work}/podman")
        pm = ["podman"]
        subprocess.run(pm + ["pull", "-q", f"oci:{layout}:{DEFAULT_IMAGE}"], env=penv, check=True, capture_output=True)
        subprocess.run(pm + ["tag", f"localhost{layout}:latest", IMAGE], env=penv, check=True)
        ctd = f"{work}/ctd"
        os.makedirs(ctd)
        daemon = start_containerd(ctd)
        ctr = ["ctr", "-a", f"{ctd}/c.sock", "-n", "kpybench"]
        subprocess.run(["tar", "-C", layout, "-cf", f"{work}/image.tar", "."], check=True)
        subprocess.run(ctr + ["images", "import", f"{work}/image.tar"], check=True, capture_output=True)
        try:
            times: dict = {}
            ctimes: dict = {}
            n = 0
            for _ in range(a.runs + 1):  # the first round warms up and is dropped
                rt_times: dict = {}
                for name, path in runtimes.items():
                    wrap = CRUN_WRAP if name == "crun" and os.path.ismount("/sys/fs/cgroup/unified") else []
                    cmd = wrap + pm + ["--runtime", path, "run", "--rm", "--network", "none", IMAGE, "true"]
                    timed(lambda c=cmd: subprocess.run(c, env=penv, check=True, capture_output=True), 1,
                          f"podman run --rm true ({name})", rt_times)
                    if name != "crun":  # the runc v2 shim would need crun's own options
                        n += 1
                        cmd = ctr + ["run", "--rm", "--runc-binary", path, DEFAULT_IMAGE, f"kpyb{n}", "true"]
                        timed(lambda c=cmd: subprocess.run(c, check=True, capture_output=True), 1,
                              f"ctr run --rm true ({name})", rt_times)
                if _ == 0:
                    continue
                for k, v in rt_times.items():
                    (times if k.startswith("podman") else ctimes).setdefault(k, []).extend(v)
            day = time.strftime("%Y-%m-%d")
            report(f"podman 4.3 `run --rm --network none IMAGE true`, median of {a.runs}, {day}", times,
                   "podman run --rm true (runc)")
            report(f"ctr (containerd 1.6, runc v2 shim) `run --rm IMAGE ID true`, median of {a.runs}", ctimes,
                   "ctr run --rm true (runc)")
            startup(a.runs, work)
        finally:
            subprocess.run(pm + ["rm", "-a", "-f", "-t", "0"], env=penv, capture_output=True)
            subprocess.run(pm + ["system", "reset", "-f"], env=penv, capture_output=True)
            subprocess.run(ctr + ["images", "rm", "--sync", DEFAULT_IMAGE], capture_output=True)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(20)
            shutil.rmtree("/run/containerd/runc/kpybench", ignore_errors=True)  # the shim's --root
            with open("/proc/self/mounts") as f:
                for m in sorted((ln.split()[1] for ln in f if ln.split()[1].startswith(work)), reverse=True):
                    subprocess.run(["umount", "-l", m], check=False)
            remove_cgroup_tree("kpybench")
            remove_cgroup_tree("libpod_parent", if_empty=True)  # podman's cgroupfs parent


def startup(runs: int, work: str) -> None:
    """One verb = one fresh process: the floor each call of podman or the shim pays."""
    root = f"{work}/oci-root"
    cases = {
        "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
        "python: reexec_sealed() then exit": [sys.executable, "-c",
                                              "from runtime.linux.sealed import reexec_sealed; reexec_sealed()"],
        "kubelet-py-oci --version": [OCI, "--version"],
        "kubelet-py-oci state (no such container)": [OCI, "--root", root, "state", "nope"],
        "runc state (no such container)": ["runc", "--root", root, "state", "nope"],
    }
    times: dict = {}
    for _ in range(runs):
        for k, c in cases.items():
            timed(lambda c=c: subprocess.run(c, capture_output=True, cwd=TOP), 1, k, times)
    report(f"start-up, median of {runs}", times, "runc state (no such container)")


if __name__ == "__main__":
    main()
