"""Edge: netns's one way to write a file that readers must never see half-written (IP and hostPort
entries, pod network records, a pod's /etc files): a temporary file in the same directory, write,
fchmod, fsync, then rename over the target (or hard-link to it, when an existing file must not be
replaced), then fsync of the directory so the new name survives a power loss as well as a kill.
Raises OSError; callers turn it into a StateError naming their path. Leftover temporaries (a kill
between create and rename) match `is_temp_name` and are safe to delete."""

from __future__ import annotations

import os
import threading

TMP_PREFIX = ".tmp-"


def temp_path(path: str) -> str:
    head, name = os.path.split(path)
    return os.path.join(head, f"{TMP_PREFIX}{name}.{os.getpid()}.{threading.get_ident()}")


def is_temp_name(name: str) -> bool:
    return name.startswith(TMP_PREFIX)


def write_atomic(path: str, data: bytes, mode: int = 0o600, *, replace: bool = True, durable: bool = True) -> bool:
    """Make `path` hold exactly `data` with `mode`, in one step. With replace=False an existing
    `path` is left alone and False is returned (the link(2) that names the file fails on an
    existing name, so two writers never both win). durable=False skips the fsyncs: for hints a
    crash may lose but must never tear."""
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)        # the umask does not decide the mode
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.rename(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:      # renamed: nothing left to remove
            pass
    if durable:
        sync_dir(os.path.dirname(path) or ".")
    return True


def sync_dir(path: str) -> None:
    """fsync a directory, so that names made or removed in it are on disk."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_content(path: str, data: bytes, mode: int) -> bool:
    """True if `path` is a regular file (not a link) that already holds `data` with `mode`, so a
    write can be skipped: a file bind-mounted into a container keeps its inode that way."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o7777 != mode or st.st_size != len(data):
            return False
        return os.read(fd, len(data) + 1) == data
    finally:
        os.close(fd)
