"""The container's /dev (kernel edge, run by the init after its mounts, before pivot_root):
runc's default device nodes plus `linux.devices`, made inside the rootfs, and the /dev links."""

from __future__ import annotations

import os
import stat

from ..linux.paths import open_in_root, proc_fd
from .errors import RunError
from .spec import Spec

DEFAULT_DEVICES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
                   ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)]
DEV_LINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
             ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx")]
_KIND = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def make_devices(rootfs_fd: int, spec: Spec) -> None:
    devs = [{"path": p, "type": "c", "major": a, "minor": b, "fileMode": 0o666, "uid": 0, "gid": 0}
            for p, a, b in DEFAULT_DEVICES]
    devs += spec.devices
    for d in devs:
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
