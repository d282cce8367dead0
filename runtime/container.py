"""One container in a fresh sandbox, in the foreground (`kubelet-py runtime run --image`): the
image's rootfs as an overlay, a generated config.json in a bundle dir, the executor, cleanup.
The pod-level API (runtime.pod: pinned sandboxes, the supervisor) builds on these pieces."""

from __future__ import annotations

import dataclasses
import os
import re
import resource
import secrets
import stat
from dataclasses import dataclass

from .atomicfile import write_json_atomic
from .errors import FAILED_PRECONDITION, INVALID_ARGUMENT, RuntimeFailure

from .cgroups import detect
from .image.store import ImageStore
from .oci.execfifo import EXEC_FIFO
from .oci.run import ExitStatus, load_bundle, run
from .oci.generate import ContainerRequest, generate, qos_oom_score_adj
from .linux.paths import open_in_root
from .oci.users import UserError, resolve
from .rootfs import mount_rootfs, remove_rootfs
from .sandbox import Sandbox, create_sandbox, pod_resources, process_token, qos_class, remove_sandbox

VALID_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SANDBOX_ANNOTATION = "io.kubernetes.cri.sandbox-id"  # containerd's name; gc finds a container's pod by it


@dataclass(frozen=True)
class Paths:
    """Where one instance of the runtime keeps its state (every root is a flag)."""
    root: str  # --root: images, container upper dirs
    run_root: str  # --run-root: pods (sandboxes, supervisors), bundles
    cgroup_root: str = "kubelet-py"  # below each cgroup hierarchy's root


class ContainerError(RuntimeFailure):
    def __init__(self, cid: str, why: str, kind: str | None = None, field: str | None = None):
        super().__init__(f"container {cid}: {why}", kind=kind, obj=f"container {cid}", field=field)
        self.container_id = cid


def check_id(cid: str) -> None:
    if not isinstance(cid, str) or not VALID_ID.match(cid):
        raise ContainerError(str(cid), "an id is lowercase letters, digits, . _ - (at most 64)", INVALID_ARGUMENT, "id")


def new_id() -> str:
    return "kpy" + secrets.token_hex(6)


def bundle_for(store: ImageStore, image_ref: str, req: ContainerRequest, paths: Paths, cid: str,
               user: str | None = None, sandbox: Sandbox | None = None) -> str:
    """Mount the rootfs and write the bundle's config.json; returns the bundle dir. `req` is
    not changed: what the sandbox adds goes into a copy. In a sandbox with pod /etc files
    (`files_dir`), the network layer must have written them first (checked)."""
    check_id(cid)
    if sandbox is not None and sandbox.files_dir:
        missing = sandbox.missing_etc_files()
        if missing:
            raise ContainerError(cid, f"pod {sandbox.uid}: its {', '.join(missing)} are not written yet (set up the "
                                 "pod's network first, or make the sandbox with etc_files=False)", FAILED_PRECONDITION)
    image = store.image(image_ref)
    bundle = os.path.join(paths.run_root, "containers", cid)
    state = os.path.join(paths.root, "containers", cid)
    rootfs = os.path.join(bundle, "rootfs")
    try:
        os.makedirs(bundle, mode=0o700, exist_ok=True)
        store.add_lease(cid, [image.record.digest], durable=False)  # the container does not outlive the host
        mount_rootfs(list(image.layer_dirs), state, rootfs, sandbox.rootfs_idmap() if sandbox else None)
        if req.uid is not None:
            # runAsUser replaces the image's user: its group and supplementary groups come from
            # the image's entry for that uid (gid 0 without one), as containerd's WithUserID
            name = str(req.uid) + (f":{req.gid}" if req.gid is not None else "")
        else:
            name = user if user is not None else image.config.user
        u = resolve(rootfs, name, req.supplemental_groups)
        if req.uid is None and req.gid is not None:  # runAsGroup alone: the image's user, that group
            u = type(u)(u.uid, req.gid, tuple(g for g in u.groups if g != req.gid))
        if req.run_as_non_root and u.uid == 0:
            # the kubelet's check (kuberuntime verifyRunAsNonRoot): refuse before anything runs
            raise UserError(user or image.config.user or "0",
                            "runAsNonRoot is set but the container would run as root (uid 0)")
        workdir = req.working_dir or image.config.working_dir or "/"
        rfd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:  # workingDir is created if missing (containerd does), inside the rootfs only
            os.close(open_in_root(rfd, workdir, "dir"))
        finally:
            os.close(rfd)
        if sandbox is not None:
            req = dataclasses.replace(
                req,
                namespaces={**({"pid": None} if sandbox.pid_mode == "container" else {}), "mount": None,
                            **sandbox.namespaces},  # "pod": the pinned one in sandbox.namespaces
                hostname=sandbox.hostname,
                # containerd's mounts of the sandbox's files: read-only with a read-only root
                extra_mounts=[{"destination": dst, "type": "bind", "source": src,
                               "options": ["rbind", "rprivate", "ro" if req.read_only_rootfs else "rw"]}
                              for dst, src in sandbox.etc_files().items()] + list(req.extra_mounts),
                oom_score_adj=req.oom_score_adj if req.oom_score_adj is not None else max(
                    qos_oom_score_adj(sandbox.qos, req.memory_request or req.memory_limit, _node_memory()),
                    _oom_score_adj_floor()))
        cgpath = sandbox.container_cgroup(cid) if sandbox else f"{paths.cgroup_root}/{cid}"
        doc = generate(req, image.config, rootfs, cgpath, detect(), u.uid, u.gid, list(u.groups),
                       shm=_pod_shm(sandbox), nofile_hard=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
                       host_devices=host_devices() if req.privileged else None)
        doc["annotations"]["io.kubernetes.cri.image-name"] = image.record.name
        if sandbox is not None:
            doc["annotations"][SANDBOX_ANNOTATION] = sandbox.uid
        # the run root's state dies with the host (a tmpfs on most): never torn, not fsync'ed
        write_json_atomic(os.path.join(bundle, "config.json"), doc, indent=1, durable=False)
    except BaseException:
        remove_bundle(store, paths, cid)
        raise
    return bundle


_NOT_HOST_DEVICES = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.udev")  # the container has its own


def host_devices(root: str = "/dev") -> list[dict]:
    """The host's character and block devices as OCI linux.devices entries (containerd's
    HostDevices for privileged containers): symlinks are not followed, the container's own
    mounts (/dev/pts, shm, mqueue) and the console are left out."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in _NOT_HOST_DEVICES]
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else None
            if kind is None or path == "/dev/console":
                continue
            out.append({"path": path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return out


def _node_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 1


def _oom_score_adj_floor() -> int:
    """The lowest oom_score_adj a container of ours can be given: any without CAP_SYS_RESOURCE
    (which some hosts' root lacks, this project's CI among them), else only down to our own."""
    with open("/proc/self/status") as f:
        caps = int(next(ln for ln in f if ln.startswith("CapEff:")).split()[1], 16)
    if caps >> 24 & 1:  # CAP_SYS_RESOURCE
        return -1000
    with open("/proc/self/oom_score_adj") as f:
        return int(f.read())


def _pod_shm(sandbox: Sandbox | None) -> str | None:
    """The pod's /dev/shm; the host's with hostIPC (as containerd binds it); None: the container's own."""
    if sandbox is None:
        return None
    return sandbox.shm or ("/dev/shm" if "ipc" not in sandbox.namespaces else None)


def remove_bundle(store: ImageStore, paths: Paths, cid: str) -> None:
    """Unmount and delete a container's rootfs, upper dir and bundle, and drop its image
    lease; idempotent. (Its supervisor's record is the supervisor's: runtime.pod removes both.)"""
    bundle = os.path.join(paths.run_root, "containers", cid)
    remove_rootfs(os.path.join(paths.root, "containers", cid), os.path.join(bundle, "rootfs"))
    for name in ("config.json", EXEC_FIFO):  # the fifo of a prepared init that never started
        try:
            os.unlink(os.path.join(bundle, name))
        except FileNotFoundError:
            pass
    if os.path.isdir(bundle):
        os.rmdir(bundle)
    store.remove_lease(cid)


def run_image(store: ImageStore, image_ref: str, req: ContainerRequest, paths: Paths,
              user: str | None = None, cid: str | None = None, sandbox: Sandbox | None = None) -> ExitStatus:
    """Run one container to its end; in `sandbox`, or in a fresh one removed afterwards."""
    cid = cid or new_id()
    own = sandbox is None
    if own:
        c = {"cpu_request": req.cpu_request_milli, "cpu_limit": req.cpu_limit_milli,
             "memory_limit": req.memory_limit, "memory_request": req.memory_limit}
        sandbox = create_sandbox(paths.run_root, cid, req.hostname or req.name, cgroup_root=paths.cgroup_root,
                                 qos=qos_class([c]), resources=pod_resources([c]), etc_files=False,
                                 owner=process_token(os.getpid()))
    try:
        bundle = bundle_for(store, image_ref, req, paths, cid, user, sandbox)
        try:
            spec, rootfs = load_bundle(bundle)
            return run(spec, rootfs, cid, paths.cgroup_root)
        finally:
            remove_bundle(store, paths, cid)
    finally:
        if own:
            remove_sandbox(paths.run_root, cid, paths.cgroup_root)
