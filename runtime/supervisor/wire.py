"""What the supervisor and its clients share: where the socket is, how a line is framed, how an
error travels (its kind with it, so a client raises what the supervisor raised)."""

from __future__ import annotations

import json
import os

from ..errors import UNAVAILABLE, RuntimeFailure, from_wire

SOCKET = "supervisor.sock"
PID_FILE = "supervisor.pid"
LOG_FILE = "supervisor.log"
STATES_DIR = "containers"  # <pod dir>/containers/<id>.json


class SupervisorError(RuntimeFailure):
    """An error the supervisor answered, or the supervisor being unreachable (UNAVAILABLE)."""

    kind = UNAVAILABLE


def start_time(pid: int | str = "self") -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid,
    what names one process for the system's whole uptime (a recycled pid has another)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_record() -> bytes:
    """What the supervisor writes to PID_FILE: its pid and start time."""
    return f"{os.getpid()} {start_time()}".encode()


def via_dir_fd(pod_dir: str, op) -> None:
    """bind/connect the pod's socket through /proc/self/fd/N of its directory: a sun_path holds
    at most 107 bytes, and run roots (tests' temp dirs above all) can be deeper than that."""
    fd = os.open(pod_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        op(f"/proc/self/fd/{fd}/{SOCKET}")
    finally:
        os.close(fd)


def line(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def error_answer(e: BaseException) -> dict:
    if isinstance(e, RuntimeFailure):
        return {"ok": False, **e.to_wire()}
    return {"ok": False, "error": f"{type(e).__name__}: {e}", "kind": "INTERNAL"}


def raise_if_error(answer: dict) -> dict:
    """The answer without its `ok`; an error answer is raised as the kind it carries."""
    if not answer.pop("ok", False):
        raise from_wire(answer, SupervisorError)
    return answer
