"""A container process's terminal (kernel edge, in the forked process): a new pty of the
container's devpts whose master goes to the caller's console socket (runc's --console-socket
protocol, SCM_RIGHTS), the slave the process's controlling terminal and stdio. Imported only
when a console is asked for, by the parent before the fork (launch._need_console)."""

from __future__ import annotations

import fcntl
import os
import struct
import termios

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430


def console(sock_fd: int, size: tuple[int, int] | None) -> None:
    """A new pty of the container's devpts (/dev/ptmx is pts/ptmx): its master goes to the
    console socket, the slave becomes this process's controlling terminal and stdio. The socket
    module is imported by the parent (launch._need_console) before the fork."""
    import socket  # already in sys.modules: no lookup in the container
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
        slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if size:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        sock = socket.socket(fileno=sock_fd)
        try:
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
        finally:
            sock.close()
    finally:
        os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.close(slave)
