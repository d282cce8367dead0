"""Secure layer unpack (kernel edge: creates files as root from attacker-chosen tar entries).

`tarfile` is used only as a parser. Every create, link, chown, chmod, utime, setxattr, mknod and
remove acts relative to a directory handle inside the snapshot, resolved one component at a time
with O_NOFOLLOW; symlinks met on the way are evaluated as if the snapshot were `/` (containerd's
`fs.RootPath`), so no entry can reach outside it (security.md 0.1-0.3, 1.4, 1.6).

Whiteouts become overlayfs whiteouts: `.wh.x` -> a 0:0 character device `x`, `.wh..wh..opq` ->
`trusted.overlay.opaque=y` on the directory, so snapshots stack as overlay lowerdirs.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections import OrderedDict
from dataclasses import dataclass

from .decompress import DecompressedStream
from ..errors import INTERNAL, RESOURCE_EXHAUSTED
from .errors import LayerError, LimitExceeded
from .limits import UnpackLimits

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
MAX_UID = 2**32 - 2  # (uid_t)-1 means "unchanged" to chown: never a real owner
XATTR_SIZE_MAX = 65536
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 40  # symlinks followed while resolving one path, as the kernel's MAXSYMLINKS
_FD_CACHE = 256
_COPY = 1 << 20


@dataclass(frozen=True)
class UnpackResult:
    diff_id: str
    size: int  # uncompressed bytes
    entries: int
    root_opaque: bool  # the layer hides every lower layer (`.wh..wh..opq` at its root)


def _guarded_tarinfo(limits: UnpackLimits, layer: str):
    class GuardedTarInfo(tarfile.TarInfo):
        """Refuses oversized special headers before tarfile reads their payload into memory."""

        def _proc_member(self, tf):
            if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                             tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) and self.size > limits.max_header:
                raise LayerError(layer, f"special tar header of {self.size} bytes exceeds "
                                        f"{limits.max_header}", self.name)
            if self.type == tarfile.GNUTYPE_SPARSE:
                raise LayerError(layer, "sparse files are not supported", self.name)
            return super()._proc_member(tf)

        @classmethod
        def fromtarfile(cls, tf):
            try:
                return super().fromtarfile(tf)
            except tarfile.TruncatedHeaderError:
                if tf.offset == 0:
                    raise
                raise LayerError(layer, f"truncated tar header at offset {tf.offset}") from None
            except tarfile.InvalidHeaderError as e:
                if tf.offset == 0:
                    raise
                raise LayerError(layer, f"invalid tar header at offset {tf.offset}: {e}") from None

    return GuardedTarInfo


def split_name(name: str, layer: str, limits: UnpackLimits) -> tuple[str, ...]:
    """A tar name as in-root components; absolute names are re-rooted, `..` is a breakout error."""
    if "\0" in name:
        raise LayerError(layer, "NUL in name", name)
    if len(name) > limits.max_path:
        raise LayerError(layer, f"name longer than {limits.max_path}", name)
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise LayerError(layer, "path escapes the layer root ('..')", name)
    if len(parts) > limits.max_depth:
        raise LayerError(layer, f"path deeper than {limits.max_depth}", name)
    for p in parts:
        if len(p.encode("utf-8", "surrogateescape")) > 255:
            raise LayerError(layer, "path component longer than 255 bytes", name)
    return parts


class _Extractor:
    def __init__(self, root_fd: int, layer: str, lowers: list[int], limits: UnpackLimits):
        self.root = root_fd
        self.layer = layer
        self.lowers = lowers  # root fds of the parent snapshots, top first (for parent metadata)
        self.limits = limits
        self._dirs: OrderedDict[tuple, tuple[int, tuple]] = OrderedDict()  # name -> (fd, canonical)
        self._dead: list[int] = []
        self._entry = ""
        self.root_opaque = False
        self.dir_times: list[tuple[tuple, int]] = []

    # ---- directory handles -------------------------------------------------------------
    def close(self) -> None:
        self._forget()
        self._reap()

    def _reap(self) -> None:
        for fd in self._dead:
            os.close(fd)
        self._dead.clear()

    def _trim(self) -> None:
        while len(self._dirs) > _FD_CACHE:
            _, (fd, _) = self._dirs.popitem(last=False)
            os.close(fd)

    def _forget(self) -> None:
        """A directory or symlink was removed: any cached resolution may have gone through it.
        Handles the current entry still holds are closed when the next entry starts."""
        self._dead.extend(fd for fd, _ in self._dirs.values())
        self._dirs.clear()

    def parent(self, parts: tuple, create: bool = True) -> tuple[int, tuple]:
        """Handle and canonical path of the directory `parts`, resolved inside the root."""
        try:
            return self._resolve(parts, create, [0])
        finally:
            self._trim()

    def _resolve(self, parts: tuple, create: bool, links: list) -> tuple[int, tuple]:
        if not parts:
            return self.root, ()
        hit = self._dirs.get(parts)
        if hit is not None:
            self._dirs.move_to_end(parts)
            return hit
        pfd, pcanon = self._resolve(parts[:-1], create, links)
        fd, canon = self._step(pfd, pcanon, parts[-1], create, links)
        self._dirs[parts] = (fd, canon)
        return fd, canon

    def _step(self, pfd: int, pcanon: tuple, name: str, create: bool, links: list) -> tuple[int, tuple]:
        """Enter directory `name` below (pfd, pcanon); a symlink is evaluated inside the root."""
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=pfd), pcanon + (name,)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=pfd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            self._copy_lower_meta(fd, pcanon + (name,))
            return fd, pcanon + (name,)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        st = os.lstat(name, dir_fd=pfd)
        if not stat.S_ISLNK(st.st_mode):
            raise LayerError(self.layer, f"parent {'/'.join(pcanon + (name,))!r} is not a directory", self._entry)
        links[0] += 1
        if links[0] > _MAX_LINKS:
            raise LayerError(self.layer, "too many levels of symbolic links", self._entry)
        target = os.readlink(name, dir_fd=pfd)
        canon = () if target.startswith("/") else pcanon
        for comp in target.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                canon = canon[:-1]  # clamped at the root, as if the snapshot were "/"
                continue
            fd, canon = self._canonical(canon)
            fd, canon = self._step(fd, canon, comp, create, links)
            os.close(fd)
        fd, canon = self._canonical(canon)
        return os.dup(fd), canon

    def _canonical(self, canon: tuple) -> tuple[int, tuple]:
        """Handle of an already-resolved (symlink-free) path; cached under the path itself."""
        return self._resolve(canon, False, [0])

    def _copy_lower_meta(self, fd: int, canon: tuple) -> None:
        """A parent created implicitly takes mode/owner of the same directory in a lower layer
        (containerd's mkparent), so `/tmp` stays 1777 when a layer adds `/tmp/x` alone."""
        for low in self.lowers:
            cur = low
            opened = []
            try:
                for comp in canon:
                    cur = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                    opened.append(cur)
                st = os.fstat(cur)
            except OSError:
                continue
            finally:
                for o in opened:
                    os.close(o)
            os.fchown(fd, st.st_uid, st.st_gid)
            os.chmod(fd, stat.S_IMODE(st.st_mode))
            return

    # ---- removal -----------------------------------------------------------------------
    def _remove(self, pfd: int, pcanon: tuple, name: str) -> bool:
        """Remove whatever is at `name` (never following links); False if nothing was there."""
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)  # fd-based, symlink-safe on Linux
        else:
            os.unlink(name, dir_fd=pfd)
        if not stat.S_ISREG(st.st_mode):
            self._forget()
        return True

    # ---- entries -----------------------------------------------------------------------
    def _owner(self, m: tarfile.TarInfo) -> tuple[int, int]:
        for what, v in (("uid", m.uid), ("gid", m.gid)):
            if not isinstance(v, int) or v < 0 or v > MAX_UID:
                raise LayerError(self.layer, f"{what} {v!r} out of range 0..{MAX_UID}", m.name)
        return m.uid, m.gid

    def _xattrs(self, m: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        out = []
        for k, v in m.pax_headers.items():
            if not k.startswith("SCHILY.xattr."):
                continue
            name = k[len("SCHILY.xattr."):]
            if name.startswith("trusted."):
                continue  # could forge overlay state (opaque, redirect, metacopy): dropped
            value = v.encode("utf-8", "surrogateescape")
            if len(value) > XATTR_SIZE_MAX:
                raise LayerError(self.layer, f"xattr {name} larger than {XATTR_SIZE_MAX} bytes", m.name)
            out.append((name, value))
        return out

    def _set_xattrs(self, target, m: tarfile.TarInfo, strict: bool) -> None:
        for name, value in self._xattrs(m):
            try:
                os.setxattr(target, name, value)
            except OSError as e:
                if strict and not (name.startswith("user.") and e.errno in (errno.EPERM, errno.ENOTSUP)):
                    raise LayerError(self.layer, f"cannot set xattr {name}: {e.strerror}", m.name) from None

    def _times(self, m: tarfile.TarInfo) -> tuple[int, int]:
        ns = int(m.mtime * 1_000_000_000)
        return ns, ns

    def entry(self, m: tarfile.TarInfo, src) -> None:
        self._reap()
        self._entry = m.name
        parts = split_name(m.name, self.layer, self.limits)
        if not parts:
            if m.isdir():
                return  # the root itself: containerd skips it ("resolved to root")
            raise LayerError(self.layer, "entry would replace the layer root", m.name)
        for p in parts[:-1]:
            if p.startswith(WHITEOUT):
                raise LayerError(self.layer, "whiteout prefix on a directory component", m.name)
        base = parts[-1]
        if base.startswith(WHITEOUT):
            return self._whiteout(m, parts)
        uid, gid = self._owner(m)
        pfd, pcanon = self.parent(parts[:-1])
        mode = m.mode & 0o7777
        if m.isreg():
            self._file(m, pfd, pcanon, base, uid, gid, mode, src)
        elif m.isdir():
            try:
                st = os.lstat(base, dir_fd=pfd)
                if not stat.S_ISDIR(st.st_mode):
                    self._remove(pfd, pcanon, base)
                    raise FileNotFoundError
            except FileNotFoundError:
                os.mkdir(base, 0o700, dir_fd=pfd)
            fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
            try:
                os.fchown(fd, uid, gid)
                os.chmod(fd, mode)
                self._set_xattrs(fd, m, strict=True)
            finally:
                os.close(fd)
            self.dir_times.append((parts, self._times(m)[1]))
        elif m.issym():
            self._remove(pfd, pcanon, base)
            os.symlink(m.linkname, base, dir_fd=pfd)
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(base, ns=self._times(m), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            self._hardlink(m, parts, base)
        elif m.ischr() or m.isblk() or m.isfifo():
            if m.devmajor < 0 or m.devminor < 0 or m.devmajor > 0xFFFFFFFF or m.devminor > 0xFFFFFFFF:
                raise LayerError(self.layer, f"device number {m.devmajor}:{m.devminor} out of range", m.name)
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            self._remove(pfd, pcanon, base)
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor) if kind != stat.S_IFIFO else 0,
                     dir_fd=pfd)
            fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                os.chown(f"/proc/self/fd/{fd}", uid, gid)
                os.chmod(f"/proc/self/fd/{fd}", mode)
                self._set_xattrs(f"/proc/self/fd/{fd}", m, strict=False)
                os.utime(f"/proc/self/fd/{fd}", ns=self._times(m))
            finally:
                os.close(fd)
        else:
            raise LayerError(self.layer, f"unsupported tar entry type {m.type!r}", m.name)

    def _file(self, m, pfd, pcanon, base, uid, gid, mode, src) -> None:
        try:
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, pcanon, base)
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        try:
            left = m.size
            while left:
                chunk = src.read(min(left, _COPY))
                if not chunk:
                    raise LayerError(self.layer, "unexpected end of data", m.name)
                os.write(fd, chunk)  # regular files never short-write below 2 GiB
                left -= len(chunk)
            os.fchown(fd, uid, gid)
            os.chmod(fd, mode)  # after chown, which clears setuid bits
            self._set_xattrs(fd, m, strict=True)
            os.utime(fd, ns=self._times(m))
        finally:
            os.close(fd)

    def _hardlink(self, m, parts, base) -> None:
        tparts = split_name(m.linkname, self.layer, self.limits)
        if not tparts:
            raise LayerError(self.layer, "hard link to the layer root", m.name)
        if tparts[-1].startswith(WHITEOUT):
            raise LayerError(self.layer, "hard link to a whiteout", m.name)
        tfd, _ = self.parent(tparts[:-1], create=False)
        try:
            st = os.lstat(tparts[-1], dir_fd=tfd)
        except FileNotFoundError:
            raise LayerError(self.layer, f"hard link target {m.linkname!r} not in this layer", m.name) from None
        if stat.S_ISDIR(st.st_mode):
            raise LayerError(self.layer, "hard link to a directory", m.name)
        if tparts == parts:
            return
        pfd, pcanon = self.parent(parts[:-1])  # the target lookup may have evicted the old handle
        self._remove(pfd, pcanon, base)
        tfd, _ = self.parent(tparts[:-1], create=False)
        pfd, _ = self.parent(parts[:-1])
        # follow_symlinks=False: link the symlink itself (Python 3.14 changes the default)
        os.link(tparts[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

    def _whiteout(self, m, parts) -> None:
        target = parts[-1][len(WHITEOUT):]
        if target in ("", ".", ".."):
            raise LayerError(self.layer, "invalid whiteout", m.name)
        if parts[-1] == OPAQUE:
            if len(parts) == 1:
                self.root_opaque = True
                return
            fd, _ = self.parent(parts[:-1])
            os.setxattr(fd, OPAQUE_XATTR, b"y")
            return
        if target.startswith(WHITEOUT):
            return  # other AUFS metadata (.wh..wh.plnk, ...): skipped, as containerd does
        uid, gid = self._owner(m)
        pfd, _ = self.parent(parts[:-1])
        try:
            os.lstat(target, dir_fd=pfd)
            return  # written by this layer: whiteouts only hide lower layers
        except FileNotFoundError:
            pass
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        os.chown(target, uid, gid, dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        for parts, mtime in reversed(self.dir_times):
            try:
                fd, _ = self.parent(parts, create=False)
            except (OSError, LayerError):
                continue  # replaced or removed by a later entry
            os.utime(fd, ns=(mtime, mtime))


def _errno_kind(err: int | None) -> str | None:
    """A full disk is RESOURCE_EXHAUSTED, a refusal of the node's kernel or disk INTERNAL; any
    other failure of an entry (ENAMETOOLONG, EMLINK, ...) is the layer's: LayerError's own kind."""
    if err in (errno.ENOSPC, errno.EDQUOT):
        return RESOURCE_EXHAUSTED
    if err in (errno.EPERM, errno.EACCES, errno.EROFS, errno.EIO):
        return INTERNAL
    return None


def unpack_stream(stream: DecompressedStream, root_fd: int, lowers: list[int],
                  limits: UnpackLimits, prefetch: bool = True) -> UnpackResult:
    """Apply the tar in `stream` below `root_fd` (a fresh private dir). Caller removes it on error."""
    layer = stream.layer
    ex = _Extractor(root_fd, layer, lowers, limits)
    entries = 0
    if prefetch:
        stream.start_prefetch()
    try:
        try:
            # seekable mode over a forward-only stream (see DecompressedStream.seek): stream
            # mode ("r|") would copy its whole read buffer on every 512-byte header read
            tf = tarfile.TarFile(fileobj=stream, mode="r", tarinfo=_guarded_tarinfo(limits, layer),
                                 encoding="utf-8", errors="surrogateescape")
        except tarfile.ReadError as e:
            raise LayerError(layer, f"not a tar archive: {e}") from None
        src = stream
        while True:
            try:
                m = tf.next()
            except tarfile.ReadError as e:
                raise LayerError(layer, f"corrupt tar: {e}") from None
            if m is None:
                break
            tf.members.clear()  # stream mode would otherwise keep every header in memory
            entries += 1
            if entries > limits.max_entries:
                raise LimitExceeded(layer, "number of tar entries", "max-layer-entries", limits.max_entries,
                                    entries, "entries")
            if m.sparse is not None:
                raise LayerError(layer, "sparse files are not supported", m.name)
            try:
                ex.entry(m, src)
            except OSError as e:
                raise LayerError(layer, f"{e.strerror or e}", m.name, kind=_errno_kind(e.errno)) from None
        ex.finish()
        diff_id, size = stream.finish()
    finally:
        ex.close()
        stream.close()
    return UnpackResult(diff_id, size, entries, ex.root_opaque)
