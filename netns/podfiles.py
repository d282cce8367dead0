"""Edge: write a pod's /etc/hosts, /etc/hostname and /etc/resolv.conf (contents from
netns/dnsfiles.py) into a directory of the kubelet's, for the runtime to bind-mount. Each file is
replaced atomically (temp file + rename), mode 0644, so a reader never sees half a file."""

from __future__ import annotations

import os

from .errors import StateError
from .plan import PodFiles


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, text.encode())
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StateError(path, f"cannot write: {e.strerror}") from None


def write(files_dir: str, hosts: str, hostname: str, resolv_conf: str) -> PodFiles:
    try:
        os.makedirs(files_dir, mode=0o755, exist_ok=True)
    except OSError as e:
        raise StateError(files_dir, f"cannot create: {e.strerror}") from None
    out = PodFiles(os.path.join(files_dir, "hosts"), os.path.join(files_dir, "hostname"),
                   os.path.join(files_dir, "resolv.conf"))
    _write(out.hosts, hosts)
    _write(out.hostname, hostname)
    _write(out.resolv_conf, resolv_conf)
    return out


def remove(files_dir: str) -> None:
    for name in ("hosts", "hostname", "resolv.conf"):
        try:
            os.unlink(os.path.join(files_dir, name))
        except FileNotFoundError:
            pass


def read_text(path: str, limit: int = 1 << 20) -> str:
    """A host file (/etc/hosts, /etc/resolv.conf); missing reads as empty."""
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise StateError(path, f"cannot read: {e.strerror}") from None
