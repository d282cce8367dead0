"""systemd's notification protocol (sd_notify(3)), the edge: one datagram of `KEY=VALUE` lines
to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract name written with a
leading '@'). READY=1 once the daemon serves, STATUS= lines for `systemctl status`,
RELOADING=1 / STOPPING=1 around a SIGHUP re-read and a stop, WATCHDOG=1 every half of
$WATCHDOG_USEC (when $WATCHDOG_PID, if set, is this process).

Our own ~40 lines instead of the `sdnotify` package (last release 2017, no watchdog helpers,
no abstract-name handling) or python-systemd (a C extension over libsystemd). The variables are
taken out of the environment when read, as sd_notify's unset_environment does, so that the
supervisors and zygote the daemon starts never inherit them. Sending never blocks: a full or
absent socket is logged, never raised (the daemon keeps serving)."""

from __future__ import annotations

import logging
import os
import socket
from typing import Mapping, MutableMapping

log = logging.getLogger("kubelet_py.service.notify")
ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str | None) -> str | bytes | None:
    """$NOTIFY_SOCKET -> the address to send to: an absolute path, or an abstract name
    ('@name' -> b'\\0name'); None when unset or not a unix socket name we can use."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock:... and relative names: not for us


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3)
    advises; None when the watchdog is off or meant for another process."""
    usec, wpid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if wpid and (not wpid.isdigit() or int(wpid) != pid):
        return None
    return int(usec) / 2e6


def message(**fields) -> bytes:
    """`READY=1\\nSTATUS=...`: one line per field (newlines in a value would end it early)."""
    return "\n".join(f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items()).encode()


class Notifier:
    """The daemon's link to its service manager; every method is a no-op without one."""

    def __init__(self, address: str | bytes | None, watchdog: float | None = None):
        self.address, self.watchdog = address, watchdog
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] = os.environ) -> "Notifier":
        n = cls(socket_address(environ.get("NOTIFY_SOCKET")), watchdog_interval(environ, os.getpid()))
        for k in ENV:
            environ.pop(k, None)
        return n

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields) -> bool:
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX,
                                           socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            self._sock.sendto(message(**fields), self.address)
            return True
        except OSError as e:
            log.warning("notifying the service manager (%s) of %s: %s", self.address, ", ".join(fields), e)
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
