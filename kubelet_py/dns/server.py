"""The cluster DNS server (edge): UDP and TCP on any address:port, answering the cluster zone
from a `Resolver` and forwarding everything else to the host's resolvers, as CoreDNS does with
`kubernetes cluster.local` + `forward . /etc/resolv.conf` (semantics 4.5).

    server = DNSServer(Resolver.build(...), upstreams=host_upstreams())
    await server.start("10.96.0.10", 53)        # tests: ("127.0.0.23", 15353)
    server.set_resolver(Resolver.build(...))    # after every change of the objects
    await server.close()

Wire format through dnslib (one parse of the question, one pack of the answer). An answer of
the cluster zone is cached as packed bytes keyed by the query without its ID (the question's
exact bytes, so 0x20 case randomisation and EDNS are echoed right) until the next
`set_resolver`; a hit costs a dict lookup and a sendto. Forwarded queries go out as received,
each from its own socket (a fresh source port, as a stub resolver would), to the upstreams in
order; when none answers within `timeout` the client gets SERVFAIL. A UDP answer larger than
the client can take (512 bytes, or its EDNS size up to 1232) is sent truncated (TC) so that the
client retries over TCP. Nothing here blocks the event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Sequence

from dnslib import EDNS0, OPCODE, QTYPE, RCODE, DNSError, DNSHeader, DNSRecord

from kubelet_py.dns.resolver import Resolver

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0
MAX_UDP = 512
EDNS_PAYLOAD = 1232  # the DNS flag day 2020 size: what we advertise and the most we send on UDP
CACHE_MAX = 20000
TCP_IDLE = 10.0
RCVBUF = 4 << 20
_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100


def parse_resolv_conf(text: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, in order."""
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def host_upstreams(path: str = "/etc/resolv.conf", exclude: Sequence[str] = ()) -> list[tuple[str, int]]:
    """The host's resolvers (port 53), without our own address (a loop). Read once at start:
    call it outside the event loop or before it runs."""
    try:
        with open(path, encoding="utf-8") as f:
            servers = parse_resolv_conf(f.read())
    except OSError as e:
        log.warning("cluster DNS: cannot read %s (%s): names outside the cluster will get SERVFAIL", path, e)
        return []
    return [(s, 53) for s in servers if s not in exclude]


def _error_reply(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply with `rcode`, from as much of the query as can be read."""
    if len(data) < 12:
        return None
    qid, flags = struct.unpack("!HH", data[:4])
    flags = (flags & 0x7900) | 0x8000 | rcode  # keep opcode and RD, set QR
    try:
        q = DNSRecord.parse(data)
        r = DNSRecord(DNSHeader(id=qid, bitmap=flags), q=q.q if q.questions else None)
        return r.pack()
    except (DNSError, struct.error, IndexError, ValueError):
        return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


def build_reply(query: DNSRecord, result, *, max_size: int | None) -> bytes:
    """The packed answer to `query` from a resolver Result (authoritative, RA clear, as CoreDNS
    answers its zone), with an OPT record when the query had one; truncated (TC, no records)
    when over `max_size`."""
    # QR | AA | the query's RD | rcode (the header as one bitmap: dnslib's per-flag setters are slow)
    bitmap = _QR | _AA | (query.header.bitmap & _RD) | (result.rcode & 0xF)
    has_opt = any(rr.rtype == QTYPE.OPT for rr in query.ar)
    opt = [EDNS0(udp_len=EDNS_PAYLOAD)] if has_opt else []
    reply = DNSRecord(DNSHeader(id=query.header.id, bitmap=bitmap), questions=[query.q], rr=list(result.answer),
                      auth=list(result.authority), ar=list(result.additional) + opt)
    packed = reply.pack()
    if max_size is not None and len(packed) > max_size:
        packed = DNSRecord(DNSHeader(id=query.header.id, bitmap=bitmap | _TC), questions=[query.q], ar=opt).pack()
    return packed


def udp_limit(query: DNSRecord) -> int:
    for rr in query.ar:
        if rr.rtype == QTYPE.OPT:
            return max(MAX_UDP, min(rr.rclass, EDNS_PAYLOAD))
    return MAX_UDP


def _large_receive_buffer(sock) -> None:
    """A burst that arrives while the loop is busy (or the process is not scheduled) waits in
    the socket instead of being dropped: ask for RCVBUF bytes (SO_RCVBUFFORCE as root passes
    net.core.rmem_max; otherwise the kernel caps it there)."""
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, RCVBUF)
            return
        except OSError as e:
            log.debug("cluster DNS: receive buffer option %d: %s", opt, e)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, qid: bytes, fut: asyncio.Future):
        self.qid, self.fut = qid, fut

    def datagram_received(self, data: bytes, addr) -> None:
        if data[:2] == self.qid and not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class DNSServer:
    def __init__(self, resolver: Resolver, upstreams: Sequence[tuple[str, int]] = (), *,
                 timeout: float = DEFAULT_TIMEOUT, cache: bool = True):
        self.resolver = resolver
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.cache_enabled = cache
        self._cache: dict[bytes, bytes] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self.stats = {"answered": 0, "forwarded": 0, "servfail": 0, "cache_hits": 0}

    def set_resolver(self, resolver: Resolver) -> None:
        """Swap in the records of a new snapshot (the cache of old answers goes with the old one)."""
        self.resolver = resolver
        self._cache = {}

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), local_addr=(host, port))
        _large_receive_buffer(self._udp.get_extra_info("socket"))
        try:
            self._tcp = await asyncio.start_server(self._tcp_client, host, port)
        except OSError:
            self._udp.close()
            raise
        log.info("cluster DNS listening on %s:%d (udp, tcp); forwarding to %s", host, port,
                 ", ".join(f"{h}:{p}" for h, p in self.upstreams) or "nothing")

    @property
    def address(self) -> tuple[str, int]:
        return self._udp.get_extra_info("sockname")[:2]

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._clients):  # Python 3.12's wait_closed waits for every connection
                writer.close()
            await self._tcp.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- answering -----------------------------------------------------------------------------

    def answer_local(self, data: bytes, *, udp: bool) -> tuple[bytes | None, bool]:
        """(reply, forward?) for one query: the cluster's answer (or an error reply) at once, or
        (None, True) when it must be forwarded."""
        key = (b"U" if udp else b"T") + data[2:]
        hit = self._cache.get(key)
        if hit is not None:
            self.stats["cache_hits"] += 1
            return data[:2] + hit, False
        try:
            query = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError) as e:
            log.debug("cluster DNS: unreadable query (%s)", e)
            return _error_reply(data, RCODE.FORMERR), False
        if query.header.qr or query.header.opcode != OPCODE.QUERY:
            return _error_reply(data, RCODE.NOTIMP), False
        if len(query.questions) != 1:
            return _error_reply(data, RCODE.FORMERR), False
        q = query.q
        result = self.resolver.resolve(str(q.qname), q.qtype)
        if result is None:
            return None, True
        reply = build_reply(query, result, max_size=udp_limit(query) if udp else 65535)
        if self.cache_enabled:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = reply[2:]
        self.stats["answered"] += 1
        return reply, False

    async def forward(self, data: bytes, *, udp: bool) -> bytes | None:
        """The upstreams' answer, or SERVFAIL when none answers in time."""
        self.stats["forwarded"] += 1
        loop = asyncio.get_running_loop()
        for host, port in self.upstreams:
            try:
                if udp:
                    fut = loop.create_future()
                    transport, _ = await loop.create_datagram_endpoint(lambda: _Upstream(data[:2], fut),
                                                                       remote_addr=(host, port))
                    try:
                        transport.sendto(data)
                        return await asyncio.wait_for(fut, self.timeout)
                    finally:
                        transport.close()
                return await asyncio.wait_for(self._forward_tcp(host, port, data), self.timeout)
            except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                log.debug("cluster DNS: upstream %s:%d: %s", host, port, e or type(e).__name__)
        self.stats["servfail"] += 1
        return _error_reply(data, RCODE.SERVFAIL)

    @staticmethod
    async def _forward_tcp(host: str, port: int, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(n)
        finally:
            writer.close()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward_udp(self, data: bytes, addr) -> None:
        reply = await self.forward(data, udp=True)
        if reply is not None and self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(reply, addr)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))
                data = await asyncio.wait_for(reader.readexactly(n), TCP_IDLE)
                reply, fwd = self.answer_local(data, udp=False)
                if fwd:
                    reply = await self.forward(data, udp=False)
                if reply is not None:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError) as e:
            log.debug("cluster DNS: tcp client done (%s)", type(e).__name__)  # closed or idle: close our end
        finally:
            self._clients.discard(writer)
            writer.close()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer):
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply, fwd = self.server.answer_local(data, udp=True)
        if fwd:
            self.server._spawn(self.server._forward_udp(data, addr))
        elif reply is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("cluster DNS: udp error %s", exc)
