"""tcpSocket probes, and the dialer the HTTP probe shares (edge: sockets).

Like upstream's probe dialer, every socket gets SO_LINGER {on, 1 s}: closing it does not leave a
TIME_WAIT entry for a minute per probe, and pending data still goes out with a FIN."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct

from .spec import Outcome, Result, join_host_port

_LINGER = struct.pack("ii", 1, 1)


class DialError(OSError):
    """A connection that did not open; the message reads as Go's (`dial tcp ADDR: ...`)."""


def _literal(host: str, port: int):
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return [(socket.AF_INET6, (host, port, 0, 0))]
    return [(socket.AF_INET, (host, port))]


async def dial(host: str, port: int, deadline: float) -> socket.socket:
    """A connected non-blocking TCP socket to host:port, opened before `deadline` (the running
    loop's clock). Each address of a name is tried in turn. Raises DialError. A cancelled dial
    leaves no socket open."""
    loop = asyncio.get_running_loop()
    addr = join_host_port(host, port)
    try:
        async with asyncio.timeout_at(deadline):
            targets = _literal(host, port)
            if targets is None:  # a name: resolved in the loop's executor
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
                targets = [(fam, sa) for fam, _t, _p, _c, sa in infos]
            last: OSError | None = None
            for family, sockaddr in targets:
                sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
                try:
                    sock.setblocking(False)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER)
                    await loop.sock_connect(sock, sockaddr)
                    return sock
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
    return Outcome(Result.SUCCESS)
