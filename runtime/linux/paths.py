"""Resolving paths inside a container rootfs from the host, race-safely (security.md 0.5).

Each component is opened with O_NOFOLLOW relative to the previous handle; a symlink is read
and evaluated as if the rootfs were `/`, so nothing can lead outside it. Mount targets are then
used as `/proc/self/fd/N` of an O_PATH handle (CVE-2021-30465)."""

from __future__ import annotations

import errno
import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40


def _split(p: str) -> list[str]:
    return [c for c in p.split("/") if c not in ("", ".")]


def open_in_root(root_fd: int, path: str, create: str | None = None, mode: int = 0o755) -> int:
    """An O_PATH fd for `path` inside the root. `create`: None, "dir" or "file" (missing parents
    are created as directories; the final component as asked)."""
    todo = _split(path)
    stack = [os.dup(root_fd)]  # handles of the resolved components; [0] is the root
    links = 0
    try:
        while todo:
            comp = todo.pop(0)
            if comp == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            last = not todo
            try:
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    raise
                if last and create == "file":
                    os.close(os.open(comp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     0o644, dir_fd=cur))
                else:
                    os.mkdir(comp, mode, dir_fd=cur)
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many symlinks", path)
                target = os.readlink(comp, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo = _split(target) + todo
                continue
            if last:
                stack.append(os.open(comp, _PATH, dir_fd=cur))
            else:
                if not stat.S_ISDIR(st.st_mode):
                    raise OSError(errno.ENOTDIR, f"{comp} is not a directory", path)
                stack.append(os.open(comp, _DIR, dir_fd=cur))
        return os.dup(stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def proc_fd(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def read_file_in_root(root: str, path: str, limit: int = 10 << 20) -> bytes:
    """A regular file inside `root`, size-capped (containerd caps /etc/passwd at 10 MiB);
    links are resolved inside the root; a device, fifo or link out of it is never read."""
    rfd = os.open(root, _DIR)
    try:
        pfd = open_in_root(rfd, path)
    finally:
        os.close(rfd)
    try:
        st = os.stat(proc_fd(pfd))
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file", path)
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"{path} is larger than {limit} bytes", path)
        fd = os.open(proc_fd(pfd), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.read(fd, limit + 1)[:limit]
        finally:
            os.close(fd)
    finally:
        os.close(pfd)
