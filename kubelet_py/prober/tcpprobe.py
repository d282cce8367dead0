"""tcpSocket probes, and the dialer the HTTP probe shares (edge: sockets).

Like upstream's probe dialer, every socket gets SO_LINGER {on, 1 s}: closing it does not leave a
TIME_WAIT entry for a minute per probe, and pending data still goes out with a FIN."""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import socket
import struct

from .spec import Outcome, Result, join_host_port

_LINGER = struct.pack("ii", 1, 1)
_OPEN = Outcome(Result.SUCCESS)
_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK  # non-blocking from the start: no ioctl


class DialError(OSError):
    """A connection that did not open; the message reads as Go's (`dial tcp ADDR: ...`)."""


@functools.lru_cache(maxsize=1024)
def _literal(host: str, port: int):
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return ((socket.AF_INET6, (host, port, 0, 0)),)
    return ((socket.AF_INET, (host, port)),)


def _wake(fut: asyncio.Future, exc: BaseException | None = None) -> None:
    if not fut.done():
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, sockaddr, deadline: float | None) -> None:
    """A non-blocking connect of `sock` by `deadline` (None: none), raising OSError or TimeoutError.

    To a pod on this host (a veth on the node's bridge) the handshake is done by the kernel within
    the connect call itself: the socket is then connected (or refused) when the call returns, and
    nothing waits on the loop; otherwise one writer callback and one timer wait for it."""
    err = sock.connect_ex(sockaddr)
    if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EINTR):  # in progress (as asyncio's sock_connect)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                sock.getpeername()
                return  # connected already
            except OSError:
                pass  # still in SYN_SENT
            fd = sock.fileno()
            fut = loop.create_future()
            loop.add_writer(fd, _wake, fut)
            timer = None if deadline is None else loop.call_at(deadline, _wake, fut, TimeoutError())
            try:
                await fut
            finally:
                loop.remove_writer(fd)
                if timer is not None:
                    timer.cancel()
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


async def dial(host: str, port: int, deadline: float | None) -> socket.socket:
    """A connected non-blocking TCP socket to host:port, opened before `deadline` (the running
    loop's clock; None: no limit of its own, the caller's timeout applies). Each address of a name
    is tried in turn. Raises DialError. A cancelled dial leaves no socket open."""
    loop = asyncio.get_running_loop()
    addr = join_host_port(host, port)
    try:
        targets = _literal(host, port)
        if targets is None:  # a name: resolved in the loop's executor
            async with asyncio.timeout_at(deadline):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
            targets = [(fam, sa) for fam, _t, _p, _c, sa in infos]
        last: OSError | None = None
        for family, sockaddr in targets:
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError
            sock = socket.socket(family, _STREAM, socket.IPPROTO_TCP)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER)
                await _connect(loop, sock, sockaddr, deadline)
                return sock
            except TimeoutError:
                sock.close()
                raise
            except OSError as e:
                sock.close()
                last = e
            except BaseException:
                sock.close()
                raise
        raise last or OSError(0, "no address")
    except TimeoutError:
        raise DialError(f"dial tcp {addr}: i/o timeout") from None
    except socket.gaierror as e:
        raise DialError(f"dial tcp: lookup {host}: {e.strerror}") from None
    except OSError as e:
        why = os.strerror(e.errno).lower() if e.errno else str(e)
        raise DialError(f"dial tcp {addr}: connect: {why}") from None


async def tcp_probe(host: str, port: int, timeout: float) -> Outcome:
    """Success when a connection opens within `timeout`; it is closed at once."""
    loop = asyncio.get_running_loop()
    try:
        sock = await dial(host, port, loop.time() + timeout)
    except DialError as e:
        return Outcome(Result.FAILURE, str(e))
    sock.close()
    return _OPEN
