"""Starting and stopping a pod's supervisor (the daemon's side).

Supervisors are forked by this process's zygote (zygote.py: a warm interpreter started once
from the sealed copy of the interpreter, CVE-2019-5736), never by the caller: any thread of a
daemon may call these. A new supervisor tells its launcher over a pipe that it serves (or why
it could not)."""

from __future__ import annotations

import logging
import os
import select
import signal
import time

from ..errors import INTERNAL, UNAVAILABLE
from .client import SupervisorClient
from .wire import LOG_FILE, PID_FILE, SupervisorError, start_time
from .zygote import Zygote

log = logging.getLogger("kubelet_py.runtime")
MARK = b"runtime.supervisor."  # in the command line of every supervisor (the zygote's)
ZYGOTE = Zygote()


def warm_up() -> None:
    """Start the zygote now rather than at the first pod (a daemon calls this at its start)."""
    ZYGOTE.start()


def start_supervisor(pod_dir: str, cgroup_parent: str, timeout: float = 10.0, meanwhile=None) -> SupervisorClient:
    """Start the pod's supervisor (detached) and return a client once it serves. `meanwhile()`,
    if given, runs in this thread while the supervisor comes up (the zygote forks it, ~5 ms);
    if it raises, the supervisor is killed once it is up (or has failed) and the error raised."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            log_fd = os.open(os.path.join(pod_dir, LOG_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise SupervisorError(f"the supervisor of {pod_dir} cannot log: {e.strerror}", kind=INTERNAL,
                                  obj=f"pod {os.path.basename(pod_dir)}") from None
        try:
            ZYGOTE.request(pod_dir, cgroup_parent, ready_w, log_fd)
        finally:
            os.close(log_fd)
            os.close(ready_w)
            ready_w = -1
        if meanwhile is not None:
            try:
                meanwhile()
            except BaseException:
                try:  # up or failed: either way its pid file says what to kill
                    _read_until_eof(ready_r, timeout)
                except SupervisorError as e:
                    log.warning("%s: %s", pod_dir, e)
                kill_supervisor(pod_dir)
                raise
        msg = _read_until_eof(ready_r, timeout)
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
    if msg != b"ok\n":
        why = msg[1:].decode(errors="replace").strip() if msg.startswith(b"E") else "it died before it served"
        raise SupervisorError(f"the supervisor of {pod_dir} did not come up: {why} (see {pod_dir}/{LOG_FILE})",
                              kind=INTERNAL, obj=f"pod {os.path.basename(pod_dir)}")
    return SupervisorClient(pod_dir)


def _read_until_eof(fd: int, timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise SupervisorError(f"the supervisor did not come up within {timeout}s", kind=UNAVAILABLE)
        data = os.read(fd, 4096)
        if not data:
            return out
        out += data


def supervisor_pid(pod_dir: str) -> int | None:
    """The pid of the pod's supervisor while it runs: the pid of its PID_FILE if that process
    has the start time recorded with it (never a recycled pid of something else)."""
    try:
        with open(os.path.join(pod_dir, PID_FILE)) as f:
            pid_s, _, started = f.read().partition(" ")
        pid = int(pid_s)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except (OSError, ValueError):
        return None
    if MARK not in cmd:
        return None
    if not started.strip():  # written by a supervisor before zygotes: its command line names its pod
        return pid if pod_dir.encode() in cmd.split(b"\0") else None
    return pid if started.strip() == str(start_time(pid)) else None


def kill_supervisor(pod_dir: str, timeout: float = 2.0) -> None:
    """SIGKILL the pod's supervisor if it is still there, and wait until it is gone."""
    pid = supervisor_pid(pod_dir)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return  # exited and reaped since the look above (remove_pod_sandbox asks it to shut down first)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return  # dead; its reaper (init) takes it
        except (FileNotFoundError, ProcessLookupError):
            return  # gone (reaped between our looks)
        time.sleep(0.005)
