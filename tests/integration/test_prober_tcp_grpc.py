"""tcpSocket and grpc probes against real listeners on loopback: a plain TCP socket, and grpcio's
own health servicer in-process (semantics 2.2)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kubelet_py.prober import Result, parse_probe, run_probe
from kubelet_py.prober.grpcprobe import grpc_probe
from kubelet_py.prober.tcpprobe import dial, tcp_probe


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def socket_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


# ---- tcpSocket ----

@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s
    s.close()


def test_tcp_open_port_passes_and_the_connection_is_made(listener):
    out = asyncio.run(tcp_probe("127.0.0.1", listener.getsockname()[1], 1.0))
    assert out.result is Result.SUCCESS and out.output == ""
    listener.settimeout(1)
    conn, _ = listener.accept()  # the probe really connected
    assert conn.recv(1) == b""  # ... and closed at once, sending nothing
    conn.close()


def test_tcp_closed_port_fails_with_connection_refused():
    port = free_port()
    out = asyncio.run(tcp_probe("127.0.0.1", port, 1.0))
    assert out.result is Result.FAILURE
    assert out.output == f"dial tcp 127.0.0.1:{port}: connect: connection refused"


def test_tcp_timeout_is_enforced():
    # a listener whose accept queue is full: further SYNs are dropped, the connect hangs
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.1)
    try:
        t = time.monotonic()
        out = asyncio.run(tcp_probe("127.0.0.1", port, 0.3))
        took = time.monotonic() - t
        assert out.result is Result.FAILURE and out.output == f"dial tcp 127.0.0.1:{port}: i/o timeout"
        assert 0.3 <= took < 1.0
    finally:
        for c in fillers:
            c.close()
        full.close()


def test_tcp_probe_sockets_linger_one_second_and_none_is_left(listener):
    base = socket_fds()
    port = listener.getsockname()[1]

    async def linger():
        sock = await dial("127.0.0.1", port, asyncio.get_running_loop().time() + 1)
        try:
            return struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
        finally:
            sock.close()

    assert asyncio.run(linger()) == (1, 1)  # no minute of TIME_WAIT per probe, as upstream's dialer

    async def many():
        return await asyncio.gather(*[tcp_probe("127.0.0.1", port, 1.0) for _ in range(10)])

    assert all(o.result is Result.SUCCESS for o in asyncio.run(many()))
    assert socket_fds() == base


def test_tcp_through_run_probe_with_host_and_named_port(listener):
    port = listener.getsockname()[1]
    container = {"ports": [{"name": "db", "containerPort": port}]}
    spec = parse_probe({"tcpSocket": {"port": "db", "host": "127.0.0.1"}})
    assert asyncio.run(run_probe(spec, container=container, pod_ip=None)).result is Result.SUCCESS
    spec = parse_probe({"tcpSocket": {"port": "db"}})
    assert asyncio.run(run_probe(spec, container=container, pod_ip="127.0.0.1")).result is Result.SUCCESS
    out = asyncio.run(run_probe(spec, container=container, pod_ip=None))
    assert out.result is Result.UNKNOWN and "no IP" in out.error


# ---- grpc ----

class HealthServer:
    def __init__(self, with_health: bool = True):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.health = health.HealthServicer()
        if with_health:
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def set(self, service: str, status) -> None:
        self.health.set(service, status)

    def close(self) -> None:
        self.server.stop(0).wait()


@pytest.fixture
def grpc_server():
    s = HealthServer()
    s.set("", health_pb2.HealthCheckResponse.SERVING)
    s.set("db", health_pb2.HealthCheckResponse.NOT_SERVING)
    yield s
    s.close()


def grpc_check(port: int, service: str = "", timeout: float = 1.0):
    return asyncio.run(grpc_probe("127.0.0.1", port, service, timeout))


def test_grpc_serving_passes(grpc_server):
    out = grpc_check(grpc_server.port)
    assert out.result is Result.SUCCESS and out.output == "service is serving"


def test_grpc_not_serving_fails_with_upstreams_message(grpc_server):
    out = grpc_check(grpc_server.port, "db")
    assert out.result is Result.FAILURE
    assert out.output == 'service unhealthy (responded with "NOT_SERVING")'


def test_grpc_status_changes_are_seen(grpc_server):
    grpc_server.set("db", health_pb2.HealthCheckResponse.SERVING)
    assert grpc_check(grpc_server.port, "db").result is Result.SUCCESS
    grpc_server.set("db", health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
    assert grpc_check(grpc_server.port, "db").output == 'service unhealthy (responded with "SERVICE_UNKNOWN")'


def test_grpc_unknown_service_fails_with_the_rpc_error(grpc_server):
    out = grpc_check(grpc_server.port, "nosuch")
    assert out.result is Result.FAILURE
    assert out.output.startswith("error: health rpc probe failed: rpc error: code = NotFound desc = ")


def test_grpc_server_without_the_health_service_fails():
    s = HealthServer(with_health=False)
    try:
        out = grpc_check(s.port)
        assert out.result is Result.FAILURE
        assert out.output.startswith("this server does not implement the grpc health protocol (grpc.health.v1.Health)")
    finally:
        s.close()


def test_grpc_closed_port_fails_at_the_timeout():
    port = free_port()
    t = time.monotonic()
    out = grpc_check(port, timeout=0.5)
    took = time.monotonic() - t
    assert out.result is Result.FAILURE
    assert out.output == f'timeout: failed to connect service "127.0.0.1:{port}" within 0.5s: context deadline exceeded'
    assert 0.5 <= took < 1.5


def test_grpc_slow_health_check_fails_at_the_timeout():
    release = threading.Event()

    class Slow(health.HealthServicer):
        def Check(self, request, context):
            release.wait(5)
            return super().Check(request, context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    slow = Slow()
    slow.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(slow, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        t = time.monotonic()
        out = grpc_check(port, timeout=0.5)
        assert out.result is Result.FAILURE and out.output == "timeout: health rpc did not complete within 0.5s"
        assert time.monotonic() - t < 1.5
    finally:
        release.set()
        server.stop(0).wait()


def test_grpc_through_run_probe_goes_to_the_pod_ip(grpc_server):
    spec = parse_probe({"grpc": {"port": grpc_server.port, "service": "db"}})
    out = asyncio.run(run_probe(spec, container={}, pod_ip="127.0.0.1"))
    assert out.result is Result.FAILURE and "NOT_SERVING" in out.output
    spec = parse_probe({"grpc": {"port": grpc_server.port}})
    assert asyncio.run(run_probe(spec, container={}, pod_ip="127.0.0.1")).result is Result.SUCCESS


def test_grpc_probe_cancelled_leaves_no_socket(grpc_server):
    base = socket_fds()

    async def cancelled():
        task = asyncio.ensure_future(grpc_probe("127.0.0.1", free_port(), "", 10))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):
            await grpc_probe("127.0.0.1", grpc_server.port, "", 1)

    asyncio.run(cancelled())
    end = time.monotonic() + 3
    while socket_fds() > base and time.monotonic() < end:
        time.sleep(0.02)
    assert socket_fds() <= base
