"""Pod sandboxes (kernel edge): pinned namespaces, the pod's /dev/shm, the pod cgroup.

    <run-root>/pods/<uid>/ns/{net,ipc,uts}   bind mounts of the pod's namespaces (as CRI-O's
                                            pinns: no pause process, they outlive every process)
    <run-root>/pods/<uid>/ns/pid             shareProcessNamespace only: pinned by the supervisor
    <run-root>/pods/<uid>/shm                one tmpfs shared by the pod's containers
    <run-root>/pods/<uid>/etc/{hosts,hostname,resolv.conf}   written by the network layer
                                            (netns.setup_pod_network files_dir), bind-mounted
    <cgroup-root>/kubepods[/<qos>]/pod<uid>  the pod cgroup (Guaranteed directly under kubepods)

Everything is named by the pod uid, so `remove_sandbox` (and a gc after a crash) finds it."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass

from .cgroups import Cgroup, Resources
from .errors import RuntimeFailure
from .linux import sys as ksys

_UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PINNED = {"network": ("net", ksys.CLONE_NEWNET), "ipc": ("ipc", ksys.CLONE_NEWIPC), "uts": ("uts", ksys.CLONE_NEWUTS)}
SHM_SIZE = 64 << 20
# containerd's CRI sets these in every pod network namespace (semantics 1.7): unprivileged
# processes may bind low ports and send ICMP echo
POD_NET_SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
ETC_FILES = ("hosts", "hostname", "resolv.conf")  # bind-mounted into every container of the pod


class SandboxError(RuntimeFailure):
    def __init__(self, pod_uid: str, why: str):
        super().__init__(f"pod {pod_uid}: {why}")
        self.pod_uid = pod_uid


@dataclass(frozen=True)
class Sandbox:
    uid: str
    hostname: str
    dir: str
    namespaces: dict  # OCI namespace type -> pinned path (absent = the host's)
    shm: str | None
    cgroup_path: str  # below each hierarchy root
    qos: str
    pid_mode: str = "container"  # one pid namespace per container | "pod" (shareProcessNamespace) | "host"
    files_dir: str | None = None  # the pod's /etc/{hosts,hostname,resolv.conf}, written by the network layer

    def etc_files(self) -> dict[str, str]:
        """Container path -> the pod's file, for the files the network layer has written."""
        if not self.files_dir:
            return {}
        return {f"/etc/{n}": os.path.join(self.files_dir, n) for n in ETC_FILES
                if os.path.isfile(os.path.join(self.files_dir, n))}

    def container_cgroup(self, container_id: str) -> str:
        return f"{self.cgroup_path}/{container_id}"


def qos_class(containers: list[dict]) -> str:
    """Kubernetes' QoS class from each container's {"cpu_request", "cpu_limit", "memory_request",
    "memory_limit"} (a limit without a request makes the request equal the limit)."""
    any_set, guaranteed = False, bool(containers)
    for c in containers:
        for r in ("cpu", "memory"):
            lim = c.get(f"{r}_limit")
            req = c.get(f"{r}_request") or lim
            any_set = any_set or bool(lim or req)
            if not lim or req != lim:
                guaranteed = False
    return "guaranteed" if guaranteed else "burstable" if any_set else "besteffort"


def pod_resources(containers: list[dict]) -> Resources:
    """The pod cgroup's limits: shares from the summed requests (2 for BestEffort), a CPU quota
    only if every container has a CPU limit, a memory limit only if every one has one."""
    from .oci.generate import milli_to_shares
    cpu_req = sum((c.get("cpu_request") or c.get("cpu_limit") or 0) for c in containers)
    all_cpu = bool(containers) and all(c.get("cpu_limit") for c in containers)
    all_mem = bool(containers) and all(c.get("memory_limit") for c in containers)
    quota = max(1000, sum(c["cpu_limit"] for c in containers) * 100) if all_cpu else None
    mem = sum(c["memory_limit"] for c in containers) if all_mem else None
    return Resources(cpu_shares=milli_to_shares(cpu_req), cpu_quota=quota, cpu_period=100000 if quota else None,
                     memory_limit=mem)


def pod_cgroup_path(cgroup_root: str, qos: str, pod_uid: str) -> str:
    qos_dir = "" if qos == "guaranteed" else f"/{qos}"
    return f"{cgroup_root}/kubepods{qos_dir}/pod{pod_uid}"


def _pin(pod_uid: str, ns_dir: str, kinds: list[str], hostname: str) -> None:
    """Create the namespaces in a short-lived child and bind-mount them in place."""
    flags = 0
    for k in kinds:
        flags |= PINNED[k][1]
    r, w = os.pipe2(os.O_CLOEXEC)
    r2, w2 = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.close(w2)
            ksys.unshare(flags)
            if "uts" in kinds:
                ksys.sethostname(hostname)
            if "network" in kinds:
                ksys_lo_up()
                for key, value in POD_NET_SYSCTLS.items():  # of the new netns: /proc/sys/net is per netns
                    with open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
                        f.write(value)
            os.write(w, b"k")
            os.read(r2, 1)  # hold the namespaces until the parent has pinned them
            os._exit(0)
        except BaseException as e:  # noqa: BLE001
            os.write(w, f"E{e}".encode(errors="replace"))
            os._exit(1)
    os.close(w)
    os.close(r2)
    try:
        msg = os.read(r, 4096)
        if msg != b"k":
            raise SandboxError(pod_uid, f"creating namespaces: {msg[1:].decode(errors='replace') or 'child died'}")
        for k in kinds:
            name = PINNED[k][0]
            target = os.path.join(ns_dir, name)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
            ksys.mount(f"/proc/{pid}/ns/{name}", target, None, ksys.MS_BIND)
    finally:
        os.close(w2)
        os.close(r)
        os.waitpid(pid, 0)


def ksys_lo_up() -> None:
    """Bring `lo` up in the new network namespace (ioctl SIOCSIFFLAGS; no netlink needed)."""
    import fcntl
    import socket
    import struct
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 0x1, b""))  # SIOCSIFFLAGS IFF_UP
    finally:
        s.close()


def create_sandbox(run_root: str, pod_uid: str, hostname: str, *, cgroup_root: str = "kubelet-py",
                   qos: str = "besteffort", resources: Resources | None = None, host_network: bool = False,
                   host_ipc: bool = False, host_pid: bool = False, share_pid: bool = False) -> Sandbox:
    """The pod's pinned namespaces, /dev/shm and cgroup. With `share_pid` the containers share
    one pid namespace, whose PID 1 the pod's supervisor creates (runtime.podinit) and pins at
    ns/pid; with `host_pid` they use the host's."""
    if not _UID.match(pod_uid):
        raise SandboxError(pod_uid, "pod uid must be lowercase letters, digits and '-' (at most 63)")
    if qos not in ("guaranteed", "burstable", "besteffort"):
        raise SandboxError(pod_uid, f"unknown QoS class {qos!r}")
    if host_pid and share_pid:
        raise SandboxError(pod_uid, "shareProcessNamespace and hostPID exclude each other")
    d = os.path.join(run_root, "pods", pod_uid)
    if os.path.exists(d):
        raise SandboxError(pod_uid, f"a sandbox already exists at {d}")
    ns_dir = os.path.join(d, "ns")
    os.makedirs(d, mode=0o700)  # the supervisor's socket and state live here: root only
    os.mkdir(ns_dir, 0o700)
    os.mkdir(os.path.join(d, "etc"), 0o755)
    kinds = [k for k in ("network", "ipc", "uts") if not (k == "network" and host_network)
             and not (k == "ipc" and host_ipc) and not (k == "uts" and host_network)]
    pinned = {k: os.path.join(ns_dir, PINNED[k][0]) for k in kinds}
    if share_pid:
        pinned["pid"] = os.path.join(ns_dir, "pid")
    sb = Sandbox(pod_uid, hostname, d, pinned, None if host_ipc else os.path.join(d, "shm"),
                 pod_cgroup_path(cgroup_root, qos, pod_uid), qos, "pod" if share_pid else "host" if host_pid else "container",
                 os.path.join(d, "etc"))
    try:
        if kinds:
            _pin(pod_uid, ns_dir, kinds, hostname)
        if sb.shm:
            os.mkdir(sb.shm, 0o1777)
            ksys.mount("shm", sb.shm, "tmpfs", ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC,
                       f"mode=1777,size={SHM_SIZE}")
        cg = Cgroup(sb.cgroup_path)
        cg.create()
        cg.apply(resources or Resources(cpu_shares=2))
        with open(os.path.join(d, "sandbox.json"), "w") as f:
            json.dump(asdict(sb), f)
    except BaseException:
        remove_sandbox(run_root, pod_uid, cgroup_root)
        raise
    return sb


def remove_sandbox(run_root: str, pod_uid: str, cgroup_root: str = "kubelet-py") -> None:
    """Kill what is left in the pod cgroup, unpin, unmount, delete. Idempotent, and safe after a
    half-done create or a crash."""
    d = os.path.join(run_root, "pods", pod_uid)
    _stop_supervisor(d)
    for qos in ("guaranteed", "burstable", "besteffort"):
        cg = Cgroup(pod_cgroup_path(cgroup_root, qos, pod_uid))
        if any(os.path.isdir(x) for x in cg.dirs()):
            cg.kill_all()
            for x in cg.dirs():  # container cgroups a crash left below the pod's
                if os.path.isdir(x):
                    for sub in os.listdir(x):
                        if os.path.isdir(os.path.join(x, sub)):
                            Cgroup(f"{cg.path}/{sub}", cg.version).kill_all()
                            os.rmdir(os.path.join(x, sub))
            cg.destroy()
    for p in [os.path.join(d, "ns", n) for n in ("net", "ipc", "uts", "pid")] + [os.path.join(d, "shm")]:
        while os.path.ismount(p):
            ksys.umount2(p, ksys.MNT_DETACH)
        if os.path.isdir(p):
            os.rmdir(p)
        elif os.path.exists(p):
            os.unlink(p)
    for name in ("sandbox.json", "shim.sock", "shim.pid", "shim.pid.tmp", "shim.log"):
        if os.path.lexists(os.path.join(d, name)):
            os.unlink(os.path.join(d, name))
    etc = os.path.join(d, "etc")
    if os.path.isdir(etc):  # the network layer's files and its temp files: nothing else lives here
        for name in os.listdir(etc):
            if name in ETC_FILES or name.split(".tmp.")[0] in ETC_FILES:
                os.unlink(os.path.join(etc, name))
        os.rmdir(etc)
    states = os.path.join(d, "containers")
    if os.path.isdir(states):
        for name in os.listdir(states):
            if name.endswith((".json", ".json.tmp")):
                os.unlink(os.path.join(states, name))
    for p in (states, os.path.join(d, "ns"), d):
        if os.path.isdir(p):
            os.rmdir(p)


def _stop_supervisor(pod_dir: str) -> None:
    """SIGKILL the pod's supervisor if it is still there (checked by its cmdline, never a
    recycled pid of something else)."""
    try:
        pid = int(open(os.path.join(pod_dir, "shim.pid")).read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except (OSError, ValueError):
        return
    if any(b"runtime.shim" in part for part in cmd) and pod_dir.encode() in cmd:
        import signal
        import time
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.01)


def load_sandbox(run_root: str, pod_uid: str) -> Sandbox:
    try:
        with open(os.path.join(run_root, "pods", pod_uid, "sandbox.json")) as f:
            return Sandbox(**json.load(f))
    except FileNotFoundError:
        raise SandboxError(pod_uid, "no such sandbox") from None

