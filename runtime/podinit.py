"""The pod's PID 1 for `shareProcessNamespace: true` (kernel edge): what the pause container is
to such a pod, forked by the pod's supervisor.

It creates the pod's pid namespace, outlives the containers and reaps the orphans they leave
(the kernel gives every orphan of the namespace to its PID 1). The containers' own main
processes stay children of the supervisor, which records their exit codes. Since every
container of the pod sees it as /proc/1, it keeps nothing worth reaching: an empty read-only
root in its own mount namespace, no capabilities, uid/gid 65535 (pause's), no fds,
non-dumpable, oom_score_adj -998 and 2 CPU shares (pause's under containerd). It runs only code
imported before the fork. Unlike pause it ignores SIGTERM and SIGINT: no container of the pod can
end it; the supervisor ends it with SIGKILL when the pod goes.

    <run-root>/pods/<uid>/ns/pid   the namespace, bind-mounted (containers join it by path)
    <cgroup-root>/.../pod<uid>/kpy-pod-init   its cgroup (v2 allows no process in the pod's own)
"""

from __future__ import annotations

import os
import signal

from .cgroups import Cgroup, Resources
from .errors import RuntimeFailure
from .linux import forkreport
from .linux import sys as ksys

INIT_CGROUP = "kpy-pod-init"
PAUSE_ID = 65535
OOM_SCORE_ADJ = -998  # containerd's for the pause container


class PodInitError(RuntimeFailure):
    """The pod's PID 1 could not be started (INTERNAL: the kernel refused a step)."""


def spawn_pod_init(pod_dir: str, pod_cgroup: str) -> int:
    """Start the pod's PID 1 (a child of the caller, who reaps it), pin its pid namespace at
    <pod_dir>/ns/pid and return its pid (as the caller's namespace sees it)."""
    cg = Cgroup(f"{pod_cgroup}/{INIT_CGROUP}")
    cg.create()
    cg.apply(Resources(cpu_shares=2))
    pid = None
    try:
        # the intermediate joins the pod's namespaces (as pause: its /proc/1/net is the pod's,
        # not the host's) and makes the pid namespace whose PID 1 its child is
        with forkreport.spawn(lambda: _enter_pod(pod_dir), lambda _rep, _go: _init_main(pod_dir), cg.add,
                              PodInitError, f"{pod_dir}: the pod's init failed") as proc:
            pid = proc.wait()  # EOF: the init has closed every fd (it is ready)
        target = os.path.join(pod_dir, "ns", "pid")
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
        ksys.mount(f"/proc/{pid}/ns/pid", target, None, ksys.MS_BIND)
        return pid
    except BaseException:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        cg.kill_all()
        raise


def _enter_pod(pod_dir: str) -> None:
    _join_pod_namespaces(pod_dir)
    ksys.unshare(ksys.CLONE_NEWPID)


def _join_pod_namespaces(pod_dir: str) -> None:
    for name, flag in (("net", ksys.CLONE_NEWNET), ("ipc", ksys.CLONE_NEWIPC), ("uts", ksys.CLONE_NEWUTS)):
        path = os.path.join(pod_dir, "ns", name)
        if os.path.exists(path):  # absent: the pod uses the host's (hostNetwork, hostIPC)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ksys.setns(fd, flag)
            finally:
                os.close(fd)
    user = os.path.join(pod_dir, "ns", "user")
    if os.path.exists(user):  # hostUsers: false: the pid namespace made next belongs to the pod's user namespace
        fd = os.open(user, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ksys.setns(fd, ksys.CLONE_NEWUSER)
        finally:
            os.close(fd)


def _set_cmdline(name: bytes) -> None:
    """Overwrite this process's argument area (inherited from the supervisor, it names host
    paths), as setproctitle does: through /proc/self/mem, no privilege needed."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    arg_start, arg_end = int(fields[45]), int(fields[46])  # stat fields 48 and 49
    fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
    try:
        os.pwrite(fd, name[: arg_end - arg_start - 1].ljust(arg_end - arg_start, b"\0"), arg_start)
    finally:
        os.close(fd)


def _init_main(pod_dir: str) -> None:
    """PID 1 of the pod: shed everything, then reap forever. Never returns; an error of the
    setup goes back to the supervisor (forkreport)."""
    _set_cmdline(b"kpy-pod-init")  # what the containers see as /proc/1/cmdline, not host paths
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(OOM_SCORE_ADJ))  # the OOM killer takes the pod's PID 1 last, as it does pause
    except PermissionError:
        pass  # lowering it needs CAP_SYS_RESOURCE, which some hosts' root lacks: keep the supervisor's
    ksys.unshare(ksys.CLONE_NEWNS)
    ksys.mount(None, "/", None, ksys.MS_PRIVATE | ksys.MS_REC)
    ksys.mount("tmpfs", pod_dir, "tmpfs", ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC, "size=4k,mode=555")
    os.chdir(pod_dir)  # the empty tmpfs: only this mount namespace sees it there
    ksys.pivot_root(".", ".")
    ksys.umount2(".", ksys.MNT_DETACH)
    os.chdir("/")
    ksys.mount(None, "/", None, ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY | ksys.MS_NOSUID
               | ksys.MS_NODEV | ksys.MS_NOEXEC)
    os.setgroups([])
    os.setresgid(PAUSE_ID, PAUSE_ID, PAUSE_ID)
    os.setresuid(PAUSE_ID, PAUSE_ID, PAUSE_ID)  # every capability goes with uid 0
    ksys.prctl(ksys.PR_SET_DUMPABLE, 0)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the supervisor's SIGKILL ends the pod
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    os.closerange(0, 1 << 16)  # the report pipe too: its EOF tells the supervisor we are ready
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass  # no child left: wait for the next orphan
        signal.sigwait({signal.SIGCHLD})
