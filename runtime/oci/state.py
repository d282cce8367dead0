"""The OCI command line's pure core: container ids, the recorded state, its status, signals,
log lines and the features document. No syscalls here (the edge is `runtime.oci.cli`).

The state of a container is a small JSON file in its own directory under the CLI's --root; the
status is derived from facts the edge gathers (is the init alive, with the same start time; is
the exec fifo still there), the way runc derives it: a container whose init is gone is
`stopped`, whatever the file says."""

from __future__ import annotations

import re

OCI_VERSION = "1.1.0"  # the runtime-spec version of the state document and features
VERSION = "0.1.0"
_ID = re.compile(r"^[\w+\-.]+$", re.ASCII)  # runc's idRegex (Go: ASCII \w)
MAX_ID = 1024


class OciError(Exception):
    """An error of an OCI CLI operation: names the container (`obj`) and, where a document was at
    fault, the field; printed as one line."""

    def __init__(self, msg: str, obj: str | None = None, field: str | None = None):
        super().__init__(msg)
        self.msg, self.obj, self.field = msg, obj, field

    def line(self) -> str:
        where = f"{self.obj}: " if self.obj else ""
        fld = f"{self.field}: " if self.field else ""
        return f"{where}{fld}{self.msg}"


def validate_id(cid: str) -> str:
    """runc's rule: letters, digits, `_ + - .`; not `.` or `..`; the id names a directory."""
    if not cid or not _ID.match(cid) or cid in (".", "..") or len(cid) > MAX_ID:
        raise OciError(f"invalid container id {cid!r} (allowed: letters, digits, _+-. ; not . or ..)", field="id")
    return cid


class Recorded:
    """What `create` writes: enough to find, signal and remove the container again. (A plain
    class: `dataclasses` costs the CLI's lean verbs ~20 ms of imports.)

    cgroup: path below each hierarchy's root; start_time: field 22 of /proc/<pid>/stat, which
    tells a reused pid from our init; created: RFC 3339; hooks: the startContainer, poststart and
    poststop hooks of config.json, run by later verbs; rootfs and host_mounts: for a config
    without a mount namespace, the ids of the mounts the container made at its rootfs in the
    caller's mount namespace, which delete detaches."""
    FIELDS = ("id", "pid", "bundle", "cgroup", "start_time", "created", "annotations", "hooks", "owner", "rootfs",
              "host_mounts")
    REQUIRED = 6

    def __init__(self, id: str, pid: int, bundle: str, cgroup: str, start_time: int, created: str,
                 annotations: dict | None = None, hooks: dict | None = None, owner: str = "", rootfs: str = "",
                 host_mounts: list | None = None):
        self.id, self.pid, self.bundle, self.cgroup = id, pid, bundle, cgroup
        self.start_time, self.created = start_time, created
        self.annotations, self.hooks, self.owner = dict(annotations or {}), dict(hooks or {}), owner
        self.rootfs, self.host_mounts = rootfs, list(host_mounts or [])

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.FIELDS}

    @classmethod
    def from_json(cls, doc) -> "Recorded":
        if not isinstance(doc, dict) or any(k not in doc for k in cls.FIELDS[:cls.REQUIRED]):
            raise OciError("corrupt state file")
        return cls(**{k: doc[k] for k in cls.FIELDS if k in doc})

    def __eq__(self, other) -> bool:
        return isinstance(other, Recorded) and self.to_json() == other.to_json()


def status_of(alive: bool, fifo_present: bool) -> str:
    """created: the init waits on the exec fifo; running: it has exec'd; stopped: it is gone."""
    if not alive:
        return "stopped"
    return "created" if fifo_present else "running"


def state_doc(rec: Recorded, status: str) -> dict:
    """The runtime spec's state (runtime.md "State"), plus runc's extra fields."""
    return {"ociVersion": OCI_VERSION, "id": rec.id, "status": status,
            "pid": rec.pid if status != "stopped" else 0, "bundle": rec.bundle,
            "rootfs": "", "created": rec.created, "owner": rec.owner, "annotations": dict(rec.annotations)}


def hook_state(rec_id: str, pid: int, bundle: str, status: str, annotations: dict) -> dict:
    """What every hook gets on stdin (the spec's state of the container at that point)."""
    return {"ociVersion": OCI_VERSION, "id": rec_id, "status": status, "pid": pid, "bundle": bundle,
            "annotations": dict(annotations)}


HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def parse_hooks(doc) -> dict:
    """config.json `hooks`, checked: {name: [{path, args, env, timeout}]}; errors name the field."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise OciError("must be an object", field="hooks")
    out = {}
    for name, hooks in doc.items():
        if name not in HOOK_NAMES:
            raise OciError(f"unknown hook point (known: {', '.join(HOOK_NAMES)})", field=f"hooks.{name}")
        if not isinstance(hooks, list):
            raise OciError("must be a list", field=f"hooks.{name}")
        lst = []
        for i, h in enumerate(hooks):
            f = f"hooks.{name}[{i}]"
            if not isinstance(h, dict) or not isinstance(h.get("path"), str) or not h["path"].startswith("/"):
                raise OciError("path must be an absolute path", field=f"{f}.path")
            args = h.get("args") or [h["path"]]
            env = h.get("env") or []
            if not all(isinstance(a, str) for a in args):
                raise OciError("must be a list of strings", field=f"{f}.args")
            if not all(isinstance(e, str) and "=" in e for e in env):
                raise OciError("must be a list of K=V strings", field=f"{f}.env")
            t = h.get("timeout")
            if t is not None and (not isinstance(t, int) or isinstance(t, bool) or t <= 0):
                raise OciError("must be a positive integer (seconds)", field=f"{f}.timeout")
            lst.append({"path": h["path"], "args": list(args), "env": list(env), "timeout": t})
        if lst:
            out[name] = lst
    return out


_SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
            "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
            "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
            "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
            "POLL": 29, "PWR": 30, "SYS": 31}


def parse_signal(s: str) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill`, `RTMIN+3` (as runc's kill accepts them)."""
    t = s.strip().upper()
    if t.isdigit():
        n = int(t)
        if 1 <= n <= 64:
            return n
        raise OciError(f"invalid signal {s!r}", field="signal")
    if t.startswith("SIG"):
        t = t[3:]
    if t in _SIGNALS:
        return _SIGNALS[t]
    m = re.fullmatch(r"RTMIN(?:\+(\d+))?|RTMAX(?:-(\d+))?", t)
    if m:
        n = 34 + int(m.group(1) or 0) if t.startswith("RTMIN") else 64 - int(m.group(2) or 0)
        if 34 <= n <= 64:
            return n
    raise OciError(f"invalid signal {s!r}", field="signal")


def log_line(fmt: str, level: str, msg: str, when: str) -> str:
    """One line of --log: runc's logrus formats (json for conmon and the containerd shim)."""
    if fmt == "json":
        import json
        return json.dumps({"level": level, "msg": msg, "time": when}) + "\n"
    q = msg.replace("\\", "\\\\").replace('"', '\\"')
    return f'time="{when}" level={level} msg="{q}"\n'


def features(namespaces, caps, mount_options, seccomp_actions, seccomp_archs) -> dict:
    """The runtime spec's features document (features.md): what this runtime understands."""
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": sorted(mount_options),
        "linux": {
            "namespaces": sorted(namespaces),
            "capabilities": sorted(caps),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {"enabled": True, "actions": sorted(seccomp_actions), "operators": [
                "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                "SCMP_CMP_MASKED_EQ"], "archs": sorted(seccomp_archs)},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"io.github.kubelet-py.version": VERSION},
    }
