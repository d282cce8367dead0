"""Relay between this terminal and a pty master of a container (`runtime exec -t`): raw mode
while it runs when stdin is a terminal, bytes both ways until the container side closes."""

from __future__ import annotations

import errno
import os
import selectors
import termios
import tty

EOT = b"\x04"


def relay(master: int, stdin: int | None = 0, stdout: int = 1) -> None:
    """Copy `stdin` (None: nothing) to `master` and `master` to `stdout` until the pty's other
    side is closed (EIO or EOF on the master). On `stdin` EOF the pty gets ^D, as a terminal
    user would type it. Closes `master`."""
    saved = None
    if stdin is not None and os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    if stdin is not None:
        sel.register(stdin, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in sel.select():
                if key.fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError as e:
                        if e.errno != errno.EIO:  # EIO: every slave fd is closed
                            raise
                        data = b""
                    if not data:
                        return
                    _write_all(stdout, data)
                else:
                    data = os.read(stdin, 65536)
                    if not data:
                        sel.unregister(stdin)
                        _write_all(master, EOT)
                    else:
                        _write_all(master, data)
    finally:
        sel.close()
        os.close(master)
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
