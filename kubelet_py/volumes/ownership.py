"""fsGroup ownership of a volume (semantics 4.6), as upstream's SetVolumeOwnership
(pkg/volume/volume_linux.go): every entry's group becomes fsGroup; files get group read and
write (read only, for the read-only API-data volumes), directories also group search and
setgid, so that what is created later inherits the group; symlinks only change group.
fsGroupChangePolicy OnRootMismatch skips the walk when the volume's root already looks done."""

from __future__ import annotations

import os
import stat

from .tree import open_dir, walk

RW_MASK, RO_MASK, EXEC_MASK = 0o660, 0o440, 0o110


def group_mode(mode: int, is_dir: bool, readonly: bool) -> int:
    """The permission bits an entry of mode `mode` gets under fsGroup (pure)."""
    mask = RO_MASK if readonly else RW_MASK
    if is_dir:
        mask |= EXEC_MASK | stat.S_ISGID
    return stat.S_IMODE(mode) | mask


def root_matches(st: os.stat_result, gid: int, readonly: bool) -> bool:
    """OnRootMismatch's test of the volume's root (upstream's skipPermissionChange) (pure)."""
    if st.st_gid != gid:
        return False
    want = group_mode(0, True, readonly)
    return stat.S_IMODE(st.st_mode) & want == want


def skip_change(policy: str | None, st: os.stat_result, gid: int, readonly: bool) -> bool:
    return policy == "OnRootMismatch" and root_matches(st, gid, readonly)


def fix_entry(parent_fd: int, name: str, st: os.stat_result, gid: int, readonly: bool) -> None:
    """One entry, by its parent's handle: group, then mode (never through a symlink)."""
    os.chown(name, -1, gid, dir_fd=parent_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        return
    os.chmod(name, group_mode(st.st_mode, stat.S_ISDIR(st.st_mode), readonly), dir_fd=parent_fd)


def apply_fs_group(path: str, gid: int, readonly: bool = False, policy: str | None = None) -> bool:
    """Give the tree at `path` to fsGroup (not crossing mounts: a subPath staging mount or a
    tmpfs of another volume is not below a volume's dir). False when OnRootMismatch skipped it."""
    st = os.stat(path, follow_symlinks=False)
    if skip_change(policy, st, gid, readonly):
        return False
    dfd = open_dir(path)
    try:
        walk(dfd, lambda p, n, s: fix_entry(p, n, s, gid, readonly), skip_mounts=True)
        os.chown(dfd, -1, gid)
        os.chmod(dfd, group_mode(st.st_mode, True, readonly))
    finally:
        os.close(dfd)
    return True
