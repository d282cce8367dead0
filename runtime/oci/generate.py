"""Generating the OCI runtime spec (pure): turn (container request, image config, sandbox) into
the `config.json` runc executes, with runc's and containerd's defaults. The daemon side of the
contract; the executor's side is runtime/oci/spec.py (the strict parser)."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

from ..linux import caps as _caps
from .spec import ROOTFS_IDMAP, SpecError

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
ANNOTATION_PREFIX = "io.kubernetes.cri."


def default_mounts(cgroup_version: str) -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup2" if cgroup_version == "v2" else "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


@dataclass
class ContainerRequest:
    """What the kubelet layer (or `runtime run`) asks for, in Kubernetes terms."""
    name: str
    command: list[str] | None = None  # Kubernetes `command` (replaces Entrypoint)
    args: list[str] | None = None  # Kubernetes `args` (replaces Cmd)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    uid: int | None = None
    gid: int | None = None
    supplemental_groups: list[int] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    allow_privilege_escalation: bool | None = None
    read_only_rootfs: bool = False
    run_as_non_root: bool = False
    memory_limit: int | None = None
    memory_request: int | None = None  # only for the Burstable oom_score_adj; the limit when unset
    cpu_request_milli: int | None = None
    cpu_limit_milli: int | None = None
    pids_limit: int | None = None
    oom_score_adj: int | None = None
    hostname: str = ""
    namespaces: dict[str, str | None] = field(default_factory=lambda: {
        "pid": None, "ipc": None, "uts": None, "mount": None, "network": None})  # type -> pinned path or None (new)
    extra_mounts: list[dict] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    # seccompProfile: "Unconfined" (Kubernetes' default), "RuntimeDefault" (containerd's
    # profile) or "Localhost/<absolute path>" (a profile file, as the kubelet hands it to the CRI)
    seccomp: str = "Unconfined"
    # pod.spec.hostUsers: False gives the container a user namespace whose root is the first id
    # of `user_ids` (first host id, count: the pod's range, which the kubelet allocates, 65536
    # ids at a multiple of 65536 as upstream's), the rootfs and the bind mounts idmapped to it
    host_users: bool = True
    user_ids: tuple[int, int] | None = None
    proc_mount: str = "Default"  # securityContext.procMount: "Unmasked" clears masked and read-only paths
    sysctls: dict[str, str] = field(default_factory=dict)  # linux.sysctl (the pod's; namespaced keys only)


def resolve_args(command, args, entrypoint, cmd) -> list[str]:
    """Kubernetes' four combinations of command/args with the image's Entrypoint/Cmd."""
    if command:
        return list(command) + list(args or [])
    if args:
        return list(entrypoint) + list(args)
    return list(entrypoint) + list(cmd)


def merge_env(image_env, env: dict[str, str]) -> list[str]:
    out: dict[str, str] = {}
    for kv in image_env:
        k, _, v = kv.partition("=")
        out[k] = v
    out.update(env)
    if "PATH" not in out:
        out["PATH"] = DEFAULT_PATH.split("=", 1)[1]
    return [f"{k}={v}" for k, v in out.items()]


NOFILE = (1024, 524288)  # security.md 2.7: set, never inherited from the daemon (hard: at most the host's)


def qos_oom_score_adj(qos: str, memory_request: int | None, node_memory: int) -> int:
    """The kubelet's oom_score_adj for a container (pkg/kubelet/qos/policy.go)."""
    if qos == "guaranteed":
        return -997
    if qos == "besteffort":
        return 1000
    adj = 1000 - (1000 * (memory_request or 0)) // max(node_memory, 1)
    if adj < 3:  # 1000 + guaranteed's -997: a Burstable container always ranks above those
        return 3
    return 999 if adj == 1000 else adj  # never BestEffort's score


def milli_to_shares(milli: int | None) -> int:
    if not milli:
        return 2
    return max(2, min(262144, milli * 1024 // 1000))


def seccomp_for(req: ContainerRequest, capset: list[str]) -> dict | None:
    """The `linux.seccomp` object for a request, or None for Unconfined. Privileged containers
    are always unconfined (containerd's CRI sets no profile for them, whatever was asked). The
    default profile depends on the bounding set (`capset`), as containerd's does."""
    from . import seccomp_profile as _seccomp  # its tables only where a profile is in play
    kind, path = _seccomp.parse_request(req.seccomp)
    if req.privileged or kind == "Unconfined":
        return None
    if kind == "RuntimeDefault":
        return _seccomp.default_profile(capset, os.uname().machine)
    return _seccomp.load_localhost(path, capset)


def user_namespace(req: ContainerRequest, uid: int, gid: int, groups: list[int] | None) -> list[dict] | None:
    """linux.uidMappings (= gidMappings) of a hostUsers: false container, None for hostUsers:
    true. Kubernetes' rules: not with privileged, nor with the host's network, pid or ipc
    namespace (the pod's own are joined); the ids the process runs as must be in the range."""
    if req.host_users:
        return None
    if not req.user_ids:
        raise SpecError("hostUsers", "false needs the pod's id range (user_ids: first host id, count)")
    first, count = req.user_ids
    if not (isinstance(first, int) and isinstance(count, int) and 0 < first and 0 < count <= 2**32 - 1 - first):
        raise SpecError("hostUsers", f"user_ids {req.user_ids!r}: a range of host ids above 0")
    if req.privileged:
        raise SpecError("securityContext.privileged", "a privileged container needs hostUsers: true")
    for t in ("network", "pid", "ipc"):
        if t not in req.namespaces:
            raise SpecError("hostUsers", f"false cannot share the host's {t} namespace")
    for what, x in (("runAsUser", uid), ("runAsGroup", gid), *(("supplementalGroups", g) for g in groups or ())):
        if not 0 <= x < count:
            raise SpecError(f"securityContext.{what}", f"{x} is outside the pod's user namespace (0..{count - 1})")
    return [{"containerID": 0, "hostID": first, "size": count}]


# containerd's CRI (WithMounts) for a bind mount's propagation option: the propagation its
# source's mount must have (ensureShared, ensureSharedOrSlave: mountinfo's optional fields), and
# what it makes linux.rootfsPropagation (rshared wins over rslave)
SOURCE_PROPAGATION = {"rshared": (("shared:",), "a shared mount"),
                      "rslave": (("shared:", "master:"), "a shared or slave mount")}


def _is_bind(m: dict) -> bool:
    return m.get("type") == "bind" or bool({"bind", "rbind"} & set(m.get("options") or ()))


def mount_propagation(mounts: list[dict], first: int, mountinfo: str, realpath=os.path.realpath) -> str | None:
    """linux.rootfsPropagation for these bind `mounts` as containerd's CRI sets it: "rshared"
    when one is rshared (Bidirectional), else "rslave" when one is rslave (HostToContainer),
    else None (the runtime's default). Each such mount's source (symlinks resolved by
    `realpath`, as containerd resolves them) must be on a mount that can propagate, according to
    `mountinfo` (the text of /proc/self/mountinfo where the sources are): shared for rshared,
    shared or slave for rslave, else a SpecError naming the mount (`mounts[first + i]`) with
    containerd's message. Pure but for `realpath`."""
    from .mounts import parent_mount  # its pure part: which mount holds a path
    root = None
    for i, m in enumerate(mounts):
        opts = m.get("options") or ()
        prop = "rshared" if "rshared" in opts else "rslave" if "rslave" in opts else None
        if prop is None or not _is_bind(m):
            continue
        src = realpath(m.get("source") or "")
        point, tags = parent_mount(mountinfo, src)
        need, what = SOURCE_PROPAGATION[prop]
        if not any(t.startswith(need) for t in tags):
            raise SpecError(f"mounts[{first + i}]", f"{m.get('destination')} ({prop}): path \"{src}\" is mounted on "
                            f"\"{point}\" but it is not {what}")
        root = "rshared" if prop == "rshared" or root == "rshared" else "rslave"
    return root


def generate(req: ContainerRequest, image_config, rootfs: str, cgroups_path: str, cgroup_version: str,
             uid: int = 0, gid: int = 0, groups: list[int] | None = None, shm: str | None = None,
             nofile_hard: int | None = None, host_devices: list[dict] | None = None,
             mountinfo: str | None = None) -> dict:
    """config.json for `req` on an image. `uid/gid/groups` are already resolved (see users.py);
    `nofile_hard`: the host's hard NOFILE limit, which the container's may not exceed;
    `host_devices`: the host's device nodes (linux.devices entries), a privileged container's;
    `mountinfo`: the text of /proc/self/mountinfo, where the bind mounts' sources are looked up
    when one asks for propagation (read here when None and needed)."""
    args = resolve_args(req.command, req.args, image_config.entrypoint, image_config.cmd)
    if not args:
        raise SpecError("process.args", "no command: the image has no Entrypoint/Cmd and none was given")
    if req.privileged:
        capset = _caps.host_bounding()
    else:
        # drops first, then adds, so that `drop: [ALL], add: [X]` gives X (as containerd's CRI)
        drops = {_caps.normalise(c) for c in req.cap_drop}
        capset = [] if "CAP_ALL" in drops else [c for c in _caps.DEFAULT if c not in drops]
        for c in req.cap_add:
            n = _caps.normalise(c)
            if n == "CAP_ALL":
                capset = _caps.host_bounding()
            elif n not in _caps.NUMBER:
                raise SpecError("process.capabilities", f"unknown capability {c!r}")
            elif n not in capset:
                capset.append(n)
    no_new_privs = req.allow_privilege_escalation is False
    # deny all, then (containerd's WithDefaultUnixDevices) the console; the executor adds runc's
    # default allowlist right after the deny, as runc does
    resources: dict = {"devices": [{"allow": False, "access": "rwm"},
                                   {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"}]
                       if not req.privileged else [{"allow": True, "access": "rwm"}]}
    cpu: dict = {"shares": milli_to_shares(req.cpu_request_milli or req.cpu_limit_milli)}
    if req.cpu_limit_milli:
        cpu["quota"] = max(1000, req.cpu_limit_milli * 100)
        cpu["period"] = 100000
    resources["cpu"] = cpu
    if req.memory_limit:
        resources["memory"] = {"limit": req.memory_limit, "swap": req.memory_limit}
    if req.pids_limit:
        resources["pids"] = {"limit": req.pids_limit}
    namespaces = [{"type": t, **({"path": p} if p else {})} for t, p in req.namespaces.items()]
    userns = user_namespace(req, uid, gid, groups)
    if cgroup_version == "v2" and not req.privileged and "cgroup" not in req.namespaces:
        namespaces.append({"type": "cgroup"})  # containerd CRI: the container sees only its own subtree
    process: dict = {
        "terminal": False,
        # the primary gid first among the additional ones, as containerd's ensureAdditionalGids
        # (so `id` inside lists it in groups=, as under Kubernetes)
        "user": {"uid": uid, "gid": gid, "additionalGids": [gid] + sorted(set(groups or ()) - {gid})},
        "args": args,
        "env": merge_env(image_config.env, req.env),
        "cwd": req.working_dir or image_config.working_dir or "/",
        "capabilities": {"bounding": list(capset), "effective": list(capset), "permitted": list(capset)},
        "noNewPrivileges": no_new_privs,
    }
    if req.oom_score_adj is not None:
        process["oomScoreAdj"] = req.oom_score_adj
    if nofile_hard is not None:
        hard = min(NOFILE[1], nofile_hard)
        process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": min(NOFILE[0], hard), "hard": hard}]
    linux: dict = {"resources": resources, "cgroupsPath": cgroups_path, "namespaces": namespaces}
    extra_mounts = copy.deepcopy(req.extra_mounts)  # the document shares nothing with `req`
    annotations = {f"{ANNOTATION_PREFIX}container-name": req.name, **req.annotations}
    if userns is not None and not req.namespaces.get("user"):
        namespaces.append({"type": "user"})
        linux["uidMappings"], linux["gidMappings"] = userns, copy.deepcopy(userns)
        annotations[ROOTFS_IDMAP] = "true"
    if userns is not None:  # (a pod's pinned user namespace is joined as it is, its rootfs mapped per layer)
        for m in extra_mounts:  # volumes and the pod's files: their root is the namespace's
            if m.get("type") == "bind" or {"bind", "rbind"} & set(m.get("options") or ()):
                m["uidMappings"], m["gidMappings"] = copy.deepcopy(userns), copy.deepcopy(userns)
    if req.privileged and host_devices:
        linux["devices"] = copy.deepcopy(host_devices)  # containerd: a privileged container gets the host's devices
    seccomp = seccomp_for(req, capset)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    if req.sysctls:
        linux["sysctl"] = dict(req.sysctls)
    if not req.privileged and req.proc_mount != "Unmasked":
        linux["maskedPaths"] = list(MASKED)
        linux["readonlyPaths"] = list(READONLY)
    mounts = default_mounts(cgroup_version)
    if shm:  # the pod's one /dev/shm, shared by its containers
        mounts = [m if m["destination"] != "/dev/shm" else
                  {"destination": "/dev/shm", "type": "bind", "source": shm, "options": ["rbind", "nosuid", "nodev", "noexec"]}
                  for m in mounts]
    if req.privileged:
        for m in mounts:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    if mountinfo is None and any({"rshared", "rslave"} & set(m.get("options") or ()) for m in extra_mounts):
        with open("/proc/self/mountinfo") as f:  # the sources' namespace: the caller's
            mountinfo = f.read()
    root_propagation = mount_propagation(extra_mounts, len(mounts), mountinfo) if mountinfo is not None else None
    if root_propagation and "mount" in req.namespaces:
        linux["rootfsPropagation"] = root_propagation
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": req.read_only_rootfs},
        "hostname": req.hostname or req.name,
        "mounts": mounts + extra_mounts,
        "annotations": annotations,
        "linux": linux,
    }


