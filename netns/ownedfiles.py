"""Edge: a directory of small files, each naming the pod uid that owns it, guarded by a flock on
`<dir>/lock` (host-local's disk backend). Used for IP allocations (<root>/ipam) and hostPort
claims (<root>/hostports).

A file is created with atomicfile.write_atomic(replace=False): a temporary file (content + fsync)
hard-linked to its final name; the link is atomic and fails if the name exists, so an entry is
never half-written and never silently replaced, even across a kill -9. The flock serialises
processes and threads alike (each `locked()` opens its own file description); `snapshot()` reads
under a shared lock and creates nothing, for read-only callers."""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from typing import Callable, Iterator

from .atomicfile import is_temp_name, sync_dir, write_atomic
from .errors import StateError

LOCK = "lock"


class OwnedDir:
    def __init__(self, path: str, is_entry: Callable[[str], bool]):
        self.path = path
        self.is_entry = is_entry

    @contextmanager
    def locked(self) -> Iterator[None]:
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StateError(self.path, f"cannot open the lock: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def snapshot(self) -> dict[str, str]:
        """entries() under a shared lock, without creating the directory or its lock file."""
        try:
            fd = os.open(os.path.join(self.path, LOCK), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return self.entries()        # no writer ever locked here: nothing to wait for
        except OSError as e:
            raise StateError(self.path, f"cannot open the lock: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return self.entries()
        finally:
            os.close(fd)

    def entries(self) -> dict[str, str]:
        """name -> owner uid of every entry (call with the lock held)."""
        out = {}
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return out
        for name in names:
            if not self.is_entry(name):
                continue
            owner = self.read(name)
            if owner is not None:
                out[name] = owner
        return out

    def read(self, name: str) -> str | None:
        try:
            fd = os.open(os.path.join(self.path, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise StateError(os.path.join(self.path, name), e.strerror) from None
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        return data.decode(errors="replace").split("\n", 1)[0].strip()

    def create(self, name: str, owner: str) -> bool:
        """Create `name` owned by `owner`; False if it already exists (with any owner)."""
        final = os.path.join(self.path, name)
        try:
            return write_atomic(final, f"{owner}\n".encode(), 0o600, replace=False)
        except OSError as e:
            raise StateError(final, f"cannot write: {e.strerror}") from None

    def write_hint(self, name: str, value: str) -> None:
        """A small non-entry file (last_reserved_ip), replaced atomically; losing it is harmless,
        so it is not fsynced."""
        final = os.path.join(self.path, name)
        try:
            write_atomic(final, f"{value}\n".encode(), 0o600, durable=False)
        except OSError as e:
            raise StateError(final, f"cannot write: {e.strerror}") from None

    def read_hint(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.path, name)) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def remove(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.path, name))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StateError(os.path.join(self.path, name), f"cannot remove: {e.strerror}") from None

    def remove_owned_by(self, keep: Callable[[str], bool]) -> list[str]:
        """Remove every entry whose owner fails `keep`, and leftover temporary files."""
        removed = [n for n, owner in self.entries().items() if not keep(owner)]
        for n in removed:
            self.remove(n)
        try:
            for n in os.listdir(self.path):
                if is_temp_name(n):
                    self.remove(n)
        except FileNotFoundError:
            pass
        if removed:
            self.sync()
        return sorted(removed)

    def sync(self) -> None:
        try:
            sync_dir(self.path)
        except OSError as e:
            raise StateError(self.path, f"cannot sync: {e.strerror}") from None
