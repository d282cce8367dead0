"""A recording double of the runtime's kernel edge, for unit tests of the sandbox and container
orchestration in sandbox.py, rootfs.py and container.py (no root): what youki's TestHelperSyscall
is to its rootfs code, and netns/fake.py to netns/network.py.

FakeKernel holds an in-memory world: namespaces (the host's, and each new one while a thread is
in it or a bind mount pins it), the mount table, the cgroup tree, and image leases. It stands in
for the module attributes those files call: `ksys` (mount, umount2, sethostname; its constants
stay the real ones, its other functions are refused), `in_own_thread`, `lo_up`, `write_sysctl`,
`ismount`, `Cgroup`, `detect`, `kill_supervisor`, and it wraps `write_json_atomic`. Files and
directories stay real (under the test's temp dir): they need no root. A thread of
`in_own_thread` is a real thread whose CLONE_FS is really unshared (unprivileged: the overlay is
mounted from its own cwd, as the real one does); its namespace flags only make namespaces of the
fake world. An overlay or tmpfs mount copies its merged layers into the mount point (whiteouts
are not modelled) and an unmount empties it again; nothing may be mounted on a non-empty dir.

Each call records a Call (name, arguments, whether it changed the world) before it acts.
`fail(name, nth=N)` makes the Nth next call of that name raise before it acts; `watch(path)`
notes in each Call whether the path existed then; `pod_objects` and `container_objects` list
what a pod or a container owns. FakeStore is the image store's double (images, leases), sharing
the kernel's record. Unit tests only: never used by the package itself."""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from typing import Iterator

from .cgroups import CgroupError, Resources
from .image.errors import ImageError, NotFound
from .image.manifest import Descriptor, ImageConfig, Manifest
from .image.store import Image, ImageRecord, _LEASE_NAME
from .linux import sys as real_ksys
from .threadns import CLONE_FS, in_own_thread as real_in_own_thread

NS_FLAGS = {real_ksys.CLONE_NEWNET: "net", real_ksys.CLONE_NEWIPC: "ipc", real_ksys.CLONE_NEWUTS: "uts",
            real_ksys.CLONE_NEWNS: "mnt", real_ksys.CLONE_NEWPID: "pid", real_ksys.CLONE_NEWUSER: "user",
            real_ksys.CLONE_NEWCGROUP: "cgroup"}
_NS_PATH = re.compile(r"^/proc/self/task/(\d+)/ns/(\w+)$")
HOST_HOSTNAME = "host"
# module -> the attributes the double stands in for
EDGES = {
    "runtime.sandbox": ("ksys", "in_own_thread", "lo_up", "write_sysctl", "ismount", "Cgroup", "write_json_atomic"),
    "runtime.rootfs": ("ksys", "in_own_thread", "ismount"),
    "runtime.container": ("write_json_atomic", "detect"),
    "runtime.supervisor.launch": ("kill_supervisor",),
}


@dataclass
class Call:
    name: str                 # "ksys.mount", "cgroup.create", "store.add_lease", ...
    args: tuple = ()
    changed: bool = False     # set after the call: did it change the world?
    seen: frozenset = frozenset()  # the watched paths that existed when it was made

    def __repr__(self) -> str:
        return f"{self.name}{'*' if self.changed else ''}"


@dataclass
class Namespace:
    id: int
    kind: str                 # net ipc uts mnt pid user cgroup
    hostname: str | None = None                            # uts
    lo_up: bool = False                                    # net
    sysctls: dict[str, str] = field(default_factory=dict)  # net


@dataclass
class Mount:
    source: str | None
    target: str
    fstype: str | None
    flags: int
    data: str | None
    ns: int | None = None     # the namespace a bind of /proc/.../ns/<kind> pins


@dataclass
class World:
    namespaces: dict[int, Namespace] = field(default_factory=dict)  # alive ones, the host's included
    host: dict[str, int] = field(default_factory=dict)              # kind -> the host's namespace
    mounts: list[Mount] = field(default_factory=list)               # in mount order
    cgroups: dict[str, Resources | None] = field(default_factory=dict)  # path -> the last resources applied
    cgroup_version: str = "v2"
    leases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # holder -> image digests
    sysctls: dict[str, str] = field(default_factory=dict)           # not per network namespace


class FakeKernel:
    def __init__(self, root: str):
        """`root`: a temp dir of the test, where FakeStore keeps its layers."""
        self.root = root
        self.world = World()
        self.calls: list[Call] = []
        self._failures: dict[str, list] = {}
        self._watch: list[str] = []
        self._threads: dict[int, dict[str, int]] = {}   # native thread id -> kind -> namespace it unshared
        self._next_ns = 1
        for kind in NS_FLAGS.values():
            ns = self._new_ns(kind)
            self.world.host[kind] = ns.id
        self.world.namespaces[self.world.host["uts"]].hostname = HOST_HOSTNAME
        self.ksys = _Ksys(self)
        self.Cgroup = _cgroup_class(self)
        self.store = FakeStore(self, os.path.join(root, "fake-store"))

    # ---- test controls ----------------------------------------------------------------------------

    def fail(self, name: str, exc: BaseException | None = None, nth: int = 1) -> None:
        """The `nth` next call of `name` raises `exc` before acting (default: what the real edge
        raises for a refusal: OSError EIO, CgroupError, ImageError)."""
        if exc is None:
            if name.startswith("cgroup."):
                exc = CgroupError("fake", f"{name}: injected failure")
            elif name.startswith("store."):
                exc = ImageError(f"{name}: injected failure")
            else:
                exc = OSError(errno.EIO, f"{name}: injected failure")
        self._failures.setdefault(name, []).append([nth, exc])

    def watch(self, path: str) -> None:
        """Each Call from now on notes in `seen` whether `path` exists when it is made."""
        self._watch.append(path)

    @contextlib.contextmanager
    def installed(self) -> Iterator["FakeKernel"]:
        """Put the double in place of the edge attributes of every module in EDGES."""
        import importlib
        saved = []
        for modname, attrs in EDGES.items():
            mod = importlib.import_module(modname)
            for attr in attrs:
                saved.append((mod, attr, getattr(mod, attr)))
        try:
            for mod, attr, real in saved:
                if attr == "write_json_atomic":
                    setattr(mod, attr, self._writer(real))
                else:
                    setattr(mod, attr, getattr(self, attr))
            yield self
        finally:
            for mod, attr, real in saved:
                setattr(mod, attr, real)

    def names(self, changed_only: bool = False) -> list[str]:
        return [c.name for c in self.calls if c.changed or not changed_only]

    def snapshot(self) -> World:
        return copy.deepcopy(self.world)

    def pod_objects(self, run_root: str, pod_uid: str) -> dict:
        """What belongs to pod `pod_uid`: its dir's files, the mounts and namespaces pinned
        below it, its cgroups (`pod<uid>` and below, in any QoS class)."""
        d = os.path.join(run_root, "pods", pod_uid)
        mounts = self._mounts_below(d)
        return {
            "files": _tree(d),
            "mounts": [(os.path.relpath(m.target, d), m.fstype) for m in mounts],
            "namespaces": sorted(self.world.namespaces[m.ns].kind for m in mounts if m.ns in self.world.namespaces),
            "cgroups": sorted(p for p in self.world.cgroups if f"pod{pod_uid}" in p.split("/")),
        }

    def container_objects(self, paths, cid: str) -> dict:
        """What belongs to container `cid` (runtime.container.Paths): its bundle and state dirs'
        files, the mounts below them, its image lease."""
        bundle = os.path.join(paths.run_root, "containers", cid)
        state = os.path.join(paths.root, "containers", cid)
        mounts = self._mounts_below(bundle) + self._mounts_below(state)
        return {"bundle": _tree(bundle), "state": _tree(state), "mounts": [(m.target, m.fstype) for m in mounts],
                "lease": self.world.leases.get(cid)}

    def alive_namespaces(self) -> list[Namespace]:
        """The namespaces that are not the host's (each pinned, or a thread of in_own_thread's)."""
        host = set(self.world.host.values())
        return [ns for i, ns in sorted(self.world.namespaces.items()) if i not in host]

    def host_namespace(self, kind: str) -> Namespace:
        return self.world.namespaces[self.world.host[kind]]

    # ---- the edge: runtime.threadns, runtime.linux.net, sandbox.write_sysctl, os.path.ismount -----

    def in_own_thread(self, fn, unshare_flags: int = 0):
        """A real thread (CLONE_FS really unshared: it needs no privilege), namespaces of the
        fake world for the other flags; they end with it unless a mount pins them."""
        def body():
            tid = threading.get_native_id()
            made: dict[str, int] = {}
            self._threads[tid] = made
            try:
                if unshare_flags:
                    c = self._call("ksys.unshare", unshare_flags)
                    for flag, kind in NS_FLAGS.items():
                        if unshare_flags & flag:
                            made[kind] = self._new_ns(kind).id
                    c.changed = bool(made)
                return fn()
            finally:
                del self._threads[tid]
                self._drop_unpinned()
        return real_in_own_thread(body, unshare_flags & CLONE_FS)

    def lo_up(self) -> None:
        c = self._call("net.lo_up")
        ns = self._current("net")
        c.changed, ns.lo_up = not ns.lo_up, True

    def write_sysctl(self, key: str, value: str) -> None:
        c = self._call("sysctl.write", key, value)
        table = self._current("net").sysctls if key.startswith("net.") else self.world.sysctls
        c.changed, table[key] = table.get(key) != value, value

    def ismount(self, path) -> bool:
        """A query, not recorded."""
        p = _norm(path)
        return any(m.target == p for m in self.world.mounts)

    def detect(self) -> str:
        return self.world.cgroup_version

    def kill_supervisor(self, pod_dir: str, timeout: float = 2.0) -> None:
        self._call("supervisor.kill", pod_dir)   # no process in the fake world: nothing to kill

    def _writer(self, real):
        def write_json_atomic(path, doc, *args, **kw):
            c = self._call("fs.write_json", path)
            real(path, doc, *args, **kw)
            c.changed = True
        return write_json_atomic

    # ---- recording --------------------------------------------------------------------------------

    def _call(self, name: str, *args) -> Call:
        seen = frozenset(p for p in self._watch if os.path.lexists(p))
        for f in self._failures.get(name, []):
            f[0] -= 1
            if f[0] == 0:
                self._failures[name].remove(f)
                self.calls.append(Call(name + "!", args, seen=seen))
                raise f[1]
        c = Call(name, args, seen=seen)
        self.calls.append(c)
        return c

    def _new_ns(self, kind: str) -> Namespace:
        ns = Namespace(self._next_ns, kind)
        self.world.namespaces[ns.id] = ns
        self._next_ns += 1
        return ns

    def _current(self, kind: str) -> Namespace:
        """The calling thread's namespace of `kind` (the host's unless in_own_thread made one)."""
        made = self._threads.get(threading.get_native_id(), {})
        return self.world.namespaces[made.get(kind, self.world.host[kind])]

    def _drop_unpinned(self) -> None:
        keep = set(self.world.host.values()) | {m.ns for m in self.world.mounts if m.ns is not None}
        keep |= {i for made in self._threads.values() for i in made.values()}
        for i in [i for i in self.world.namespaces if i not in keep]:
            del self.world.namespaces[i]

    def _mounts_below(self, d: str) -> list[Mount]:
        d = _norm(d)
        return [m for m in self.world.mounts if m.target == d or m.target.startswith(d + "/")]


class _Ksys:
    """runtime.linux.sys as the code under test sees it: the real constants, fake calls."""

    def __init__(self, k: FakeKernel):
        self._k = k

    def __getattr__(self, name: str):
        value = getattr(real_ksys, name)
        if callable(value):
            raise AttributeError(f"the double has no ksys.{name} (add it to runtime/fake.py)")
        return value

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        k = self._k
        c = k._call("ksys.mount", source, target, fstype, flags, data)
        what = f"mount {fstype or ''} on {target}"
        t = _norm(target)
        if not os.path.exists(t):
            raise OSError(errno.ENOENT, f"{what}: No such file or directory", target)
        ns = None
        if flags & real_ksys.MS_BIND:
            m = _NS_PATH.match(source or "")
            if m:
                made = k._threads.get(int(m.group(1)), {})
                kind = m.group(2)
                if kind not in k.world.host:
                    raise OSError(errno.ENOENT, f"{what}: No such file or directory", source)
                ns = made.get(kind, k.world.host[kind])  # a thread that did not unshare it: the host's
            elif not os.path.exists(source or ""):
                raise OSError(errno.ENOENT, f"{what}: No such file or directory", source)
        elif fstype in ("tmpfs", "overlay"):
            if not os.path.isdir(t):
                raise OSError(errno.ENOTDIR, f"{what}: Not a directory", target)
            if os.listdir(t):
                raise AssertionError(f"the double cannot mount over the non-empty {t} (it cannot hide what is there)")
            if fstype == "overlay":
                _overlay(what, data or "", t)
        else:
            raise OSError(errno.ENODEV, f"{what}: No such device (not in the double)", target)
        k.world.mounts.append(Mount(source, t, fstype, flags, data, ns))
        c.changed = True

    def umount2(self, target: str, flags: int = 0) -> None:
        k = self._k
        c = k._call("ksys.umount2", target, flags)
        t = _norm(target)
        at = [i for i, m in enumerate(k.world.mounts) if m.target == t]
        if not at:
            raise OSError(errno.EINVAL, f"umount {target}: Invalid argument", target)
        m = k.world.mounts.pop(at[-1])
        if m.fstype in ("tmpfs", "overlay") and not m.flags & real_ksys.MS_BIND:
            _empty(t)
        k._drop_unpinned()
        c.changed = True

    def sethostname(self, name: str) -> None:
        c = self._k._call("ksys.sethostname", name)
        ns = self._k._current("uts")
        c.changed, ns.hostname = ns.hostname != name, name


def _overlay(what: str, data: str, target: str) -> None:
    """Check the overlay's options as the kernel would (relative paths from the caller's cwd,
    which must be the container's state dir) and copy the merged lower layers into `target`."""
    opts = dict(o.split("=", 1) for o in data.split(",") if "=" in o)
    lowers = [os.path.abspath(p) for p in opts.get("lowerdir", "").split(":") if p]  # top first
    upper = [os.path.abspath(opts["upperdir"])] if "upperdir" in opts else []
    work = [os.path.abspath(opts["workdir"])] if "workdir" in opts else []
    if not lowers or any(not os.path.isdir(p) for p in lowers + upper + work):
        raise OSError(errno.ENOENT, f"{what}: No such file or directory", target)
    for layer in lowers[::-1] + upper:  # bottom first: an upper layer's file replaces a lower one's
        shutil.copytree(layer, target, symlinks=True, dirs_exist_ok=True)


def _empty(d: str) -> None:
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def _norm(p) -> str:
    return os.path.normpath(os.path.abspath(os.fspath(p)))


def _tree(d: str) -> list[str]:
    """Every path below `d` (`.` for `d` itself), sorted; [] when `d` does not exist."""
    if not os.path.lexists(d):
        return []
    out = ["."]
    for dirpath, dirs, files in os.walk(d):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(dirpath, n), d))
    return sorted(out)


def _cgroup_class(k: FakeKernel):
    class FakeCgroup:
        """runtime.cgroups.Cgroup over the fake world's tree (what sandbox.py calls)."""

        def __init__(self, path: str, version: str | None = None):
            path = path.strip("/")
            if not path or ".." in path.split("/"):
                raise CgroupError(path, "must be a relative path below the hierarchy root")
            self.path = path
            self.version = version or k.world.cgroup_version

        def create(self) -> None:
            c = k._call("cgroup.create", self.path)
            parts = self.path.split("/")
            for i in range(1, len(parts) + 1):
                p = "/".join(parts[:i])
                if p not in k.world.cgroups:
                    k.world.cgroups[p] = None
                    c.changed = True

        def apply(self, r: Resources) -> None:
            c = k._call("cgroup.apply", self.path, r)
            if self.path not in k.world.cgroups:
                raise CgroupError(self.path, "writing to cpu.weight: No such file or directory")
            c.changed, k.world.cgroups[self.path] = k.world.cgroups[self.path] != r, r

        def remove_tree(self) -> None:
            c = k._call("cgroup.remove_tree", self.path)
            gone = [p for p in k.world.cgroups if p == self.path or p.startswith(self.path + "/")]
            for p in sorted(gone, reverse=True):
                del k.world.cgroups[p]
            c.changed = bool(gone)
    return FakeCgroup


class FakeStore:
    """runtime.image.store.ImageStore as container.py uses it: images by reference (layers as
    real dirs under `root`) and leases, recorded in the kernel's calls."""

    def __init__(self, k: FakeKernel, root: str):
        self._k = k
        self.root = root
        self._images: dict[str, Image] = {}

    def add_image(self, name: str, layers: list[dict[str, bytes]], **config) -> Image:
        """An image whose layers (bottom first) hold these files (path -> content; a path ending
        in / is a dir); `config`: ImageConfig fields (entrypoint, cmd, user, working_dir, env)."""
        dirs = []
        for i, files in enumerate(layers):
            d = os.path.join(self.root, hashlib.sha256(f"{name}/{i}".encode()).hexdigest()[:16], "fs")
            os.makedirs(d, exist_ok=True)
            for path, data in files.items():
                p = os.path.join(d, path.strip("/"))
                if path.endswith("/"):
                    os.makedirs(p, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(data)
            dirs.append(d)
        digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        diff_ids = tuple("sha256:" + hashlib.sha256(d.encode()).hexdigest() for d in dirs)
        cfg = ImageConfig("amd64", "linux", diff_ids, **{k: tuple(v) if isinstance(v, list) else v
                                                         for k, v in config.items()})
        m = Manifest("application/vnd.oci.image.manifest.v1+json",
                     Descriptor("application/vnd.oci.image.config.v1+json", "sha256:" + "0" * 64, 2), ())
        img = Image(ImageRecord(name, digest, None, 0.0), m, cfg, 2, tuple(reversed(dirs)))
        self._images[name] = img
        return img

    def image(self, ref: str) -> Image:
        self._k._call("store.image", ref)
        if ref not in self._images:
            raise NotFound(f"image {ref}", "not found in the store")
        return self._images[ref]

    def add_lease(self, holder: str, image_digests: list[str], durable: bool = True) -> None:
        c = self._k._call("store.add_lease", holder, tuple(image_digests))
        self._check(holder)
        leases = self._k.world.leases
        c.changed, leases[holder] = leases.get(holder) != tuple(image_digests), tuple(image_digests)

    def remove_lease(self, holder: str) -> None:
        c = self._k._call("store.remove_lease", holder)
        self._check(holder)
        c.changed = self._k.world.leases.pop(holder, None) is not None

    @staticmethod
    def _check(holder: str) -> None:
        if not _LEASE_NAME.match(holder):
            raise ImageError(f"lease {holder!r}: invalid holder name", kind="INVALID_ARGUMENT", obj=f"lease {holder}",
                             field="holder")
