"""The container's init and the last steps of every process started in a container (kernel
edge, after the fork; raw syscalls only, everything imported before the fork: security.md 0.4).

    init: lo up, the exec fifo, the root and the spec's mounts, /dev, the create hooks' pause,
      pivot_root, sysctls, masked and read-only paths, read-only root, hostname, oom_score_adj,
      then `become`
    become (the init, and every exec): console, rlimits, user and capabilities, no_new_privs,
      seccomp, default signals, no fds but the report pipe, cwd, the exec fifo's wait, execve"""

from __future__ import annotations

import os
import signal
import stat

from ..cgroups import Cgroup
from ..linux import sys as ksys
from ..linux.net import lo_up
from . import credentials
from .devices import make_devices
from .errors import RunError
from .mounts import chroot, host_root, mask, mount_one, pivot, prepare_root, readonly, readonly_root
from .spec import Spec

_CATCHABLE = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP) and s < signal.SIGRTMIN]


def find_exe(arg0: str, env: list[str]) -> str:
    if "/" in arg0:
        # checked here, not only by execve: with an exec fifo the execve comes after `create`
        # has returned, and runc too reports a missing program at create
        try:
            st = os.stat(arg0)
        except OSError as e:
            raise FileNotFoundError(e.errno, f"exec {arg0!r}: {e.strerror}", arg0) from None
        if stat.S_ISDIR(st.st_mode) or not os.access(arg0, os.X_OK):
            raise PermissionError(13, f"exec {arg0!r}: permission denied", arg0)
        return arg0
    path = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/local/bin:/usr/bin:/bin")
    for d in path.split(":"):
        cand = f"{d or '.'}/{arg0}"
        if os.access(cand, os.X_OK) and not os.path.isdir(cand):
            return cand
    raise FileNotFoundError(2, f"executable file {arg0!r} not found in $PATH", arg0)


def init(spec: Spec, rootfs: str, cgroup: Cgroup | None, report_fd: int, seccomp, create,
         go_fd: int | None = None, wait_joined: bool = False) -> None:
    """Become the container (`seccomp`: a linux.seccomp.Filter or None; `create`:
    launch.CreateOptions). Never returns: execs or raises. `wait_joined`: the parent puts this
    process in its cgroup meanwhile; it waits for the `j` saying so before its last steps."""
    # the exec fifo, opened read-write by start() (so that opening never blocks) and inherited:
    # the last read before execve blocks
    fifo_fd = create.exec_fifo_fd
    if any(t == "network" and not p for t, p in spec.namespaces):
        lo_up()
    own_mounts = any(t == "mount" for t, _ in spec.namespaces)
    in_userns = any(t == "user" for t, _ in spec.namespaces)
    own_cgroupns = any(t == "cgroup" for t, _ in spec.namespaces)  # entered by the intermediate
    if own_mounts:
        prepare_root(rootfs, spec.propagation)
    else:  # the caller's mount namespace (the OCI CLI only): nothing of it changes but below rootfs
        host_root(rootfs)
    if "root" in create.idmapped:  # the rootfs seen through the user namespace's maps, on top
        ksys.move_mount(create.idmapped["root"], rootfs)
    rootfs_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for i, m in enumerate(spec.mounts):
        try:
            mount_one(rootfs_fd, m, cgroup, create.idmapped.get(i), own_cgroupns)
        except OSError as e:
            raise RunError(f"mounting {m.type} on {m.destination}: {e.strerror or e}") from None
    make_devices(rootfs_fd, spec, bind=in_userns)
    os.close(rootfs_fd)
    if create.before_pivot is not None:
        os.write(report_fd, b"H\n")  # the parent runs the hooks, then lets us go on
        if os.read(go_fd, 1) != b"h":
            os._exit(126)  # the parent gave up (a hook failed): it reports the error
    if own_mounts:
        pivot(rootfs)
    else:
        chroot(rootfs)
    # sysctls (validated by the parser: namespaced keys only) before /proc/sys goes read-only,
    # as runc writes them
    for k, v in spec.sysctl.items():
        with open("/proc/sys/" + k.replace(".", "/"), "w") as f:
            f.write(v)
    mask(spec.masked)
    readonly(spec.readonly)
    if spec.root_readonly:
        readonly_root()
    if spec.hostname and any(t == "uts" for t, _ in spec.namespaces):
        ksys.sethostname(spec.hostname)
    if spec.oom_score_adj is not None and not in_userns:  # else set before the join (launch.py)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(spec.oom_score_adj))
    if wait_joined and os.read(go_fd, 1) != b"j":
        os._exit(125)  # the parent could not put us in the cgroup: it reports the error
    become(spec, spec.args, spec.env, spec.cwd, report_fd, seccomp, create.console, create.console_size, fifo_fd)


def _exit_on_signal(signum, _frame):
    os._exit(128 + signum)


def _load_seccomp(seccomp) -> None:
    try:
        seccomp.load()
    except OSError as e:
        raise RunError(f"seccomp: {e.strerror}") from None


def become(spec: Spec, args: list[str], env: list[str], cwd: str, report_fd: int,
           seccomp=None, console: int | None = None,
           console_size: tuple[int, int] | None = None, fifo_fd: int | None = None) -> None:
    """The last steps of the container's init, and of every exec into the container: limits,
    user and capabilities (in runc's order), no_new_privs, seccomp, clean signals, no fds, cwd,
    execve.

    Seccomp goes where runc puts it. With no_new_privs, as late as possible: just before the fds
    are closed and execve, so that the fewest syscalls run under the container's filter. Without
    no_new_privs (Kubernetes' default) the kernel lets only a CAP_SYS_ADMIN holder install a
    filter, and the setresuid/capset below drop that (the default set has no CAP_SYS_ADMIN), so
    the filter goes in first, right after the rlimits, while this process is still root with
    every capability; the user, capability, signal, fd and chdir steps after it then run under
    the filter (containerd's default profile allows all of them, as it must for runc).

    With `fifo_fd` (create) the process reports "R" and blocks reading the fifo as its very last
    step, in its final state; `start` writes the byte that lets it execve."""
    if console is not None:
        from .console import console as open_console  # in sys.modules: the parent imported it
        open_console(console, console_size)  # as root, before the user and capabilities change
    credentials.set_rlimits(spec.rlimits)
    if seccomp is not None and not spec.no_new_privs:
        _load_seccomp(seccomp)  # needs CAP_SYS_ADMIN: before the user and capabilities change
    credentials.switch_user(spec)
    credentials.set_no_new_privs(spec)
    # the container starts with default signal dispositions and nothing blocked, whatever the
    # supervisor ignores (an ignored SIGTERM would survive execve and defeat the stop)
    for sig in _CATCHABLE:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    exe = find_exe(args[0], env)
    if seccomp is not None and spec.no_new_privs:
        _load_seccomp(seccomp)  # no_new_privs is set: as late as possible
    # no fd of the agent may reach the container (CVE-2024-21626): close all but the report
    # pipe (close-on-exec) before the chdir, then check the cwd is inside the new root
    lo = 3
    for keep in sorted({report_fd} | ({fifo_fd} if fifo_fd is not None else set())):
        os.closerange(lo, keep)
        lo = keep + 1
    os.closerange(lo, 1 << 16)
    os.chdir(cwd)
    if not os.getcwd().startswith("/"):
        raise RunError(f"cwd {cwd} is outside the container")
    if fifo_fd is not None:
        # PID 1 of a pid namespace gets from outside only the signals it handles (and SIGKILL):
        # while it waits, termination signals end it (execve drops these handlers again)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, _exit_on_signal)
        os.write(report_fd, b"R\n")  # created: the parent returns now
        while os.read(fifo_fd, 1) != b"0":  # `start`; EINTR is retried by os.read (PEP 475)
            pass
    os.execve(exe, args, dict(e.split("=", 1) for e in env))
