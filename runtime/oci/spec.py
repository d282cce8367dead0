"""The OCI runtime spec (pure): parse a `config.json` strictly into what the executor carries
out. Every field it cannot carry out is an error naming the field; what the runtime spec says to
ignore (a property it does not define) is ignored with a warning, never silently.

The executor and the per-pod supervisor import this module (not the generator,
runtime/oci/generate.py): its value types are named tuples, so that neither pays for
dataclasses (which imports inspect: 1.4 MiB of a supervisor's RSS, 14 ms of every OCI call)."""

from __future__ import annotations

from ..errors import INVALID_ARGUMENT, RuntimeFailure

import re
from collections import namedtuple

from ..linux import caps as _caps


class SpecError(RuntimeFailure):
    """A config.json field that is malformed or that the executor does not support:
    INVALID_ARGUMENT, `field` the spec path (`process.rlimits[0].soft`)."""

    kind = INVALID_ARGUMENT

    def __init__(self, field: str, why: str):
        super().__init__(f"config.json: {field}: {why}", field=field)
        self.why = why


# ---- parsing what the executor accepts --------------------------------------------------------

class Mount(namedtuple("Mount", "destination type source options uid_mappings gid_mappings", defaults=((), ()))):
    """One entry of `mounts` (options: the list as given; uid/gid_mappings: an idmapped bind
    mount's, as for a user namespace: the files' ids `containerID` are seen as `hostID`)."""
    __slots__ = ()


ROOTFS_IDMAP = "io.kubelet-py.rootfs-idmap"  # "true": the rootfs seen through the user namespace's maps


class Spec(namedtuple("Spec", "args env cwd uid gid additional_gids umask caps rlimits no_new_privs oom_score_adj root_path root_readonly hostname mounts namespaces cgroups_path resources devices masked readonly sysctl propagation annotations seccomp warnings uid_mappings gid_mappings", defaults=(None, (), (), ()))):
    """What the executor carries out, parsed from config.json by parse(). caps: bounding,
    effective, permitted, inheritable, ambient -> mask; rlimits: (name, soft, hard); namespaces:
    (type, path or None); seccomp: the validated linux.seccomp (seccomp_profile.validate), None:
    unconfined; uid_mappings, gid_mappings: (container id, host id, size) of a new user
    namespace; warnings: what the document asks for that is ignored ("field: why: ignored"),
    for the caller to log. Immutable but for its lists and dicts, which are its own (never the parsed
    document's); the executor changes none of them: a changed value is a new Spec (`_replace`)."""
    __slots__ = ()


# The runtime spec's objects, by what the executor does with each property (runtime spec,
# config.md: "MUST NOT generate an error if they encounter an unknown property. Instead they MUST
# ignore unknown properties"). Per object: (carried out, {defined but not carried out: why}, an
# error when set, {defined and ignored: why}, with a warning). Anything else: not a property of
# the spec, ignored with a warning. Each carried-out property is checked where it is parsed.
_NOT_LINUX = "for another platform"
_PROPS = {
    "": ({"ociVersion", "process", "root", "hostname", "domainname", "mounts", "annotations", "linux", "hooks"},
         {}, {"solaris": _NOT_LINUX, "windows": _NOT_LINUX, "vm": _NOT_LINUX, "zos": _NOT_LINUX,
              "freebsd": _NOT_LINUX}),
    "process": ({"terminal", "user", "args", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges", "oomScoreAdj",
                 "consoleSize", "apparmorProfile", "selinuxLabel"},
                {"scheduler": "scheduling policies (sched_setattr)", "ioPriority": "I/O priorities",
                 "execCPUAffinity": "CPU affinity"},
                {"commandLine": "Windows only"}),
    "process.user": ({"uid", "gid", "additionalGids", "umask"}, {}, {"username": "Windows only"}),
    "process.capabilities": ({"bounding", "effective", "permitted", "inheritable", "ambient"}, {}, {}),
    "mounts[]": ({"destination", "type", "source", "options", "uidMappings", "gidMappings"}, {}, {}),
    "linux": ({"namespaces", "resources", "cgroupsPath", "devices", "maskedPaths", "readonlyPaths", "sysctl",
               "rootfsPropagation", "seccomp", "uidMappings", "gidMappings"},
              {"timeOffsets": "time namespaces",
               "mountLabel": "SELinux", "intelRdt": "Intel RDT", "personality": "personality",
               "netDevices": "network devices", "memoryPolicy": "NUMA memory policies"}, {}),
    "linux.resources": ({"devices", "memory", "cpu", "pids"},
                        {"blockIO": "block I/O limits", "hugepageLimits": "huge page limits",
                         "network": "net_cls/net_prio", "rdma": "RDMA limits", "unified": "cgroup v2 unified keys"},
                        {}),
    "linux.resources.memory": ({"limit", "swap", "reservation", "disableOOMKiller", "swappiness"},
                               {"useHierarchy": "memory.use_hierarchy", "checkBeforeUpdate": "checked updates"},
                               {"kernel": "kernel memory limits are deprecated (none in cgroup v2; runc ignores them)",
                                "kernelTCP": "kernel memory limits are deprecated (none in cgroup v2; runc ignores them)"}),
    "linux.resources.cpu": ({"shares", "quota", "period", "cpus", "mems"},
                            {"burst": "CPU burst", "realtimeRuntime": "real-time scheduling",
                             "realtimePeriod": "real-time scheduling", "idle": "SCHED_IDLE cgroups"}, {}),
    "linux.resources.pids": ({"limit"}, {}, {}),
}
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
_CPU_LIST = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")  # cpuset.cpus/mems: `0-3,6`


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


MAX_ID_MAP_LINES = 340  # the kernel's limit on the lines of a uid_map/gid_map


def id_mappings(v, where: str) -> tuple[tuple[int, int, int], ...]:
    """linux.uidMappings/gidMappings: (containerID, hostID, size) each, ids and sizes in the
    kernel's 32-bit range, container ranges and host ranges each without overlaps (the kernel's
    rules for a map, checked here to name the entry)."""
    if not isinstance(v, list) or not v:
        raise SpecError(where, "must be a non-empty list of {containerID, hostID, size}")
    if len(v) > MAX_ID_MAP_LINES:
        raise SpecError(where, f"{len(v)} entries: the kernel takes at most {MAX_ID_MAP_LINES}")
    out = []
    for i, m in enumerate(v):
        if not isinstance(m, dict):
            raise SpecError(f"{where}[{i}]", "must be an object")
        vals = []
        for k in ("containerID", "hostID", "size"):
            x = m.get(k)
            if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x <= 2**32 - 1:
                raise SpecError(f"{where}[{i}].{k}", f"must be an integer in 0..2^32-1, not {x!r}")
            vals.append(x)
        c, h, n = vals
        if n == 0 or c + n > 2**32 - 1 or h + n > 2**32 - 1:
            raise SpecError(f"{where}[{i}].size", f"{n}: must be at least 1 and keep both ranges below 2^32-1")
        for j, (c2, h2, n2) in enumerate(out):
            if c < c2 + n2 and c2 < c + n:
                raise SpecError(f"{where}[{i}].containerID", f"overlaps {where}[{j}]")
            if h < h2 + n2 and h2 < h + n:
                raise SpecError(f"{where}[{i}].hostID", f"overlaps {where}[{j}]")
        out.append((c, h, n))
    return tuple(out)


def host_id(mappings, cid: int) -> int | None:
    """The host id of container id `cid` under `mappings`; None: unmapped."""
    for c, h, n in mappings:
        if c <= cid < c + n:
            return h + cid - c
    return None


def _check_device(d, where: str) -> None:
    if not isinstance(d, dict) or not isinstance(d.get("path"), str) or not d["path"].startswith("/dev/"):
        raise SpecError(f"{where}.path", "must be a path below /dev")
    if d.get("type") not in ("c", "b", "u", "p"):
        raise SpecError(f"{where}.type", f"{d.get('type')!r}: one of c, b, u, p")
    for k in ("major", "minor", "fileMode", "uid", "gid"):
        x = d.get(k, 0)
        if x is not None and (not isinstance(x, int) or isinstance(x, bool) or x < 0):
            raise SpecError(f"{where}.{k}", f"must be a non-negative integer, not {x!r}")


def _copy(v):
    """A copy of a JSON value (dicts and lists all the way down; `copy` is not imported)."""
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _object(d: dict, key: str, where: str) -> dict:
    """d[key] as an object; missing or null: empty."""
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise SpecError(where, "must be an object")
    return v


def _props(d: dict, kind: str, where: str, warnings: list[str]) -> dict:
    """Check an object's properties (`kind`: a key of _PROPS; `where`: its path). A property
    the executor cannot carry out is an error when set; the ignored ones are warnings. Returns
    the carried-out properties alone."""
    carried, refused, ignored = _PROPS[kind]
    for k, v in d.items():
        field = f"{where}.{k}" if where else k
        if k in carried:
            continue
        if k in refused:
            if v not in (None, False, "", [], {}):  # 0 and empty values ask for nothing
                raise SpecError(field, f"{refused[k]}: not supported by kubelet-py's executor")
            continue
        warnings.append(f"{field}: {ignored.get(k, 'not a property of the runtime spec')}: ignored")
    return {k: v for k, v in d.items() if k in carried}


def parse(doc: dict, host_mounts: bool = False) -> Spec:
    """`host_mounts`: a config without a mount namespace is carried out (the OCI CLI, as runc:
    the container's mounts are then made in the caller's mount namespace); without it, refused
    (the kubelet's containers always have their own)."""
    if not isinstance(doc, dict):
        raise SpecError("(document)", "must be an object")
    warnings: list[str] = []
    _props(doc, "", "", warnings)
    if doc.get("hooks"):
        raise SpecError("hooks", "hooks are not run by `runtime run`: use `kubelet-py-oci run`, which runs them")
    v = _typed(doc, "ociVersion", str, "ociVersion")
    if not v or not v.startswith("1."):
        raise SpecError("ociVersion", f"unsupported version {v!r}")
    p = _typed(doc, "process", dict, "process")
    if p is None:
        raise SpecError("process", "missing")
    _props(p, "process", "process", warnings)
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
    _props(user, "process.user", "process.user", warnings)
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
    _props(capd, "process.capabilities", "process.capabilities", warnings)
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
        _props(m, "mounts[]", f"mounts[{i}]", warnings)
        opts = m.get("options") or []
        typ = m.get("type") or ("bind" if "bind" in opts or "rbind" in opts else "")
        if not typ:
            raise SpecError(f"mounts[{i}].type", "missing (and not a bind mount)")
        maps = ()
        if m.get("uidMappings") or m.get("gidMappings"):
            if typ != "bind" and "bind" not in opts and "rbind" not in opts:
                raise SpecError(f"mounts[{i}].uidMappings", "idmapped mounts are bind mounts (as runc's)")
            maps = tuple(id_mappings(m.get(k), f"mounts[{i}].{k}") for k in ("uidMappings", "gidMappings"))
        mounts.append(Mount(m["destination"], typ, m.get("source") or typ, list(opts), *maps))
    linux = _typed(doc, "linux", dict, "linux", {}) or {}
    _props(linux, "linux", "linux", warnings)
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
        if t in seen:
            raise SpecError(f"linux.namespaces[{i}]", f"duplicate {t} namespace")
        seen.add(t)
        nss.append((t, n.get("path")))
    if "mount" not in seen:
        if not host_mounts:
            raise SpecError("linux.namespaces", "a mount namespace is required (kubelet-py never runs in the host's; "
                            "kubelet-py-oci runs such a config)")
        # what would change the mounts of the caller's namespace beyond the rootfs
        for k in ("maskedPaths", "readonlyPaths"):
            if linux.get(k):
                raise SpecError(f"linux.{k}", "needs a mount namespace (it would change the host's /proc and /sys)")
        if linux.get("rootfsPropagation"):
            raise SpecError("linux.rootfsPropagation", "needs a mount namespace (it would change the propagation "
                            "of the host's /)")
    uid_maps = gid_maps = ()
    user_path = next((p for t, p in nss if t == "user"), "unset")
    if user_path is None:  # a new user namespace: its maps written before the container goes on
        for k in ("uidMappings", "gidMappings"):
            if not linux.get(k):
                raise SpecError(f"linux.{k}", "a new user namespace needs mappings")
        uid_maps = id_mappings(linux["uidMappings"], "linux.uidMappings")
        gid_maps = id_mappings(linux["gidMappings"], "linux.gidMappings")
        for k, maps in (("uidMappings", uid_maps), ("gidMappings", gid_maps)):
            if host_id(maps, 0) is None:  # the init becomes the namespace's root before anything else
                raise SpecError(f"linux.{k}", "must map the container's root (id 0)")
        for k, x, maps in (("uid", ids[0], uid_maps), ("gid", ids[1], gid_maps)):
            if host_id(maps, x) is None:
                raise SpecError(f"process.user.{k}", f"{x} is not mapped in the user namespace")
        for g in groups:
            if host_id(gid_maps, g) is None:
                raise SpecError("process.user.additionalGids", f"{g} is not mapped in the user namespace")
    elif (doc.get("annotations") or {}).get(ROOTFS_IDMAP) == "true":
        raise SpecError(f"annotations.{ROOTFS_IDMAP}", "needs a new user namespace (whose maps the rootfs gets)")
    else:
        for k in ("uidMappings", "gidMappings"):
            if linux.get(k):
                raise SpecError(f"linux.{k}", "mappings need a new user namespace (linux.namespaces: "
                                f"{'one with a path is joined as it is' if user_path != 'unset' else 'none is asked for'})")
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
    res = _props(_object(linux, "resources", "linux.resources"), "linux.resources", "linux.resources", warnings)
    for k in ("memory", "cpu", "pids"):
        where = f"linux.resources.{k}"
        if k not in res:
            continue
        res[k] = _props(_object(res, k, where), where, where, warnings)
        for kk, vv in res[k].items():
            if k == "cpu" and kk in ("cpus", "mems"):
                if not isinstance(vv, str) or (vv and not _CPU_LIST.match(vv)):
                    raise SpecError(f"{where}.{kk}", f"{vv!r}: must be a list such as \"0-3,6\"")
            elif not isinstance(vv, (int, bool)):
                raise SpecError(f"{where}.{kk}", "must be an integer")
    return Spec(  # every list and dict is the Spec's own: nothing of `doc` is shared, or changed
        args=list(args), env=list(env), cwd=cwd, uid=ids[0], gid=ids[1], additional_gids=list(groups),
        umask=user.get("umask"), caps=capmasks, rlimits=rlimits,
        no_new_privs=bool(p.get("noNewPrivileges")), oom_score_adj=p.get("oomScoreAdj"),
        root_path=root["path"], root_readonly=bool(root.get("readonly")), hostname=doc.get("hostname"),
        mounts=mounts, namespaces=nss, cgroups_path=linux.get("cgroupsPath"), resources=_copy(res),
        devices=_copy(devices), masked=list(linux.get("maskedPaths") or []),
        readonly=list(linux.get("readonlyPaths") or []), sysctl=dict(sysctl),
        propagation=propagation, annotations=dict(doc.get("annotations") or {}),
        seccomp=seccomp, warnings=tuple(warnings), uid_mappings=uid_maps, gid_mappings=gid_maps,
    )
