"""Starting a container and entering one (the parent's side): what `runc run`, `runc create`
and `runc exec` do around the fork.

    parent (this process, child subreaper): the cgroup, the seccomp program, HOME
      `- intermediate (linux/forkreport.py): joins/creates namespaces, forks, exits
           `- init (PID 1 of a new pid namespace): init.py, which execs the command

Errors of the init come back to the parent over a close-on-exec pipe as one line, so a failed
start is a clear error. Report lines beyond forkreport's `P` and `E`: `H` (the init waits for
the create hooks: `on_hook(pid)`, then a byte on the go pipe) and `R` (ready to exec, waiting
on the exec fifo: `start` returns)."""

from __future__ import annotations

import os
import signal
from collections import namedtuple  # not dataclasses: see spec.py

from ..cgroups import Cgroup, resources_from_spec
from ..errors import FAILED_PRECONDITION
from ..linux import forkreport
from ..linux import sys as ksys
from ..linux.userns import become_root, new_userns
from . import credentials
from .bundle import env_with_home, load_bundle
from .errors import RunError
from .init import become, init
from .mounts import chroot, detach_host_root, mount_ids_at
from .seccomp_cache import compile_seccomp
from .spec import ROOTFS_IDMAP, Spec, SpecError

reap = forkreport.reap


def _need_console(console: int | None) -> None:
    """Import what a console needs now, in the parent, so that the process after the fork finds
    it in sys.modules: the socket module (~5 ms of every start otherwise) and console.py
    (termios)."""
    if console is not None:
        import socket  # noqa: F401

        from . import console as _console  # noqa: F401


class ExitStatus(namedtuple("ExitStatus", "code oom_killed", defaults=(False,))):
    """code: 128+N when killed by signal N, as a shell reports it."""
    __slots__ = ()

    @property
    def reason(self) -> str:
        return "OOMKilled" if self.oom_killed else ("Completed" if self.code == 0 else "Error")


class CreateOptions(namedtuple("CreateOptions", "exec_fifo console console_size before_pivot seccomp_cache "
                                                "exec_fifo_fd idmapped", defaults=(None,) * 6 + ({},))):
    """What the OCI command line's `create` adds to a start (runc's create/start split).

    exec_fifo: host path of a fifo; start() opens it for the init, which, as its very last step
      before execve (in its final user, capabilities and seccomp filter), blocks reading it until
      `start` writes a byte. `start()` returns when the init is waiting there ("R" on the report
      pipe), not at the exec.
    console: a connected unix socket (fd, the caller keeps its own copy): the process allocates a
      pty in the container's /dev/pts, sends the master over it with SCM_RIGHTS (runc's
      --console-socket protocol) and makes the slave its controlling terminal and stdio.
    console_size: (rows, columns) of that pty (process.consoleSize).
    before_pivot: called in the parent with the init's pid once the container's mounts are made
      and before pivot_root (the prestart, createRuntime and createContainer hooks); raising
      aborts the start.
    seccomp_cache: a private dir for compiled seccomp programs (see seccomp_cache.py).
    exec_fifo_fd: set by start(): the fifo opened for the init to inherit.
    idmapped: set by start(): detached idmapped trees (fds) for the init to attach: "root" (the
      rootfs, annotation io.kubelet-py.rootfs-idmap) and the index of each idmapped mount."""
    __slots__ = ()


class Started(namedtuple("Started", "pid cgroup rootfs host_mounts", defaults=("", ()))):
    """A container whose init has exec'd its command (or exited), and its Cgroup. host_mounts:
    ids of the mounts at `rootfs` that the init made in the caller's mount namespace (a config
    without a mount namespace), for cleanup() or a later delete to detach."""
    __slots__ = ()

    def cleanup(self) -> None:
        self.cgroup.kill_all()
        self.cgroup.destroy()
        detach_host_root(self.rootfs, self.host_mounts)

    def status(self, code: int) -> ExitStatus:
        return ExitStatus(code, code == 137 and self.cgroup.oom_killed())


def start(spec: Spec, rootfs: str, container_id: str, cgroup_parent: str = "kubelet-py",
          stdio: tuple[int, int, int] | None = None, create: CreateOptions | None = None) -> Started:
    """Create the cgroup, start the init and return once it has exec'd the command (with
    `create.exec_fifo`: once it waits on the fifo, ready to exec). The init's parent becomes the
    caller's nearest child subreaper (the caller itself, if it is one), which reaps it. `spec`
    is not changed."""
    spec = spec._replace(env=env_with_home(spec.env, spec.uid, rootfs))
    create = create or CreateOptions()
    seccomp = compile_seccomp(spec, create.seccomp_cache)  # here, in the parent: the init only loads it
    _need_console(create.console)
    ns_paths = {t: p for t, p in spec.namespaces if p}
    ns_new = [t for t, p in spec.namespaces if not p]
    flags = 0
    for t in ns_new:
        if t not in ("cgroup", "user"):
            flags |= ksys.NAMESPACES[t]
    ns_fds = {}
    try:
        for t, p in ns_paths.items():
            try:
                ns_fds[t] = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise SpecError(f"linux.namespaces[{t}].path", f"{p}: {e.strerror}") from None
        if "user" in ns_new:  # made now, its maps written: the intermediate joins it like a path
            try:
                ns_fds["user"] = new_userns(spec.uid_mappings, spec.gid_mappings)
            except OSError as e:
                raise SpecError("linux.uidMappings", e.strerror or str(e)) from None
        if create.exec_fifo:
            # opened here, read-write so that it never blocks, and inherited by the init: neither
            # the fifo (0600) nor the dirs above it (--root, 0700) need be open to the container's
            # root, which a user namespace maps to another host uid
            ns_fds["fifo"] = os.open(create.exec_fifo, os.O_RDWR | os.O_CLOEXEC)
            create = create._replace(exec_fifo_fd=ns_fds["fifo"])
        idmapped = _idmapped_trees(spec, rootfs, ns_fds)
        if idmapped:
            create = create._replace(idmapped=idmapped)
        # without a mount namespace the init's mounts are made in ours: which are new at rootfs
        at_root = None if "mount" in ns_paths or "mount" in ns_new else set(_mounts_at(rootfs))
        cgroup = Cgroup(spec.cgroups_path or f"{cgroup_parent}/{container_id}")
        cgroup.create()
        try:
            cgroup.apply(resources_from_spec(spec.resources))
            pid = _spawn(spec, rootfs, cgroup, flags, ns_fds, "cgroup" in ns_new, stdio, seccomp, create)
        except BaseException:
            cgroup.kill_all()
            cgroup.destroy()
            if at_root is not None:
                detach_host_root(rootfs, [i for i in _mounts_at(rootfs) if i not in at_root])
            raise
        return Started(pid, cgroup, rootfs, () if at_root is None else
                       tuple(i for i in _mounts_at(rootfs) if i not in at_root))
    finally:
        for fd in ns_fds.values():
            os.close(fd)
        for fd in create.idmapped.values():
            os.close(fd)


def _idmapped_trees(spec: Spec, rootfs: str, ns_fds: dict) -> dict:
    """Detached copies of the rootfs (mapped as the container's user namespace) and of each
    idmapped bind mount's source (mapped by a user namespace of its own maps), made here: an
    idmapping needs the host's CAP_SYS_ADMIN, which the init has no more. The init attaches them
    (move_mount) where the plain mounts would go."""
    out = {}
    try:
        if spec.annotations.get(ROOTFS_IDMAP) == "true":
            field = f"annotations.{ROOTFS_IDMAP}"
            out["root"] = _idmapped(rootfs, ns_fds["user"], True, field)
        for i, m in enumerate(spec.mounts):
            if m.uid_mappings:
                field = f"mounts[{i}].uidMappings"
                try:
                    userns = new_userns(m.uid_mappings, m.gid_mappings)
                except OSError as e:
                    raise SpecError(field, e.strerror or str(e)) from None
                try:
                    out[i] = _idmapped(m.source, userns, "rbind" in m.options, field)
                finally:
                    os.close(userns)
    except BaseException:
        for fd in out.values():
            os.close(fd)
        raise
    return out


def _idmapped(path: str, userns: int, recursive: bool, field: str) -> int:
    try:
        tree = ksys.open_tree_clone(path, recursive)
    except OSError as e:
        raise SpecError(field, f"{path}: {e.strerror}") from None
    try:
        ksys.idmap_tree(tree, userns, recursive, path)
    except OSError as e:
        os.close(tree)
        # an overlay rootfs is mapped by stacking idmapped layers before it is handed over, as
        # runtime.rootfs does for a hostUsers: false pod's
        why = ("this filesystem cannot be idmapped (overlayfs: only its layers can: mount the overlay on "
               "idmapped layers instead)" if e.errno == 22 else e.strerror)
        raise SpecError(field, f"an idmapped mount of {path}: {why}") from None
    return tree


def _mounts_at(path: str) -> list[int]:
    with open("/proc/self/mountinfo") as f:
        return mount_ids_at(f.read(), path)


def run(spec: Spec, rootfs: str, container_id: str, cgroup_parent: str = "kubelet-py") -> ExitStatus:
    """Run the container in the foreground until it exits (as `runc run`)."""
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
    st = start(spec, rootfs, container_id, cgroup_parent)
    try:
        # forward the usual termination signals to the container, as `runc run` does
        old = {s: signal.signal(s, lambda n, _f: os.kill(st.pid, n)) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            return st.status(reap(st.pid))
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    finally:
        st.cleanup()


def run_bundle(bundle: str, container_id: str) -> ExitStatus:
    spec, rootfs = load_bundle(bundle)
    return run(spec, rootfs, container_id)


def _launch(cgroup: Cgroup, stdio, enter, final, what: str, ready: bool = False, on_hook=None,
            late_join: bool = False) -> int:
    """Spawn (forkreport.spawn) into `cgroup`: `enter()` in the intermediate, `final(report_fd,
    go_fd)` (it execs) in the process whose pid this returns. Without `ready` this returns at EOF
    (the final process has exec'd); with it, at its `R`. `late_join`: the final process is put
    in the cgroup while it makes its mounts, and waits for a `j` before it execs: a cgroup v1
    migration waits for an RCU grace period (~5 ms here), which then overlaps the mounts."""
    def enter_undumpable():
        # non-dumpable until execve (which resets it): a container process cannot open
        # /proc/<pid>/exe (the host's interpreter) of us or our child (CVE-2019-5736)
        ksys.prctl(ksys.PR_SET_DUMPABLE, 0)
        enter()

    with forkreport.spawn(enter_undumpable, final, None if late_join else cgroup.add, RunError, f"{what} failed",
                          stdio) as proc:
        hook_wanted = False
        join_error = None
        for line in proc.reports():
            if late_join and line.startswith("P"):
                join_error = proc.join_final(cgroup.add, b"j")
            elif line == "H":
                hook_wanted = True
            elif line == "R" and ready:
                return proc.child_pid()
            if hook_wanted and proc.child is not None:  # `H` may come before `P`
                hook_wanted = False
                on_hook(proc.child)  # raising: the go pipe closes and the final process exits
                proc.go(b"h")
        pid = proc.child_pid()
        if join_error is not None:
            reap(pid)
            raise RunError(f"{what} failed: putting it in cgroup {cgroup.path}: {join_error.strerror or join_error}")
    if ready:
        raise RunError(f"{what} failed: the process exited before it was ready")
    return pid


def _before_userns(spec: Spec, oom: bool = True) -> None:
    """What needs the host's privileges and is inherited: rlimits above the caller's hard limit
    and (the init's, `oom`) a lower oom_score_adj (CAP_SYS_RESOURCE of the host's user
    namespace), set before the process joins the container's user namespace (runc sets them
    from outside)."""
    credentials.set_rlimits(spec.rlimits)
    if oom and spec.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(spec.oom_score_adj))


def _spawn(spec, rootfs, cgroup, flags, ns_fds, new_cgroupns, stdio, seccomp, create: CreateOptions) -> int:
    def enter():
        # the namespaces joined by path first (the host's user namespace owns them, or the
        # container's: either way we may join them as the host's root), then the user namespace,
        # then the new ones: they belong to it
        for t in ("network", "ipc", "uts", "pid", "mount", "cgroup"):
            if t in ns_fds:
                ksys.setns(ns_fds[t], ksys.NAMESPACES[t])
        if "user" in ns_fds:
            _before_userns(spec)
            ksys.setns(ns_fds["user"], ksys.CLONE_NEWUSER)
            become_root(gid_too=False)
        ksys.unshare(flags)
        if new_cgroupns:
            ksys.unshare(ksys.CLONE_NEWCGROUP)
        if "user" in ns_fds:
            become_root()
    # the init joins its cgroup late (while it mounts) unless a step before its exec needs it
    # there: a cgroup namespace (rooted where the process is), the hooks' pause (the exec fifo
    # comes after its `j`: `R` says it is in the cgroup)
    late = not new_cgroupns and create.before_pivot is None
    return _launch(cgroup, stdio, enter,
                   lambda rep, go: init(spec, rootfs, cgroup, rep, seccomp, create, go, wait_joined=late),
                   "container start", ready=create.exec_fifo is not None, on_hook=create.before_pivot, late_join=late)


# the user namespace last: the others are joined with the host's privileges
_NS_ORDER = (("ipc", ksys.CLONE_NEWIPC), ("uts", ksys.CLONE_NEWUTS), ("net", ksys.CLONE_NEWNET),
             ("pid", ksys.CLONE_NEWPID), ("cgroup", ksys.CLONE_NEWCGROUP), ("mnt", ksys.CLONE_NEWNS),
             ("user", ksys.CLONE_NEWUSER))


def exec_in(init_pid: int, spec: Spec, cgroup: Cgroup, args: list[str], env: list[str] | None = None,
            cwd: str | None = None, stdio: tuple[int, int, int] | None = None,
            console: int | None = None, console_size: tuple[int, int] | None = None,
            seccomp_cache: str | None = None) -> int:
    """Start `args` inside the running container whose init is `init_pid`: all its namespaces,
    its cgroup, its user, capabilities, no_new_privs and seccomp filter, and HOME from its
    /etc/passwd when `env` (default: the spec's) has none, as runc. Returns the new process's
    pid (a child of the caller's nearest subreaper, the caller itself if it is one, which reaps
    it). A fork, no new interpreter. `console`: as CreateOptions.console."""
    # the container's root, seen through its init (the slash: follow the magic link)
    env = env_with_home(spec.env if env is None else env, spec.uid, f"/proc/{init_pid}/root/")
    seccomp = compile_seccomp(spec, seccomp_cache)  # in the parent (cached: the init's program)
    _need_console(console)
    ns_fds = []
    try:
        for name, flag in _NS_ORDER:
            try:
                fd = os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise RunError(f"container init {init_pid} is gone", kind=FAILED_PRECONDITION) from None
            if os.stat(f"/proc/{init_pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                os.close(fd)  # the host's own (hostNetwork and the like): nothing to join
                continue
            ns_fds.append((fd, flag))
        # a container without a mount namespace of its own (the OCI CLI's, chroot'ed): the
        # process goes into its root too (runc's exec would stay in the host's root)
        own_root = not any(flag == ksys.CLONE_NEWNS for _fd, flag in ns_fds)

        def enter():
            for fd, flag in ns_fds:
                if flag == ksys.CLONE_NEWUSER:
                    _before_userns(spec, oom=False)  # an exec keeps its own, as without one
                ksys.setns(fd, flag)
                if flag == ksys.CLONE_NEWUSER:
                    become_root()

        def final(rep, _go):
            if own_root:
                chroot(f"/proc/{init_pid}/root")
            os.chdir("/")
            become(spec, args, env, cwd or spec.cwd, rep, seccomp, console, console_size)
        return _launch(cgroup, stdio, enter, final, "exec")
    finally:
        for fd, _ in ns_fds:
            os.close(fd)
