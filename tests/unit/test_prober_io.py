"""The prober's cheap paths (its CPU with 100 pods probed every second): the timer grid that puts
the probes due in one slot into one wakeup, the socket reader of plain HTTP, and a connect that
either completed within the call or is waited for."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from kubelet_py.prober import ContainerProbes, Outcome, ProbeSpec, ProbeType, Result, ResultsManager
from kubelet_py.prober.httpprobe import _SockReader
from kubelet_py.prober.spec import TCPSocketAction
from kubelet_py.prober.tcpprobe import DialError, dial
from kubelet_py.prober.worker import SLOT, _slot


# ---- the timer grid ----

@pytest.mark.parametrize("period", [1, 10, 300, 0.5, 0.02])
def test_slot_rounds_up_within_one_slot(period):
    q = min(SLOT, period / 10)
    for when in (0.0, 0.013, 1.0, 12345.678, 99.95, 7 * q):
        s = _slot(when, period)
        assert when - 1e-9 <= s < when + q + 1e-9
        assert abs(s / q - round(s / q)) < 1e-6  # on the grid
        assert _slot(when + q / 3, period) in (s, pytest.approx(s + q))


def test_probes_due_in_one_slot_run_together_and_keep_their_period():
    """Five containers started 10 ms apart: their first probes run at once (each at its start),
    their next ones all in the same slot a period later (one wakeup), none early."""
    async def t():
        loop = asyncio.get_running_loop()
        calls: dict[str, list[float]] = {}

        async def probe(kind, spec, cid):
            calls.setdefault(cid, []).append(loop.time())
            return Outcome(Result.SUCCESS)

        while loop.time() % SLOT > 0.01:  # start just after a slot boundary
            await asyncio.sleep(0.002)
        spec = ProbeSpec(TCPSocketAction(1), timeout_seconds=1, period_seconds=1)
        all_probes = []
        for i in range(5):
            p = ContainerProbes({"name": f"c{i}"}, results=ResultsManager(), specs={ProbeType.LIVENESS: spec},
                                probe=probe)
            p.start()
            p.container_started(f"id{i}")
            all_probes.append(p)
            await asyncio.sleep(0.01)
        end = loop.time() + 3
        while any(len(calls.get(f"id{i}", [])) < 2 for i in range(5)):
            assert loop.time() < end, calls
            await asyncio.sleep(0.01)
        for p in all_probes:
            await p.stop()
        firsts = [calls[f"id{i}"][0] for i in range(5)]
        seconds = [calls[f"id{i}"][1] for i in range(5)]
        assert max(firsts) - min(firsts) >= 0.035  # they started apart ...
        assert max(seconds) - min(seconds) < 0.02  # ... and were probed together (one wakeup)
        for a, b in zip(firsts, seconds):
            assert 1.0 - 1e-3 <= b - a <= 1.0 + SLOT + 0.05
    asyncio.run(asyncio.wait_for(t(), 10))


# ---- the plain HTTP reader ----

def _reader_pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    return _SockReader(asyncio.get_running_loop(), a), a, b


def test_sock_reader_lines_across_recvs_and_a_partial_line_at_eof():
    async def t():
        r, a, b = _reader_pair()

        async def feed():
            for piece in (b"HTTP/1.1 200 OK\r", b"\nA: 1\nB:", b" 2\r\n\r\nbody", b"tail"):
                b.send(piece)
                await asyncio.sleep(0.01)
            b.shutdown(socket.SHUT_WR)
        feeder = asyncio.ensure_future(feed())
        got = [await r.readline() for _ in range(4)]
        assert got == [b"HTTP/1.1 200 OK\r\n", b"A: 1\n", b"B: 2\r\n", b"\r\n"]
        assert await r.readexactly(4) == b"body"
        assert await r.read(100) == b"tail"
        assert await r.read(100) == b""
        assert await r.readline() == b""
        await feeder
        a.close()
        b.close()
    asyncio.run(t())


def test_sock_reader_errors_are_streamreaders():
    async def t():
        r, a, b = _reader_pair()
        b.sendall(b"x" * (_SockReader.LIMIT + 10))
        with pytest.raises(ValueError):  # a line over the limit, as StreamReader.readline
            await r.readline()
        b.sendall(b"abc")
        b.shutdown(socket.SHUT_WR)
        with pytest.raises(asyncio.IncompleteReadError) as e:
            await r.readexactly(10)
        assert e.value.partial == b"abc" and e.value.expected == 10
        a.close()
        b.close()
    asyncio.run(t())


# ---- connect ----

class _SlowSocket(socket.socket):
    """A socket that looks not yet connected right after connect: the dial must wait for it."""
    looked = 0

    def getpeername(self):
        _SlowSocket.looked += 1
        if _SlowSocket.looked == 1:
            raise OSError(107, "Transport endpoint is not connected")
        return super().getpeername()


def test_a_connect_not_done_within_the_call_is_waited_for(monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    monkeypatch.setattr("kubelet_py.prober.tcpprobe.socket.socket", _SlowSocket)

    async def t():
        loop = asyncio.get_running_loop()
        waited = []
        add_writer = loop.add_writer
        monkeypatch.setattr(loop, "add_writer", lambda fd, cb, *a: (waited.append(fd), add_writer(fd, cb, *a)))
        sock = await dial("127.0.0.1", port, loop.time() + 2)
        assert sock.getpeername()[1] == port
        sock.close()
        return waited
    try:
        assert len(asyncio.run(t())) == 1
    finally:
        listener.close()


def test_a_refused_connect_is_a_dial_error_whichever_path():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now

    async def t():
        t0 = time.monotonic()
        with pytest.raises(DialError, match=f"dial tcp 127.0.0.1:{port}: connect: connection refused"):
            await dial("127.0.0.1", port, asyncio.get_running_loop().time() + 1)
        return time.monotonic() - t0
    assert asyncio.run(t()) < 0.5
