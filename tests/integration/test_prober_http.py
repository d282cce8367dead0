"""httpGet probes and hooks against real HTTP(S) servers on loopback (semantics 2.2, 1.6)."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from kubelet_py.prober import (MAX_OUTPUT, ContainerProbes, HookError, Result, ResultsManager,
                               parse_probe, run_hook, run_probe)
from kubelet_py.prober.httpprobe import http_probe
from tests.conftest import need_tool


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: bytes = b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests.append((self.path, list(self.headers.items())))
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        parts = u.path.strip("/").split("/")
        if parts[0] == "status":
            code = int(parts[1])
            self._send(code, f"status {code}".encode())
        elif parts[0] == "echo":
            self._send(200, json.dumps(self.headers.items()).encode())
        elif parts[0] == "redirect":  # /redirect?loc=...&code=302
            self._send(int(q.get("code", 302)), b"moved", [("Location", q["loc"])])
        elif parts[0] == "chain":  # /chain/K/N: redirects K times, then 200
            k, n = int(parts[1]), int(parts[2])
            if n < k:
                self._send(302, b"", [("Location", f"/chain/{k}/{n + 1}")])
            else:
                self._send(200, f"end after {n}".encode())
        elif parts[0] == "loop":
            self._send(302, b"", [("Location", "/loop")])
        elif parts[0] == "slow":
            srv.release.wait(5)
            self._send(200, b"late")
        elif parts[0] == "stall-body":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            srv.release.wait(5)
        elif parts[0] == "big":
            self._send(200, b"a" * (100 * 1024))
        elif parts[0] == "chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in (b"hello ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, b"no such page")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host="127.0.0.1", tls: ssl.SSLContext | None = None):
        super().__init__((host, 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, list[tuple[str, str]]]] = []
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.requests]

    def close(self):
        self.release.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def srv():
    s = Server()
    yield s
    s.close()


def probe(srv, path, headers=(), timeout=2.0, scheme="HTTP", host="127.0.0.1", port=None):
    return asyncio.run(http_probe(scheme, host, port or srv.port, path, headers, timeout))


def socket_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def settle(count, baseline: int, within: float = 3.0) -> int:
    """count() once the servers' handler threads have closed their ends and ended."""
    end = time.monotonic() + within
    while count() > baseline and time.monotonic() < end:
        time.sleep(0.02)
    return count()


# ---- status codes ----

def test_200_passes_with_the_body_as_output(srv):
    out = probe(srv, "/status/200")
    assert out.result is Result.SUCCESS and out.output == "status 200"


def test_399_passes_with_a_warning_like_any_unfollowed_3xx(srv):
    out = probe(srv, "/status/399")
    assert out.result is Result.WARNING and out.passed
    assert out.output == "Probe terminated redirects, Response body: status 399"


@pytest.mark.parametrize("code", [400, 404, 500, 503])
def test_400_and_above_fail_with_the_status(srv, code):
    out = probe(srv, f"/status/{code}")
    assert out.result is Result.FAILURE
    assert out.output == f"HTTP probe failed with statuscode: {code}"


def test_204_passes_with_no_body(srv):
    out = probe(srv, "/status/204")
    assert out.result is Result.SUCCESS and out.output == ""


def test_slow_server_past_the_timeout_fails_within_it(srv):
    t = time.monotonic()
    out = probe(srv, "/slow", timeout=0.3)
    took = time.monotonic() - t
    assert out.result is Result.FAILURE
    assert "Client.Timeout exceeded while awaiting headers" in out.output
    assert out.output.startswith(f'Get "http://127.0.0.1:{srv.port}/slow"')
    assert 0.3 <= took < 1.5


def test_body_that_stalls_is_a_prober_error(srv):
    out = probe(srv, "/stall-body", timeout=0.3)
    assert out.result is Result.UNKNOWN
    assert "while reading body" in out.error


def test_closed_port_fails_with_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = asyncio.run(http_probe("HTTP", "127.0.0.1", port, "/", (), 1.0))
    assert out.result is Result.FAILURE
    assert out.output == f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused'


def test_body_is_read_up_to_10_KiB(srv):
    out = probe(srv, "/big")
    assert out.result is Result.SUCCESS and out.output == "a" * MAX_OUTPUT


def test_chunked_body(srv):
    assert probe(srv, "/chunked").output == "hello world"


def test_path_keeps_its_query(srv):
    probe(srv, "/echo?x=1&y=2")
    assert srv.paths() == ["/echo?x=1&y=2"]


# ---- redirects ----

def test_redirect_to_the_same_host_is_followed_with_a_referer(srv):
    out = probe(srv, "/redirect?loc=/status/200")
    assert out.result is Result.SUCCESS and out.output == "status 200"
    assert srv.paths() == ["/redirect?loc=/status/200", "/status/200"]
    second = dict(srv.requests[1][1])
    assert second["Referer"] == f"http://127.0.0.1:{srv.port}/redirect?loc=/status/200"


def test_redirect_to_the_same_host_name_on_another_port_is_followed(srv):
    other = Server()
    try:
        out = probe(srv, f"/redirect?loc=http://127.0.0.1:{other.port}/status/500&code=307")
        assert out.result is Result.FAILURE and out.output == "HTTP probe failed with statuscode: 500"
        assert other.paths() == ["/status/500"]
    finally:
        other.close()


def test_redirect_to_another_host_is_not_followed_and_passes_with_a_warning(srv):
    # localhost is the same server under another host name: following it would reach /landing
    out = probe(srv, f"/redirect?loc=http://localhost:{srv.port}/landing&code=301")
    assert out.result is Result.WARNING and out.passed
    assert out.output == "Probe terminated redirects, Response body: moved"
    assert srv.paths() == [f"/redirect?loc=http://localhost:{srv.port}/landing&code=301"]


def test_a_3xx_without_location_is_the_answer(srv):
    out = probe(srv, "/status/302")
    assert out.result is Result.WARNING and len(srv.paths()) == 1


def test_nine_redirects_are_followed(srv):
    out = probe(srv, "/chain/9/0")
    assert out.result is Result.SUCCESS and out.output == "end after 9"
    assert len(srv.paths()) == 10


def test_the_tenth_redirect_fails_as_go_counts_requests(srv):
    out = probe(srv, "/chain/10/0")
    assert out.result is Result.FAILURE
    assert out.output == 'Get "/chain/10/10": stopped after 10 redirects'
    assert len(srv.paths()) == 10  # the tenth Location is not requested


def test_redirect_loop_stops_after_ten_requests(srv):
    out = probe(srv, "/loop")
    assert out.result is Result.FAILURE and "stopped after 10 redirects" in out.output
    assert srv.paths() == ["/loop"] * 10


# ---- headers ----

def _sent(srv, i=0) -> list[tuple[str, str]]:
    return srv.requests[i][1]


def test_default_headers(srv):
    probe(srv, "/echo")
    sent = _sent(srv)
    names = [k for k, _ in sent]
    assert ("User-Agent", "kube-probe/1.34") in sent
    assert ("Accept", "*/*") in sent
    assert ("Connection", "close") in sent
    assert ("Host", f"127.0.0.1:{srv.port}") in sent
    assert "Accept-Encoding" not in names  # no compression asked for


def test_user_headers_arrive_in_canonical_form_and_repeat(srv):
    probe(srv, "/echo", [("x-custom-thing", "one"), ("X-Custom-Thing", "two"), ("user-agent", "mine/1")])
    sent = _sent(srv)
    assert [v for k, v in sent if k == "X-Custom-Thing"] == ["one", "two"]
    assert [v for k, v in sent if k.lower() == "user-agent"] == ["mine/1"]


def test_empty_accept_removes_it(srv):
    probe(srv, "/echo", [("Accept", "")])
    assert not any(k.lower() == "accept" for k, _ in _sent(srv))


def test_user_accept_replaces_the_default(srv):
    probe(srv, "/echo", [("accept", "application/json")])
    assert [v for k, v in _sent(srv) if k == "Accept"] == ["application/json"]


def test_host_header_sets_the_request_host(srv):
    probe(srv, "/echo", [("Host", "svc.example:8080")])
    sent = _sent(srv)
    assert [v for k, v in sent if k == "Host"] == ["svc.example:8080"]


def test_host_header_survives_a_relative_redirect(srv):
    probe(srv, "/redirect?loc=/echo", [("Host", "svc.example")])
    assert [v for k, v in _sent(srv, 1) if k == "Host"] == ["svc.example"]


def test_header_injection_is_refused_before_anything_is_sent(srv):
    out = probe(srv, "/echo", [("X-A", "1\r\nX-Injected: yes")])
    assert out.result is Result.FAILURE and "invalid header field value" in out.output
    assert srv.paths() == []


# ---- HTTPS ----

@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    openssl = need_tool("openssl")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=probe.test",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
    return ctx


def test_https_passes_without_verifying_the_certificate(self_signed):
    s = Server(tls=self_signed)
    try:
        out = probe(s, "/status/200", scheme="HTTPS")
        assert out.result is Result.SUCCESS and out.output == "status 200"
        assert probe(s, "/status/500", scheme="HTTPS").output == "HTTP probe failed with statuscode: 500"
    finally:
        s.close()


def test_http_to_an_https_port_fails(self_signed):
    s = Server(tls=self_signed)
    try:
        assert probe(s, "/status/200", timeout=1.0).result is Result.FAILURE
    finally:
        s.close()


# ---- through run_probe: named ports, the pod IP, the spec's timeout ----

def test_run_probe_resolves_a_named_port_and_defaults_to_the_pod_ip(srv):
    container = {"name": "c", "ports": [{"name": "web", "containerPort": srv.port}]}
    spec = parse_probe({"httpGet": {"path": "/status/200", "port": "web"}})
    out = asyncio.run(run_probe(spec, container=container, pod_ip="127.0.0.1"))
    assert out.result is Result.SUCCESS


def test_run_probe_with_an_unknown_port_name_is_a_prober_error(srv):
    spec = parse_probe({"httpGet": {"port": "nope"}})
    out = asyncio.run(run_probe(spec, container={"name": "c"}, pod_ip="127.0.0.1"))
    assert out.result is Result.UNKNOWN and "port nope not found" in out.error


def test_run_probe_enforces_timeout_seconds(srv):
    spec = parse_probe({"httpGet": {"path": "/slow", "port": srv.port}, "timeoutSeconds": 1})
    t = time.monotonic()
    out = asyncio.run(run_probe(spec, container={}, pod_ip="127.0.0.1"))
    assert out.result is Result.FAILURE and 1.0 <= time.monotonic() - t < 2.0


# ---- hooks ----

def test_http_hook_ignores_the_status_and_says_kube_lifecycle(srv):
    handler = {"httpGet": {"path": "/status/500", "port": srv.port}}
    asyncio.run(run_hook(handler, container={"name": "c"}, pod_ip="127.0.0.1"))
    assert dict(_sent(srv))["User-Agent"] == "kube-lifecycle/1.34"


def test_http_hook_fails_on_a_transport_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(HookError) as e:
        asyncio.run(run_hook({"httpGet": {"path": "/x", "port": port}}, container={"name": "c"},
                             pod_ip="127.0.0.1", pod="p_default(uid)"))
    assert str(e.value).startswith(
        'HTTP lifecycle hook (/x) for Container "c" in Pod "p_default(uid)" failed - error: ')
    assert "connection refused" in str(e.value)


def test_http_hook_timeout_is_enforced(srv):
    t = time.monotonic()
    with pytest.raises(HookError):
        asyncio.run(run_hook({"httpGet": {"path": "/slow", "port": srv.port}}, container={}, pod_ip="127.0.0.1",
                             timeout=0.3))
    assert time.monotonic() - t < 1.5


# ---- nothing left behind ----

def test_no_socket_or_thread_left_after_probes_timeouts_and_cancellation(srv):
    threads = threading.active_count()
    base = socket_fds()

    async def many():
        outs = await asyncio.gather(*[http_probe("HTTP", "127.0.0.1", srv.port, p, (), 0.3)
                                      for p in ("/status/200", "/slow", "/stall-body", "/loop", "/big")])
        task = asyncio.ensure_future(http_probe("HTTP", "127.0.0.1", srv.port, "/slow", (), 10))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return outs

    outs = asyncio.run(many())
    assert [o.result for o in outs] == [Result.SUCCESS, Result.FAILURE, Result.UNKNOWN, Result.FAILURE,
                                        Result.SUCCESS]
    srv.release.set()  # let the server's handlers finish and close their ends
    assert settle(socket_fds, base) == base
    assert settle(threading.active_count, threads) == threads


def test_container_probes_stop_closes_an_http_probe_in_flight(srv):
    base = socket_fds()
    container = {"name": "c", "readinessProbe": {"httpGet": {"path": "/slow", "port": srv.port},
                                                 "timeoutSeconds": 30}}

    async def scenario():
        probes = ContainerProbes(container, results=ResultsManager(), pod_ip="127.0.0.1")
        probes.start()
        probes.container_started("cid1")
        for _ in range(100):
            if srv.paths():
                break
            await asyncio.sleep(0.01)
        assert srv.paths() == ["/slow"]
        await probes.stop()
        assert probes.tasks() == []

    asyncio.run(scenario())
    srv.release.set()
    assert settle(socket_fds, base) == base
