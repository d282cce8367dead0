"""Private instances of the peers that drive kubelet-py-oci (podman, containerd), shared by
tests/integration/test_oci_cli.py and tests/bench/bench_oci_cli.py: everything under one
directory of the caller's, podman's ulimits pinned under this host's hard limits (as
../shared/peers/common.sh does; without it even runc fails here)."""

from __future__ import annotations

import os
import resource
import subprocess
import time


def hard_limit(res) -> int:
    h = resource.getrlimit(res)[1]
    return 1 << 20 if h == resource.RLIM_INFINITY else h


def podman_env(d: str, runtime: str | None = None) -> dict:
    """Write podman's config files into `d` (its own store, run dir, networks; cgroupfs; k8s-file
    logs) and return the environment that points podman at them."""
    for sub in ("storage", "run", "tmp", "networks"):
        os.makedirs(f"{d}/{sub}", exist_ok=True)
    nofile = hard_limit(resource.RLIMIT_NOFILE)
    nproc = min(hard_limit(resource.RLIMIT_NPROC), 32768)  # podman lowers its own hard NPROC to 32768
    with open(f"{d}/containers.conf", "w") as f:
        f.write(f"""[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
[network]
network_backend = "netavark"
network_config_dir = "{d}/networks"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
""" + (f'runtime = "{runtime}"\n' if runtime else ""))
    with open(f"{d}/storage.conf", "w") as f:
        f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{d}/storage"\nrunroot = "{d}/run"\n')
    with open(f"{d}/registries.conf", "w") as f:
        f.write("unqualified-search-registries = []\n")
    return dict(os.environ, CONTAINERS_CONF=f"{d}/containers.conf", CONTAINERS_STORAGE_CONF=f"{d}/storage.conf",
                CONTAINERS_REGISTRIES_CONF=f"{d}/registries.conf")


def start_containerd(d: str, timeout: float = 20.0) -> subprocess.Popen:
    """A containerd with its root, state and sockets in `d` (no CRI plugin), once it answers."""
    with open(f"{d}/config.toml", "w") as f:
        f.write(f"""version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.opt"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
""")
    with open(f"{d}/containerd.log", "w") as log:
        p = subprocess.Popen(["containerd", "--config", f"{d}/config.toml"], stdout=log, stderr=log)
    deadline = time.monotonic() + timeout
    while subprocess.run(["ctr", "-a", f"{d}/c.sock", "version"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline or p.poll() is not None:
            p.kill()
            p.wait()
            raise RuntimeError(f"containerd did not start: {open(f'{d}/containerd.log').read()[-2000:]}")
        time.sleep(0.05)
    return p
