"""The supervisor process: one per pod, single-threaded, a child subreaper.

One loop (selectors) serves the socket, the containers' output pipes, SIGCHLD and timers. No
call in it blocks on a client: answers and events go out through per-connection buffers, and a
client that lets its buffer pass MAX_PENDING loses its connection (never stalls the pod's logs).
Requests are dispatched through OPS; each handler answers at once or defers its answer to an
exit (`wait`, `stop`, `exec-wait`).

Container states: created -> running -> exited (a started container never starts again);
`unknown` for containers found running in the records of a supervisor that died. A container
created with `prepare` gets its init at `create`, as `runc create` makes it: namespaces, cgroup,
mounts, user, everything but the execve, for which it waits on an exec fifo in its bundle;
`start` then only lets it exec (the daemon creates containers while the pod network comes up,
and a start costs a write). Every change
is written to the container's record and published as an event with a sequence number;
`subscribe` replays what a client missed (from the last MAX_EVENTS), or tells it to resync."""

from __future__ import annotations

import heapq
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time

from ..errors import ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND
from . import records
from .crilog import LOG_MAX_FILES, LOG_MAX_SIZE, LogWriter, cri_records, now_rfc3339
from .records import CREATED, EXITED, RUNNING, UNKNOWN, UNKNOWN_EXIT_CODE
from .wire import PID_FILE, SOCKET, SupervisorError, error_answer, line, pid_record, via_dir_fd

MAX_EVENTS = 4096  # kept for replay to a reconnecting subscriber
MAX_PENDING = 4 << 20  # bytes queued to one client before it is dropped
log = logging.getLogger("kubelet_py.supervisor")


def _err(kind: str, msg: str, obj: str | None = None, field: str | None = None) -> SupervisorError:
    return SupervisorError(msg, kind=kind, obj=obj, field=field)


class _Conn:
    __slots__ = ("sock", "inbuf", "fds", "out", "subscribed", "closed")

    def __init__(self, sock):
        self.sock, self.inbuf, self.fds, self.out = sock, bytearray(), [], bytearray()
        self.subscribed, self.closed = False, False


class _Container:
    __slots__ = ("rec", "started", "log", "bufs", "open_streams", "waiters", "spec", "stop_timer")

    def __init__(self, rec: dict):
        self.rec, self.started, self.log, self.spec = rec, None, None, None
        self.bufs = {"stdout": bytearray(), "stderr": bytearray()}
        self.open_streams, self.waiters, self.stop_timer = 0, [], None


class Supervisor:
    def __init__(self, pod_dir: str, cgroup_parent: str):
        self.pod_dir, self.cgroup_parent = pod_dir, cgroup_parent
        self.epoch = str(time.time_ns())  # a new supervisor is a new event sequence
        self.seq = 0
        self.events: list[dict] = []
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}
        self.timers: list[tuple[float, int, tuple]] = []
        self.timer_seq = 0
        self.by_pid: dict[int, _Container] = {}
        self.execs: dict[int, dict] = {}  # exec pid -> {"id", "exit_code", "timed_out", "waiters"}
        self.pod_init: int | None = None  # shareProcessNamespace: the pod's PID 1 (0 once it died)
        self.ready_fd: int | None = None
        os.makedirs(os.path.join(pod_dir, records.STATES_DIR), exist_ok=True)
        # a supervisor started for a pod whose earlier one died: what that one recorded
        self.containers = {cid: _Container(rec) for cid, rec in records.load_all(pod_dir, False).items()}
        for c in self.containers.values():
            if c.rec["state"] == UNKNOWN:
                records.save(pod_dir, c.rec)

    # ---- the loop --------------------------------------------------------------------------
    def serve(self) -> None:
        from ..linux import sys as ksys
        ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
        self.pod_init = self._pod_init()  # before any handler or fd of the loop exists
        sock_path = os.path.join(self.pod_dir, SOCKET)
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)  # 0600 from its creation, not after a chmod
        try:
            via_dir_fd(self.pod_dir, srv.bind)
        finally:
            os.umask(old_umask)
        srv.listen(64)
        srv.setblocking(False)
        self.sel.register(srv, selectors.EVENT_READ, None)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the pod's life is decided by the daemon
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(wake_r, selectors.EVENT_READ, "sigchld")
        from ..atomicfile import write_atomic
        write_atomic(os.path.join(self.pod_dir, PID_FILE), pid_record(), 0o600, durable=False)  # dies with the host
        if self.ready_fd is not None:  # the launcher waits for this line (or an error's)
            os.write(self.ready_fd, b"ok\n")
            os.close(self.ready_fd)
            self.ready_fd = None
        self.running = True
        while self.running:
            for key, mask in self.sel.select(timeout=self._next_timeout()):
                data = key.data
                if data is None:
                    self._accept(srv)
                elif data == "sigchld":
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                elif isinstance(data, _Conn):
                    if mask & selectors.EVENT_WRITE:
                        self._flush(data)
                    if mask & selectors.EVENT_READ and not data.closed:
                        self._read(data)
                else:
                    self._stream(key.fileobj, *data)
            self._reap()
            self._fire_timers()
        for conn in list(self.conns.values()):
            self._flush(conn)
            self._close(conn)
        srv.close()
        os.unlink(sock_path)

    def _pod_init(self) -> int | None:
        """shareProcessNamespace: the pod's PID 1, made once, before any container."""
        try:
            with open(os.path.join(self.pod_dir, "sandbox.json")) as f:
                sandbox = json.load(f)
        except FileNotFoundError:
            return None
        if sandbox.get("pid_mode") != "pod":
            return None
        from ..podinit import spawn_pod_init
        return spawn_pod_init(self.pod_dir, sandbox["cgroup_path"])

    # ---- connections -----------------------------------------------------------------------
    def _accept(self, srv) -> None:
        try:
            sock, _ = srv.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = _Conn(sock)
        self.conns[sock.fileno()] = conn
        self.sel.register(sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.conns.pop(conn.sock.fileno(), None)
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        for fd in conn.fds:
            os.close(fd)
        conn.fds.clear()
        conn.sock.close()

    def send(self, conn: _Conn, doc: dict, fds: list[int] | None = None) -> None:
        """Queue `doc` for `conn`, never blocking: what the socket does not take now waits in
        the connection's buffer; fds go with the first byte of their line."""
        if conn.closed:
            return
        data = line(doc)
        if fds:
            if conn.out:  # an answer with fds goes out only to a client with nothing pending
                log.warning("a client with pending output was sent fds: dropped")
                self._close(conn)
                return
            try:
                n = socket.send_fds(conn.sock, [data], fds)
            except (BlockingIOError, OSError) as e:
                log.warning("a client did not take its fds (%s): dropped", e)
                self._close(conn)
                return
            data = data[n:]
        conn.out += data
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        if conn.closed:
            return
        try:
            while conn.out:
                n = conn.sock.send(conn.out)
                del conn.out[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._close(conn)
            return
        if len(conn.out) > MAX_PENDING:
            log.warning("a client stopped reading (%d bytes pending): dropped", len(conn.out))
            self._close(conn)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        if self.sel.get_key(conn.sock).events != want:
            self.sel.modify(conn.sock, want, conn)

    def _read(self, conn: _Conn) -> None:
        """One read of a client: whole request lines are answered in order. fds that come along
        (an exec's own stdio) wait with the bytes until their line is complete."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn.sock, 65536, 3)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        conn.fds += fds
        if not data:
            self._close(conn)
            return
        conn.inbuf += data
        while b"\n" in conn.inbuf and not conn.closed:
            raw, _, rest = bytes(conn.inbuf).partition(b"\n")
            conn.inbuf[:] = rest
            passed, conn.fds = conn.fds, []
            self._request(conn, raw, passed)
        if not conn.inbuf and conn.fds:  # fds that came with no line: closed
            for fd in conn.fds:
                os.close(fd)
            conn.fds.clear()

    def _request(self, conn: _Conn, raw: bytes, passed: list[int]) -> None:
        out_fds: list[int] = []
        try:
            try:
                req = json.loads(raw)
                if not isinstance(req, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                raise _err(INVALID_ARGUMENT, f"a request line is not JSON: {e}") from None
            handler = OPS.get(req.get("op"))
            if handler is None:
                raise _err(INVALID_ARGUMENT, f"unknown op {req.get('op')!r}", field="op")
            answer = handler(self, conn, req, passed, out_fds)
        except Exception as e:  # noqa: BLE001 - every failure is an answer, never a crash
            if not isinstance(e, SupervisorError) and not hasattr(e, "kind"):
                log.exception("op failed")
            for fd in out_fds:
                os.close(fd)
            out_fds = []
            answer = error_answer(e)
        finally:
            for fd in passed:
                os.close(fd)
        if answer is not None:  # None: deferred (answered at an exit)
            self.send(conn, {"ok": True, **answer} if "ok" not in answer else answer, out_fds)
        for fd in out_fds:
            os.close(fd)

    # ---- events and timers -----------------------------------------------------------------
    def _publish(self, kind: str, cid: str | None, **fields) -> None:
        self.seq += 1
        ev = {"seq": self.seq, "type": kind, "id": cid, "time": now_rfc3339(), **fields}
        self.events.append(ev)
        if len(self.events) > MAX_EVENTS:
            del self.events[: len(self.events) - MAX_EVENTS]
        for conn in list(self.conns.values()):
            if conn.subscribed:
                self.send(conn, {"event": ev})

    def _after(self, seconds: float, what: tuple) -> None:
        self.timer_seq += 1
        heapq.heappush(self.timers, (time.monotonic() + seconds, self.timer_seq, what))

    def _next_timeout(self) -> float:
        if not self.timers:
            return 1.0
        return min(1.0, max(0.0, self.timers[0][0] - time.monotonic()))

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, what = heapq.heappop(self.timers)
            kind, key = what
            try:
                if kind == "stop":
                    c = self.containers.get(key[0])
                    if c is not None and c.rec["state"] == RUNNING and c.stop_timer == key[1]:
                        c.started.cgroup.kill_all()  # the grace period is over
                elif kind == "exec":
                    ex = self.execs.get(key)
                    if ex is not None and ex["exit_code"] is None:
                        ex["timed_out"] = True
                        _kill_tree(key)
            except Exception:  # noqa: BLE001 - a timer that fails is logged, the loop goes on
                log.exception("timer %s %s", kind, key)

    # ---- container life --------------------------------------------------------------------
    def _container(self, req: dict) -> _Container:
        cid = req.get("id")
        c = self.containers.get(cid) if isinstance(cid, str) else None
        if c is None:
            raise _err(NOT_FOUND, f"no container {cid!r} in this pod", obj=f"container {cid}")
        return c

    def op_create(self, conn, req, passed, out_fds) -> dict:
        cid = req.get("id")
        if not isinstance(cid, str) or not cid:
            raise _err(INVALID_ARGUMENT, "a container needs an id", field="id")
        if cid in self.containers:
            raise _err(ALREADY_EXISTS, f"container {cid} exists in this pod", obj=f"container {cid}")
        if not req.get("bundle") or not req.get("log_path"):
            raise _err(INVALID_ARGUMENT, f"container {cid}: bundle and log_path are required", obj=f"container {cid}",
                       field="bundle" if not req.get("bundle") else "log_path")
        rec = records.new_record(req, now_rfc3339())
        c = _Container(rec)
        if req.get("prepare"):
            self._launch(c, prepare=True)  # raising: nothing of it is left or recorded
            rec["prepared"] = True
        records.save(self.pod_dir, rec)
        self.containers[cid] = c
        self._publish("created", cid)
        return dict(rec)

    def op_start(self, conn, req, passed, out_fds) -> dict:
        c = self._container(req)
        cid = c.rec["id"]
        if c.rec["state"] != CREATED:
            raise _err(FAILED_PRECONDITION, f"container {cid} is {c.rec['state']}: a container starts once "
                       "(create a new one)", obj=f"container {cid}")
        if c.started is None:
            self._launch(c, prepare=False)
        else:  # prepared at create: its init waits on the fifo
            from ..oci.execfifo import release_exec_fifo
            try:
                os.close(release_exec_fifo(_exec_fifo(c.rec)))
            except OSError as e:  # ENXIO: no reader, the init is gone (its exit is being reaped)
                raise _err(FAILED_PRECONDITION, f"container {cid}: its init is gone ({e.strerror})",
                           obj=f"container {cid}") from None
        c.rec.update(state=RUNNING, pid=c.started.pid, started_at=now_rfc3339())
        records.save(self.pod_dir, c.rec)
        self._publish("started", cid, pid=c.started.pid)
        return {"pid": c.started.pid}

    def _launch(self, c: _Container, prepare: bool) -> None:
        """The container's init, its output into the log; `prepare`: it stops before its
        execve, waiting on the exec fifo (oci.launch.CreateOptions.exec_fifo)."""
        from ..oci.run import CreateOptions, load_bundle, start
        cid = c.rec["id"]
        if self.pod_init == 0:
            raise _err(FAILED_PRECONDITION, "the pod's init (PID 1 of its shared pid namespace) has exited: "
                       "the pod must be recreated", obj=f"container {cid}")
        spec, rootfs = load_bundle(c.rec["bundle"])
        create = None
        if prepare:
            fifo = _exec_fifo(c.rec)
            _unlink(fifo)  # a create tried before
            os.mkfifo(fifo, 0o600)
            create = CreateOptions(exec_fifo=fifo)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            c.log = LogWriter(c.rec["log_path"], int(c.rec.get("log_max_size") or LOG_MAX_SIZE),
                              int(c.rec.get("log_max_files") or LOG_MAX_FILES))
            c.started = start(spec, rootfs, cid, self.cgroup_parent, stdio=(devnull, out_w, err_w), create=create)
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            if c.log is not None:
                c.log.close()
                c.log = None
            if prepare:
                _unlink(_exec_fifo(c.rec))
            raise
        finally:
            for fd in (out_w, err_w, devnull):
                os.close(fd)
        c.spec = spec
        self.by_pid[c.started.pid] = c
        c.open_streams = 2
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, (c, stream))

    def _discard(self, c: _Container) -> None:
        """A prepared init that never started (the container is removed, or the pod): killed
        with its cgroup, its pipes, log and fifo closed. Its exit is reaped as an orphan's."""
        self.by_pid.pop(c.started.pid, None)
        try:
            c.started.cleanup()
        except Exception as e:  # noqa: BLE001 - logged; the pod's cgroup removal kills what is left
            log.error("container %s: %s", c.rec["id"], e)
        for key in [k for k in self.sel.get_map().values() if isinstance(k.data, tuple) and k.data[0] is c]:
            self.sel.unregister(key.fileobj)
            os.close(key.fd)
        c.open_streams = 0
        if c.log is not None:
            c.log.close()
            c.log = None
        _unlink(_exec_fifo(c.rec))
        c.started = None

    def op_status(self, conn, req, passed, out_fds) -> dict:
        if req.get("id") is not None:
            return dict(self._container(req).rec)
        return {"epoch": self.epoch, "seq": self.seq, "pid": os.getpid(), "pod_init": self.pod_init,
                "containers": {cid: c.rec for cid, c in self.containers.items()}}

    def op_wait(self, conn, req, passed, out_fds) -> dict | None:
        c = self._container(req)
        if c.rec["state"] in (EXITED, UNKNOWN):
            return dict(c.rec)
        c.waiters.append(conn)  # created or running: answered at its exit
        return None

    def op_stop(self, conn, req, passed, out_fds) -> dict | None:
        """The stop signal (the request's, else the container's), `grace` seconds, then SIGKILL
        of its cgroup; answered at the exit."""
        c = self._container(req)
        cid, state = c.rec["id"], c.rec["state"]
        if state == UNKNOWN:
            self._kill_unknown(c)
            return dict(c.rec)
        if state != RUNNING:
            return dict(c.rec)  # nothing runs: created or exited
        sig = _signal_number(req.get("signal") or c.rec.get("stop_signal") or "SIGTERM", cid)
        grace = float(req.get("grace", 30))
        c.waiters.append(conn)
        if grace <= 0:
            c.started.cgroup.kill_all()
            return None
        try:
            os.kill(c.started.pid, sig)
        except ProcessLookupError:
            pass
        c.stop_timer = time.monotonic_ns()  # a later stop's timer replaces this one's
        self._after(grace, ("stop", (cid, c.stop_timer)))
        return None

    def _kill_unknown(self, c: _Container) -> None:
        """A container a dead supervisor left: its cgroup is killed and removed, its exit code
        is containerd's unknown one."""
        from ..cgroups import Cgroup
        from ..oci.run import read_config
        try:
            path = read_config(c.rec["bundle"]).get("linux", {}).get("cgroupsPath")
        except Exception:  # noqa: BLE001 - a bundle already gone: nothing of it runs in a cgroup we know
            path = None
        if path:
            cg = Cgroup(path)
            cg.kill_all()
            cg.destroy()
        c.rec.update(state=EXITED, exit_code=UNKNOWN_EXIT_CODE, reason="Unknown", finished_at=now_rfc3339())
        records.save(self.pod_dir, c.rec)
        self._publish("exited", c.rec["id"], exit_code=UNKNOWN_EXIT_CODE, signal=None, reason="Unknown",
                      oom_killed=False)

    def op_signal(self, conn, req, passed, out_fds) -> dict:
        c = self._container(req)
        if c.rec["state"] != RUNNING:
            raise _err(FAILED_PRECONDITION, f"container {c.rec['id']} is {c.rec['state']}, not running",
                       obj=f"container {c.rec['id']}")
        try:
            os.kill(c.started.pid, _signal_number(req.get("signal", "SIGTERM"), c.rec["id"]))
        except ProcessLookupError:
            pass
        return {}

    def op_kill_all(self, conn, req, passed, out_fds) -> dict:
        c = self._container(req)
        if c.rec["state"] == RUNNING:
            c.started.cgroup.kill_all()
        return {}

    def op_remove(self, conn, req, passed, out_fds) -> dict:
        c = self._container(req)
        cid = c.rec["id"]
        if c.rec["state"] in (RUNNING, UNKNOWN):
            raise _err(FAILED_PRECONDITION, f"container {cid} is still {c.rec['state']}: stop it first",
                       obj=f"container {cid}")
        if c.started is not None and c.rec["state"] == CREATED:
            self._discard(c)
        del self.containers[cid]
        records.drop(self.pod_dir, cid)
        self._publish("removed", cid)
        return {}

    def op_subscribe(self, conn, req, passed, out_fds) -> None:
        """Events from now on; first those after `since` when this supervisor still has them
        (same epoch), else a `resync` event: the client lists the pod again."""
        since, epoch = int(req.get("since") or 0), req.get("epoch")
        conn.subscribed = True
        self.send(conn, {"ok": True, "epoch": self.epoch, "seq": self.seq})
        if epoch is None and since == 0:
            missed = list(self.events)
        elif epoch != self.epoch or (self.events and since < self.events[0]["seq"] - 1) or since > self.seq:
            self.send(conn, {"event": {"seq": self.seq, "type": "resync", "id": None, "time": now_rfc3339()}})
            return None
        else:
            missed = [e for e in self.events if e["seq"] > since]
        for ev in missed:
            self.send(conn, {"event": ev})
        return None

    def op_ping(self, conn, req, passed, out_fds) -> dict:
        return {"pid": os.getpid(), "pod_init": self.pod_init, "epoch": self.epoch, "seq": self.seq}

    def op_shutdown(self, conn, req, passed, out_fds) -> dict:
        busy = [cid for cid, c in self.containers.items() if c.rec["state"] in (RUNNING, UNKNOWN)]
        if busy:
            raise _err(FAILED_PRECONDITION, f"containers still running: {', '.join(busy)}")
        for c in self.containers.values():
            if c.started is not None and c.rec["state"] == CREATED:
                self._discard(c)
        if self.pod_init:
            os.kill(self.pod_init, signal.SIGKILL)  # the pod's pid namespace ends with it
            os.waitpid(self.pod_init, 0)
            self.pod_init = None
        self.running = False
        return {}

    # ---- exec ------------------------------------------------------------------------------
    def op_exec(self, conn, req, passed, out_fds) -> dict:
        from ..oci.run import exec_in
        c = self._container(req)
        if c.rec["state"] != RUNNING:
            raise _err(FAILED_PRECONDITION, f"container {c.rec['id']} is {c.rec['state']}, not running",
                       obj=f"container {c.rec['id']}")
        args = req.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            raise _err(INVALID_ARGUMENT, "exec: args must be a non-empty list of strings", field="args")
        common = (c.started.pid, c.spec, c.started.cgroup, list(args), req.get("env"), req.get("cwd"))
        if req.get("tty"):
            pid = self._exec_tty(common, req, out_fds)
        elif passed:  # the client's own stdin/stdout/stderr, as `runc exec` passes its own
            if len(passed) != 3:
                raise _err(INVALID_ARGUMENT, "exec: pass exactly three fds (stdin, stdout, stderr) or none")
            pid = exec_in(*common, stdio=tuple(passed))
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            try:
                pid = exec_in(*common, stdio=(devnull, out_w, err_w))
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                raise
            finally:
                for fd in (out_w, err_w, devnull):
                    os.close(fd)
            out_fds += [out_r, err_r]
        self.execs[pid] = {"id": c.rec["id"], "exit_code": None, "timed_out": False, "waiters": []}
        if req.get("timeout"):
            self._after(float(req["timeout"]), ("exec", pid))
        return {"pid": pid}

    def _exec_tty(self, common: tuple, req: dict, out_fds: list[int]) -> int:
        """An exec on a new pty of the container's devpts (as `runc exec --tty`: never a
        terminal of the host); its master goes back to the client."""
        from ..oci.run import exec_in
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            size = tuple(req["console_size"]) if req.get("console_size") else None
            pid = exec_in(*common, console=theirs.fileno(), console_size=size)
            theirs.close()
            ours.settimeout(5)
            _msg, got, _flags, _addr = socket.recv_fds(ours, 1024, 1)  # sent before its execve
        finally:
            theirs.close()
            ours.close()
        if not got:
            raise _err(FAILED_PRECONDITION, f"exec {req['args'][0]!r}: no pty came back")
        out_fds += got
        return pid

    def _exec_of(self, req: dict) -> tuple[int, dict]:
        try:
            pid = int(req.get("pid"))
        except (TypeError, ValueError):
            raise _err(INVALID_ARGUMENT, "exec: pid must be a number", field="pid") from None
        ex = self.execs.get(pid)
        if ex is None:
            raise _err(NOT_FOUND, f"no exec with pid {pid}", obj=f"exec {pid}")
        return pid, ex

    def op_exec_wait(self, conn, req, passed, out_fds) -> dict | None:
        pid, ex = self._exec_of(req)
        if ex["exit_code"] is None:
            ex["waiters"].append(conn)
            return None
        del self.execs[pid]
        return {"exit_code": ex["exit_code"], "timed_out": ex["timed_out"]}

    def op_exec_status(self, conn, req, passed, out_fds) -> dict:
        pid, ex = self._exec_of(req)
        if ex["exit_code"] is not None:
            del self.execs[pid]
        return {"exit_code": ex["exit_code"], "timed_out": ex["timed_out"]}

    def op_exec_kill(self, conn, req, passed, out_fds) -> dict:
        pid, ex = self._exec_of(req)
        if ex["exit_code"] is None:
            _kill_tree(pid)
        return {}

    # ---- output and exits ------------------------------------------------------------------
    def _stream(self, fd: int, c: _Container, stream: str) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        buf = c.bufs[stream]
        if data:
            buf += data
            recs = cri_records(stream, buf)
        else:  # the container closed it (exited)
            recs = cri_records(stream, buf, final=True)
            self.sel.unregister(fd)
            os.close(fd)
            c.open_streams -= 1
        if recs:
            try:
                c.log.write(recs)
            except OSError as e:  # a full disk loses log lines, never the container's exit
                log.error("container %s: log %s: %s", c.rec["id"], c.rec["log_path"], e)
        if c.open_streams == 0 and c.rec["exit_code"] is not None:
            self._finish(c)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            code = 128 + sig if sig else os.WEXITSTATUS(status)
            if pid in self.execs:
                ex = self.execs[pid]
                ex["exit_code"] = code
                answer = {"ok": True, "exit_code": code, "timed_out": ex["timed_out"]}
                for conn in ex["waiters"]:
                    self.send(conn, answer)
                if ex["waiters"]:
                    del self.execs[pid]
                self._publish("exec_exited", ex["id"], pid=pid, exit_code=code, timed_out=ex["timed_out"])
                continue
            if pid == self.pod_init:
                self.pod_init = 0  # gone: no container can start in the pod any more
                continue
            c = self.by_pid.pop(pid, None)
            if c is None:
                continue  # an intermediate, or an orphan of a container: reaped and done
            st = c.started.status(code)
            c.rec.update(exit_code=code, reason=st.reason, signal=sig, oom_killed=bool(st.oom_killed))
            try:
                c.started.cgroup.kill_all()  # the rest of the container dies with its init
            except Exception as e:  # noqa: BLE001 - recorded on the container, the loop goes on
                log.error("container %s: %s", c.rec["id"], e)
                c.rec["message"] = str(e)
            if c.open_streams == 0:
                self._finish(c)

    def _finish(self, c: _Container) -> None:
        """The exit is recorded and published first; the cgroup's removal (slow on v1: a rmdir
        per hierarchy) comes after, so it never delays the event; waiters are answered last, so
        a `wait` or `stop` returns when nothing of the container is left."""
        if c.rec["state"] == EXITED:
            return
        c.rec.update(state=EXITED, finished_at=now_rfc3339())
        c.log.close()
        if c.rec.get("prepared"):
            _unlink(_exec_fifo(c.rec))  # its init died waiting for its start
        records.save(self.pod_dir, c.rec)
        self._publish("exited", c.rec["id"], exit_code=c.rec["exit_code"], signal=c.rec["signal"],
                      reason=c.rec["reason"], oom_killed=c.rec["oom_killed"])
        try:
            c.started.cgroup.destroy()
        except Exception as e:  # noqa: BLE001 - recorded on the container, the loop goes on
            log.error("container %s: %s", c.rec["id"], e)
            c.rec["message"] = str(e)
            records.save(self.pod_dir, c.rec)
        for conn in c.waiters:
            self.send(conn, {"ok": True, **c.rec})
        c.waiters.clear()


OPS = {
    "create": Supervisor.op_create, "start": Supervisor.op_start, "status": Supervisor.op_status,
    "wait": Supervisor.op_wait, "stop": Supervisor.op_stop, "signal": Supervisor.op_signal,
    "kill-all": Supervisor.op_kill_all, "remove": Supervisor.op_remove, "subscribe": Supervisor.op_subscribe,
    "ping": Supervisor.op_ping, "shutdown": Supervisor.op_shutdown, "exec": Supervisor.op_exec,
    "exec-wait": Supervisor.op_exec_wait, "exec-status": Supervisor.op_exec_status,
    "exec-kill": Supervisor.op_exec_kill,
}


def _exec_fifo(rec: dict) -> str:
    """Where a prepared container's init waits for `start`: in its bundle (the runtime's own
    directory, 0700)."""
    from ..oci.execfifo import EXEC_FIFO
    return os.path.join(rec["bundle"], EXEC_FIFO)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _signal_number(value, cid: str) -> int:
    """`SIGTERM`, `TERM`, `15` (lifecycle.stopSignal and an image's StopSignal are names)."""
    if isinstance(value, int) and not isinstance(value, bool):
        num = value
    elif isinstance(value, str) and value.isdigit():
        num = int(value)
    elif isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        num = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if num is None:
            raise _err(INVALID_ARGUMENT, f"container {cid}: unknown stop signal {value!r}", field="stop_signal")
        num = int(num)
    else:
        raise _err(INVALID_ARGUMENT, f"container {cid}: stop signal {value!r}", field="stop_signal")
    if num not in signal.valid_signals():
        raise _err(INVALID_ARGUMENT, f"container {cid}: {num} is not a signal", field="stop_signal")
    return num


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split(b" ", 2)[1])
        out.setdefault(ppid, []).append(int(name))
    return out


def _kill_tree(root: int) -> None:
    """SIGKILL an exec's process and every descendant. All are stopped first, parents before
    children, until the tree stops growing: none can run on between two kills (a shell whose
    child was killed would go on to its next command) or fork a child the walk did not see, and
    none is reparented to the container's init and escapes, since a stopped parent does not die."""
    stopped: set[int] = set()
    for _ in range(100):  # a fork bomb outpacing the walk is still bounded
        kids = _children_map()
        tree, todo = [], [root]
        while todo:
            p = todo.pop()
            tree.append(p)
            todo += kids.get(p, [])
        fresh = [p for p in tree if p not in stopped]
        if not fresh:
            break
        for p in fresh:
            _signal(p, signal.SIGSTOP)
            stopped.add(p)
    for p in stopped:
        _signal(p, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def run(pod_dir: str, cgroup_parent: str, ready_fd: int | None = None) -> int:
    """Serve the pod until told to stop (a detached process: the zygote forks it). `ok` or the
    error goes on `ready_fd` once it serves or could not."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s supervisor[%(process)d]: %(message)s")
    # forked by the zygote, every supervisor has its command line: a name for `ps -o comm`, and
    # the pod dir held open for the life of the process, so that `ls -l /proc/PID/fd` (and a
    # leak check) tells which pod a supervisor serves
    with open("/proc/self/comm", "w") as f:
        f.write("kpy-supervisor")
    held = os.open(pod_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # noqa: F841 - kept open
    sup = None
    try:
        sup = Supervisor(pod_dir, cgroup_parent)
        sup.ready_fd = ready_fd
        sup.serve()
    except BaseException as e:
        if ready_fd is not None and (sup is None or sup.ready_fd is not None):  # not yet told: tell
            os.write(ready_fd, f"E{type(e).__name__}: {e}\n".encode(errors="replace"))
        raise
    return 0
