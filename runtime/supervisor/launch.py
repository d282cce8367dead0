"""Starting and stopping a pod's supervisor (the daemon's side).

The supervisor runs from a sealed copy of the interpreter (CVE-2019-5736: /proc/<pid>/exe of
every process it forks is nothing a container can write), as `python -S -c`, with the project's
own directory first on its PYTHONPATH: that works however kubelet-py is installed (a path entry,
an editable install's import hook, a wheel), since the child gets the directory the running
`runtime` package was loaded from. It tells its launcher over a pipe that it serves (or why it
could not); the launch is a spawn (subprocess), never a fork of the caller, so any thread of a
daemon may call it."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

from ..errors import INTERNAL, UNAVAILABLE
from .client import SupervisorClient
from .wire import LOG_FILE, PID_FILE, SupervisorError

MAIN = "import sys; from runtime.supervisor.server import main; sys.exit(main())"
MARK = b"runtime.supervisor.server"  # in every supervisor's command line


def python_path() -> str:
    """The directory that holds the `runtime` package, then the rest of sys.path (where the
    dependencies are): the supervisor imports exactly what this process imports."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.pathsep.join(dict.fromkeys([here] + [p for p in sys.path if p]))


def start_supervisor(pod_dir: str, cgroup_parent: str, timeout: float = 10.0) -> SupervisorClient:
    """Launch the pod's supervisor (detached) and return a client once it serves."""
    from ..linux.sealed import interpreter_argv, sealed_copy
    exe = sealed_copy()
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    try:
        with open(os.path.join(pod_dir, LOG_FILE), "ab") as log:
            # -S and -c, not -m: no site hooks and no runpy in a process that lives as long as
            # the pod (its RSS)
            subprocess.run(interpreter_argv(["-S", "-c", MAIN, "--pod-dir", pod_dir, "--cgroup-parent", cgroup_parent,
                                             "--ready-fd", str(ready_w)]),
                           executable=f"/proc/self/fd/{exe}", pass_fds=(exe, ready_w), check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd="/",
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": python_path()})
        os.close(ready_w)
        ready_w = -1
        msg = _read_until_eof(ready_r, timeout)
    except subprocess.CalledProcessError as e:
        raise SupervisorError(f"the supervisor of {pod_dir} did not start (exit {e.returncode}; see "
                              f"{pod_dir}/{LOG_FILE})", kind=INTERNAL, obj=f"pod {os.path.basename(pod_dir)}") from None
    finally:
        os.close(exe)
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
    """The pid of the pod's supervisor while it runs (checked by its command line, never a
    recycled pid of something else)."""
    try:
        with open(os.path.join(pod_dir, PID_FILE)) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if any(MARK in part for part in cmd) and pod_dir.encode() in cmd:
        return pid
    return None


def kill_supervisor(pod_dir: str, timeout: float = 2.0) -> None:
    """SIGKILL the pod's supervisor if it is still there, and wait until it is gone."""
    pid = supervisor_pid(pod_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return  # dead; its reaper (init) takes it
        except (FileNotFoundError, ProcessLookupError):
            return  # gone (reaped between our looks)
        time.sleep(0.005)
