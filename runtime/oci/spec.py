"""The OCI runtime spec (pure): generate `config.json` for a container, and parse one strictly.

The generator turns (container request, image config, sandbox) into the document runc executes,
with runc's and containerd's defaults. The parser is what the executor accepts: every field it
cannot carry out is an error naming the field, never silently ignored."""

from __future__ import annotations

from ..errors import RuntimeFailure

import os
import re
from dataclasses import dataclass, field

from ..linux import caps as _caps

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
ANNOTATION_PREFIX = "io.kubernetes.cri."


class SpecError(RuntimeFailure):
    """A config.json field that is malformed or that the executor does not support."""

    def __init__(self, field: str, why: str):
        super().__init__(f"config.json: {field}: {why}")
        self.field = field
        self.why = why


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


def generate(req: ContainerRequest, image_config, rootfs: str, cgroups_path: str, cgroup_version: str,
             uid: int = 0, gid: int = 0, groups: list[int] | None = None, shm: str | None = None,
             nofile_hard: int | None = None, host_devices: list[dict] | None = None) -> dict:
    """config.json for `req` on an image. `uid/gid/groups` are already resolved (see users.py);
    `nofile_hard`: the host's hard NOFILE limit, which the container's may not exceed;
    `host_devices`: the host's device nodes (linux.devices entries), a privileged container's."""
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
    if cgroup_version == "v2" and not req.privileged and "cgroup" not in req.namespaces:
        namespaces.append({"type": "cgroup"})  # containerd CRI: the container sees only its own subtree
    process: dict = {
        "terminal": False,
        "user": {"uid": uid, "gid": gid, **({"additionalGids": sorted(set(groups))} if groups else {})},
        "args": args,
        "env": merge_env(image_config.env, req.env),
        "cwd": req.working_dir or image_config.working_dir or "/",
        "capabilities": {"bounding": capset, "effective": capset, "permitted": capset},
        "noNewPrivileges": no_new_privs,
    }
    if req.oom_score_adj is not None:
        process["oomScoreAdj"] = req.oom_score_adj
    if nofile_hard is not None:
        hard = min(NOFILE[1], nofile_hard)
        process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": min(NOFILE[0], hard), "hard": hard}]
    linux: dict = {"resources": resources, "cgroupsPath": cgroups_path, "namespaces": namespaces}
    if req.privileged and host_devices:
        linux["devices"] = list(host_devices)  # containerd: a privileged container gets the host's devices
    seccomp = seccomp_for(req, capset)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    if not req.privileged:
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
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": req.read_only_rootfs},
        "hostname": req.hostname or req.name,
        "mounts": mounts + list(req.extra_mounts),
        "annotations": {f"{ANNOTATION_PREFIX}container-name": req.name, **req.annotations},
        "linux": linux,
    }


# ---- parsing what the executor accepts --------------------------------------------------------

@dataclass
class Mount:
    destination: str
    type: str
    source: str
    options: list[str]


@dataclass
class Spec:
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    umask: int | None
    caps: dict[str, int]  # bounding/effective/permitted/inheritable/ambient -> mask
    rlimits: list[tuple[str, int, int]]
    no_new_privs: bool
    oom_score_adj: int | None
    root_path: str
    root_readonly: bool
    hostname: str | None
    mounts: list[Mount]
    namespaces: list[tuple[str, str | None]]
    cgroups_path: str | None
    resources: dict
    devices: list[dict]
    masked: list[str]
    readonly: list[str]
    sysctl: dict[str, str]
    propagation: str | None
    annotations: dict
    seccomp: dict | None = None  # validated linux.seccomp (seccomp_profile.validate), None: unconfined


_TOP = {"ociVersion", "process", "root", "hostname", "domainname", "mounts", "annotations", "linux", "hooks"}
_PROCESS = {"terminal", "user", "args", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges",
            "oomScoreAdj", "consoleSize", "apparmorProfile", "selinuxLabel"}
_LINUX = {"namespaces", "resources", "cgroupsPath", "devices", "maskedPaths", "readonlyPaths", "sysctl",
          "rootfsPropagation", "uidMappings", "gidMappings", "seccomp", "mountLabel", "intelRdt", "personality"}
_UNSUPPORTED_LINUX = {"uidMappings": "user namespaces", "gidMappings": "user namespaces", "mountLabel": "SELinux",
                      "intelRdt": "Intel RDT", "personality": "personality"}
RLIMITS = {"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
           "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
           "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"}


def _typed(d: dict, key: str, typ, path: str, default=None):
    v = d.get(key, default)
    if v is default:
        return v
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise SpecError(path, f"must be {getattr(typ, '__name__', typ)}")
    return v


ROOTFS_PROPAGATION = {"private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"}
# runc's validator (libcontainer/configs/validate): the sysctls a namespace isolates
IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced"}
UTS_SYSCTLS = {"kernel.hostname", "kernel.domainname"}
_SYSCTL_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")


def check_sysctl(key: str, value, namespaces: set[str]) -> None:
    """Only namespaced sysctls, each in a namespace of the container's own (never the host's:
    a host-wide key such as kernel.core_pattern is a breakout, security.md 2.8)."""
    where = f"linux.sysctl.{key}"
    if not isinstance(value, str) or any(c in value for c in "\0\n+="):
        raise SpecError(where, "the value must be a string without NUL, newline, '+' or '='")
    if not _SYSCTL_KEY.match(key):
        raise SpecError(where, "not a sysctl name (dot-separated letters, digits, '_' and '-')")
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        need = "ipc"
    elif key.startswith("net."):
        need = "network"
    elif key in UTS_SYSCTLS:
        need = "uts"
    else:
        raise SpecError(where, "not a namespaced sysctl: it would change the host")
    if need not in namespaces:
        raise SpecError(where, f"needs a {need} namespace of the container's (it would change the host's)")


def _check_device(d, where: str) -> None:
    if not isinstance(d, dict) or not isinstance(d.get("path"), str) or not d["path"].startswith("/dev/"):
        raise SpecError(f"{where}.path", "must be a path below /dev")
    if d.get("type") not in ("c", "b", "u", "p"):
        raise SpecError(f"{where}.type", f"{d.get('type')!r}: one of c, b, u, p")
    for k in ("major", "minor", "fileMode", "uid", "gid"):
        x = d.get(k, 0)
        if x is not None and (not isinstance(x, int) or isinstance(x, bool) or x < 0):
            raise SpecError(f"{where}.{k}", f"must be a non-negative integer, not {x!r}")


def _unknown(d: dict, allowed: set, path: str) -> None:
    for k in d:
        if k not in allowed:
            raise SpecError(f"{path}{k}", "not supported by kubelet-py's executor")


def parse(doc: dict) -> Spec:
    if not isinstance(doc, dict):
        raise SpecError("(document)", "must be an object")
    _unknown(doc, _TOP, "")
    if doc.get("hooks"):
        raise SpecError("hooks", "hooks are not run by `runtime run`: use `kubelet-py-oci run`, which runs them")
    v = _typed(doc, "ociVersion", str, "ociVersion")
    if not v or not v.startswith("1."):
        raise SpecError("ociVersion", f"unsupported version {v!r}")
    p = _typed(doc, "process", dict, "process")
    if p is None:
        raise SpecError("process", "missing")
    _unknown(p, _PROCESS, "process.")
    if p.get("terminal"):
        raise SpecError("process.terminal", "a terminal needs a console socket: use `kubelet-py-oci create --console-socket`")
    for k in ("apparmorProfile", "selinuxLabel"):
        if p.get(k):
            raise SpecError(f"process.{k}", "not supported on this host")
    args = _typed(p, "args", list, "process.args")
    if not args or not all(isinstance(a, str) for a in args):
        raise SpecError("process.args", "must be a non-empty list of strings")
    env = _typed(p, "env", list, "process.env", []) or []
    if not all(isinstance(e, str) and "=" in e for e in env):
        raise SpecError("process.env", "must be a list of K=V strings")
    cwd = _typed(p, "cwd", str, "process.cwd")
    if not cwd or not cwd.startswith("/"):
        raise SpecError("process.cwd", "must be an absolute path")
    user = _typed(p, "user", dict, "process.user", {}) or {}
    _unknown(user, {"uid", "gid", "additionalGids", "umask", "username"}, "process.user.")
    ids = []
    for k in ("uid", "gid"):
        x = _typed(user, k, int, f"process.user.{k}", 0)
        if not 0 <= x <= 2**31 - 1:
            raise SpecError(f"process.user.{k}", f"{x} out of range 0..{2**31 - 1}")
        ids.append(x)
    groups = _typed(user, "additionalGids", list, "process.user.additionalGids", []) or []
    if not all(isinstance(g, int) and 0 <= g <= 2**31 - 1 for g in groups):
        raise SpecError("process.user.additionalGids", "must be a list of ids in 0..2^31-1")
    capd = _typed(p, "capabilities", dict, "process.capabilities", {}) or {}
    _unknown(capd, {"bounding", "effective", "permitted", "inheritable", "ambient"}, "process.capabilities.")
    capmasks = {}
    for k in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        names = capd.get(k) or []
        try:
            capmasks[k] = _caps.mask(names)
        except KeyError as e:
            raise SpecError(f"process.capabilities.{k}", f"unknown capability {e.args[0]}") from None
    rlimits = []
    for i, r in enumerate(_typed(p, "rlimits", list, "process.rlimits", []) or []):
        if not isinstance(r, dict) or r.get("type") not in RLIMITS:
            raise SpecError(f"process.rlimits[{i}].type", f"unknown rlimit {r.get('type') if isinstance(r, dict) else r!r}")
        soft, hard = r.get("soft", 0), r.get("hard", 0)
        for k, x in (("soft", soft), ("hard", hard)):
            if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x <= 2**64 - 1:
                raise SpecError(f"process.rlimits[{i}].{k}", f"must be an integer in 0..2^64-1, not {x!r}")
        if soft > hard:
            raise SpecError(f"process.rlimits[{i}].soft", f"{soft} is above the hard limit {hard}")
        rlimits.append((r["type"], soft, hard))
    root = _typed(doc, "root", dict, "root")
    if not root or not isinstance(root.get("path"), str):
        raise SpecError("root.path", "missing")
    mounts = []
    for i, m in enumerate(_typed(doc, "mounts", list, "mounts", []) or []):
        if not isinstance(m, dict) or not isinstance(m.get("destination"), str) or not m["destination"].startswith("/"):
            raise SpecError(f"mounts[{i}].destination", "must be an absolute path")
        _unknown(m, {"destination", "type", "source", "options", "uidMappings", "gidMappings"}, f"mounts[{i}].")
        if m.get("uidMappings") or m.get("gidMappings"):
            raise SpecError(f"mounts[{i}].uidMappings", "idmapped mounts are not supported")
        opts = m.get("options") or []
        typ = m.get("type") or ("bind" if "bind" in opts or "rbind" in opts else "")
        if not typ:
            raise SpecError(f"mounts[{i}].type", "missing (and not a bind mount)")
        mounts.append(Mount(m["destination"], typ, m.get("source") or typ, list(opts)))
    linux = _typed(doc, "linux", dict, "linux", {}) or {}
    _unknown(linux, _LINUX, "linux.")
    for k, why in _UNSUPPORTED_LINUX.items():
        if linux.get(k):
            raise SpecError(f"linux.{k}", f"{why}: not supported by kubelet-py's executor")
    seccomp = None
    if linux.get("seccomp") is not None:
        from . import seccomp_profile as _seccomp
        try:
            seccomp = _seccomp.validate(linux["seccomp"], "linux.seccomp")
        except _seccomp.ProfileError as e:
            raise SpecError(e.field, e.why) from None
    nss = []
    seen = set()
    from ..linux.sys import NAMESPACES
    for i, n in enumerate(linux.get("namespaces") or []):
        t = n.get("type") if isinstance(n, dict) else None
        if t not in NAMESPACES:
            raise SpecError(f"linux.namespaces[{i}].type", f"unknown namespace {t!r}")
        if t == "user":
            raise SpecError(f"linux.namespaces[{i}]", "user namespaces are not supported")
        if t in seen:
            raise SpecError(f"linux.namespaces[{i}]", f"duplicate {t} namespace")
        seen.add(t)
        nss.append((t, n.get("path")))
    if "mount" not in seen:
        raise SpecError("linux.namespaces", "a mount namespace is required (kubelet-py never runs in the host's)")
    if doc.get("domainname"):
        raise SpecError("domainname", "setting the NIS domain name is not supported by kubelet-py's executor")
    propagation = linux.get("rootfsPropagation")
    if propagation is not None and propagation not in ROOTFS_PROPAGATION:
        raise SpecError("linux.rootfsPropagation", f"{propagation!r}: one of {', '.join(sorted(ROOTFS_PROPAGATION))}")
    sysctl = _typed(linux, "sysctl", dict, "linux.sysctl", {}) or {}
    for key, value in sysctl.items():
        check_sysctl(key, value, seen)
    devices = _typed(linux, "devices", list, "linux.devices", []) or []
    for i, d in enumerate(devices):
        _check_device(d, f"linux.devices[{i}]")
    res = linux.get("resources") or {}
    _unknown(res, {"devices", "memory", "cpu", "pids"}, "linux.resources.")
    for k, allowed in (("memory", {"limit", "swap", "reservation", "disableOOMKiller", "swappiness"}),
                       ("cpu", {"shares", "quota", "period"}), ("pids", {"limit"})):
        _unknown(res.get(k) or {}, allowed, f"linux.resources.{k}.")
        for kk, vv in (res.get(k) or {}).items():
            if not isinstance(vv, (int, bool)):
                raise SpecError(f"linux.resources.{k}.{kk}", "must be an integer")
    return Spec(
        args=args, env=env, cwd=cwd, uid=ids[0], gid=ids[1], additional_gids=groups,
        umask=user.get("umask"), caps=capmasks, rlimits=rlimits,
        no_new_privs=bool(p.get("noNewPrivileges")), oom_score_adj=p.get("oomScoreAdj"),
        root_path=root["path"], root_readonly=bool(root.get("readonly")), hostname=doc.get("hostname"),
        mounts=mounts, namespaces=nss, cgroups_path=linux.get("cgroupsPath"), resources=res,
        devices=list(devices), masked=list(linux.get("maskedPaths") or []),
        readonly=list(linux.get("readonlyPaths") or []), sysctl=dict(sysctl),
        propagation=propagation, annotations=dict(doc.get("annotations") or {}),
        seccomp=seccomp,
    )
