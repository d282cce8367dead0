"""subPath mounts, resolved safely (CVE-2017-1002101, CVE-2021-25741). Kernel edge.

The subPath is walked from an O_PATH handle on the volume's root, one component at a time with
O_NOFOLLOW. A symlink met on the way is read (never followed by the kernel) and resolved as a
path inside the volume; one that leads out of it (absolute, or `..` above the root) is refused.
Missing components are created as directories (as upstream's SafeMakeDir). The handle of the
final object is then bind-mounted (through /proc/self/fd/N) onto a private staging path under
the pod's directory, which is what the runtime mounts into the container: what was checked is
what gets mounted, whatever the container does to the volume meanwhile."""

from __future__ import annotations

import errno
import os
import stat

from .content import VolumeError
from .mounts import bind_fd, is_mount_point, unmount

_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40


def components(subpath: str) -> list[str]:
    """The components of a relative subPath; `..`, an absolute path or a NUL are refused (pure:
    validation refuses them already; this keeps the edge safe on its own)."""
    if subpath.startswith("/") or "\0" in subpath:
        raise ValueError(f"subPath {subpath!r} must be a relative path")
    parts = [c for c in subpath.split("/") if c not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"subPath {subpath!r} must not contain '..'")
    return parts


def resolve_link(stack_depth: int, target: str) -> tuple[int, list[str]] | None:
    """A symlink met at depth `stack_depth` (components below the root) pointing at `target`:
    (how many levels to go up, the components to walk next), or None when it leaves the volume
    (pure)."""
    if target.startswith("/"):
        return None
    up, rest = 0, []
    for c in target.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if rest:
                rest.pop()
            else:
                up += 1
        else:
            rest.append(c)
    if up > stack_depth:
        return None
    return up, rest


def open_beneath(root: str, subpath: str, field: str, create: bool = True) -> int:
    """An O_PATH handle on `subpath` inside the directory `root`, resolved as described above."""
    try:
        todo = components(subpath)
    except ValueError as e:
        raise VolumeError(field, str(e)) from None
    stack = [os.open(root, _DIR)]
    links = 0
    try:
        while todo:
            comp = todo.pop(0)
            cur = stack[-1]
            try:
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise VolumeError(field, f"{subpath}: {comp} does not exist") from None
                try:
                    os.mkdir(comp, 0o755, dir_fd=cur)
                except FileExistsError:
                    pass  # raced with the container: looked at again below, never trusted
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise VolumeError(field, f"{subpath}: too many levels of symbolic links")
                target = os.readlink(comp, dir_fd=cur)
                step = resolve_link(len(stack) - 1, target)
                if step is None:
                    raise VolumeError(field, f"subpath {subpath!r}: the symlink {comp!r} -> {target!r} leads out of "
                                      "the volume (refused, never followed)")
                up, rest = step
                for _ in range(up):
                    os.close(stack.pop())
                todo = rest + todo
                continue
            if todo:
                if not stat.S_ISDIR(st.st_mode):
                    raise VolumeError(field, f"{subpath}: {comp} is not a directory")
                try:
                    stack.append(os.open(comp, _DIR, dir_fd=cur))
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link since the stat
                        raise VolumeError(field, f"{subpath}: {comp} changed while resolving it") from None
                    raise
            else:
                stack.append(os.open(comp, _PATH, dir_fd=cur))
        fd = os.dup(stack[-1])
    finally:
        for f in stack:
            os.close(f)
    if stat.S_ISLNK(os.fstat(fd).st_mode):  # swapped for a link between the stat and the open
        os.close(fd)
        raise VolumeError(field, f"{subpath}: changed while resolving it")
    return fd


def stage(root: str, subpath: str, staging: str, field: str) -> str:
    """Resolve `subpath` in the volume at `root` and bind it onto `staging` (a path in the pod's
    directory, made here as a file or a directory to match); returns `staging`. A staging
    mount already there (an earlier instance's) is replaced."""
    fd = open_beneath(root, subpath, field)
    try:
        st = os.fstat(fd)
        os.makedirs(os.path.dirname(staging), 0o750, exist_ok=True)
        if is_mount_point(staging):
            unmount(staging)
        if stat.S_ISDIR(st.st_mode):
            if not os.path.isdir(staging) or os.path.islink(staging):
                _clear(staging)
                os.mkdir(staging, 0o750)
        else:
            if os.path.islink(staging) or os.path.isdir(staging):
                _clear(staging)
            if not os.path.exists(staging):
                os.close(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640))
        bind_fd(fd, staging)
        got = os.stat(staging, follow_symlinks=False)
        if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
            unmount(staging)
            raise VolumeError(field, f"{subpath}: the staged mount is not the checked object")
    finally:
        os.close(fd)
    return staging


def _clear(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        os.rmdir(path)  # an empty staging dir only: never a recursive delete here
