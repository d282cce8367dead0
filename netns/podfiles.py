"""Edge: write a pod's /etc/hosts, /etc/hostname and /etc/resolv.conf (contents from
netns/dnsfiles.py) into a directory of the kubelet's, for the runtime to bind-mount. Each file is
replaced atomically (atomicfile.write_atomic), mode 0644, so a reader never sees half a file; a
file that already holds the same text is not rewritten, so a repeated setup keeps the inode a
container has bind-mounted."""

from __future__ import annotations

import os

from .atomicfile import same_content, write_atomic
from .errors import StateError
from .plan import PodFiles

MODE = 0o644
NAMES = ("hosts", "hostname", "resolv.conf")


def paths(files_dir: str) -> PodFiles:
    return PodFiles(*(os.path.join(files_dir, n) for n in NAMES))


def _write(path: str, text: str) -> None:
    data = text.encode()
    if same_content(path, data, MODE):
        return
    try:
        write_atomic(path, data, MODE, durable=False)  # they live as long as the sandbox, never past a reboot
    except OSError as e:
        raise StateError(path, f"cannot write: {e.strerror}") from None


def write(files_dir: str, hosts: str, hostname: str, resolv_conf: str) -> PodFiles:
    try:
        os.makedirs(files_dir, mode=0o755, exist_ok=True)
    except OSError as e:
        raise StateError(files_dir, f"cannot create: {e.strerror}") from None
    out = paths(files_dir)
    _write(out.hosts, hosts)
    _write(out.hostname, hostname)
    _write(out.resolv_conf, resolv_conf)
    return out


def present(files_dir: str) -> bool:
    """True if any of the pod's files is already there (written by an earlier setup)."""
    return any(os.path.lexists(os.path.join(files_dir, n)) for n in NAMES)


def remove(files_dir: str) -> None:
    for name in NAMES:
        path = os.path.join(files_dir, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StateError(path, f"cannot remove: {e.strerror}") from None


def read_text(path: str, limit: int = 1 << 20) -> str:
    """A host file (/etc/hosts, /etc/resolv.conf); missing reads as empty."""
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise StateError(path, f"cannot read: {e.strerror}") from None
