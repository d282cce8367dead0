"""Fork a process into a cgroup and namespaces, and hear back from it (kernel edge): the one
fork-and-report protocol of the runtime, used for a container's init and every exec into a
container (oci/launch.py) and for a pod's PID 1 (podinit.py).

    caller --fork--> intermediate: waits until the caller has put it in the cgroup (a byte on
      |                the go pipe), runs enter() (joins or creates namespaces: a new pid
      |                namespace applies to children only), forks, reports `P<pid>`, exits
      |                (`join_cgroup=None`: the caller lets it go at once and puts the final
      |                process in the cgroup itself once it hears `P`: join_final)
      |                  `- final process: final(report_fd, go_fd), which never returns (it
      |                     execs, or serves until it is killed)
      `- reads the report pipe until EOF or until it has heard what it waits for

Both report over one close-on-exec pipe, one line each: `P<pid>` (the final process), `E<error>`
(an exception of either, as one line: the caller raises its own error type with it), or a line
of the caller's own protocol. EOF: every write end is closed, i.e. the intermediate has exited
and the final process has exec'd (close-on-exec) or closed its fds.

Everything the two children run is imported before the fork (security.md 0.4): this module uses
`os` only after it."""

from __future__ import annotations

import os
import signal

from ..errors import RuntimeFailure


def reap(pid: int) -> int:
    """Wait for a child; its exit code, 128+N when signal N killed it (as a shell reports it),
    255 when it is not ours to wait for."""
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


def report_error(fd: int, e: BaseException) -> None:
    """An exception as one `E` line (in a forked child: the caller raises it again)."""
    msg = str(e) if isinstance(e, (RuntimeFailure, OSError)) else f"{type(e).__name__}: {e}"
    os.write(fd, b"E" + msg.replace("\n", " ").encode(errors="replace") + b"\n")


class Spawned:
    """The caller's side of a spawn: `pid` the intermediate, `child` the final process once it
    has been reported. Close it (or use it as a context manager) to reap the intermediate."""

    __slots__ = ("pid", "child", "_rep", "_go", "_error", "_what")

    def __init__(self, pid: int, rep: int, go: int, error: type, what: str):
        self.pid, self.child = pid, None
        self._rep, self._go = rep, go
        self._error, self._what = error, what

    def reports(self):
        """Each report line, `P` lines included (once `child` is set), until EOF. The two
        processes write independently: the final process's lines may come before `P`. An `E`
        line raises error(f"{what}: {message}") once the final process, if any, is reaped."""
        lines = self._lines()
        for text in lines:
            if text.startswith("E"):
                for rest in lines:  # to EOF (both have exited): learn its pid if not yet
                    if rest.startswith("P"):
                        self.child = int(rest[1:])
                self.close()  # the intermediate reaped: its child is the caller's subreaper's now
                if self.child:
                    reap(self.child)
                raise self._error(f"{self._what}: {text[1:]}")
            if text.startswith("P"):
                self.child = int(text[1:])
            yield text

    def _lines(self):
        buf = b""
        while chunk := os.read(self._rep, 4096):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.decode(errors="replace")

    def wait(self) -> int:
        """Read the reports to EOF; the final process's pid."""
        for _line in self.reports():
            pass
        return self.child_pid()

    def child_pid(self) -> int:
        if self.child is None:
            raise self._error(f"{self._what}: the process vanished")
        return self.child

    def join_final(self, join_cgroup, byte: bytes) -> OSError | None:
        """Put the final process (reported by `P`) in the cgroup and send it `byte` (it waits for
        that before it execs). On failure it is killed (the caller reads the reports on: an `E`
        it wrote before, its own error, is the one to raise) and the failure returned."""
        try:
            join_cgroup(self.child)
        except OSError as e:
            os.kill(self.child, signal.SIGKILL)
            return e
        try:
            self.go(byte)
        except BrokenPipeError:
            pass  # it has exited already (a failed mount): its `E` report says why
        return None

    def go(self, byte: bytes) -> None:
        """A byte on the go pipe (the final process may wait for one after reporting)."""
        os.write(self._go, byte)

    def close(self) -> None:
        if self._rep >= 0:
            os.close(self._go)
            os.close(self._rep)
            self._rep = self._go = -1
            os.waitpid(self.pid, 0)

    def __enter__(self) -> Spawned:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def spawn(enter, final, join_cgroup, error: type, what: str,
          stdio: tuple[int, int, int] | None = None) -> Spawned:
    """Fork the intermediate (with `stdio` as its fds 0-2, inherited by the final process), put
    it in the cgroup with `join_cgroup(pid)` and let it go. `enter()` runs in the intermediate,
    `final(report_fd, go_fd)` in the final process; an exception of either comes back as
    `error`. With `join_cgroup=None` the intermediate goes at once, in the caller's cgroup: the
    caller puts the final process in the cgroup (Spawned.join_final) while that one prepares
    (no cgroup namespace may be made then: it would be rooted in the caller's cgroup)."""
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    rep_r, rep_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        _intermediate(enter, final, stdio, go_r, go_w, rep_r, rep_w)
    os.close(go_r)
    os.close(rep_w)
    proc = Spawned(pid, rep_r, go_w, error, what)
    try:
        if join_cgroup is not None:
            join_cgroup(pid)
        proc.go(b"g")
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        proc.close()
        raise
    return proc


def _intermediate(enter, final, stdio, go_r: int, go_w: int, rep_r: int, rep_w: int) -> None:
    """Never returns: exits, or becomes the final process, which never returns either."""
    try:
        os.close(go_w)
        os.close(rep_r)
        if stdio is not None:
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
        if os.read(go_r, 1) != b"g":
            os._exit(125)  # the caller gave up before it put us in the cgroup
        enter()
        child = os.fork()
        if child:
            os.write(rep_w, f"P{child}\n".encode())
            os._exit(0)
        final(rep_w, go_r)
    except BaseException as e:  # noqa: BLE001 - reported to the caller as one line
        try:
            report_error(rep_w, e)
        except OSError:
            pass  # the caller is gone: nobody to tell (no logging after a fork)
    os._exit(127)
