"""Kernel edge: walking a volume's tree by handles, never following a symlink and never
crossing into another mount (each directory's mount id from /proc/self/fdinfo: a bind mount of
the same filesystem has the same st_dev). Removal, disk usage and group ownership use it."""

from __future__ import annotations

import os
import stat
from typing import Callable

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class CrossesMount(OSError):
    pass


def mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(f"no mnt_id in fdinfo of fd {fd}")


def open_dir(path: str, dir_fd: int | None = None) -> int:
    return os.open(path, _DIR, dir_fd=dir_fd)


def walk(dfd: int, visit: Callable[[int, str, os.stat_result], None], after_dir=None, _mnt: int | None = None,
         skip_mounts: bool = False) -> None:
    """Call `visit(parent fd, name, lstat)` for every entry below the directory `dfd`, children
    of a directory before `after_dir(parent fd, name, lstat)` for it. A directory on another
    mount raises CrossesMount (`skip_mounts`: is left out); symlinks are visited, never followed."""
    mnt = mount_id(dfd) if _mnt is None else _mnt
    with os.scandir(dfd) as it:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    for name, st in entries:
        if stat.S_ISDIR(st.st_mode):
            cfd = open_dir(name, dfd)
            try:
                if mount_id(cfd) != mnt:
                    if skip_mounts:
                        continue
                    raise CrossesMount(f"{name} is another mount")
                visit(dfd, name, st)
                walk(cfd, visit, after_dir, mnt, skip_mounts)
            finally:
                os.close(cfd)
            if after_dir:
                after_dir(dfd, name, st)
        else:
            visit(dfd, name, st)


def remove_tree(path: str) -> None:
    """Delete `path` and everything below it; a symlink is removed, never followed; a mount
    below it stops the removal (CrossesMount) with nothing behind the mount touched. Absent:
    nothing to do."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        pfd = open_dir(parent)
    except FileNotFoundError:
        return
    try:
        remove_at(pfd, name)
    finally:
        os.close(pfd)


def remove_at(pfd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=pfd)
        return
    dfd = open_dir(name, pfd)
    try:
        if mount_id(dfd) != mount_id(pfd):
            raise CrossesMount(f"{name} is a mount point: unmount it first")

        def visit(parent, n, s):
            if not stat.S_ISDIR(s.st_mode):
                os.unlink(n, dir_fd=parent)

        walk(dfd, visit, lambda parent, n, s: os.rmdir(n, dir_fd=parent))
    finally:
        os.close(dfd)
    os.rmdir(name, dir_fd=pfd)


def disk_usage(path: str) -> int:
    """Bytes of disk the tree at `path` uses (du: allocated blocks, each inode once), not
    crossing mounts (those are skipped) nor following symlinks."""
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        dfd = open_dir(path)
    except FileNotFoundError:
        return 0

    def visit(_parent, _n, st):
        nonlocal total
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512

    try:
        walk(dfd, visit, skip_mounts=True)
    finally:
        os.close(dfd)
    return total
