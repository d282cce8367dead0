"""The runtime's API for the kubelet layer, what CRI's RuntimeService is to the kubelet: pod
sandboxes under their supervisor, containers in them, exec, status, stats, and the clean-up
after a crash. Plain functions; the kernel work is in sandbox, container, shim and cgroups.

    run_pod_sandbox -> create_container -> start_container -> (exec_sync, container_status,
    container_stats) -> stop_container -> remove_container -> remove_pod_sandbox
    gc(keep)   at daemon start: removes every pod, container, mount and cgroup not in `keep`

A pod is named by its uid everywhere (run dir, pinned namespaces, cgroup `pod<uid>`, the
`io.kubernetes.cri.sandbox-id` annotation of its containers' config.json), so all of it can be
found again after the daemon, or the supervisor, died."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .cgroups import Cgroup, Resources, Stats
from .container import VALID_ID, SANDBOX_ANNOTATION, Paths, bundle_for, new_id
from .container import remove_container as _remove_bundle
from .errors import RuntimeFailure
from .image.store import ImageStore
from .oci.generate import ContainerRequest
from .sandbox import (Sandbox, SandboxError, create_sandbox, load_sandbox, pod_resources, qos_class,
                      remove_sandbox)
from .shim import ShimClient, ShimError, start_supervisor


class PodError(RuntimeFailure):
    def __init__(self, pod_uid: str, container_id: str | None, why: str):
        where = f"pod {pod_uid}" + (f" container {container_id}" if container_id else "")
        super().__init__(f"{where}: {why}")
        self.pod_uid, self.container_id = pod_uid, container_id


@dataclass(frozen=True)
class PodConfig:
    uid: str
    name: str
    namespace: str = "default"
    hostname: str | None = None  # spec.hostname; the pod name otherwise
    qos: str = "besteffort"
    resources: Resources | None = None  # the pod cgroup's (sandbox.pod_resources)
    host_network: bool = False
    host_ipc: bool = False
    host_pid: bool = False
    share_pid: bool = False  # shareProcessNamespace


@dataclass(frozen=True)
class ContainerStatus:
    id: str
    state: str  # created | running | exited (CRI's CONTAINER_CREATED / _RUNNING / _EXITED)
    pid: int | None = None
    started_at: str | None = None  # RFC 3339, nanoseconds
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None  # Completed | Error | OOMKilled
    log_path: str | None = None
    signal: int | None = None  # the signal that ended it (exit_code is then 128 + it)


def pod_log_path(log_root: str, pod: PodConfig, container: str, restart_count: int = 0) -> str:
    """/var/log/pods/<namespace>_<name>_<uid>/<container>/<restartCount>.log, as the kubelet."""
    return os.path.join(log_root, f"{pod.namespace}_{pod.name}_{pod.uid}", container, f"{restart_count}.log")


def _pod_dir(paths: Paths, uid: str) -> str:
    return os.path.join(paths.run_root, "pods", uid)


def _client(paths: Paths, uid: str, cid: str | None = None) -> ShimClient:
    try:
        return ShimClient(_pod_dir(paths, uid))
    except (FileNotFoundError, ConnectionRefusedError):
        raise PodError(uid, cid, "no supervisor answers (the pod was removed, or its supervisor died)") from None


def _client_if_any(paths: Paths, uid: str) -> ShimClient | None:
    """The pod's supervisor, or None when there is none to ask (removal goes on without it)."""
    try:
        return ShimClient(_pod_dir(paths, uid))
    except OSError:
        return None


# ---- pods ---------------------------------------------------------------------------------

def run_pod_sandbox(paths: Paths, pod: PodConfig) -> Sandbox:
    """Pinned namespaces, /dev/shm, the pod cgroup and the pod's supervisor; all or nothing."""
    sb = create_sandbox(paths.run_root, pod.uid, pod.hostname or pod.name, cgroup_root=paths.cgroup_root,
                        qos=pod.qos, resources=pod.resources, host_network=pod.host_network,
                        host_ipc=pod.host_ipc, host_pid=pod.host_pid, share_pid=pod.share_pid)
    try:
        start_supervisor(sb.dir, paths.cgroup_root).close()
    except BaseException:
        remove_sandbox(paths.run_root, pod.uid, paths.cgroup_root)
        raise
    return sb


def list_pod_sandboxes(paths: Paths) -> list[str]:
    d = os.path.join(paths.run_root, "pods")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def pod_containers(paths: Paths, uid: str) -> list[str]:
    """Ids of the containers (created or started) whose bundle names this pod."""
    d = os.path.join(paths.run_root, "containers")
    out = []
    for cid in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        try:
            with open(os.path.join(d, cid, "config.json")) as f:
                if json.load(f).get("annotations", {}).get(SANDBOX_ANNOTATION) == uid:
                    out.append(cid)
        except (OSError, ValueError):
            continue
    return out


def remove_pod_sandbox(store: ImageStore, paths: Paths, uid: str, grace: float = 0) -> None:
    """Stop (with `grace`) and remove every container of the pod, then the pod. Idempotent."""
    cids = pod_containers(paths, uid)
    client = _client_if_any(paths, uid)
    if client is not None:
        try:
            for cid in cids:
                try:
                    if grace > 0:
                        client.stop(cid, grace)
                    client.call("forget", id=cid)
                except ShimError:
                    pass  # never started, or already forgotten
            client.call("shutdown")
        except ShimError:
            pass  # remove_sandbox below kills whatever still runs
        finally:
            client.close()
    remove_sandbox(paths.run_root, uid, paths.cgroup_root)  # kills the rest, supervisor included
    for cid in cids:
        _remove_bundle(store, paths, cid)


# ---- containers ---------------------------------------------------------------------------

def create_container(store: ImageStore, paths: Paths, uid: str, image_ref: str, req: ContainerRequest,
                     cid: str | None = None, user: str | None = None) -> str:
    """The container's rootfs and config.json in the pod; returns its id (not started yet)."""
    sb = load_sandbox(paths.run_root, uid)
    cid = cid or new_id()
    if os.path.exists(os.path.join(paths.run_root, "containers", cid)):
        raise PodError(uid, cid, "a container with this id exists")
    bundle_for(store, image_ref, req, paths, cid, user, sb)
    return cid


def start_container(paths: Paths, uid: str, cid: str, log_path: str, log_max_size: int | None = None,
                    log_max_files: int | None = None) -> int:
    """Start a created container under the pod's supervisor; returns its pid."""
    bundle = os.path.join(paths.run_root, "containers", cid)
    if not os.path.exists(os.path.join(bundle, "config.json")):
        raise PodError(uid, cid, "no such container (create it first)")
    opts = {k: v for k, v in (("log_max_size", log_max_size), ("log_max_files", log_max_files)) if v is not None}
    client = _client(paths, uid, cid)
    try:
        return client.call("start", id=cid, bundle=bundle, log_path=log_path, **opts)["pid"]
    finally:
        client.close()


def _status_of(cid: str, st: dict) -> ContainerStatus:
    return ContainerStatus(cid, st["status"], st.get("pid"), st.get("started_at"), st.get("finished_at"),
                           st.get("exit_code"), st.get("reason"), st.get("log_path"), st.get("signal"))


def container_status(paths: Paths, uid: str, cid: str) -> ContainerStatus:
    client = _client(paths, uid, cid)
    try:
        st = client.call("status")["containers"].get(cid)
    finally:
        client.close()
    if st is not None:
        return _status_of(cid, st)
    if os.path.exists(os.path.join(paths.run_root, "containers", cid, "config.json")):
        return ContainerStatus(cid, "created")
    raise PodError(uid, cid, "no such container")


def wait_container(paths: Paths, uid: str, cid: str, timeout: float = 30.0) -> ContainerStatus:
    client = _client(paths, uid, cid)
    try:
        return _status_of(cid, client.wait(cid, timeout))
    finally:
        client.close()


def stop_container(paths: Paths, uid: str, cid: str, grace: float = 30.0) -> ContainerStatus:
    """SIGTERM, `grace` seconds, then SIGKILL of every process in the container's cgroup."""
    client = _client(paths, uid, cid)
    try:
        st = client.state(cid)
        if st["status"] == "running":
            st = client.stop(cid, grace)
        return _status_of(cid, st)
    except (ShimError, KeyError):
        raise PodError(uid, cid, "not started") from None
    finally:
        client.close()


def remove_container(store: ImageStore, paths: Paths, uid: str, cid: str) -> None:
    """Remove a stopped (or never started) container: supervisor state, rootfs, bundle, lease."""
    client = _client_if_any(paths, uid)
    if client is not None:
        try:
            if cid in client.call("status")["containers"]:
                client.call("forget", id=cid)  # refused while it runs
        except ShimError as e:
            raise PodError(uid, cid, str(e)) from None
        finally:
            client.close()
    _remove_bundle(store, paths, cid)


def exec_sync(paths: Paths, uid: str, cid: str, args: list[str], timeout: float = 60.0) -> tuple[int, bytes, bytes]:
    """Run `args` in the running container (a fork of its supervisor); (exit code, stdout, stderr)."""
    client = _client(paths, uid, cid)
    try:
        return client.exec(cid, args, timeout=timeout)
    finally:
        client.close()


def container_stats(paths: Paths, uid: str, cid: str) -> Stats:
    """CPU, memory and pid numbers of a running container, from its cgroup."""
    sb = load_sandbox(paths.run_root, uid)
    cg = Cgroup(sb.container_cgroup(cid))
    if not all(os.path.isdir(d) for d in cg.dirs()):
        raise PodError(uid, cid, "no cgroup (not running)")
    return cg.stats()


# ---- one container, one pod (the CLI's `runtime run --detach`) --------------------------------

def run_detached(store: ImageStore, image_ref: str, req: ContainerRequest, paths: Paths, log_root: str,
                 user: str | None = None) -> str:
    """Start one container in a fresh pod of its own (pod uid = container id) and return its
    id; it keeps running after this process exits (`runtime exec`, `runtime rm` reach it)."""
    cid = new_id()
    c = {"cpu_request": req.cpu_request_milli, "cpu_limit": req.cpu_limit_milli,
         "memory_limit": req.memory_limit, "memory_request": req.memory_limit}
    pod = PodConfig(cid, req.hostname or req.name, qos=qos_class([c]), resources=pod_resources([c]))
    run_pod_sandbox(paths, pod)
    try:
        create_container(store, paths, cid, image_ref, req, cid, user)
        start_container(paths, cid, cid, pod_log_path(log_root, pod, req.name))
    except BaseException:
        remove_pod_sandbox(store, paths, cid)
        raise
    return cid


def supervisor_of(paths: Paths, cid: str) -> ShimClient:
    """The supervisor of a container started by run_detached."""
    if not VALID_ID.match(cid):
        raise ValueError(f"container {cid!r}: lowercase letters, digits, . _ - (at most 64)")
    try:
        load_sandbox(paths.run_root, cid)
    except SandboxError:
        raise ValueError(f"container {cid!r}: no such detached container") from None
    return _client(paths, cid, cid)


def remove_detached(store: ImageStore, paths: Paths, cid: str, grace: float = 10.0) -> ContainerStatus | None:
    """Stop (SIGTERM, grace, SIGKILL) and remove a detached container and its pod; idempotent."""
    final = None
    try:
        final = stop_container(paths, cid, cid, grace)
    except (PodError, SandboxError):
        pass
    remove_pod_sandbox(store, paths, cid)
    return final


# ---- after a crash --------------------------------------------------------------------------

def gc(store: ImageStore, paths: Paths, keep: set[str] = frozenset()) -> list[str]:
    """Remove every pod whose uid is not in `keep` and every container whose pod is gone (their
    processes, mounts, cgroups and files), and pod cgroups without a pod; returns what went.
    A daemon runs it at start with the pods it still wants."""
    removed = []
    for uid in list_pod_sandboxes(paths):
        if uid not in keep:
            remove_pod_sandbox(store, paths, uid)
            removed.append(f"pod {uid}")
    live = set(list_pod_sandboxes(paths))
    d = os.path.join(paths.run_root, "containers")
    for cid in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        try:
            with open(os.path.join(d, cid, "config.json")) as f:
                owner = json.load(f).get("annotations", {}).get(SANDBOX_ANNOTATION)
        except (OSError, ValueError):
            owner = None
        if owner not in live:
            cg = _container_cgroup_of(d, cid)
            if cg:
                Cgroup(cg).kill_all()
                Cgroup(cg).destroy()
            _remove_bundle(store, paths, cid)
            removed.append(f"container {cid}")
    for uid in _pod_cgroup_uids(paths.cgroup_root):
        if uid not in live:
            remove_sandbox(paths.run_root, uid, paths.cgroup_root)  # its cgroup part: kill, rmdir
            removed.append(f"pod cgroup {uid}")
    return removed


def _container_cgroup_of(containers_dir: str, cid: str) -> str | None:
    try:
        with open(os.path.join(containers_dir, cid, "config.json")) as f:
            return json.load(f).get("linux", {}).get("cgroupsPath")
    except (OSError, ValueError):
        return None


def _pod_cgroup_uids(cgroup_root: str) -> list[str]:
    """Uids of the pod cgroups (`kubepods[/<qos>]/pod<uid>`) in any hierarchy."""
    out = set()
    for base in Cgroup(f"{cgroup_root}/kubepods").dirs():
        for level in (base, f"{base}/burstable", f"{base}/besteffort"):
            if os.path.isdir(level):
                out.update(n[3:] for n in os.listdir(level) if n.startswith("pod"))
    return sorted(out)
