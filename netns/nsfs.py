"""Edge: the one ctypes module of netns: setns(2) for the calling thread, to open a netlink socket
inside a pod's network namespace (a socket stays in the namespace it was made in). Python 3.11 has
no os.setns. Loaded once at import; nothing is looked up later."""

from __future__ import annotations

import ctypes
import errno
import os
from contextlib import contextmanager
from typing import Iterator

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    if _libc.setns(fd, nstype) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


@contextmanager
def entered(netns_fd: int) -> Iterator[None]:
    """Run the body with this thread in the network namespace `netns_fd`, then return to the
    thread's own. Failing to return would leave the thread in a pod's namespace, so that is fatal
    for the process rather than an exception someone might catch."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(netns_fd)
        try:
            yield
        finally:
            try:
                setns(own)
            except OSError as e:  # pragma: no cover - cannot happen with a valid fd
                os.write(2, f"netns: cannot return to the host network namespace: {e}\n".encode())
                os._exit(70)
    finally:
        os.close(own)


def same_netns(fd: int) -> bool:
    """True if `fd` is the calling thread's own network namespace."""
    a = os.fstat(fd)
    b = os.stat("/proc/thread-self/ns/net")
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


NSFS_MAGIC = 0x6E736673


def open_netns(path: str) -> int:
    """An fd of the pinned pod network namespace at `path`; OSError (with why in strerror) if it
    cannot be opened, is not a network namespace, or is the caller's own."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    why = ("is not a network namespace" if not is_netns(fd)
           else "is the host's own network namespace" if same_netns(fd) else None)
    if why:
        os.close(fd)
        raise OSError(errno.EINVAL, why, path)
    return fd


def close(fd: int) -> None:
    os.close(fd)


def is_netns(fd: int) -> bool:
    """True if `fd` is an nsfs inode (a pinned namespace), checked before setns is tried."""
    try:
        return _fstatfs_type(fd) == NSFS_MAGIC
    except OSError:
        return False


class _statfs(ctypes.Structure):   # struct statfs: f_type first, 120 bytes in all on 64-bit
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.POINTER(_statfs)]
_libc.fstatfs.restype = ctypes.c_int


def _fstatfs_type(fd: int) -> int:
    buf = _statfs()
    if _libc.fstatfs(fd, ctypes.byref(buf)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"fstatfs: {os.strerror(e)}")
    return buf.f_type
