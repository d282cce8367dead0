"""The cluster DNS server on loopback: answers the cluster zone over UDP and TCP, forwards the
rest to an upstream the test runs (a second tiny DNS server on another loopback address),
SERVFAIL when the upstream is silent, truncation then TCP for a large answer, a new snapshot
swapped in at once, a garbage datagram answered FORMERR without hurting the next query."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from kubelet_py.dns import DNSServer, Resolver, host_upstreams, parse_resolv_conf
from kubelet_py.services.endpoints import controller_slices
from tests.unit.test_services_endpoints import pod, svc

SERVER_IP, UPSTREAM_IP, SILENT_IP = "127.0.0.23", "127.0.0.24", "127.0.0.25"


def free_port(host: str) -> int:
    while True:
        t = socket.socket()
        t.bind((host, 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()


class Upstream(asyncio.DatagramProtocol):
    """Answers every A question with 192.0.2.1 (UDP and TCP), and records what it was asked."""

    def __init__(self):
        self.asked: list[str] = []

    def reply(self, data: bytes) -> bytes:
        q = DNSRecord.parse(data)
        self.asked.append(str(q.q.qname))
        r = q.reply(ra=1, aa=0)  # a recursive resolver's answer, not authoritative
        r.add_answer(RR(q.q.qname, QTYPE.A, ttl=60, rdata=A("192.0.2.1")))
        return r.pack()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(self.reply(data), addr)

    async def tcp(self, reader, writer):
        (n,) = struct.unpack("!H", await reader.readexactly(2))
        out = self.reply(await reader.readexactly(n))
        writer.write(struct.pack("!H", len(out)) + out)
        await writer.drain()
        writer.close()


def snapshot(n_db: int = 3) -> Resolver:
    web = svc("web", cluster_ip="10.96.0.50")
    db = svc("db", cluster_ip="None", selector={"app": "db"}, ports=[])
    pods = [pod("w1", "10.244.0.3")] + [pod(f"d{i}", f"10.244.1.{i + 1}", labels={"app": "db"}) for i in range(n_db)]
    slices = [s for x in (web, db) for s in controller_slices(x, pods)]
    return Resolver.build([web, db], slices, pods, ["default"])


async def ask(name: str, qtype: str, port: int, *, tcp: bool = False, host: str = SERVER_IP) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    raw = await asyncio.to_thread(q.send, host, port, tcp, 5)
    return DNSRecord.parse(raw)


@contextlib.asynccontextmanager
async def serving():
    """(server, port, upstream): our server on SERVER_IP and an upstream on UPSTREAM_IP."""
    loop = asyncio.get_running_loop()
    up = Upstream()
    up_port = free_port(UPSTREAM_IP)
    up_udp, _ = await loop.create_datagram_endpoint(lambda: up, local_addr=(UPSTREAM_IP, up_port))
    up_tcp = await asyncio.start_server(up.tcp, UPSTREAM_IP, up_port)
    port = free_port(SERVER_IP)
    server = DNSServer(snapshot(), [(UPSTREAM_IP, up_port)], timeout=1.0)
    await server.start(SERVER_IP, port)
    try:
        yield server, port, up
    finally:
        await server.close()
        up_udp.close()
        up_tcp.close()


def run(coro):
    return asyncio.run(coro)


def test_cluster_names_over_udp_and_tcp():
    async def body():
        async with serving() as (server, port, up):
            r = await ask("web.default.svc.cluster.local", "A", port)
            assert r.header.rcode == RCODE.NOERROR and (r.header.aa, r.header.ra) == (1, 0)
            assert [str(a.rdata) for a in r.rr] == ["10.96.0.50"] and r.rr[0].ttl == 30
            r = await ask("_http._tcp.web.default.svc.cluster.local", "SRV", port, tcp=True)
            assert [str(a.rdata) for a in r.rr] == ["0 100 80 web.default.svc.cluster.local."]
            r = await ask("nope.default.svc.cluster.local", "A", port, tcp=True)
            assert r.header.rcode == RCODE.NXDOMAIN and r.auth[0].rtype == QTYPE.SOA
            assert up.asked == []  # nothing of the cluster zone went upstream
    run(body())


def test_forwarding_over_udp_and_tcp_and_servfail_on_timeout():
    async def body():
        async with serving() as (server, port, up):
            r = await ask("example.org", "A", port)
            assert [str(a.rdata) for a in r.rr] == ["192.0.2.1"] and (r.header.aa, r.header.ra) == (0, 1)
            r = await ask("www.example.org", "A", port, tcp=True)
            assert [str(a.rdata) for a in r.rr] == ["192.0.2.1"]
            assert up.asked == ["example.org.", "www.example.org."]
            silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
            silent.bind((SILENT_IP, 0))
            server.upstreams = [silent.getsockname()]
            server.timeout = 0.3
            r = await ask("example.net", "A", port)
            assert r.header.rcode == RCODE.SERVFAIL and str(r.q.qname) == "example.net."
            silent.close()
    run(body())


def test_large_answer_truncated_over_udp_whole_over_tcp():
    async def body():
        async with serving() as (server, port, up):
            server.set_resolver(snapshot(n_db=60))
            r = await ask("db.default.svc.cluster.local", "A", port)
            assert r.header.tc == 1 and r.rr == []
            r = await ask("db.default.svc.cluster.local", "A", port, tcp=True)
            assert r.header.tc == 0 and len(r.rr) == 60
    run(body())


def test_new_snapshot_answers_at_once_and_garbage_is_formerr():
    async def body():
        async with serving() as (server, port, up):
            assert (await ask("api.default.svc.cluster.local", "A", port)).header.rcode == RCODE.NXDOMAIN
            server.set_resolver(Resolver.build([svc("api", cluster_ip="10.96.7.7")], [], [], ["default"]))
            r = await ask("api.default.svc.cluster.local", "A", port)
            assert [str(a.rdata) for a in r.rr] == ["10.96.7.7"]
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(5)
            s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff", (SERVER_IP, port))
            reply = await asyncio.to_thread(s.recv, 512)
            s.close()
            assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == RCODE.FORMERR
            assert (await ask("api.default.svc.cluster.local", "A", port)).header.rcode == RCODE.NOERROR
    run(body())


def test_parse_resolv_conf():
    text = "# generated\nsearch example.org\nnameserver 10.0.0.2\nnameserver 1.1.1.1 # cf\noptions ndots:2\n"
    assert parse_resolv_conf(text) == ["10.0.0.2", "1.1.1.1"]


def test_host_upstreams_leave_out_our_own_address(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.96.0.10\nnameserver 192.0.2.53\n")
    assert host_upstreams(str(conf), exclude=["10.96.0.10"]) == [("192.0.2.53", 53)]
    assert host_upstreams(str(tmp_path / "missing")) == []


def test_close_with_an_idle_tcp_client_and_a_taken_port():
    async def body():
        async with serving() as (server, port, up):
            reader, writer = await asyncio.open_connection(SERVER_IP, port)  # connected, never asks
            with pytest.raises(OSError):  # the port is taken: refused, ours keeps answering
                await DNSServer(snapshot(), []).start(SERVER_IP, port)
            assert (await ask("web.default.svc.cluster.local", "A", port)).header.rcode == RCODE.NOERROR
        await asyncio.wait_for(reader.read(), 5)  # our close() closed the idle connection at once
        writer.close()
    run(asyncio.wait_for(body(), 5))
