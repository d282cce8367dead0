"""Kernel edge: the mounts volumes need (tmpfs for secrets and memory emptyDirs, bind mounts of
checked subPath handles), and finding and removing them again through /proc/self/mountinfo
(a bind mount of the same filesystem is invisible to st_dev comparisons)."""

from __future__ import annotations

import logging
import os

from runtime.linux import sys as ksys
from runtime.oci.mounts import _unescape  # mountinfo's octal escapes: one decoder in the project

log = logging.getLogger("kubelet_py.volumes")


class MountError(OSError):
    pass


def mount_points(mountinfo: str) -> list[str]:
    """Every mount point of a mountinfo text, in its order (parents before children) (pure)."""
    out = []
    for line in mountinfo.splitlines():
        f = line.split(" ")
        if len(f) > 4:
            out.append(_unescape(f[4]))
    return out


def under(points: list[str], prefix: str) -> list[str]:
    """The points at or below `prefix`, deepest (last mounted) first (pure)."""
    prefix = prefix.rstrip("/")
    hits = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    return list(reversed(hits))


def _read() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def mounts_under(prefix: str) -> list[str]:
    return under(mount_points(_read()), os.path.realpath(prefix))


def is_mount_point(path: str) -> bool:
    """Whether a mount sits at `path` (not following a symlink there): its mount id differs from
    its parent directory's (/proc/self/fdinfo; a bind of the same filesystem has one of its own)."""
    from .tree import mount_id
    parent, name = os.path.split(os.path.abspath(path))
    try:
        pfd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        except FileNotFoundError:
            return False
        try:
            return mount_id(fd) != mount_id(pfd)
        finally:
            os.close(fd)
    finally:
        os.close(pfd)


def mount_tmpfs(target: str, options: str) -> None:
    """A tmpfs at `target` (a directory), nosuid and nodev as the kubelet's emptyDir memory."""
    ksys.mount("tmpfs", target, "tmpfs", ksys.MS_NOSUID | ksys.MS_NODEV, options)


def bind_fd(fd: int, target: str) -> None:
    """Bind what `fd` (an O_PATH handle, already checked) names onto `target`: the mount is the
    checked object, whatever its path now resolves to."""
    ksys.mount(f"/proc/self/fd/{fd}", target, None, ksys.MS_BIND)


def unmount(target: str) -> None:
    """Unmount one mount point without following a symlink at it; lazily where busy (a process
    of a dead pod's container may still hold it), then checked to be gone."""
    try:
        ksys.umount2(target, ksys.UMOUNT_NOFOLLOW)
    except OSError as e:
        log.info("unmount %s: %s; detaching", target, e)
        ksys.umount2(target, ksys.MNT_DETACH | ksys.UMOUNT_NOFOLLOW)


def unmount_all_under(prefix: str) -> list[str]:
    """Every mount at or below `prefix`, deepest first, until none is left; the points removed.
    Raises MountError if one stays (nothing below it may then be deleted)."""
    done: list[str] = []
    for _ in range(8):  # stacked mounts come off one per pass
        points = mounts_under(prefix)
        if not points:
            return done
        for p in points:
            try:
                unmount(p)
                done.append(p)
            except OSError as e:
                log.warning("unmount %s: %s", p, e)
    left = mounts_under(prefix)
    if left:
        raise MountError(f"still mounted under {prefix}: {', '.join(left)}")
    return done
