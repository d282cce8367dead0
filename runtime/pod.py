"""The runtime's API for the kubelet layer, shaped after CRI's RuntimeService: pod sandboxes
under their supervisor, containers in them, exec, whole-pod status, events, stats, and the
clean-up after a crash. Plain functions on values; the kernel work is in sandbox, container,
supervisor and cgroups. Safe to call from any thread of a daemon: nothing here forks the
caller or changes its cwd, and every call that waits for an exit has a connection of its own.

    run_pod_sandbox -> create_container -> start_container -> (exec_sync, container_status,
    pod_status, events, container_stats) -> stop_container -> remove_container -> remove_pod_sandbox
    recover_supervisor(uid)  a new supervisor for a pod whose supervisor died
    prepare()                at daemon start: the process that forks supervisors, made ready
    gc(keep)                 at daemon start: removes every pod, container, mount and cgroup not in `keep`

Every error is a RuntimeFailure whose `kind` is CRI's code for it (runtime.errors): NOT_FOUND,
ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT (with `field`), UNAVAILABLE (the pod's
supervisor is gone), RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED.

A pod is named by its uid everywhere (run dir, pinned namespaces, cgroup `pod<uid>`, the
`io.kubernetes.cri.sandbox-id` annotation of its containers' config.json), so all of it can be
found again after the daemon, or the supervisor, died."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from dataclasses import dataclass, field

from .cgroups import Cgroup, Resources, Stats, warm_migrations
from .container import SANDBOX_ANNOTATION, ContainerError, Paths, bundle_for, check_id, new_id, remove_bundle
from .errors import (ALREADY_EXISTS, DEADLINE_EXCEEDED, FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE,
                     RuntimeFailure)
from .image.store import ImageStore
from .oci.generate import ContainerRequest
from .sandbox import Sandbox, SandboxError, check_uid, create_sandbox, load_sandbox, pod_resources, qos_class, remove_sandbox
from .supervisor import records
from .supervisor.client import EventStream, SupervisorClient
from .supervisor.crilog import now_rfc3339
from .supervisor.launch import start_supervisor, supervisor_pid, warm_up
from .supervisor.wire import SupervisorError

log = logging.getLogger("kubelet_py.runtime")


class PodError(RuntimeFailure):
    def __init__(self, pod_uid: str, container_id: str | None, why: str, kind: str | None = None,
                 field: str | None = None):
        where = f"pod {pod_uid}" + (f" container {container_id}" if container_id else "")
        super().__init__(f"{where}: {why}", kind=kind, obj=where, field=field)
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
    # the pod's /etc/{hosts,hostname,resolv.conf} come from the network layer (netns
    # setup_pod_network(files_dir=sandbox.files_dir)), which must run before create_container;
    # False: containers keep their image's files (the CLI's one-container pods)
    etc_files: bool = True
    # spec.hostUsers: False gives the pod a user namespace of its own range of host ids (the
    # sandbox picks it: runtime.idrange), owning its net/ipc/uts namespaces; every container
    # of the pod runs in it, its rootfs idmapped layer by layer
    host_users: bool = True


@dataclass(frozen=True)
class ContainerStatus:
    """CRI's ContainerStatus. state: created | running | exited | unknown (a container that
    was running when its supervisor died). Times are RFC 3339 with nanoseconds."""
    id: str
    state: str
    name: str | None = None
    image: str | None = None  # the reference it was created from
    image_id: str | None = None  # the image's manifest digest
    attempt: int = 0
    pid: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    signal: int | None = None  # the signal that ended it (exit_code is then 128 + it)
    reason: str | None = None  # Completed | Error | OOMKilled | Unknown
    message: str | None = None
    log_path: str | None = None
    labels: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SandboxStatus:
    uid: str
    state: str  # ready (its supervisor serves) | notready
    hostname: str
    namespaces: dict  # OCI namespace type -> pinned path
    cgroup: str
    qos: str
    pid_mode: str
    created_at: str | None
    supervisor_pid: int | None


@dataclass(frozen=True)
class PodStatus:
    sandbox: SandboxStatus
    containers: tuple[ContainerStatus, ...]
    epoch: str | None = None  # the supervisor's event sequence (None: no supervisor)
    seq: int = 0

    def container(self, cid: str) -> ContainerStatus | None:
        return next((c for c in self.containers if c.id == cid), None)


def pod_log_path(log_root: str, pod: PodConfig, container: str, restart_count: int = 0) -> str:
    """/var/log/pods/<namespace>_<name>_<uid>/<container>/<restartCount>.log, as the kubelet."""
    return os.path.join(log_root, f"{pod.namespace}_{pod.name}_{pod.uid}", container, f"{restart_count}.log")


def pod_dir(paths: Paths, uid: str) -> str:
    return os.path.join(paths.run_root, "pods", uid)


def _client(paths: Paths, uid: str) -> SupervisorClient:
    check_uid(uid)
    if not os.path.isdir(pod_dir(paths, uid)):
        raise PodError(uid, None, "no such pod sandbox", NOT_FOUND)
    return SupervisorClient(pod_dir(paths, uid))


def _status_of(rec: dict) -> ContainerStatus:
    return ContainerStatus(**{k: rec.get(k) for k in ("id", "state", "name", "image", "image_id", "pid", "created_at",
                                                      "started_at", "finished_at", "exit_code", "signal", "reason",
                                                      "message", "log_path")},
                           attempt=int(rec.get("attempt") or 0), labels=dict(rec.get("labels") or {}))


# ---- pods ---------------------------------------------------------------------------------

def run_pod_sandbox(paths: Paths, pod: PodConfig, meanwhile=None) -> Sandbox:
    """Pinned namespaces, /dev/shm, the pod cgroup and the pod's supervisor; all or nothing.
    `meanwhile(sandbox)`, if given, runs once the namespaces exist, while the supervisor comes up
    (the daemon sets up the pod network there, as a CRI runtime between its netns and its
    sandbox); if it raises, nothing of the sandbox is left and the error is raised."""
    sb = create_sandbox(paths.run_root, pod.uid, pod.hostname or pod.name, cgroup_root=paths.cgroup_root,
                        qos=pod.qos, resources=pod.resources, host_network=pod.host_network,
                        host_ipc=pod.host_ipc, host_pid=pod.host_pid, share_pid=pod.share_pid,
                        etc_files=pod.etc_files, host_users=pod.host_users)
    # the pod's first container joins its cgroup 15-25 ms from now: the grace period a cold
    # cgroup migration waits for (cgroups.warm_migrations) is waited for meanwhile
    threading.Thread(target=warm_migrations, name="kpy-cgroup-warm", daemon=True).start()
    try:
        start_supervisor(sb.dir, paths.cgroup_root, meanwhile=None if meanwhile is None else lambda: meanwhile(sb)).close()
    except BaseException:
        remove_sandbox(paths.run_root, pod.uid, paths.cgroup_root)
        raise
    return sb


def prepare() -> None:
    """Start what makes supervisors (supervisor/zygote.py) now, not at the first pod: a daemon
    calls this at its start; without it the first run_pod_sandbox starts it."""
    warm_up()


def recover_supervisor(paths: Paths, uid: str) -> None:
    """Start a new supervisor for a pod whose supervisor died. It reads the records the dead
    one wrote: exited containers stay exited, created ones can still be started, and running
    ones become `unknown` (stop_container kills what is left of them)."""
    sb = load_sandbox(paths.run_root, uid)
    if supervisor_pid(sb.dir) is not None:
        raise PodError(uid, None, "its supervisor is alive", FAILED_PRECONDITION)
    start_supervisor(sb.dir, paths.cgroup_root).close()


def list_pod_sandboxes(paths: Paths) -> list[str]:
    d = os.path.join(paths.run_root, "pods")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def pod_containers(paths: Paths, uid: str) -> list[str]:
    """Ids of the containers whose bundle names this pod."""
    d = os.path.join(paths.run_root, "containers")
    return [cid for cid in (sorted(os.listdir(d)) if os.path.isdir(d) else []) if _owner(d, cid) == uid]


def pod_status(paths: Paths, uid: str) -> PodStatus:
    """The sandbox and every container of the pod in one call. Without a live supervisor it
    comes from the records on disk (a container that was running is then `unknown`)."""
    sb = load_sandbox(paths.run_root, uid)
    sup = None
    try:
        with SupervisorClient(sb.dir) as client:
            sup = client.status()
    except SupervisorError as e:
        if e.kind != UNAVAILABLE:
            raise
    recs = sup["containers"] if sup else records.load_all(sb.dir, False)
    sandbox = SandboxStatus(sb.uid, "ready" if sup else "notready", sb.hostname, dict(sb.namespaces), sb.cgroup_path,
                            sb.qos, sb.pid_mode, sb.created_at, sup["pid"] if sup else None)
    return PodStatus(sandbox, tuple(_status_of(r) for _, r in sorted(recs.items())),
                     sup["epoch"] if sup else None, sup["seq"] if sup else 0)


def events(paths: Paths, uid: str, since: int = 0, epoch: str | None = None) -> EventStream:
    """The pod's container events as they happen (what a PLEG is fed by); pass the last
    stream's `seq` and `epoch` to get what was missed, or a `resync` event."""
    check_uid(uid)
    return EventStream(pod_dir(paths, uid), since, epoch)


def remove_pod_sandbox(store: ImageStore, paths: Paths, uid: str, grace: float = 0) -> None:
    """Stop every container at once (each with `grace`), remove them, then the pod.
    Idempotent; a supervisor that is gone does not stop it (its cgroups are killed)."""
    check_uid(uid)
    cids = pod_containers(paths, uid)
    d = pod_dir(paths, uid)
    if os.path.isdir(d):
        try:
            with SupervisorClient(d) as client:
                live = [cid for cid, r in client.status()["containers"].items() if r["state"] in ("running", "unknown")]
                for cid, res in client.stop_many(live, grace).items():
                    if isinstance(res, SupervisorError):
                        log.warning("pod %s container %s: stop: %s (its cgroup is killed with the pod's)", uid, cid, res)
                client.call("shutdown")
        except SupervisorError as e:
            log.info("pod %s: removing without its supervisor (%s)", uid, e)
    remove_sandbox(paths.run_root, uid, paths.cgroup_root)  # kills the rest, supervisor included
    for cid in cids:
        remove_bundle(store, paths, cid)


# ---- containers ---------------------------------------------------------------------------

def create_container(store: ImageStore, paths: Paths, uid: str, image_ref: str, req: ContainerRequest, *,
                     log_path: str, cid: str | None = None, user: str | None = None, attempt: int = 0,
                     labels: dict | None = None, stop_signal: str | None = None, log_max_size: int | None = None,
                     log_max_files: int | None = None, prepare: bool = False) -> str:
    """The container's rootfs and config.json in the pod, known to its supervisor as
    `created`; returns its id. `stop_signal`: lifecycle.stopSignal (else the image's
    StopSignal, else SIGTERM). `prepare`: its init is made now, all but its execve, as `runc
    create` does (errors of the config, the mounts or a missing program come here), and
    start_container only lets it exec. `req` is not changed."""
    sb = load_sandbox(paths.run_root, uid)
    cid = cid or new_id()
    check_id(cid)
    if os.path.exists(os.path.join(paths.run_root, "containers", cid)):
        raise PodError(uid, cid, "a container with this id exists", ALREADY_EXISTS)
    if sb.user_ids:  # hostUsers is the pod's: every container joins its user namespace
        if req.user_ids is not None and list(req.user_ids) != list(sb.user_ids):
            raise PodError(uid, cid, f"user_ids {tuple(req.user_ids)} are not the pod's {tuple(sb.user_ids)}",
                           INVALID_ARGUMENT, "hostUsers")
        req = dataclasses.replace(req, host_users=False, user_ids=tuple(sb.user_ids))
    elif not req.host_users:
        raise PodError(uid, cid, "hostUsers: false is the pod's (PodConfig.host_users), and this pod uses the host's",
                       INVALID_ARGUMENT, "hostUsers")
    early = made = None
    if prepare:
        # while the bundle is made, in this order: the container's cgroup (which the init's
        # create then finds there), then the kernel's cgroup lock warmed for the init's join
        # (cgroups.warm_migrations, which holds cgroup_mutex through its grace period: mkdirs
        # begun beside it waited ~8 ms for it)
        made = threading.Event()
        early = threading.Thread(target=_early_cgroup, args=(Cgroup(sb.container_cgroup(cid)), made),
                                 name="kpy-cgroup-early", daemon=True)
        early.start()
    try:
        with _client(paths, uid) as client:
            bundle = bundle_for(store, image_ref, req, paths, cid, user, sb)
            try:
                image = store.image(image_ref)
                if made is not None:
                    made.wait()
                client.call("create", id=cid, bundle=bundle, name=req.name, image=image_ref,
                            image_id=image.record.digest, attempt=attempt, labels=labels or {}, log_path=log_path,
                            log_max_size=log_max_size, log_max_files=log_max_files, prepare=prepare,
                            stop_signal=stop_signal or image.config.stop_signal or "SIGTERM")
            except BaseException:
                remove_bundle(store, paths, cid)
                raise
    except BaseException:
        if early is not None:
            early.join()
            try:
                Cgroup(sb.container_cgroup(cid)).destroy()
            except RuntimeFailure as e:  # the pod's removal takes it (its cgroup tree)
                log.warning("pod %s container %s: %s", uid, cid, e)
        raise
    return cid


def _early_cgroup(cg: Cgroup, made: threading.Event) -> None:
    try:
        cg.create()
    except RuntimeFailure as e:  # the init's own create says it again, as an error of the create
        log.info("cgroup %s: %s", cg.path, e)
    finally:
        made.set()
    warm_migrations()


def start_container(paths: Paths, uid: str, cid: str) -> int:
    """Start a created container under the pod's supervisor; returns its pid. A container
    starts once (FAILED_PRECONDITION after that)."""
    with _client(paths, uid) as client:
        return client.call("start", id=cid)["pid"]


def container_status(paths: Paths, uid: str, cid: str) -> ContainerStatus:
    st = pod_status(paths, uid).container(cid)
    if st is None:
        raise PodError(uid, cid, "no such container", NOT_FOUND)
    return st


def wait_container(paths: Paths, uid: str, cid: str, timeout: float = 30.0) -> ContainerStatus:
    """Its status once it has exited (DEADLINE_EXCEEDED after `timeout`)."""
    with _client(paths, uid) as client:
        return _status_of(client.wait(cid, timeout))


def stop_container(paths: Paths, uid: str, cid: str, grace: float = 30.0, signal: str | int | None = None) -> ContainerStatus:
    """The stop signal (`signal`, else the one it was created with), `grace` seconds, then
    SIGKILL of every process in its cgroup; its final status. A container that is not running
    is returned as it is."""
    with _client(paths, uid) as client:
        return _status_of(client.stop(cid, grace, signal))


def remove_container(store: ImageStore, paths: Paths, uid: str, cid: str) -> None:
    """Remove a stopped (or never started) container: its record, rootfs, bundle and lease.
    FAILED_PRECONDITION while it runs; without a supervisor, only what is on disk goes."""
    check_id(cid)
    try:
        with _client(paths, uid) as client:
            client.call("remove", id=cid)
    except SupervisorError as e:
        if e.kind == UNAVAILABLE:
            records.drop(pod_dir(paths, uid), cid)
        elif e.kind != NOT_FOUND:
            raise
    remove_bundle(store, paths, cid)


def exec_sync(paths: Paths, uid: str, cid: str, args: list[str], timeout: float | None = 60.0) -> tuple[int, bytes, bytes]:
    """Run `args` in the running container (a fork of its supervisor): (exit code, stdout,
    stderr), each stream bounded at 16 MiB. At `timeout` the process and its descendants are
    killed and DEADLINE_EXCEEDED is raised (its output so far in `.stdout`/`.stderr`)."""
    with _client(paths, uid) as client:
        code, out, err, timed_out = client.exec_sync(cid, args, timeout)
    if timed_out:
        e = PodError(uid, cid, f"exec {args[0]!r}: timed out after {timeout:g}s (killed)", DEADLINE_EXCEEDED)
        e.stdout, e.stderr = out, err
        raise e
    return code, out, err


def container_stats(paths: Paths, uid: str, cid: str) -> Stats:
    """CPU, memory and pid numbers of a running container, from its cgroup."""
    sb = load_sandbox(paths.run_root, uid)
    cg = Cgroup(sb.container_cgroup(cid))
    # the controllers the numbers come from (a container made before every hierarchy was used
    # has no dir in the others)
    if not all(os.path.isdir(cg.dir(c)) for c in ("cpu", "cpuacct", "memory") if cg.version == "v1" or c == "cpu"):
        raise PodError(uid, cid, "no cgroup (not running)", FAILED_PRECONDITION)
    return cg.stats()


# ---- one container, one pod (the CLI's `runtime run --detach`) --------------------------------

def run_detached(store: ImageStore, image_ref: str, req: ContainerRequest, paths: Paths, log_root: str,
                 user: str | None = None) -> str:
    """Start one container in a fresh pod of its own (pod uid = container id) and return its
    id; it keeps running after this process exits (`runtime exec`, `runtime rm` reach it)."""
    cid = new_id()
    c = {"cpu_request": req.cpu_request_milli, "cpu_limit": req.cpu_limit_milli,
         "memory_limit": req.memory_limit, "memory_request": req.memory_limit}
    pod = PodConfig(cid, req.hostname or req.name, qos=qos_class([c]), resources=pod_resources([c]), etc_files=False)
    run_pod_sandbox(paths, pod)
    try:
        create_container(store, paths, cid, image_ref, req, cid=cid, user=user,
                         log_path=pod_log_path(log_root, pod, req.name))
        start_container(paths, cid, cid)
    except BaseException:
        remove_pod_sandbox(store, paths, cid)
        raise
    return cid


def supervisor_of(paths: Paths, cid: str) -> SupervisorClient:
    """The supervisor of a container started by run_detached."""
    check_id(cid)
    try:
        load_sandbox(paths.run_root, cid)
    except SandboxError:
        raise ContainerError(cid, "no such detached container", NOT_FOUND) from None
    return _client(paths, cid)


def remove_detached(store: ImageStore, paths: Paths, cid: str, grace: float = 10.0) -> ContainerStatus | None:
    """Stop (SIGTERM, grace, SIGKILL) and remove a detached container and its pod; idempotent."""
    final = None
    try:
        final = stop_container(paths, cid, cid, grace)
    except RuntimeFailure as e:
        if e.kind not in (NOT_FOUND, UNAVAILABLE):
            raise
    remove_pod_sandbox(store, paths, cid)
    return final


# ---- after a crash --------------------------------------------------------------------------

CREATING_GRACE_S = 5.0  # a pod dir without its record (written right after the mkdir), younger than this, is being made


@dataclass(frozen=True)
class RuntimeObject:
    """One thing of this instance on the host (`runtime ls`). pods: `supervised` (its
    supervisor serves), `owned` (the process that made it lives: a foreground `runtime run`, or
    a daemon whose pod lost its supervisor), `creating`, or `orphan`; containers: their record's state, or `orphan` when their pod is gone."""
    kind: str  # pod | container
    id: str
    state: str
    pod: str | None = None
    created_at: str | None = None
    detail: str = ""


def list_objects(paths: Paths) -> list[RuntimeObject]:
    """Every pod sandbox and container of this instance, orphans marked."""
    import time
    out, live = [], set()
    for uid in list_pod_sandboxes(paths):
        d = pod_dir(paths, uid)
        try:
            sb = load_sandbox(paths.run_root, uid)
        except (SandboxError, OSError, TypeError, ValueError):
            young = time.time() - os.stat(d).st_mtime < CREATING_GRACE_S if os.path.exists(d) else False
            out.append(RuntimeObject("pod", uid, "creating" if young else "orphan", detail="no sandbox record"))
            if young:
                live.add(uid)
            continue
        sup = supervisor_pid(d)
        if sup is not None:
            state, detail = "supervised", f"supervisor pid {sup}"
        elif sb.owner_alive():
            state, detail = "owned", f"owner pid {sb.owner.split(':')[0]}"
        else:
            state, detail = "orphan", "no supervisor, no owner"
        if state != "orphan":
            live.add(uid)
        out.append(RuntimeObject("pod", uid, state, created_at=sb.created_at, detail=detail))
        recs = records.load_all(d, sup is not None)
        for cid in pod_containers(paths, uid):
            rec = recs.get(cid, {})
            out.append(RuntimeObject("container", cid, rec.get("state", "created") if state != "orphan" else "orphan",
                                     uid, rec.get("created_at"), rec.get("name") or ""))
    d = os.path.join(paths.run_root, "containers")
    known = {o.id for o in out if o.kind == "container"}
    for cid in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if cid not in known:
            out.append(RuntimeObject("container", cid, "orphan", _owner(d, cid), detail="its pod is gone"))
    return out


def remove_orphans(store: ImageStore, paths: Paths) -> list[str]:
    """`runtime gc`: remove every orphan (pods whose supervisor and owner are gone, containers
    whose pod is gone, pod cgroups without a pod), keep the rest; returns what went. Safe to
    interrupt and run again: each step is idempotent."""
    keep = {o.id for o in list_objects(paths) if o.kind == "pod" and o.state != "orphan"}
    return gc(store, paths, keep)


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
        if _owner(d, cid) not in live:
            cg = _container_cgroup_of(d, cid)
            if cg:
                Cgroup(cg).remove_tree()
            remove_bundle(store, paths, cid)
            removed.append(f"container {cid}")
    for uid in _pod_cgroup_uids(paths.cgroup_root):
        if uid not in live:
            remove_sandbox(paths.run_root, uid, paths.cgroup_root)  # its cgroup part: kill, rmdir
            removed.append(f"pod cgroup {uid}")
    return removed


def _config_of(containers_dir: str, cid: str) -> dict:
    try:
        with open(os.path.join(containers_dir, cid, "config.json")) as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _owner(containers_dir: str, cid: str) -> str | None:
    return _config_of(containers_dir, cid).get("annotations", {}).get(SANDBOX_ANNOTATION)


def _container_cgroup_of(containers_dir: str, cid: str) -> str | None:
    return _config_of(containers_dir, cid).get("linux", {}).get("cgroupsPath")


def _pod_cgroup_uids(cgroup_root: str) -> list[str]:
    """Uids of the pod cgroups (`kubepods[/<qos>]/pod<uid>`) in any hierarchy."""
    out = set()
    for base in Cgroup(f"{cgroup_root}/kubepods").dirs():
        for level in (base, f"{base}/burstable", f"{base}/besteffort"):
            if os.path.isdir(level):
                out.update(n[3:] for n in os.listdir(level) if n.startswith("pod"))
    return sorted(out)


__all__ = ["PodConfig", "ContainerStatus", "SandboxStatus", "PodStatus", "PodError", "pod_log_path", "run_pod_sandbox",
           "recover_supervisor", "list_pod_sandboxes", "pod_containers", "pod_status", "events", "remove_pod_sandbox",
           "create_container", "start_container", "container_status", "wait_container", "stop_container",
           "remove_container", "exec_sync", "container_stats", "run_detached", "supervisor_of", "remove_detached",
           "gc", "now_rfc3339", "RuntimeObject", "list_objects", "remove_orphans"]
