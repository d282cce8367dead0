"""The daemon's side of a pod's supervisor.

`SupervisorClient` is safe to share between threads: a short request holds a lock for its
round trip on one connection, and every call that waits for an exit (`wait`, `stop`,
`exec_sync`) uses a connection of its own, so no caller waits behind another's container.
`EventStream` is one subscription: iterate it from a thread, or hand its `fileno()` to an
event loop and call `poll(0)` when it is readable."""

from __future__ import annotations

import json
import os
import selectors
import socket
import threading
import time

from ..errors import DEADLINE_EXCEEDED, UNAVAILABLE
from .wire import SupervisorError, line, raise_if_error, via_dir_fd

MAX_EXEC_OUTPUT = 16 << 20  # CRI's bound on what ExecSync returns per stream (containerd's)


def connect(pod_dir: str, timeout: float | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        via_dir_fd(pod_dir, sock.connect)
    except OSError as e:
        sock.close()
        raise SupervisorError(f"pod dir {pod_dir}: no supervisor answers ({e.strerror or e})", kind=UNAVAILABLE,
                              obj=f"pod {os.path.basename(pod_dir)}") from None
    sock.settimeout(timeout)
    return sock


class _Lines:
    """Lines from a socket, with whatever fds came along (SCM_RIGHTS)."""

    def __init__(self, sock: socket.socket, what: str):
        self.sock, self.what, self.buf, self.fds = sock, what, bytearray(), []

    def read(self, max_fds: int = 0) -> dict:
        while b"\n" not in self.buf:
            try:
                if max_fds:
                    data, fds, _f, _a = socket.recv_fds(self.sock, 65536, max_fds)
                    self.fds += fds
                else:
                    data = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError as e:
                raise SupervisorError(f"{self.what}: {e.strerror or e}", kind=UNAVAILABLE) from None
            if not data:
                raise SupervisorError(f"{self.what}: the supervisor closed the connection", kind=UNAVAILABLE)
            self.buf += data
        raw, _, rest = bytes(self.buf).partition(b"\n")
        self.buf[:] = rest
        return json.loads(raw)


class SupervisorClient:
    def __init__(self, pod_dir: str):
        self.pod_dir = pod_dir
        self.what = f"supervisor of {pod_dir}"
        self._lock = threading.Lock()
        self._sock: socket.socket | None = connect(pod_dir)
        self._lines = _Lines(self._sock, self.what)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, op: str, **kw) -> dict:
        """A request answered at once (not one that waits for an exit: see `_waiting`)."""
        with self._lock:
            if self._sock is None:
                self._sock = connect(self.pod_dir)
                self._lines = _Lines(self._sock, self.what)
            try:
                self._sock.sendall(line({"op": op, **kw}))
                return raise_if_error(self._lines.read())
            except (SupervisorError, OSError) as e:
                if isinstance(e, SupervisorError) and e.kind != UNAVAILABLE:
                    raise
                self._sock.close()  # a broken connection is not reused
                self._sock = None
                if isinstance(e, SupervisorError):
                    raise
                raise SupervisorError(f"{self.what}: {e.strerror or e}", kind=UNAVAILABLE) from None

    def _waiting(self, timeout: float | None, what: str, op: str, **kw) -> dict:
        """A request answered at an exit, on a connection of its own."""
        sock = connect(self.pod_dir, timeout)
        try:
            sock.sendall(line({"op": op, **kw}))
            return raise_if_error(_Lines(sock, self.what).read())
        except TimeoutError:
            raise SupervisorError(f"{what}: still running after {timeout}s", kind=DEADLINE_EXCEEDED) from None
        finally:
            sock.close()

    # ---- containers ------------------------------------------------------------------------
    def status(self) -> dict:
        """{"epoch", "seq", "pid", "pod_init", "containers": {id: record}}"""
        return self.call("status")

    def record(self, cid: str) -> dict:
        return self.call("status", id=cid)

    def wait(self, cid: str, timeout: float | None = 30.0) -> dict:
        """The container's record once it has exited."""
        return self._waiting(timeout, f"container {cid}", "wait", id=cid)

    def stop(self, cid: str, grace: float = 30.0, sig: str | int | None = None) -> dict:
        """The stop signal, `grace` seconds, SIGKILL of the container's cgroup: its final record."""
        return self._waiting(grace + 30.0, f"container {cid}", "stop", id=cid, grace=grace,
                             **({"signal": sig} if sig is not None else {}))

    def stop_many(self, cids: list[str], grace: float) -> dict[str, dict | SupervisorError]:
        """Stop every container at once (each with `grace`), on a connection each: the whole
        takes as long as the slowest, not the sum."""
        socks = {}
        out: dict[str, dict | SupervisorError] = {}
        try:
            for cid in cids:
                try:
                    s = connect(self.pod_dir, grace + 30.0)
                    s.sendall(line({"op": "stop", "id": cid, "grace": grace}))
                    socks[cid] = s
                except SupervisorError as e:
                    out[cid] = e
            for cid, s in socks.items():
                try:
                    out[cid] = raise_if_error(_Lines(s, self.what).read())
                except SupervisorError as e:
                    out[cid] = e
                except TimeoutError:
                    out[cid] = SupervisorError(f"container {cid}: still running after {grace + 30.0}s",
                                               kind=DEADLINE_EXCEEDED, obj=f"container {cid}")
        finally:
            for s in socks.values():
                s.close()
        return out

    # ---- exec ------------------------------------------------------------------------------
    def exec_start(self, cid: str, args: list[str], env: list[str] | None = None,
                   stdio: tuple[int, int, int] | None = None) -> tuple[int, list[int]]:
        """Start `args` in the container: (pid, [stdout, stderr read ends]); with `stdio`, those
        three fds of ours are the process's own (streamed, nothing comes back)."""
        return self._exec_request({"op": "exec", "id": cid, "args": args, "env": env}, stdio, 2)

    def exec_tty(self, cid: str, args: list[str], env: list[str] | None = None,
                 size: tuple[int, int] | None = None) -> tuple[int, int]:
        """Start `args` on a new pty in the container: (pid, the pty's master fd)."""
        pid, fds = self._exec_request({"op": "exec", "id": cid, "args": args, "env": env, "tty": True,
                                       "console_size": list(size) if size else None}, None, 1)
        return pid, fds[0]

    def _exec_request(self, req: dict, send: tuple[int, ...] | None, max_fds: int) -> tuple[int, list[int]]:
        sock = connect(self.pod_dir, 30.0)
        try:
            if send is not None:
                socket.send_fds(sock, [line(req)], list(send))
            else:
                sock.sendall(line(req))
            lines = _Lines(sock, self.what)
            try:
                ans = raise_if_error(lines.read(max_fds))
            except BaseException:
                for fd in lines.fds:
                    os.close(fd)
                raise
            return ans["pid"], lines.fds
        finally:
            sock.close()

    def exec_wait(self, pid: int, timeout: float | None = None) -> int:
        """The exit code of an exec, answered when it exits."""
        return self._waiting(timeout, f"exec {pid}", "exec-wait", pid=pid)["exit_code"]

    def exec_sync(self, cid: str, args: list[str], timeout: float | None = None, env: list[str] | None = None,
                  max_output: int = MAX_EXEC_OUTPUT) -> tuple[int, bytes, bytes, bool]:
        """Run `args` in the container: (exit code, stdout, stderr, timed_out). The supervisor
        kills the process and its descendants at `timeout`; each stream keeps its first
        `max_output` bytes (the rest is read and dropped, so the process never blocks on us)."""
        sock = connect(self.pod_dir, None)
        fds: list[int] = []
        sel = selectors.DefaultSelector()
        try:
            sock.sendall(line({"op": "exec", "id": cid, "args": args, "env": env,
                               **({"timeout": timeout} if timeout else {})}))
            lines = _Lines(sock, self.what)
            try:
                ans = raise_if_error(lines.read(2))
            finally:
                fds = lines.fds
            pid = ans["pid"]
            sock.sendall(line({"op": "exec-wait", "pid": pid}))  # answered at its exit
            bufs = {fd: bytearray() for fd in fds}
            for fd in fds:
                sel.register(fd, selectors.EVENT_READ)
            sel.register(sock, selectors.EVENT_READ)
            exited = None
            drain_until = None
            open_pipes = set(fds)
            while exited is None or open_pipes:
                wait = None if drain_until is None else max(0.0, drain_until - time.monotonic())
                ready = sel.select(wait)
                if not ready and drain_until is not None:
                    break  # exited, and what it left running still holds the pipes
                for key, _ in ready:
                    if key.fileobj is sock:
                        sel.unregister(sock)
                        exited = raise_if_error(lines.read())
                        drain_until = time.monotonic() + 0.1
                        continue
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fd)
                        open_pipes.discard(key.fd)
                        continue
                    b = bufs[key.fd]
                    if len(b) < max_output:
                        b += data[:max_output - len(b)]
            return exited["exit_code"], bytes(bufs[fds[0]]), bytes(bufs[fds[1]]), bool(exited.get("timed_out"))
        finally:
            sel.close()
            for fd in fds:
                os.close(fd)
            sock.close()


class EventStream:
    """A subscription to a pod's events: dicts with `seq`, `type` (created, started, exited,
    removed, exec_exited, or `resync`: events were missed, list the pod again), `id`, `time`
    and the type's fields. Reconnect with `EventStream(pod_dir, since=s.seq, epoch=s.epoch)`."""

    def __init__(self, pod_dir: str, since: int = 0, epoch: str | None = None):
        self.pod_dir = pod_dir
        self.sock = connect(pod_dir, 30.0)
        try:
            self.sock.sendall(line({"op": "subscribe", "since": since, "epoch": epoch}))
            self._lines = _Lines(self.sock, f"events of {pod_dir}")
            head = raise_if_error(self._lines.read())
        except BaseException:
            self.sock.close()
            raise
        self.epoch, self.seq = head["epoch"], since if epoch == head["epoch"] else 0
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def poll(self, timeout: float | None = None) -> list[dict]:
        """The events that have arrived, waiting up to `timeout` for the first (None: forever).
        Raises SupervisorError (UNAVAILABLE) when the supervisor is gone."""
        out = self._complete()
        if out:
            return out
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not out:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not sel.select(left):
                    return []
                try:
                    data = self.sock.recv(1 << 16)
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise SupervisorError(f"events of {self.pod_dir}: {e.strerror or e}", kind=UNAVAILABLE) from None
                if not data:
                    raise SupervisorError(f"events of {self.pod_dir}: the supervisor closed the stream",
                                          kind=UNAVAILABLE)
                self._lines.buf += data
                out = self._complete()
        finally:
            sel.close()
        return out

    def _complete(self) -> list[dict]:
        out = []
        while b"\n" in self._lines.buf:
            raw, _, rest = bytes(self._lines.buf).partition(b"\n")
            self._lines.buf[:] = rest
            ev = json.loads(raw)["event"]
            self.seq = max(self.seq, ev["seq"])
            out.append(ev)
        return out

    def __iter__(self):
        while True:
            yield from self.poll(None)

    def close(self) -> None:
        self.sock.close()
