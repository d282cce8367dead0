"""The container's /dev (kernel edge, run by the init after its mounts, before pivot_root):
runc's default device nodes plus `linux.devices`, made inside the rootfs, and the /dev links."""

from __future__ import annotations

import os
import stat

from ..linux import sys as ksys
from ..linux.paths import open_in_root, proc_fd
from .errors import RunError
from .spec import Spec

DEFAULT_DEVICES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
                   ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)]
DEV_LINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
             ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx")]
_KIND = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def make_devices(rootfs_fd: int, spec: Spec, bind: bool = False) -> None:
    """`bind`: in a user namespace, where mknod(2) is not allowed, the host's node of the same
    path is bound on an empty file instead, as runc does (its owner and mode are then the
    host's)."""
    devs = [{"path": p, "type": "c", "major": a, "minor": b, "fileMode": 0o666, "uid": 0, "gid": 0}
            for p, a, b in DEFAULT_DEVICES]
    devs += spec.devices
    for d in devs:
        if bind:
            _bind_device(rootfs_fd, d)
            continue
        parent_fd = open_in_root(rootfs_fd, os.path.dirname(d["path"]), "dir")
        try:
            pfd = os.open(proc_fd(parent_fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            name = os.path.basename(d["path"])
            kind = _KIND[d.get("type", "c")]
            try:
                os.unlink(name, dir_fd=pfd)
            except FileNotFoundError:
                pass  # nothing there yet: the usual case
            except OSError as e:  # EBUSY: a spec mount sits on the device's path
                raise RunError(f"creating device {d['path']}: {e.strerror} (is something mounted over it?)") from None
            os.mknod(name, kind | 0o600, os.makedev(d.get("major", 0), d.get("minor", 0)), dir_fd=pfd)
            os.chown(name, d.get("uid", 0) or 0, d.get("gid", 0) or 0, dir_fd=pfd, follow_symlinks=False)
            os.chmod(name, d.get("fileMode", 0o666) & 0o7777, dir_fd=pfd)
            os.close(pfd)
        finally:
            os.close(parent_fd)
    _links(rootfs_fd)


def _bind_device(rootfs_fd: int, d: dict) -> None:
    """The host's node (we are before pivot_root), taken by handle and checked to be the device
    asked for, bound on an empty file at the same path in the rootfs."""
    kind = _KIND[d.get("type", "c")]
    try:
        src = os.open(d["path"], os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise RunError(f"device {d['path']}: in a user namespace the host's node is bound, and {e.strerror}") from None
    try:
        st = os.fstat(src)
        if stat.S_IFMT(st.st_mode) != kind or (kind != stat.S_IFIFO and
                                               st.st_rdev != os.makedev(d.get("major", 0), d.get("minor", 0))):
            raise RunError(f"device {d['path']}: in a user namespace the host's node is bound, and the host's is "
                           f"not {d.get('type', 'c')} {d.get('major', 0)}:{d.get('minor', 0)}")
        fd = open_in_root(rootfs_fd, d["path"], "file")
        try:
            ksys.mount(proc_fd(src), proc_fd(fd), None, ksys.MS_BIND)
        finally:
            os.close(fd)
    finally:
        os.close(src)


def _links(rootfs_fd: int) -> None:
    links = DEV_LINKS + ([("/proc/kcore", "/dev/core")] if os.path.exists("/proc/kcore") else [])  # as runc
    dev = open_in_root(rootfs_fd, "/dev", "dir")
    try:
        dfd = os.open(proc_fd(dev), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        for src, dst in links:
            try:
                os.symlink(src, os.path.basename(dst), dir_fd=dfd)
            except FileExistsError:
                pass  # the image or a mount has it already
        os.close(dfd)
    finally:
        os.close(dev)
