"""The supervisor maker: one warm process per runtime user that forks each pod's supervisor.

A supervisor started as a new interpreter costs its launcher 35-45 ms here (the interpreter,
then ~30 ms of imports) and its first container start ~15 ms more (the executor's imports),
which was most of a pod's start. The zygote is started once, from the sealed copy of the
interpreter (CVE-2019-5736: every supervisor and container forked from it runs that memfd),
imports the supervisor and the executor, freezes its objects out of the garbage collector (so
its children share those pages instead of copying them), and then only forks: 1-3 ms a pod.

    daemon thread --SEQPACKET {pod_dir, cgroup_parent} + fds [ready pipe, log]--> zygote
    zygote: fork -> child: setsid, fork -> supervisor (nobody's child; the child exits at once
            and the zygote reaps it) -> serves the pod, writes `ok` on the ready pipe

The zygote never answers on its socket: the ready pipe carries the supervisor's `ok` or its
error, as it did when supervisors were spawned one by one, so a zygote that dies makes the
launcher's read end at EOF rather than hang. It exits when its launcher's end of the socket
closes (the launcher exited), and a launcher whose zygote died starts another. Supervisors
outlive both: they are no one's children."""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
import threading

from ..errors import INTERNAL, UNAVAILABLE
from .wire import SupervisorError

MAIN = "import sys; from runtime.supervisor.zygote import main; sys.exit(main())"
MAX_REQUEST = 1 << 16
log = logging.getLogger("kubelet_py.runtime")


class Zygote:
    """The launcher's side: started on first use (or by `start()`), restarted if it died.
    Thread-safe: a request is one datagram, and starting is under a lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self._lock:
            if self._sock is None:
                self._spawn()

    def request(self, pod_dir: str, cgroup_parent: str, ready_fd: int, log_fd: int) -> None:
        """Ask for a supervisor of `pod_dir`; its `ok` (or error) comes on `ready_fd`'s pipe."""
        data = json.dumps({"pod_dir": pod_dir, "cgroup_parent": cgroup_parent}).encode()
        if len(data) > MAX_REQUEST:
            raise SupervisorError(f"pod dir path too long ({len(pod_dir)} bytes)", kind=INTERNAL, obj=pod_dir)
        for attempt in (1, 2):
            with self._lock:
                if self._sock is None:
                    self._spawn()
                sock = self._sock
            try:
                socket.send_fds(sock, [data], [ready_fd, log_fd])
                return
            except OSError as e:  # the zygote died (EPIPE, ECONNRESET): a new one, once
                log.warning("supervisor zygote gone (%s); starting another", e.strerror or e)
                self._drop(sock)
                if attempt == 2:
                    raise SupervisorError(f"cannot reach the supervisor zygote: {e.strerror or e}",
                                          kind=UNAVAILABLE, obj=pod_dir) from None

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Let the zygote go (it exits at EOF); its supervisors live on."""
        with self._lock:
            sock, proc, self._sock, self._proc = self._sock, self._proc, None, None
        if sock is not None:
            sock.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("supervisor zygote %d did not exit at EOF; killing it", proc.pid)
                proc.kill()
                proc.wait()

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is not sock:
                return  # another thread replaced it already
            proc, self._sock, self._proc = self._proc, None, None
        sock.close()
        if proc is not None:
            proc.poll()  # reaped if it is gone; a live one exits at the EOF just sent

    def _spawn(self) -> None:
        from ..linux.sealed import child_python_path, interpreter_argv, sealed_copy
        exe = sealed_copy()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            # -S and -c, not -m: no site hooks and no runpy in a process whose pages every
            # supervisor shares. stderr is the launcher's: a zygote's crash shows in its log.
            self._proc = subprocess.Popen(
                interpreter_argv(["-S", "-c", MAIN, "--socket-fd", str(theirs.fileno())]),
                executable=f"/proc/self/fd/{exe}", pass_fds=(exe, theirs.fileno()), cwd="/",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": child_python_path()})
        except BaseException:
            ours.close()
            raise
        finally:
            os.close(exe)
            theirs.close()
        self._sock = ours


# ---- the zygote process ---------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--socket-fd":
        raise SystemExit(f"supervisor zygote: usage: --socket-fd N (got {argv!r})")
    fd = int(argv[1])
    # the sealed interpreter's fd was passed only for the execve
    os.closerange(3, fd)
    os.closerange(fd + 1, 1 << 16)
    sock = socket.socket(fileno=fd)
    with open("/proc/self/comm", "w") as f:
        f.write("kpy-zygote")
    # what a supervisor and its first container start import, loaded once for all of them
    from ..oci import run  # noqa: F401
    from .. import cgroups, podinit  # noqa: F401
    from . import server
    gc.freeze()
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, MAX_REQUEST, 2)
        except ConnectionResetError:
            return 0
        if not msg:
            for f in fds:
                os.close(f)
            return 0  # the launcher is gone
        try:
            if len(fds) != 2:
                raise ValueError(f"a request carries 2 fds (ready pipe, log), not {len(fds)}")
            req = json.loads(msg)
            _fork_supervisor(sock, server, req["pod_dir"], req.get("cgroup_parent") or "kubelet-py", *fds)
        except Exception as e:  # noqa: BLE001 - told to the launcher; the zygote serves on
            print(f"supervisor zygote: bad request: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            if fds:
                _tell(fds[0], f"E{type(e).__name__}: {e}\n")
        finally:
            for f in fds:
                os.close(f)


def _fork_supervisor(sock: socket.socket, server, pod_dir: str, cgroup_parent: str, ready: int, log_fd: int) -> None:
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the middle process exits at once
        return
    code = 1
    try:
        sock.close()
        os.setsid()
        if os.fork():
            os._exit(0)
        # the supervisor: nobody's child (its parent exited), stdin/stdout /dev/null, stderr its log
        devnull = os.open("/dev/null", os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(log_fd, 2)
        for f in (devnull, log_fd):
            os.close(f)
        os.closerange(3, ready)  # nothing of the zygote's but the ready pipe
        os.closerange(ready + 1, 1 << 16)
        code = server.run(pod_dir, cgroup_parent, ready)
    except BaseException:  # noqa: BLE001 - the ready pipe has the error; this is its trace
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def _tell(fd: int, msg: str) -> None:
    try:
        os.write(fd, msg.encode(errors="replace"))
    except OSError as e:
        print(f"supervisor zygote: cannot tell the launcher: {e}", file=sys.stderr, flush=True)
