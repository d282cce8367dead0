"""Container logs as `kubectl logs` shows them, read from the CRI log files the supervisor writes
(`<ts> stdout|stderr F|P <text>`; P records are joined until their F). The parsing is pure; the
reader follows a file (and its rotations) with an async generator."""

from __future__ import annotations

import asyncio
import calendar
import os
import time


def parse_record(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """(timestamp, stream, full, text) of one CRI log line; None for a line that is not one."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    return parts[0].decode(), parts[1].decode(), parts[2] == b"F", parts[3] if len(parts) == 4 else b""


def ts_seconds(ts: str) -> float:
    base, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)


def lines_of(data: bytes, pending: dict) -> list[tuple[str, bytes]]:
    """Whole log lines (timestamp, text with its newline) out of complete CRI records; partial
    records wait in `pending` (per stream) for their end."""
    out = []
    for raw in data.splitlines(keepends=True):
        rec = parse_record(raw)
        if rec is None:
            continue
        ts, stream, full, text = rec
        if not full:
            pending.setdefault(stream, [ts, b""])[1] += text
            continue
        if stream in pending:
            first_ts, head = pending.pop(stream)
            out.append((first_ts, head + text + b"\n"))
        else:
            out.append((ts, text + b"\n"))
    return out


def select(lines: list[tuple[str, bytes]], tail: int | None, since: float | None, now: float) -> list[tuple[str, bytes]]:
    if since is not None:
        lines = [ln for ln in lines if ts_seconds(ln[0]) >= now - since]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return lines


def render(lines, timestamps: bool) -> bytes:
    return b"".join((ts.encode() + b" " + text) if timestamps else text for ts, text in lines)


def files_of(log_path: str) -> list[str]:
    """The rotated files of a log, oldest first, then the log itself."""
    d, base = os.path.dirname(log_path), os.path.basename(log_path)
    rotated = sorted((n for n in (os.listdir(d) if os.path.isdir(d) else []) if n.startswith(base + ".")),
                     key=lambda n: (n[len(base) + 1:len(base) + 16], len(n), n))
    return [os.path.join(d, n) for n in rotated] + ([log_path] if os.path.exists(log_path) else [])


async def read_log(log_path: str, *, tail: int | None = None, since: float | None = None, timestamps: bool = False,
                   follow: bool = False, still_running=lambda: False, poll: float = 0.1):
    """The log's lines; with `follow`, then what is written until `still_running()` is false and
    the file has stopped growing. The current file is followed through the handle opened first,
    not its path: a pod's log dir goes with the pod, and its last lines are still read; the path is
    looked at only for a rotation (a new inode there)."""
    pending: dict = {}
    f = open(log_path, "rb") if os.path.exists(log_path) else None
    try:
        data = b""
        for path in files_of(log_path)[:-1] if f is not None else files_of(log_path):
            with open(path, "rb") as old:
                data += old.read()
        if f is not None:
            data += f.read()
        cut = data.rfind(b"\n") + 1
        data, rest = data[:cut], data[cut:]
        yield render(select(lines_of(data, pending), tail, since, time.time()), timestamps)
        if not follow:
            return
        idle = 0
        while True:
            chunk = f.read() if f is not None else b""
            if not chunk:
                try:
                    st = os.stat(log_path)
                except FileNotFoundError:
                    st = None
                if st is not None and (f is None or st.st_ino != os.fstat(f.fileno()).st_ino):
                    if f is not None:
                        f.close()
                    f, rest = open(log_path, "rb"), b""  # rotated (or created): the new file from its start
                    continue
            if chunk:
                idle = 0
                chunk = rest + chunk
                cut = chunk.rfind(b"\n") + 1
                chunk, rest = chunk[:cut], chunk[cut:]
                out = render(lines_of(chunk, pending), timestamps)
                if out:
                    yield out
                continue
            if not still_running():
                idle += 1
                if idle > 2:  # stopped, and nothing more came after it
                    return
            await asyncio.sleep(poll)
    finally:
        if f is not None:
            f.close()
