"""Container output in the CRI log format, rotated by size as the kubelet rotates it.

    <RFC3339Nano> stdout|stderr F|P <text>
A longer line than MAX_LINE is split into P(artial) records. A log past its size limit is
renamed `<log>.<YYYYmmdd-HHMMSS>` and a new one opened; at most LOG_MAX_FILES files are kept
with the current one. Rotated files stay uncompressed: compressing would stall the
single-threaded supervisor."""

from __future__ import annotations

import os
import time

MAX_LINE = 16 * 1024
LOG_MAX_SIZE = 10 << 20  # the kubelet's containerLogMaxSize and containerLogMaxFiles defaults
LOG_MAX_FILES = 5


def now_rfc3339() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(t // 10**9)) + f"{t % 10**9:09d}Z"


def cri_records(stream: str, buf: bytearray, final: bool = False) -> list[bytes]:
    """Cut complete lines (and over-long pieces) out of `buf` as CRI log records (pure but for
    the clock)."""
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


class LogWriter:
    """One container's log file: whole records only; a file that would grow past the size limit
    is rotated first (renamed, a new one opened, the oldest rotated files beyond the count
    removed)."""

    def __init__(self, path: str, max_size: int = LOG_MAX_SIZE, max_files: int = LOG_MAX_FILES):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path, self.max_size, self.max_files = path, max_size, max_files
        self.file = open(path, "ab", buffering=0)
        self.size = self.file.tell()

    def write(self, recs: list[bytes]) -> None:
        start = 0
        for i, rec in enumerate(recs):
            if self.size and self.size + len(rec) > self.max_size:
                self.file.write(b"".join(recs[start:i]))
                self._rotate()
                start = i
            self.size += len(rec)
        self.file.write(b"".join(recs[start:]))

    def _rotate(self) -> None:
        d = os.path.dirname(self.path)
        self.file.close()
        os.rename(self.path, rotated_name(self.path, os.listdir(d), time.time()))
        self.file = open(self.path, "ab", buffering=0)
        self.size = 0
        for old in rotated_to_delete(self.path, os.listdir(d), self.max_files):
            os.unlink(old)

    def close(self) -> None:
        self.file.close()
