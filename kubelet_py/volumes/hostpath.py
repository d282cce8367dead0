"""hostPath `type` checks (pkg/volume/hostpath): the rule is pure (`check`, on an lstat-like
result), `prepare` is the edge that creates what DirectoryOrCreate/FileOrCreate ask for and
checks the rest. Errors carry upstream's message and the field."""

from __future__ import annotations

import os
import stat

from .content import VolumeError

WHAT = {"Directory": ("a directory", stat.S_ISDIR), "DirectoryOrCreate": ("a directory", stat.S_ISDIR),
        "File": ("a file", stat.S_ISREG), "FileOrCreate": ("a file", stat.S_ISREG),
        "Socket": ("a socket file", stat.S_ISSOCK), "CharDevice": ("a character device", stat.S_ISCHR),
        "BlockDevice": ("a block device", stat.S_ISBLK)}


def check(kind: str, path: str, mode: int | None) -> str | None:
    """The failure message for an existing entry of `mode` (None: it does not exist) under
    hostPath type `kind`, or None when it passes (pure). The *OrCreate types pass a missing
    path (it is created)."""
    if kind == "" or kind not in WHAT:
        return None
    what, test = WHAT[kind]
    if mode is None:
        return None if kind.endswith("OrCreate") else f"hostPath type check failed: {path} is not {what}"
    return None if test(mode) else f"hostPath type check failed: {path} is not {what}"


def prepare(path: str, kind: str, field: str, volume: str = "") -> None:
    """Create (DirectoryOrCreate: mkdir -p 0755; FileOrCreate: the file 0644, parents not
    created) and check. The type of the path itself is checked as the kubelet does (stat,
    following a symlink at it)."""
    kind = kind or ""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is None and kind == "DirectoryOrCreate":
        os.makedirs(path, 0o755, exist_ok=True)
        os.chmod(path, 0o755)
        mode = os.stat(path).st_mode
    elif mode is None and kind == "FileOrCreate":
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise VolumeError(f"{field}.path", f"hostPath type check failed: {path}: its parent directory does "
                              "not exist (FileOrCreate does not create parents)", volume) from None
        os.fchmod(fd, 0o644)
        os.close(fd)
        mode = os.stat(path).st_mode
    why = check(kind, path, mode)
    if why:
        raise VolumeError(f"{field}.type", why, volume)
