"""The per-pod supervisor (what containerd's shim does), and the client the daemon uses.

The supervisor is a fresh process (`python -m runtime.shim`), detached (own session, reparented
away from whoever started it), single-threaded, a child subreaper. It starts the pod's
containers, owns their stdout/stderr and writes them in the CRI log format, reaps them, and
records pid, start time, exit code and finish time in atomic state files, so a daemon that was
SIGKILLed and restarted reconnects and loses no exit code and no log line. A log past its size
limit is rotated as the kubelet rotates (`<log>.<YYYYmmdd-HHMMSS>`, at most LOG_MAX_FILES files
with the current one; rotated files stay uncompressed: compressing would stall this
single-threaded process).

    <run-root>/pods/<uid>/shim.sock   requests: one JSON object per line, one answer each
    <run-root>/pods/<uid>/shim.pid
    <run-root>/pods/<uid>/containers/<id>.json   state (atomic writes)
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import time

from .errors import RuntimeFailure

MAX_LINE = 16 * 1024  # a longer line is split into P(artial) records, as the CRI log format does


class ShimError(RuntimeFailure):
    pass


def now_rfc3339() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(t // 10**9)) + f"{t % 10**9:09d}Z"


def cri_records(stream: str, buf: bytearray, final: bool = False) -> list[bytes]:
    """Cut complete lines (and over-long pieces) out of `buf` as CRI log records (pure but for
    the clock): `<RFC3339Nano> stdout|stderr F|P <text>`."""
    out = []
    while True:
        nl = buf.find(b"\n")
        if nl >= 0 and nl <= MAX_LINE:
            out.append(f"{now_rfc3339()} {stream} F ".encode() + bytes(buf[:nl]) + b"\n")
            del buf[: nl + 1]
        elif len(buf) > MAX_LINE:
            out.append(f"{now_rfc3339()} {stream} P ".encode() + bytes(buf[:MAX_LINE]) + b"\n")
            del buf[:MAX_LINE]
        else:
            break
    if final and buf:
        out.append(f"{now_rfc3339()} {stream} F ".encode() + bytes(buf) + b"\n")
        buf.clear()
    return out


LOG_MAX_SIZE = 10 << 20  # the kubelet's containerLogMaxSize and containerLogMaxFiles defaults
LOG_MAX_FILES = 5


def rotated_name(log_path: str, existing: list[str], unix_time: float) -> str:
    """The name the current log takes when it is rotated: `<log>.<YYYYmmdd-HHMMSS>` as the
    kubelet's log manager names it (with a counter when two rotations fall in one second)."""
    base = f"{os.path.basename(log_path)}.{time.strftime('%Y%m%d-%H%M%S', time.gmtime(unix_time))}"
    taken = [0 if n == base else int(n[len(base) + 1:]) for n in existing
             if n == base or (n.startswith(base + ".") and n[len(base) + 1:].isdigit())]
    # after every file of this second, even when older ones were removed: names sort as time
    name = f"{base}.{max(taken) + 1}" if taken else base
    return os.path.join(os.path.dirname(log_path), name)


def rotated_to_delete(log_path: str, existing: list[str], max_files: int) -> list[str]:
    """The oldest rotated files beyond `max_files` (the current file counts as one)."""
    prefix = os.path.basename(log_path) + "."
    # the stamp sorts as time; a same-second counter sorts after its base
    rotated = sorted((n for n in existing if n.startswith(prefix)),
                     key=lambda n: (n[len(prefix):len(prefix) + 15], len(n), n))
    keep = max(max_files - 1, 0)
    return [os.path.join(os.path.dirname(log_path), n) for n in rotated[:len(rotated) - keep]] if len(rotated) > keep else []


def _via_dir_fd(pod_dir: str, op) -> None:
    """bind/connect the pod's socket through /proc/self/fd/N of its directory: a sun_path holds
    at most 107 bytes, and run roots (tests' temp dirs above all) can be deeper than that."""
    fd = os.open(pod_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        op(f"/proc/self/fd/{fd}/shim.sock")
    finally:
        os.close(fd)


def _atomic_json(path: str, doc: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _answer_waiters(conns: list, answer: dict) -> None:
    """Send a deferred answer without ever blocking the loop: a client that does not read (its
    socket buffer full) loses the answer and its connection, never stalls the pod's logs."""
    data = json.dumps(answer).encode() + b"\n"
    for conn in conns:
        try:
            conn.setblocking(False)
            if conn.send(data) != len(data):
                conn.shutdown(socket.SHUT_RDWR)
        except OSError:  # gone, or not reading
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            try:
                conn.setblocking(True)
            except OSError:
                pass


# ---- the supervisor ---------------------------------------------------------------------------

class _Container:
    def __init__(self, cid, started, log_path, state_path, spec, log_max_size=LOG_MAX_SIZE, log_max_files=LOG_MAX_FILES):
        self.cid, self.started, self.log_path, self.state_path = cid, started, log_path, state_path
        self.spec = spec
        self.bufs = {"stdout": bytearray(), "stderr": bytearray()}
        self.open_streams = 2
        self.log = open(log_path, "ab", buffering=0)
        self.log_size = self.log.tell()
        self.log_max_size, self.log_max_files = log_max_size, log_max_files
        self.waiters: list = []  # connections waiting for the exit (op "wait")
        self.state = {"id": cid, "pid": started.pid, "status": "running", "started_at": now_rfc3339(),
                      "exit_code": None, "signal": None, "finished_at": None, "reason": None, "log_path": log_path}
        _atomic_json(state_path, self.state)


class Supervisor:
    def __init__(self, pod_dir: str, cgroup_parent: str):
        self.pod_dir = pod_dir
        self.cgroup_parent = cgroup_parent
        self.containers: dict[str, _Container] = {}
        self.by_pid: dict[int, _Container] = {}
        self.execs: dict[int, int | None] = {}  # exec pid -> exit code (None while running)
        self.exec_waiters: dict[int, list] = {}  # exec pid -> connections waiting for its exit
        self.sel = selectors.DefaultSelector()
        self.pod_init: int | None = None  # shareProcessNamespace: the pod's PID 1 (0 once it died)
        os.makedirs(os.path.join(pod_dir, "containers"), exist_ok=True)

    def serve(self) -> None:
        from .linux import sys as ksys
        ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
        self.pod_init = self._pod_init()  # before any handler or fd of the loop exists
        sock_path = os.path.join(self.pod_dir, "shim.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # 0600 from its creation, not after a chmod
        try:
            _via_dir_fd(self.pod_dir, srv.bind)
        finally:
            os.umask(old_umask)
        srv.listen(16)
        srv.setblocking(False)
        self.sel.register(srv, selectors.EVENT_READ, ("accept", None))
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the pod's life is decided by the daemon
        self.sel.register(wake_r, selectors.EVENT_READ, ("sigchld", None))
        with open(os.path.join(self.pod_dir, "shim.pid.tmp"), "w") as f:
            f.write(str(os.getpid()))
        os.rename(os.path.join(self.pod_dir, "shim.pid.tmp"), os.path.join(self.pod_dir, "shim.pid"))
        self.running = True
        while self.running:
            for key, _ in self.sel.select(timeout=1.0):
                kind, obj = key.data
                if kind == "accept":
                    conn, _ = srv.accept()
                    conn.setblocking(True)
                    self.sel.register(conn, selectors.EVENT_READ, ("client", (bytearray(), [])))
                elif kind == "client":
                    self._client(key.fileobj, obj)
                elif kind == "stream":
                    self._stream(key.fileobj, *obj)
                elif kind == "sigchld":
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
            self._reap()
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
        from .podinit import spawn_pod_init
        return spawn_pod_init(self.pod_dir, sandbox["cgroup_path"])

    def _client(self, conn, state) -> None:
        """One read of a client: whole request lines are answered in order. fds that come along
        (an exec's own stdio) wait in `state` with the bytes until their line is complete."""
        buf, passed = state
        data, fds_in, _flags, _addr = socket.recv_fds(conn, 65536, 3)
        passed += fds_in
        if not data:
            for fd in passed:
                os.close(fd)
            passed.clear()
            self.sel.unregister(conn)
            conn.close()
            return
        buf += data
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            fds: list[int] = []
            req = None
            try:
                req = json.loads(line)
                if req.get("op") == "wait" and self._defer_wait(req, conn):
                    continue  # answered when the container has exited (_finish)
                if req.get("op") == "exec-wait" and self._defer_exec_wait(req, conn):
                    continue  # answered when the exec has exited (_reap)
                if req.get("op") == "exec" and passed:
                    req["stdio"] = passed[:3]
                    del passed[:3]
                answer = {"ok": True, **(self._handle(req, fds) or {})}
            except Exception as e:  # noqa: BLE001 - every failure is an answer, never a crash
                answer = {"ok": False, "error": str(e)}
            finally:
                for fd in req.pop("stdio", []) if isinstance(req, dict) else []:
                    os.close(fd)
            data = json.dumps(answer).encode() + b"\n"
            if fds:  # the exec's output pipes travel with the answer (SCM_RIGHTS)
                socket.send_fds(conn, [data], fds)
                for fd in fds:
                    os.close(fd)
            else:
                conn.sendall(data)
        if not buf:  # every line answered: fds that came with none of them are closed
            for fd in passed:
                os.close(fd)
            passed.clear()

    def _defer_wait(self, req: dict, conn) -> bool:
        c = self.containers.get(req.get("id"))
        if c is None or c.state["status"] == "exited":
            return False  # answered at once: the state, or the error of an unknown id
        c.waiters.append(conn)
        return True

    def _defer_exec_wait(self, req: dict, conn) -> bool:
        pid = int(req.get("pid", 0))
        if self.execs.get(pid, 0) is not None:
            return False  # finished (or unknown): answered at once
        self.exec_waiters.setdefault(pid, []).append(conn)
        return True

    def _handle(self, req: dict, fds: list[int]) -> dict | None:
        op = req.get("op")
        if op == "wait":
            if req.get("id") not in self.containers:
                raise ShimError(f"no container {req.get('id')!r}")
            return self.containers[req["id"]].state
        if op == "exec":
            return self._exec(req, fds)
        if op in ("exec-status", "exec-wait"):
            pid = int(req["pid"])
            if pid not in self.execs:
                raise ShimError(f"no exec with pid {pid}")
            code = self.execs[pid]
            if code is not None:
                del self.execs[pid]
            return {"exit_code": code}
        if op == "ping":
            return {"pid": os.getpid(), "pod_init": self.pod_init}
        if op == "start":
            return self._start(req["id"], req["bundle"], req["log_path"], int(req.get("log_max_size", LOG_MAX_SIZE)),
                               int(req.get("log_max_files", LOG_MAX_FILES)))
        if op == "status":
            return {"containers": {c.cid: c.state for c in self.containers.values()}}
        if op == "signal":
            c = self.containers[req["id"]]
            if c.state["status"] == "running":
                os.kill(c.started.pid, int(req.get("signal", signal.SIGTERM)))
            return None
        if op == "kill-all":  # every process of the container's cgroup
            self.containers[req["id"]].started.cgroup.kill_all()
            return None
        if op == "forget":
            c = self.containers[req["id"]]
            if c.state["status"] == "running":
                raise ShimError(f"container {c.cid} is still running")
            del self.containers[c.cid]
            try:
                os.unlink(c.state_path)  # removed: nothing of it stays in the pod dir
            except FileNotFoundError:
                pass
            return None
        if op == "shutdown":
            if any(c.state["status"] == "running" for c in self.containers.values()):
                raise ShimError("containers are still running")
            if self.pod_init:
                os.kill(self.pod_init, signal.SIGKILL)  # the pod's pid namespace ends with it
                os.waitpid(self.pod_init, 0)
                self.pod_init = None
            self.running = False
            return None
        raise ShimError(f"unknown op {op!r}")

    def _start(self, cid: str, bundle: str, log_path: str, log_max_size: int, log_max_files: int) -> dict:
        from .oci.run import load_bundle, start
        if cid in self.containers and self.containers[cid].state["status"] == "running":
            raise ShimError(f"container {cid} is already running")
        if self.pod_init == 0:
            raise ShimError("the pod's init (PID 1 of its shared pid namespace) has exited: the pod must be recreated")
        spec, rootfs = load_bundle(bundle)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        try:
            started = start(spec, rootfs, cid, self.cgroup_parent, stdio=(devnull, out_w, err_w))
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, devnull):
                os.close(fd)
        c = _Container(cid, started, log_path, os.path.join(self.pod_dir, "containers", f"{cid}.json"), spec,
                       log_max_size, log_max_files)
        self.containers[cid] = c
        self.by_pid[started.pid] = c
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, ("stream", (c, stream)))
        return {"pid": started.pid}

    def _exec(self, req: dict, fds: list[int]) -> dict:
        from .oci.run import exec_in
        c = self.containers[req["id"]]
        if c.state["status"] != "running":
            raise ShimError(f"container {c.cid} is not running")
        if req.get("tty"):
            return self._exec_tty(c, req, fds)
        if req.get("stdio"):  # the client's own stdin/stdout/stderr, as `runc exec` passes its own
            if len(req["stdio"]) != 3:
                raise ShimError("exec: pass exactly three fds (stdin, stdout, stderr) or none")
            pid = exec_in(c.started.pid, c.spec, c.started.cgroup, list(req["args"]), req.get("env"),
                          req.get("cwd"), stdio=tuple(req["stdio"]))
            self.execs[pid] = None
            return {"pid": pid}
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            pid = exec_in(c.started.pid, c.spec, c.started.cgroup, list(req["args"]), req.get("env"),
                          req.get("cwd"), stdio=(devnull, out_w, err_w))
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            for fd in (out_w, err_w, devnull):
                os.close(fd)
        self.execs[pid] = None
        fds += [out_r, err_r]
        return {"pid": pid}

    def _exec_tty(self, c: _Container, req: dict, fds: list[int]) -> dict:
        """An exec on a new pty of the container's devpts (as `runc exec --tty`: never a
        terminal of the host); its master goes back to the client."""
        from .oci.run import exec_in
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            size = tuple(req["console_size"]) if req.get("console_size") else None
            pid = exec_in(c.started.pid, c.spec, c.started.cgroup, list(req["args"]), req.get("env"),
                          req.get("cwd"), console=theirs.fileno(), console_size=size)
            theirs.close()
            ours.settimeout(5)
            _msg, got, _flags, _addr = socket.recv_fds(ours, 1024, 1)  # sent before its execve
        finally:
            theirs.close()
            ours.close()
        self.execs[pid] = None
        if not got:
            raise ShimError(f"exec {req['args'][0]!r}: no pty came back")
        fds += got
        return {"pid": pid}

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
            self._write_log(c, recs)
        if c.open_streams == 0 and c.state["exit_code"] is not None:
            self._finish(c)

    def _write_log(self, c: _Container, recs: list[bytes]) -> None:
        """Whole records only; a file that would grow past the size limit is rotated first
        (renamed, a new one opened, the oldest rotated files beyond the count removed)."""
        start = 0
        for i, rec in enumerate(recs):
            if c.log_size and c.log_size + len(rec) > c.log_max_size:
                c.log.write(b"".join(recs[start:i]))
                self._rotate(c)
                start = i
            c.log_size += len(rec)
        c.log.write(b"".join(recs[start:]))

    def _rotate(self, c: _Container) -> None:
        d = os.path.dirname(c.log_path)
        c.log.close()
        os.rename(c.log_path, rotated_name(c.log_path, os.listdir(d), time.time()))
        c.log = open(c.log_path, "ab", buffering=0)
        c.log_size = 0
        for old in rotated_to_delete(c.log_path, os.listdir(d), c.log_max_files):
            os.unlink(old)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            if pid in self.execs:
                self.execs[pid] = code
                waiters = self.exec_waiters.pop(pid, [])
                if waiters:
                    del self.execs[pid]
                _answer_waiters(waiters, {"ok": True, "exit_code": code})
                continue
            if pid == self.pod_init:
                self.pod_init = 0  # gone: no container can start in the pod any more
                continue
            c = self.by_pid.pop(pid, None)
            if c is None:
                continue  # an intermediate, or an orphan of a container: reaped and done
            st = c.started.status(code)
            c.state.update(exit_code=code, reason=st.reason,
                           signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)
            c.started.cgroup.kill_all()  # the rest of the container dies with its init
            if c.open_streams == 0:
                self._finish(c)

    def _finish(self, c: _Container) -> None:
        if c.state["status"] == "exited":
            return
        c.state.update(status="exited", finished_at=now_rfc3339())
        c.log.close()
        c.started.cgroup.destroy()
        _atomic_json(c.state_path, c.state)
        _answer_waiters(c.waiters, {"ok": True, **c.state})
        c.waiters.clear()


def parse_args(argv: list[str]) -> dict[str, str]:
    """`--pod-dir DIR [--cgroup-parent P]` (no argparse: it would cost the supervisor's RSS
    0.6 MiB for two options its only caller always passes)."""
    opts = {"--pod-dir": None, "--cgroup-parent": "kubelet-py"}
    it = iter(argv)
    for a in it:
        if a not in opts:
            raise SystemExit(f"python -m runtime.shim: unknown argument {a!r}")
        opts[a] = next(it, None)
        if opts[a] is None:
            raise SystemExit(f"python -m runtime.shim: {a} needs a value")
    if opts["--pod-dir"] is None:
        raise SystemExit("python -m runtime.shim: --pod-dir is required")
    return {"pod_dir": opts["--pod-dir"], "cgroup_parent": opts["--cgroup-parent"]}


def main(argv: list[str] | None = None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    os.closerange(3, 1 << 16)  # the sealed interpreter's fd, passed only for the execve
    if os.fork():  # detach: the starter reaps us at once and the supervisor is nobody's child
        os._exit(0)
    os.setsid()
    Supervisor(a["pod_dir"], a["cgroup_parent"]).serve()
    return 0


# ---- the client ---------------------------------------------------------------------------

class ShimClient:
    def __init__(self, pod_dir: str):
        self.pod_dir = pod_dir
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _via_dir_fd(pod_dir, self.sock.connect)
        except BaseException:
            self.sock.close()
            raise
        self.file = self.sock.makefile("rb")

    def call(self, op: str, **kw) -> dict:
        self.sock.sendall(json.dumps({"op": op, **kw}).encode() + b"\n")
        line = self.file.readline()
        if not line:
            raise ShimError(f"supervisor of {self.pod_dir} closed the connection")
        ans = json.loads(line)
        if not ans.pop("ok"):
            raise ShimError(ans.get("error", "unknown error"))
        return ans

    def exec_start(self, cid: str, args: list[str], env: list[str] | None = None,
                   stdio: tuple[int, int, int] | None = None) -> tuple[int, list[int]]:
        """Start `args` in the container: (pid, [stdout, stderr read ends]); with `stdio`, those
        three fds of ours are the process's own (streamed, nothing comes back)."""
        return self._call_fds({"op": "exec", "id": cid, "args": args, "env": env}, stdio, 2)

    def exec_tty(self, cid: str, args: list[str], env: list[str] | None = None,
                 size: tuple[int, int] | None = None) -> tuple[int, int]:
        """Start `args` on a new pty in the container: (pid, the pty's master fd)."""
        pid, fds = self._call_fds({"op": "exec", "id": cid, "args": args, "env": env, "tty": True,
                                   "console_size": list(size) if size else None}, None, 1)
        return pid, fds[0]

    def _call_fds(self, req: dict, send: tuple[int, ...] | None, max_fds: int) -> tuple[int, list[int]]:
        """An exec request, fds passed along with it and back with the answer (SCM_RIGHTS)."""
        data = json.dumps(req).encode() + b"\n"
        if send is not None:
            socket.send_fds(self.sock, [data], list(send))
        else:
            self.sock.sendall(data)
        msg, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, max_fds)
        ans = json.loads(msg.split(b"\n", 1)[0])
        if not ans.pop("ok"):
            for fd in fds:
                os.close(fd)
            raise ShimError(ans.get("error", "exec failed"))
        return ans["pid"], fds

    def exec_wait(self, pid: int, timeout: float | None = None) -> int:
        """The exit code of an exec, answered when it exits."""
        self.sock.settimeout(timeout)
        try:
            return self.call("exec-wait", pid=pid)["exit_code"]
        except TimeoutError:
            self.close()
            self.__init__(self.pod_dir)  # a late answer must not meet the next call
            raise ShimError(f"exec {pid} still running after {timeout}s") from None
        finally:
            self.sock.settimeout(None)

    def exec(self, cid: str, args: list[str], env: list[str] | None = None, timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        """Run `args` in the container; (exit code, stdout, stderr)."""
        pid, fds = self.exec_start(cid, args, env)
        ans = {"pid": pid}
        outs = []
        sel = selectors.DefaultSelector()
        bufs = {fd: bytearray() for fd in fds}
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        open_fds = set(fds)
        deadline = time.monotonic() + timeout
        while open_fds and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                data = os.read(key.fd, 65536)
                if data:
                    bufs[key.fd] += data
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    open_fds.discard(key.fd)
        for fd in open_fds:
            os.close(fd)
        outs = [bytes(bufs[fd]) for fd in fds]
        return self.exec_wait(ans["pid"], max(0.001, deadline - time.monotonic())), outs[0], outs[1]

    def state(self, cid: str) -> dict:
        return self.call("status")["containers"][cid]

    def wait(self, cid: str, timeout: float = 30.0) -> dict:
        """The container's final state, as soon as it has exited (the answer comes then)."""
        self.sock.settimeout(timeout)
        try:
            return self.call("wait", id=cid)
        except TimeoutError:
            # a late answer would be taken for the next call's: start over on a new connection
            self.close()
            self.__init__(self.pod_dir)
            raise ShimError(f"container {cid} still running after {timeout}s") from None
        finally:
            self.sock.settimeout(None)

    def stop(self, cid: str, grace: float = 30.0) -> dict:
        """SIGTERM, the grace period, then SIGKILL of every process in the container's cgroup."""
        self.call("signal", id=cid, signal=int(signal.SIGTERM))
        try:
            return self.wait(cid, grace)
        except ShimError:
            self.call("kill-all", id=cid)
            return self.wait(cid, 10)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


SHIM_MAIN = "import sys; from runtime.shim import main; sys.exit(main())"


def start_supervisor(pod_dir: str, cgroup_parent: str, timeout: float = 10.0) -> ShimClient:
    """Launch the pod's supervisor (detached) and connect to it."""
    import subprocess  # the daemon's side only: the supervisor itself never loads it (its RSS)
    from .linux.sealed import interpreter_argv, sealed_copy
    # the supervisor forks every container process: it runs from a sealed copy of the
    # interpreter, so /proc/<pid>/exe of its children is nothing a container can write
    exe = sealed_copy()
    try:
        with open(os.path.join(pod_dir, "shim.log"), "ab") as log:
            # -S and -c, not -m: no site hooks and no runpy in a process that lives as long as
            # the pod (its RSS); the path comes in PYTHONPATH
            subprocess.run(interpreter_argv(["-S", "-c", SHIM_MAIN, "--pod-dir", pod_dir, "--cgroup-parent", cgroup_parent]),
                           executable=f"/proc/self/fd/{exe}", pass_fds=(exe,), check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd="/",
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    finally:
        os.close(exe)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = ShimClient(pod_dir)
            c.call("ping")
            return c
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.01)
    raise ShimError(f"the supervisor of {pod_dir} did not come up (see {pod_dir}/shim.log)")


if __name__ == "__main__":
    sys.exit(main())
