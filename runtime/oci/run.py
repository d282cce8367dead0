"""Carrying out an OCI runtime spec (kernel edge): what `runc run` does, in the foreground.

    parent (this process, child subreaper): compiles the seccomp filter, if any
      `- intermediate: joins/creates namespaces, forks, exits
           `- init (PID 1 of a new pid namespace): mounts, pivot_root, masks, hostname, rlimits,
              user, capabilities, no_new_privs, seccomp, closes every fd, chdir, execve

Everything the init uses is imported before the fork; after it enters the container's mount
namespace it makes raw syscalls only (security.md 0.4). Errors of the init come back to the
parent over a close-on-exec pipe as one line, so a failed start is a clear error."""

from __future__ import annotations

from ..errors import RuntimeFailure

import fcntl
import json
import os
import resource
import signal
import stat
import struct
import termios
from collections import namedtuple  # not dataclasses: see spec.py

from ..cgroups import Cgroup, resources_from_spec
from ..linux import seccomp as kseccomp
from ..linux import sys as ksys
from ..linux.caps import last_cap
from ..linux.paths import open_in_root, proc_fd, read_file_in_root
from .spec import Mount, Spec, SpecError, parse

DEFAULT_DEVICES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
                   ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)]
DEV_LINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
             ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx")]
_CATCHABLE = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP) and s < signal.SIGRTMIN]
_RLIMIT = {n: getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")}


class ExitStatus(namedtuple("ExitStatus", "code oom_killed", defaults=(False,))):
    """code: 128+N when killed by signal N, as a shell reports it."""
    __slots__ = ()

    @property
    def reason(self) -> str:
        return "OOMKilled" if self.oom_killed else ("Completed" if self.code == 0 else "Error")


class RunError(RuntimeFailure):
    """The container could not be started; names the step."""


class CreateOptions(namedtuple("CreateOptions", "exec_fifo console console_size before_pivot seccomp_cache",
                               defaults=(None, None, None, None, None))):
    """What the OCI command line's `create` adds to a start (runc's create/start split).

    exec_fifo: host path of a fifo; the init opens it before pivot_root and, as its very last step
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
    seccomp_cache: a private dir for compiled seccomp programs (see _compile_seccomp)."""
    __slots__ = ()


TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def _need_socket(console: int | None) -> None:
    """Import the socket module now, in the parent, when a console will need it after the fork
    (it costs ~5 ms of start-up otherwise)."""
    if console is not None:
        import socket  # noqa: F401


def _loopback_up() -> None:
    """A new network namespace starts with `lo` down; runc and crun bring it up (libcontainer's
    "loopback" network), so `127.0.0.1` works in a container with no other network."""
    s = ksys.socket(ksys.AF_INET, ksys.SOCK_DGRAM)
    try:
        ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifr)[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        os.close(s)


def _console(sock_fd: int, size: tuple[int, int] | None) -> None:
    """A new pty of the container's devpts (/dev/ptmx is pts/ptmx): its master goes to the
    console socket, the slave becomes this process's controlling terminal and stdio. The socket
    module is imported by the parent (`_need_socket`) before the fork."""
    import socket  # already in sys.modules: no lookup in the container
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
        slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if size:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        sock = socket.socket(fileno=sock_fd)
        try:
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
        finally:
            sock.close()
    finally:
        os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.close(slave)


def read_config(bundle: str) -> dict:
    """The bundle's config.json as a document (errors name the bundle or the file)."""
    path = os.path.join(bundle, "config.json")
    if not os.path.isdir(bundle):
        raise RunError(f"bundle {bundle}: no such directory")
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(4 << 20))
    except FileNotFoundError:
        raise RunError(f"{bundle}: no config.json (not an OCI bundle)") from None
    except ValueError as e:
        raise RunError(f"{path}: not valid JSON: {e}") from None
    return doc


def spec_from(doc: dict, bundle: str) -> tuple[Spec, str]:
    """Parse a config.json document of `bundle` (strict: errors name the field) and resolve its
    root.path."""
    spec = parse(doc)
    bundle_dir = os.path.realpath(bundle)
    spec.mounts[:] = [  # a relative bind source is the bundle's, as runc reads it
        m._replace(source=os.path.join(bundle_dir, m.source))
        if (m.type == "bind" or "bind" in m.options or "rbind" in m.options) and not m.source.startswith("/") else m
        for m in spec.mounts]
    rootfs = spec.root_path if spec.root_path.startswith("/") else os.path.join(bundle, spec.root_path)
    if not os.path.isdir(rootfs):
        raise SpecError("root.path", f"{rootfs} is not a directory")
    return spec, os.path.realpath(rootfs)


def load_bundle(bundle: str) -> tuple[Spec, str]:
    return spec_from(read_config(bundle), bundle)


def _mount_flags(options: list[str]) -> tuple[int, int, list[str]]:
    """(flags, propagation flags, data options)."""
    flags, prop, data = 0, 0, []
    for o in options:
        if o in ksys.MOUNT_FLAGS:
            bit, on = ksys.MOUNT_FLAGS[o]
            flags = flags | bit if on else flags & ~bit
        elif o in ksys.PROPAGATION:
            prop |= ksys.PROPAGATION[o]
        else:
            data.append(o)
    return flags, prop, data


# ---- inside the container (after fork; raw syscalls only) ---------------------------------

def _on_top(rootfs_fd: int, dest: str, flags: int) -> None:
    """mount(2) on what is now mounted at `dest`: an fd opened before the mount names the dir
    below it, so the target is resolved again (still inside the root, race-safe)."""
    fd = open_in_root(rootfs_fd, dest)
    try:
        ksys.mount(None, proc_fd(fd), None, flags)
    finally:
        os.close(fd)


def _mount_one(rootfs_fd: int, m: Mount, cgroup: Cgroup | None, own_cgroupns: bool = False) -> None:
    flags, prop, data = _mount_flags(m.options)
    is_bind = m.type == "bind" or flags & ksys.MS_BIND
    if is_bind:
        src_is_dir = os.path.isdir(m.source)
        fd = open_in_root(rootfs_fd, m.destination, "dir" if src_is_dir else "file")
        try:
            target = proc_fd(fd)
            ksys.mount(m.source, target, None, ksys.MS_BIND | (flags & ksys.MS_REC))
            remount = flags & ~(ksys.MS_BIND | ksys.MS_REC | ksys.MS_REMOUNT)
            if remount:
                _on_top(rootfs_fd, m.destination, ksys.MS_BIND | ksys.MS_REMOUNT | remount)
            if prop:
                _on_top(rootfs_fd, m.destination, prop)
        finally:
            os.close(fd)
        return
    fd = open_in_root(rootfs_fd, m.destination, "dir")
    try:
        target = proc_fd(fd)
        if m.type == "cgroup" and cgroup is not None and cgroup.version == "v2":
            # as runc on a unified host: cgroup2, which in the container's own cgroup namespace
            # shows its own cgroup; without one, a bind of that cgroup's dir shows the same
            if own_cgroupns:
                ksys.mount("cgroup2", target, "cgroup2", flags | ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC)
            else:
                ksys.mount(cgroup.dir("cpu"), target, None, ksys.MS_BIND)
                _on_top(rootfs_fd, m.destination, ksys.MS_BIND | ksys.MS_REMOUNT | flags | ksys.MS_NOSUID
                        | ksys.MS_NODEV | ksys.MS_NOEXEC)
        elif m.type == "cgroup":  # v1: a tmpfs with the container's own cgroup of each controller
            ksys.mount("tmpfs", target, "tmpfs", ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC, "mode=755")
            os.close(fd)
            fd = open_in_root(rootfs_fd, m.destination)  # now the tmpfs, not the dir below it
            target = proc_fd(fd)
            for d in (cgroup.dirs() if cgroup else []):
                ctrl = d[len("/sys/fs/cgroup/"):].split("/", 1)[0]
                sub = open_in_root(rootfs_fd, f"{m.destination}/{ctrl}", "dir", 0o555)
                try:
                    ksys.mount(d, proc_fd(sub), None, ksys.MS_BIND)
                finally:
                    os.close(sub)
                _on_top(rootfs_fd, f"{m.destination}/{ctrl}", ksys.MS_BIND | ksys.MS_REMOUNT | flags | ksys.MS_RDONLY)
            if flags & ksys.MS_RDONLY:
                _on_top(rootfs_fd, m.destination, ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY | ksys.MS_NOSUID
                           | ksys.MS_NODEV | ksys.MS_NOEXEC)
        else:
            ksys.mount(m.source, target, m.type, flags, ",".join(data) or None)
        if prop:
            _on_top(rootfs_fd, m.destination, prop)
    finally:
        os.close(fd)


def _make_devices(rootfs_fd: int, spec: Spec) -> None:
    devs = [{"path": p, "type": "c", "major": a, "minor": b, "fileMode": 0o666, "uid": 0, "gid": 0}
            for p, a, b in DEFAULT_DEVICES]
    devs += spec.devices
    for d in devs:
        parent_fd = open_in_root(rootfs_fd, os.path.dirname(d["path"]), "dir")
        try:
            pfd = os.open(proc_fd(parent_fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            name = os.path.basename(d["path"])
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.get("type", "c")]
            try:
                os.unlink(name, dir_fd=pfd)
            except FileNotFoundError:
                pass
            except OSError as e:  # EBUSY: a spec mount sits on the device's path
                raise RunError(f"creating device {d['path']}: {e.strerror} (is something mounted over it?)") from None
            os.mknod(name, kind | 0o600, os.makedev(d.get("major", 0), d.get("minor", 0)), dir_fd=pfd)
            os.chown(name, d.get("uid", 0) or 0, d.get("gid", 0) or 0, dir_fd=pfd, follow_symlinks=False)
            os.chmod(name, d.get("fileMode", 0o666) & 0o7777, dir_fd=pfd)
            os.close(pfd)
        finally:
            os.close(parent_fd)
    links = DEV_LINKS + ([("/proc/kcore", "/dev/core")] if os.path.exists("/proc/kcore") else [])  # as runc
    dev = open_in_root(rootfs_fd, "/dev", "dir")
    try:
        dfd = os.open(proc_fd(dev), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        for src, dst in links:
            try:
                os.symlink(src, os.path.basename(dst), dir_fd=dfd)
            except FileExistsError:
                pass
        os.close(dfd)
    finally:
        os.close(dev)


def _pivot(rootfs: str) -> None:
    old = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(new)
    ksys.pivot_root(".", ".")
    os.fchdir(old)
    ksys.mount(None, ".", None, ksys.MS_SLAVE | ksys.MS_REC)  # the unmount must not reach the host
    ksys.umount2(".", ksys.MNT_DETACH)
    os.chdir("/")
    os.close(old)
    os.close(new)


def _mask(paths: list[str]) -> None:
    """Masked files get the null device bound over them, taken by handle and checked to be
    c 1:3: a mount over /dev/null must not turn masking into exposing (CVE-2025-31133)."""
    if not paths:
        return
    null = os.open("/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(null)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
            raise RunError("masking: /dev/null in the container is not the null device (c 1:3)")
        for p in paths:
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                ksys.mount("tmpfs", p, "tmpfs", ksys.MS_RDONLY, "nr_blocks=1,nr_inodes=1")
            else:
                ksys.mount(proc_fd(null), p, None, ksys.MS_BIND)
    finally:
        os.close(null)


def _readonly(paths: list[str]) -> None:
    for p in paths:
        try:
            ksys.mount(p, p, None, ksys.MS_BIND | ksys.MS_REC)
        except FileNotFoundError:
            continue
        st = os.statvfs(p)
        keep = st.f_flag & (ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC)
        ksys.mount(None, p, None, ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY | keep)


def _find_exe(arg0: str, env: list[str]) -> str:
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


def _init(spec: Spec, rootfs: str, cgroup: Cgroup | None, report_fd: int,
          seccomp: kseccomp.Filter | None = None, create: CreateOptions | None = None,
          go_fd: int | None = None) -> None:
    """Become the container. Never returns: execs or raises."""
    create = create or CreateOptions()
    # the exec fifo is opened on the host side of the mounts (before pivot_root), read-write so
    # that opening never blocks; the last read before execve does
    fifo_fd = os.open(create.exec_fifo, os.O_RDWR | os.O_CLOEXEC) if create.exec_fifo else None
    if any(t == "network" and not p for t, p in spec.namespaces):
        _loopback_up()
    prop = ksys.PROPAGATION.get(spec.propagation or "rslave", ksys.MS_SLAVE | ksys.MS_REC)
    ksys.mount(None, "/", None, prop)
    ksys.mount(rootfs, rootfs, None, ksys.MS_BIND | ksys.MS_REC)  # pivot_root needs a mount point
    own_cgroupns = any(t == "cgroup" for t, _ in spec.namespaces)  # entered by the intermediate
    rootfs_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for m in spec.mounts:
        try:
            _mount_one(rootfs_fd, m, cgroup, own_cgroupns)
        except OSError as e:
            raise RunError(f"mounting {m.type} on {m.destination}: {e.strerror or e}") from None
    _make_devices(rootfs_fd, spec)
    os.close(rootfs_fd)
    if create.before_pivot is not None:
        os.write(report_fd, b"H\n")  # the parent runs the hooks, then lets us go on
        if os.read(go_fd, 1) != b"h":
            os._exit(126)  # the parent gave up (a hook failed): it reports the error
    _pivot(rootfs)
    # sysctls (validated by the parser: namespaced keys only) before /proc/sys goes read-only,
    # as runc writes them
    for k, v in spec.sysctl.items():
        with open("/proc/sys/" + k.replace(".", "/"), "w") as f:
            f.write(v)
    _mask(spec.masked)
    _readonly(spec.readonly)
    if spec.root_readonly:
        keep = os.statvfs("/").f_flag & (ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC)
        ksys.mount(None, "/", None, ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY | keep)
    if spec.hostname and any(t == "uts" for t, _ in spec.namespaces):
        ksys.sethostname(spec.hostname)
    if spec.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(spec.oom_score_adj))
    _become(spec, spec.args, spec.env, spec.cwd, report_fd, seccomp, create.console, create.console_size, fifo_fd)


def _exit_on_signal(signum, _frame):
    os._exit(128 + signum)


def _load_seccomp(seccomp: kseccomp.Filter) -> None:
    try:
        seccomp.load()
    except OSError as e:
        raise RunError(f"seccomp: {e.strerror}") from None


def _become(spec: Spec, args: list[str], env: list[str], cwd: str, report_fd: int,
            seccomp: kseccomp.Filter | None = None, console: int | None = None,
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
        _console(console, console_size)  # as root, before the user and capabilities change
    if not any(name == "RLIMIT_NOFILE" for name, _s, _h in spec.rlimits):
        # runc and the containerd shim (Go) run with the soft NOFILE limit raised to the hard
        # one, and containers inherit that; so do ours
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for name, soft, hard in spec.rlimits:
        resource.setrlimit(_RLIMIT[name], (soft, hard))
    if seccomp is not None and not spec.no_new_privs:
        _load_seccomp(seccomp)  # needs CAP_SYS_ADMIN: before the user and capabilities change
    caps = spec.caps
    for cap in range(last_cap() + 1):
        if not caps["bounding"] >> cap & 1:
            ksys.prctl(ksys.PR_CAPBSET_DROP, cap)
    ksys.prctl(ksys.PR_SET_KEEPCAPS, 1)
    os.setgroups(spec.additional_gids)
    os.setresgid(spec.gid, spec.gid, spec.gid)
    os.setresuid(spec.uid, spec.uid, spec.uid)
    ksys.prctl(ksys.PR_SET_KEEPCAPS, 0)
    ksys.capset(caps["effective"], caps["permitted"], caps["inheritable"])
    ksys.prctl(ksys.PR_CAP_AMBIENT, ksys.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(last_cap() + 1):
        if caps["ambient"] >> cap & 1 and caps["inheritable"] >> cap & 1:
            # the kernel raises an ambient cap only if it is also inheritable; runc skips
            # the others with a warning, and so do we
            ksys.prctl(ksys.PR_CAP_AMBIENT, ksys.PR_CAP_AMBIENT_RAISE, cap)
    if spec.umask is not None:
        os.umask(spec.umask)
    if spec.no_new_privs:
        ksys.prctl(ksys.PR_SET_NO_NEW_PRIVS, 1)
    # the container starts with default signal dispositions and nothing blocked, whatever the
    # supervisor ignores (an ignored SIGTERM would survive execve and defeat the stop)
    for sig in _CATCHABLE:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    exe = _find_exe(args[0], env)
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


# ---- the parent ---------------------------------------------------------------------------

def _with_home(spec: Spec, rootfs: str) -> None:
    """runc sets HOME from the container's /etc/passwd when the spec does not (read here, on
    the host side, scoped to the rootfs: never through NSS)."""
    if any(e.startswith("HOME=") for e in spec.env):
        return
    home = "/"
    try:
        for line in read_file_in_root(rootfs, "/etc/passwd").decode("utf-8", "replace").splitlines():
            f = line.split(":")
            if len(f) >= 6 and f[2] == str(spec.uid):
                home = f[5] or "/"
                break
    except OSError:
        pass
    spec.env.append(f"HOME={home}")


class Started(namedtuple("Started", "pid cgroup")):
    """A container whose init has exec'd its command (or exited), and its Cgroup."""
    __slots__ = ()

    def cleanup(self) -> None:
        self.cgroup.kill_all()
        self.cgroup.destroy()

    def status(self, code: int) -> ExitStatus:
        return ExitStatus(code, code == 137 and self.cgroup.oom_killed())


def start(spec: Spec, rootfs: str, container_id: str, cgroup_parent: str = "kubelet-py",
          stdio: tuple[int, int, int] | None = None, create: CreateOptions | None = None) -> Started:
    """Create the cgroup, start the init and return once it has exec'd the command (with
    `create.exec_fifo`: once it waits on the fifo, ready to exec). The init's parent becomes the
    caller's nearest child subreaper (the caller itself, if it is one), which reaps it."""
    _with_home(spec, rootfs)
    seccomp = _compile_seccomp(spec, create.seccomp_cache if create else None)  # here, in the parent: the init only loads it
    _need_socket(create.console if create else None)
    ns_paths = {t: p for t, p in spec.namespaces if p}
    ns_new = [t for t, p in spec.namespaces if not p]
    flags = 0
    for t in ns_new:
        if t != "cgroup":
            flags |= ksys.NAMESPACES[t]
    ns_fds = {}
    try:
        for t, p in ns_paths.items():
            try:
                ns_fds[t] = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise SpecError(f"linux.namespaces[{t}].path", f"{p}: {e.strerror}") from None
        cgroup = Cgroup(spec.cgroups_path or f"{cgroup_parent}/{container_id}")
        cgroup.create()
        try:
            cgroup.apply(resources_from_spec(spec.resources))
            pid = _spawn(spec, rootfs, cgroup, flags, ns_fds, "cgroup" in ns_new, stdio, seccomp, create)
        except BaseException:
            cgroup.kill_all()
            cgroup.destroy()
            raise
        return Started(pid, cgroup)
    finally:
        for fd in ns_fds.values():
            os.close(fd)


def run(spec: Spec, rootfs: str, container_id: str, cgroup_parent: str = "kubelet-py") -> ExitStatus:
    """Run the container in the foreground until it exits (as `runc run`)."""
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
    st = start(spec, rootfs, container_id, cgroup_parent)
    try:
        # forward the usual termination signals to the container, as `runc run` does
        old = {s: signal.signal(s, lambda n, _f: os.kill(st.pid, n)) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            return st.status(_reap(st.pid))
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    finally:
        st.cleanup()


def _launch(cgroup: Cgroup, stdio, enter, final, what: str, ready: bool = False,
            on_hook: Callable[[int], None] | None = None) -> int:
    """Fork an intermediate which, once the parent has put it in `cgroup`, runs `enter()` (join
    or create namespaces), forks the process that runs `final(report_fd, go_fd)` (it execs),
    reports that pid and exits. Errors of either come back over the report pipe as one line.

    Report lines: `P<pid>` (the final process), `E<error>`, `H` (the final process waits for
    `on_hook(pid)`, then gets a byte on the go pipe), `R` (with `ready`: it is ready to exec and
    waits; return now). Without `ready` this returns at EOF: the pipe is close-on-exec."""
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    rep_r, rep_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # intermediate
        try:
            os.close(go_w)
            os.close(rep_r)
            if stdio is not None:
                for target, fd in enumerate(stdio):
                    os.dup2(fd, target)
            os.read(go_r, 1)  # the parent has put us in the cgroup
            # non-dumpable until execve (which resets it): a container process cannot open
            # /proc/<pid>/exe (the host's interpreter) of us or our child (CVE-2019-5736)
            ksys.prctl(ksys.PR_SET_DUMPABLE, 0)
            enter()
            child = os.fork()  # a new pid namespace applies to children only
            if child:
                os.write(rep_w, f"P{child}\n".encode())
                os._exit(0)
            final(rep_w, go_r)
        except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
            msg = f"{type(e).__name__}: {e}" if not isinstance(e, (RunError, OSError)) else str(e)
            try:
                os.write(rep_w, f"E{msg}\n".encode(errors="replace"))
            except OSError:
                pass
        os._exit(127)
    os.close(go_r)
    os.close(rep_w)
    try:
        cgroup.add(pid)
    except Exception:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(go_w)
        os.close(rep_r)
        raise
    child = None
    try:
        os.write(go_w, b"g")
        buf, hook_wanted, done = b"", False, False
        while not done:
            chunk = os.read(rep_r, 4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith("P"):
                    child = int(text[1:])
                elif text.startswith("E"):
                    if child:
                        _reap(child)
                    raise RunError(f"{what} failed: {text[1:]}")
                elif text == "H":
                    hook_wanted = True
                elif text == "R" and ready:
                    done = True
                    break
            if hook_wanted and child is not None:
                hook_wanted = False
                on_hook(child)  # raising: the finally closes the go pipe and the child exits
                os.write(go_w, b"h")
    finally:
        os.close(go_w)
        os.close(rep_r)
        os.waitpid(pid, 0)
    if child is None:
        raise RunError(f"{what} failed: the process vanished")
    if ready and not done:
        raise RunError(f"{what} failed: the process exited before it was ready")
    return child


def _private(st: os.stat_result, path: str) -> None:
    if st.st_uid != os.geteuid() or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path}: not ours alone")


def _compile_seccomp(spec: Spec, cache_dir: str | None = None) -> kseccomp.Filter | None:
    """The spec's filter, compiled in the parent. With `cache_dir` (the OCI CLI: a fresh process
    per call) compiled programs are kept on disk, keyed by the profile, the kernel and the
    libseccomp file: podman's profile takes libseccomp ~60 ms to compile, loading it ~0.1 ms.
    The directory must be as private as the runtime's state (the CLI's --root, mode 0700)."""
    if spec.seccomp is None:
        return None
    if cache_dir is None:
        return kseccomp.compile_filter(spec.seccomp)
    import zlib
    lib = next((os.path.realpath(p) for p in ("/lib/x86_64-linux-gnu/libseccomp.so.2",
                                               "/usr/lib/x86_64-linux-gnu/libseccomp.so.2",
                                               "/lib/aarch64-linux-gnu/libseccomp.so.2",
                                               "/usr/lib64/libseccomp.so.2") if os.path.exists(p)), "")
    # the file is named by a checksum and holds the whole key, compared exactly on load (hashlib
    # would cost ~5 ms of start-up: OpenSSL)
    key = json.dumps([spec.seccomp, os.uname().release, lib, kseccomp.COMPILER_VERSION], sort_keys=True)
    path = os.path.join(cache_dir, f"seccomp-{zlib.crc32(key.encode()):08x}-{len(key)}.json")
    try:
        # the program decides what the container may do: only a file of ours, in a dir only we
        # can write, is trusted (anything else is compiled afresh)
        _private(os.lstat(cache_dir), cache_dir)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd) as f:
            _private(os.fstat(fd), path)
            d = json.load(f)
        if d["key"] != key:
            raise ValueError("another profile")
        return kseccomp.Filter(bytes.fromhex(d["program"]), d["flags"], d["skipped"], d["arches"])
    except (OSError, ValueError, KeyError, TypeError, kseccomp.SeccompError):
        pass
    flt = kseccomp.compile_filter(spec.seccomp)
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"key": key, "program": flt.program.hex(), "flags": flt.flags, "skipped": flt.skipped_syscalls,
                       "arches": flt.skipped_arches}, f)
        os.rename(tmp, path)
    except OSError:
        pass  # a cache only
    return flt


def _spawn(spec, rootfs, cgroup, flags, ns_fds, new_cgroupns, stdio, seccomp=None, create=None) -> int:
    def enter():
        for t in ("network", "ipc", "uts", "pid", "mount", "cgroup"):
            if t in ns_fds:
                ksys.setns(ns_fds[t], ksys.NAMESPACES[t])
        ksys.unshare(flags)
        if new_cgroupns:
            ksys.unshare(ksys.CLONE_NEWCGROUP)
    create = create or CreateOptions()
    return _launch(cgroup, stdio, enter, lambda rep, go: _init(spec, rootfs, cgroup, rep, seccomp, create, go),
                   "container start", ready=create.exec_fifo is not None,
                   on_hook=create.before_pivot)


_NS_ORDER = (("ipc", ksys.CLONE_NEWIPC), ("uts", ksys.CLONE_NEWUTS), ("net", ksys.CLONE_NEWNET),
             ("pid", ksys.CLONE_NEWPID), ("cgroup", ksys.CLONE_NEWCGROUP), ("mnt", ksys.CLONE_NEWNS))


def exec_in(init_pid: int, spec: Spec, cgroup: Cgroup, args: list[str], env: list[str] | None = None,
            cwd: str | None = None, stdio: tuple[int, int, int] | None = None,
            console: int | None = None, console_size: tuple[int, int] | None = None,
            seccomp_cache: str | None = None) -> int:
    """Start `args` inside the running container whose init is `init_pid`: all its namespaces,
    its cgroup, its user, capabilities, no_new_privs and seccomp filter. Returns the new
    process's pid (a child of the caller's nearest subreaper, the caller itself if it is one,
    which reaps it). A fork, no new interpreter. `console`: as CreateOptions.console."""
    env = list(spec.env if env is None else env)
    seccomp = _compile_seccomp(spec, seccomp_cache)  # in the parent (cached: the init's program)
    _need_socket(console)
    ns_fds = []
    try:
        for name, flag in _NS_ORDER:
            try:
                fd = os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise RunError(f"container init {init_pid} is gone") from None
            if os.stat(f"/proc/{init_pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                os.close(fd)  # the host's own (hostNetwork and the like): nothing to join
                continue
            ns_fds.append((fd, flag))
        def enter():
            for fd, flag in ns_fds:
                ksys.setns(fd, flag)

        def final(rep, _go):
            os.chdir("/")
            _become(spec, args, env, cwd or spec.cwd, rep, seccomp, console, console_size)
        return _launch(cgroup, stdio, enter, final, "exec")
    finally:
        for fd, _ in ns_fds:
            os.close(fd)


def _reap(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)


def run_bundle(bundle: str, container_id: str) -> ExitStatus:
    spec, rootfs = load_bundle(bundle)
    return run(spec, rootfs, container_id)
