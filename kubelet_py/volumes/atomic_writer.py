"""The kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go), kernel edge: an API-data
volume's files are written into a fresh `..<UTC time>.<n>` directory, `..data_tmp` is made a
symlink to it and renamed over `..data` (one atomic step: a reader sees the old set or the new
set, never a mix), then each top-level name is a symlink to `..data/<name>`, stale names and
the old directory go. Everything is done by handle on the volume's directory, never through a
symlink. Used for the first write and for every update."""

from __future__ import annotations

import logging
import os
import random
import stat
import time

from .content import Payload
from .ownership import group_mode
from .tree import open_dir, remove_at

log = logging.getLogger("kubelet_py.volumes")
DATA, DATA_TMP = "..data", "..data_tmp"


def ts_name(now: float, n: int) -> str:
    """`..2006_01_02_15_04_05.<n>` (pure)."""
    return time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime(now)) + f".{n}"


def top_names(paths) -> set[str]:
    """The user-visible names of a payload: each path's first component (pure)."""
    return {p.split("/", 1)[0] for p in paths}


def final_mode(mode: int, fs_group: int | None) -> int:
    return group_mode(mode, False, True) if fs_group is not None else mode


def _readlink(name: str, dfd: int) -> str | None:
    try:
        return os.readlink(name, dir_fd=dfd)
    except (FileNotFoundError, OSError):
        return None


def _read_tree(dfd: int, prefix: str = "") -> dict[str, tuple[bytes, int, int]] | None:
    """{path: (content, mode, gid)} of the regular files below `dfd`; None if anything else
    (a symlink, a device) is in it."""
    out: dict[str, tuple[bytes, int, int]] = {}
    with os.scandir(dfd) as it:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    for name, st in entries:
        if stat.S_ISDIR(st.st_mode):
            cfd = open_dir(name, dfd)
            try:
                sub = _read_tree(cfd, f"{prefix}{name}/")
            finally:
                os.close(cfd)
            if sub is None:
                return None
            out.update(sub)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                data = b""
                while chunk := os.read(fd, 1 << 20):
                    data += chunk
            finally:
                os.close(fd)
            out[prefix + name] = (data, stat.S_IMODE(st.st_mode), st.st_gid)
        else:
            return None
    return out


def current(target: str) -> dict[str, tuple[bytes, int, int]] | None:
    """What `..data` of the volume at `target` holds now (None: nothing written yet)."""
    dfd = open_dir(target)
    try:
        old = _readlink(DATA, dfd)
        if not old or "/" in old:
            return None
        try:
            tfd = open_dir(old, dfd)
        except OSError:
            return None
        try:
            return _read_tree(tfd)
        finally:
            os.close(tfd)
    finally:
        os.close(dfd)


def same(old: dict | None, payload: Payload, fs_group: int | None) -> bool:
    """Whether the written files already are `payload` (pure)."""
    if old is None or set(old) != set(payload):
        return False
    for p, (data, mode) in payload.items():
        got, got_mode, got_gid = old[p]
        if got != data or got_mode != final_mode(mode, fs_group) or (fs_group is not None and got_gid != fs_group):
            return False
    return True


def write(target: str, payload: Payload, fs_group: int | None = None, now: float | None = None) -> bool:
    """Make the volume at `target` (an existing directory) hold exactly `payload`; False when
    it already did (nothing written). `fs_group`: files and directories get that group (read
    only, setgid dirs), as upstream's SetVolumeOwnership of an API-data volume."""
    old_files = current(target)
    dfd = open_dir(target)
    try:
        old_ts = _readlink(DATA, dfd)
        if same(old_files, payload, fs_group):
            _visible_links(dfd, payload, set())
            return False
        now = time.time() if now is None else now
        for _ in range(100):
            ts = ts_name(now, random.randrange(10**9))
            try:
                os.mkdir(ts, 0o755, dir_fd=dfd)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"{target}: no free name for a new data directory")
        try:
            tfd = open_dir(ts, dfd)
            try:
                os.chmod(tfd, 0o755 if fs_group is None else group_mode(0o755, True, True))
                if fs_group is not None:
                    os.chown(tfd, -1, fs_group)
                for path in sorted(payload):
                    _write_file(tfd, path, *payload[path], fs_group)
            finally:
                os.close(tfd)
            try:
                os.unlink(DATA_TMP, dir_fd=dfd)  # a crash's leftover
            except FileNotFoundError:
                pass
            os.symlink(ts, DATA_TMP, dir_fd=dfd)
            os.rename(DATA_TMP, DATA, src_dir_fd=dfd, dst_dir_fd=dfd)  # no fsync: rewritten at setup after a crash
        except BaseException:
            remove_at(dfd, ts)
            raise
        stale = top_names(old_files or {}) - top_names(payload)
        _visible_links(dfd, payload, stale)
        if old_ts and old_ts != ts and old_ts.startswith("..") and "/" not in old_ts:
            remove_at(dfd, old_ts)
        _remove_strays(dfd, ts)
        return True
    finally:
        os.close(dfd)


def _write_file(tfd: int, path: str, data: bytes, mode: int, fs_group: int | None) -> None:
    parts = path.split("/")
    fds = [os.dup(tfd)]
    try:
        for d in parts[:-1]:
            try:
                os.mkdir(d, 0o755, dir_fd=fds[-1])
                if fs_group is not None:
                    os.chown(d, -1, fs_group, dir_fd=fds[-1], follow_symlinks=False)
                    os.chmod(d, group_mode(0o755, True, True), dir_fd=fds[-1])
            except FileExistsError:
                pass
            fds.append(open_dir(d, fds[-1]))
        fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=fds[-1])
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fs_group is not None:
                os.fchown(fd, -1, fs_group)
            os.fchmod(fd, final_mode(mode, fs_group))
        finally:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


def _visible_links(dfd: int, payload: Payload, stale: set[str]) -> None:
    """Each top-level name a symlink to ..data/<name>; the stale ones (ours: links into ..data)
    removed."""
    for name in sorted(top_names(payload)):
        want = f"{DATA}/{name}"
        have = _readlink(name, dfd)
        if have == want:
            continue
        if have is not None:
            os.unlink(name, dir_fd=dfd)
        elif os.path.lexists(f"/proc/self/fd/{dfd}/{name}"):
            raise FileExistsError(f"{name} exists in the volume and is not the writer's link")
        os.symlink(want, name, dir_fd=dfd)
    for name in sorted(stale - top_names(payload)):
        if _readlink(name, dfd) == f"{DATA}/{name}":
            os.unlink(name, dir_fd=dfd)


def _remove_strays(dfd: int, keep: str) -> None:
    """Data directories of an update a crash interrupted (never the one ..data names)."""
    with os.scandir(dfd) as it:
        names = [e.name for e in it if e.is_dir(follow_symlinks=False)]
    for n in names:
        if n != keep and n.startswith("..") and n not in (DATA, DATA_TMP) and n[2:3].isdigit():
            log.info("removing a stale data directory %s", n)
            remove_at(dfd, n)
