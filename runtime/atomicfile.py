"""The runtime's one way to write a file that readers must never see half-written: a temp file
in the same directory, fsync, rename over the target, fsync of the directory (so the rename
survives a power loss, not only a crash of the process). Import-light: the supervisor uses it."""

from __future__ import annotations

import _thread
import json
import os


def write_atomic(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace `path` with `data` in one step. `durable=False` skips both fsyncs: for state a
    crash may lose but must never tear (a cache)."""
    tmp = f"{path}.tmp.{_thread.get_native_id()}"  # unique among the host's live threads
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def fsync_dir(d: str) -> None:
    """Make the entries of `d` (a rename into it) survive a power loss."""
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json_atomic(path: str, doc, mode: int = 0o600, durable: bool = True, indent: int | None = None) -> None:
    write_atomic(path, json.dumps(doc, indent=indent).encode(), mode, durable)


def is_temp_name(name: str) -> bool:
    """A leftover of write_atomic (a crash between create and rename): safe to delete."""
    head, sep, pid = name.rpartition(".tmp.")
    return bool(sep and head and pid.isdigit())
