"""The exec fifo's other end (CreateOptions.exec_fifo): what `start` does to let an init that
waits on it exec. Its own module, importing only `os`: the OCI CLI's `start` verb runs it without
the launcher's imports."""

from __future__ import annotations

import os

EXEC_FIFO = "exec.fifo"  # its name in the container's state dir (the OCI CLI's --root/<id>, a bundle)


def release_exec_fifo(path: str) -> int:
    """A byte written, the fifo unlinked. Returns the write end, for the caller to close (it
    reports POLLERR once the init has exec'd: the init's fd is close-on-exec). OSError (ENXIO)
    when nothing reads the fifo: the init is gone."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
        os.unlink(path)
    except BaseException:
        os.close(fd)
        raise
    return fd
