"""Pod sandboxes (kernel edge): pinned namespaces, the pod's /dev/shm, the pod cgroup.

    <run-root>/pods/<uid>/ns/{net,ipc,uts}   bind mounts of the pod's namespaces (as CRI-O's
                                            pinns: no pause process, they outlive every process)
    <run-root>/pods/<uid>/ns/pid             shareProcessNamespace only: pinned by the supervisor
    <run-root>/pods/<uid>/ns/user            hostUsers: false only: the pod's user namespace, which
                                            owns its net/ipc/uts namespaces (made inside it, as
                                            Kubernetes' sandboxes are); its maps are the pod's
                                            range of host ids (runtime/idrange.py)
    <run-root>/userns-ranges/<slot>          the pod uid holding each range (taken under .lock)
    <run-root>/pods/<uid>/sandbox.json       this record (atomic)
    <run-root>/pods/<uid>/shm                one tmpfs shared by the pod's containers
    <run-root>/pods/<uid>/etc/{hosts,hostname,resolv.conf}   written by the network layer
                                            (netns.setup_pod_network files_dir), bind-mounted
    <cgroup-root>/kubepods[/<qos>]/pod<uid>  the pod cgroup (Guaranteed directly under kubepods)

Everything is named by the pod uid, so `remove_sandbox` (and a gc after a crash) finds it.
The namespaces are made by a short-lived thread of the caller (no fork: safe in a daemon); a
pod's user namespace and those it owns by a short-lived helper process (a spawn: only a
single-threaded process may unshare a user namespace)."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass
from os.path import ismount  # a module attribute: the test double (runtime/fake.py) stands in for it

from .atomicfile import is_temp_name, write_json_atomic
from .cgroups import Cgroup, Resources
from .errors import ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, RuntimeFailure
from .idrange import IdRangeError, candidate_slots, parse_subid, slot_range
from .linux import sys as ksys
from .linux.net import lo_up, write_sysctl
from .linux.userns import closed_to_others, let_others_search
from .threadns import in_own_thread

log = logging.getLogger("kubelet_py.runtime")

_UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PINNED = {"network": ("net", ksys.CLONE_NEWNET), "ipc": ("ipc", ksys.CLONE_NEWIPC), "uts": ("uts", ksys.CLONE_NEWUTS)}
SHM_SIZE = 64 << 20
# containerd's CRI sets these in every pod network namespace (semantics 1.7): unprivileged
# processes may bind low ports and send ICMP echo
POD_NET_SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
ETC_FILES = ("hosts", "hostname", "resolv.conf")  # bind-mounted into every container of the pod
RANGES_DIR = "userns-ranges"  # below the run root: which pod holds which range of host ids


class SandboxError(RuntimeFailure):
    def __init__(self, pod_uid: str, why: str, kind: str | None = None, field: str | None = None):
        super().__init__(f"pod {pod_uid}: {why}", kind=kind, obj=f"pod {pod_uid}", field=field)
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
    created_at: str | None = None  # RFC 3339
    # "<pid>:<start time>" of the process that made the pod (the daemon, a foreground `runtime
    # run`): while it lives, or while the supervisor does, the pod is not an orphan (`runtime gc`)
    owner: str | None = None
    # hostUsers: false: [first host id, count] mapped to the pod's 0..count-1 (its user
    # namespace is namespaces["user"]); None: the host's user namespace
    user_ids: list | None = None

    def rootfs_idmap(self) -> tuple[str, int, int] | None:
        """(the pod's user namespace, host uid and gid of its root) for runtime.rootfs, or None."""
        if not self.user_ids:
            return None
        return self.namespaces["user"], self.user_ids[0], self.user_ids[0]

    def owner_alive(self) -> bool:
        return self.owner is not None and process_token(int(self.owner.split(":")[0])) == self.owner

    def etc_files(self) -> dict[str, str]:
        """Container path -> the pod's file, for the files the network layer has written."""
        if not self.files_dir:
            return {}
        return {f"/etc/{n}": os.path.join(self.files_dir, n) for n in ETC_FILES
                if os.path.isfile(os.path.join(self.files_dir, n))}

    def missing_etc_files(self) -> list[str]:
        """The pod files the network layer has not written yet (none without a files dir)."""
        if not self.files_dir:
            return []
        return [f"/etc/{n}" for n in ETC_FILES if not os.path.isfile(os.path.join(self.files_dir, n))]

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


def _pin(pod_uid: str, ns_dir: str, kinds: list[str], hostname: str, user_ids: list | None = None) -> None:
    """Create the namespaces in a short-lived thread and bind-mount them in place: they live on
    in the mounts after the thread ends (no process holds them). With `user_ids` (first host id,
    count): in a new user namespace mapping them, which owns the others and is pinned too."""
    flags = 0
    for k in kinds:
        flags |= PINNED[k][1]
    if user_ids:
        from .linux.userns import pin_pod_namespaces
        pins = {PINNED[k][0]: os.path.join(ns_dir, PINNED[k][0]) for k in kinds}
        pins["user"] = os.path.join(ns_dir, "user")
        for target in pins.values():
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
        maps = [(0, user_ids[0], user_ids[1])]
        try:
            pin_pod_namespaces(maps, maps, pins, flags, hostname if "uts" in kinds else None,
                               userns_net_sysctls(user_ids[1]) if "network" in kinds else None)
        except OSError as e:
            raise SandboxError(pod_uid, f"creating its user namespace: {e.strerror or e}") from None
        return

    def make_and_pin():
        if "uts" in kinds:
            ksys.sethostname(hostname)
        if "network" in kinds:
            lo_up()
            for key, value in POD_NET_SYSCTLS.items():  # of the new netns: /proc/sys/net is per netns
                write_sysctl(key, value)
        tid = threading.get_native_id()
        for k in kinds:
            name = PINNED[k][0]
            target = os.path.join(ns_dir, name)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
            ksys.mount(f"/proc/self/task/{tid}/ns/{name}", target, None, ksys.MS_BIND)
    try:
        in_own_thread(make_and_pin, flags)
    except OSError as e:
        raise SandboxError(pod_uid, f"creating namespaces: {e}") from None


def userns_net_sysctls(count: int) -> dict[str, str]:
    """POD_NET_SYSCTLS for a netns of a pod's user namespace: ping_group_range names gids of the
    writer's namespace, so it covers the pod's `count` ids (the kernel refuses unmapped ones)."""
    return {**POD_NET_SYSCTLS, "net.ipv4.ping_group_range": f"0 {count - 1}"}


def claim_user_ids(run_root: str, pod_uid: str) -> list[int]:
    """The pod's range of host ids ([first, count]), claimed in <run-root>/userns-ranges under a
    lock (two daemons, or threads, never get the same); a claim whose pod is gone is free
    again, and a pod that holds one gets it back."""
    d = os.path.join(run_root, RANGES_DIR)
    os.makedirs(d, mode=0o700, exist_ok=True)
    lock = os.open(os.path.join(d, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = set()
        for name, owner in _claims(d):
            if owner == pod_uid:
                return list(slot_range(int(name)))
            if os.path.isdir(os.path.join(run_root, "pods", owner)):
                taken.add(int(name))
        reserved = []
        for f in ("/etc/subuid", "/etc/subgid"):  # the host's users' own ranges
            try:
                with open(f) as fh:
                    reserved += parse_subid(fh.read())
            except FileNotFoundError:
                pass
        try:
            slot = next(candidate_slots(pod_uid, taken, reserved), None)
            if slot is None:
                raise IdRangeError(f"no free range of host ids is left ({len(taken)} pods hold one)")
        except IdRangeError as e:
            raise SandboxError(pod_uid, str(e), RESOURCE_EXHAUSTED, "hostUsers") from None
        write_json_atomic(os.path.join(d, str(slot)), pod_uid)
        return list(slot_range(slot))
    finally:
        os.close(lock)


def release_user_ids(run_root: str, pod_uid: str) -> None:
    """Drop the pod's claim on its range of host ids; idempotent."""
    d = os.path.join(run_root, RANGES_DIR)
    for name, owner in _claims(d):
        if owner == pod_uid:
            os.unlink(os.path.join(d, name))


def _claims(d: str) -> list[tuple[str, str]]:
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.isdigit():
            try:
                with open(os.path.join(d, name)) as f:
                    owner = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(owner, str):
                out.append((name, owner))
    return out


def process_token(pid: int) -> str | None:
    """`<pid>:<start time>`: names one process for good (a reused pid gets another start time)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return f"{pid}:{int(stat[stat.rindex(b')') + 2:].split()[19])}"


def _now() -> str:
    from .supervisor.crilog import now_rfc3339
    return now_rfc3339()


def check_uid(pod_uid: str) -> None:
    if not isinstance(pod_uid, str) or not _UID.match(pod_uid):
        raise SandboxError(str(pod_uid), "pod uid must be lowercase letters, digits and '-' (at most 63)",
                           INVALID_ARGUMENT, "uid")


def create_sandbox(run_root: str, pod_uid: str, hostname: str, *, cgroup_root: str = "kubelet-py",
                   qos: str = "besteffort", resources: Resources | None = None, host_network: bool = False,
                   host_ipc: bool = False, host_pid: bool = False, share_pid: bool = False,
                   etc_files: bool = True, owner: str | None = None, host_users: bool = True) -> Sandbox:
    """The pod's pinned namespaces, /dev/shm and cgroup. With `share_pid` the containers share
    one pid namespace, whose PID 1 the pod's supervisor creates (runtime.podinit) and pins at
    ns/pid; with `host_pid` they use the host's. `host_users=False` (hostUsers: false): a user
    namespace of the pod's own range of host ids, which owns the pod's other namespaces; the
    pod dir is open to its root's group (/dev/shm is bound from it)."""
    check_uid(pod_uid)
    if qos not in ("guaranteed", "burstable", "besteffort"):
        raise SandboxError(pod_uid, f"unknown QoS class {qos!r}", INVALID_ARGUMENT, "qos")
    if host_pid and share_pid:
        raise SandboxError(pod_uid, "shareProcessNamespace and hostPID exclude each other", INVALID_ARGUMENT,
                           "shareProcessNamespace")
    if not host_users:
        for field, on in (("hostNetwork", host_network), ("hostIPC", host_ipc), ("hostPID", host_pid)):
            if on:  # Kubernetes' validation: the pod's own namespaces must belong to its user namespace
                raise SandboxError(pod_uid, f"hostUsers: false cannot be used with {field}: true", INVALID_ARGUMENT,
                                   "hostUsers")
    d = os.path.join(run_root, "pods", pod_uid)
    if os.path.exists(d):
        raise SandboxError(pod_uid, f"a sandbox already exists at {d}", ALREADY_EXISTS)
    ns_dir = os.path.join(d, "ns")
    kinds = [k for k in ("network", "ipc", "uts") if not (k == "network" and host_network)
             and not (k == "ipc" and host_ipc) and not (k == "uts" and host_network)]
    pinned = {k: os.path.join(ns_dir, PINNED[k][0]) for k in kinds}
    if share_pid:
        pinned["pid"] = os.path.join(ns_dir, "pid")
    sb = Sandbox(pod_uid, hostname, d, pinned, None if host_ipc else os.path.join(d, "shm"),
                 pod_cgroup_path(cgroup_root, qos, pod_uid), qos, "pod" if share_pid else "host" if host_pid else "container",
                 os.path.join(d, "etc") if etc_files else None, _now(), owner or process_token(os.getpid()))
    os.makedirs(d, mode=0o700)  # the supervisor's socket and state live here: root only
    try:
        # the record first and gone last (remove_sandbox): a half-made or half-removed pod is
        # always found, with the owner that tells whether it is still being worked on
        if not host_users:
            # the pod's root (not the host's) reaches its rootfs and /dev/shm below the run root:
            # ours is made searchable (never listable) by others, as containerd's /run/containerd
            # (0711; what it holds keeps its own modes: the daemon's socket is 0600), and every
            # dir above it must be
            let_others_search(run_root)
            closed = closed_to_others(run_root)
            if closed:
                raise SandboxError(pod_uid, f"hostUsers: false: the pod's root (not the host's) must reach its rootfs "
                                   f"and /dev/shm below {run_root}, but {closed} is closed to others (chmod o+x)",
                                   FAILED_PRECONDITION, "hostUsers")
            ids = claim_user_ids(run_root, pod_uid)
            sb = dataclasses.replace(sb, user_ids=ids,
                                     namespaces={**sb.namespaces, "user": os.path.join(ns_dir, "user")})
            os.chown(d, 0, ids[0])  # the pod's root (its group) passes through to /dev/shm
            os.chmod(d, 0o710)
            let_others_search(os.path.dirname(d))
        write_json_atomic(os.path.join(d, "sandbox.json"), asdict(sb), durable=False)  # run root: dies with the host
        os.mkdir(ns_dir, 0o700)
        if etc_files:
            os.mkdir(os.path.join(d, "etc"), 0o755)
        if kinds:
            _pin(pod_uid, ns_dir, kinds, hostname, sb.user_ids)
        if sb.shm:
            os.mkdir(sb.shm, 0o1777)
            ksys.mount("shm", sb.shm, "tmpfs", ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC,
                       f"mode=1777,size={SHM_SIZE}")
        cg = Cgroup(sb.cgroup_path)
        cg.create()
        cg.apply(resources or Resources(cpu_shares=2))
    except BaseException:
        remove_sandbox(run_root, pod_uid, cgroup_root)
        raise
    return sb


def remove_sandbox(run_root: str, pod_uid: str, cgroup_root: str = "kubelet-py") -> None:
    """Kill the supervisor and whatever is left in the pod cgroup tree, unpin, unmount,
    delete. Idempotent, and safe after a half-done create or a crash."""
    from .supervisor.launch import kill_supervisor
    from .supervisor.wire import LOG_FILE, PID_FILE, SOCKET, STATES_DIR
    d = os.path.join(run_root, "pods", pod_uid)
    kill_supervisor(d)
    for qos in ("guaranteed", "burstable", "besteffort"):
        Cgroup(pod_cgroup_path(cgroup_root, qos, pod_uid)).remove_tree()  # containers a crash left below it too
    for p in [os.path.join(d, "ns", n) for n in ("net", "ipc", "uts", "pid", "user")] + [os.path.join(d, "shm")]:
        while ismount(p):
            ksys.umount2(p, ksys.MNT_DETACH)
        if os.path.isdir(p):
            os.rmdir(p)
        elif os.path.exists(p):
            os.unlink(p)
    for name in os.listdir(d) if os.path.isdir(d) else []:
        if name in (SOCKET, PID_FILE, LOG_FILE) or is_temp_name(name):
            os.unlink(os.path.join(d, name))
    etc = os.path.join(d, "etc")
    if os.path.isdir(etc):  # the network layer's files and its temp files: nothing else lives here
        for name in os.listdir(etc):
            if name in ETC_FILES or name.split(".tmp.")[0] in ETC_FILES:
                os.unlink(os.path.join(etc, name))
        os.rmdir(etc)
    states = os.path.join(d, STATES_DIR)
    if os.path.isdir(states):
        for name in os.listdir(states):
            if name.endswith(".json") or is_temp_name(name):
                os.unlink(os.path.join(states, name))
    for p in (states, os.path.join(d, "ns")):
        if os.path.isdir(p):
            os.rmdir(p)
    strangers = sorted(set(os.listdir(d)) - {"sandbox.json"}) if os.path.isdir(d) else []
    if strangers:  # never deleted, and the record stays so that gc finds the pod again
        raise SandboxError(pod_uid, f"{d} holds what kubelet-py did not make: {', '.join(strangers)} "
                           "(remove it, then remove the pod again)", FAILED_PRECONDITION)
    release_user_ids(run_root, pod_uid)  # while the record is there: a gc after a crash gets here again
    if os.path.exists(os.path.join(d, "sandbox.json")):
        os.unlink(os.path.join(d, "sandbox.json"))  # last: until here a gc finds the pod
    if os.path.isdir(d):
        os.rmdir(d)


def load_sandbox(run_root: str, pod_uid: str) -> Sandbox:
    try:
        with open(os.path.join(run_root, "pods", pod_uid, "sandbox.json")) as f:
            return Sandbox(**json.load(f))
    except FileNotFoundError:
        raise SandboxError(pod_uid, "no such sandbox", NOT_FOUND) from None

