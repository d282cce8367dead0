"""The small HTTP/1.1 client against canned answers from a loopback socket."""

from __future__ import annotations

import socket
import threading

import pytest

from runtime.image.http import Connection, HTTPError


def serve(answers: list[bytes]):
    """A one-connection server on 127.0.0.1 that sends each answer after reading a request."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = []

    def run():
        c, _ = srv.accept()
        f = c.makefile("rb")
        for a in answers:
            req = []
            while (line := f.readline()) not in (b"\r\n", b""):
                req.append(line)
            got.append(b"".join(req))
            c.sendall(a)
        c.close()
        srv.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv.getsockname()[1], got


def test_content_length_chunked_and_keepalive():
    port, got = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
                       b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext\r\nde\r\n0\r\nT: x\r\n\r\n",
                       b"HTTP/1.1 204 No Content\r\n\r\n"])
    c = Connection("http", f"127.0.0.1:{port}", 5)
    r = c.request("GET", "/v2/", {"Accept": "x"})
    assert (r.status, r.headers["x-a"], r.read(), r.isclosed(), r.will_close) == (200, "1, 2", b"hello", True, False)
    r = c.request("GET", "/b", {})
    assert (r.status, r.read(2), r.read(), r.isclosed()) == (404, b"ab", b"cde", True)
    r = c.request("HEAD", "/c", {})
    assert (r.status, r.read()) == (204, b"")
    assert b"GET /v2/ HTTP/1.1" in got[0] and f"Host: 127.0.0.1:{port}".encode() in got[0] and b"Accept: x" in got[0]
    c.close()


@pytest.mark.parametrize("answer,needle", [
    (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed status"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "bytes of the body missing"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", "malformed header"),
    (b"", "before the status line"),
])
def test_broken_answers_are_errors(answer, needle):
    port, _ = serve([answer])
    c = Connection("http", f"127.0.0.1:{port}", 5)
    with pytest.raises(HTTPError, match=needle):
        r = c.request("GET", "/", {})
        r.read()
    c.close()
