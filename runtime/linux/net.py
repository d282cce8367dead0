"""Network interfaces of the current network namespace, by ioctl (kernel edge): no netlink and
no `socket` module (5 ms of start-up), so it is safe in a forked child (security.md 0.4)."""

from __future__ import annotations

import fcntl
import os
import struct

from . import sys as ksys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH14x"  # struct ifreq: the name, then ifr_flags


def lo_up() -> None:
    """Bring `lo` up. A new network namespace starts with it down; runc and crun bring it up
    (libcontainer's "loopback" network), so `127.0.0.1` works with no other network."""
    s = ksys.socket(ksys.AF_INET, ksys.SOCK_DGRAM)
    try:
        flags = struct.unpack(_IFREQ, fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | IFF_UP))
    finally:
        os.close(s)


def write_sysctl(key: str, value: str) -> None:
    """`key` (dotted) of the calling thread's namespaces, in /proc/sys."""
    with open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
        f.write(value)
