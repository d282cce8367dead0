"""A small HTTP/1.1 client (kernel edge: sockets) for the registry protocol.

Why not `http.client`: importing it pulls in the `email` package, about 20 ms of every
`kubelet-py image pull` (a fresh process each time), which is most of the margin against
`ctr`/`podman pull`. The registry protocol needs little: GET/HEAD, headers, Content-Length or
chunked bodies, keep-alive, TLS. Anything else is a clear error."""

from __future__ import annotations

import socket

MAX_HEADER_LINE = 65536
MAX_HEADERS = 200


class HTTPError(ConnectionError):
    """A broken or malformed HTTP exchange (retried like a network error)."""


class Response:
    def __init__(self, conn: "Connection", method: str):
        self._conn = conn
        f = conn._file
        line = f.readline(MAX_HEADER_LINE + 1)
        if not line:
            raise HTTPError("connection closed before the status line")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HTTPError(f"malformed status line {line[:80]!r}")
        self.version, self.status = parts[0], int(parts[1])
        self.headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            h = f.readline(MAX_HEADER_LINE + 1)
            if not h:
                raise HTTPError("connection closed in the headers")
            if h in (b"\r\n", b"\n"):
                break
            if len(h) > MAX_HEADER_LINE:
                raise HTTPError("header line too long")
            k, sep, v = h.decode("latin-1").partition(":")
            if not sep:
                raise HTTPError(f"malformed header {h[:80]!r}")
            k, v = k.strip().lower(), v.strip()
            self.headers[k] = f"{self.headers[k]}, {v}" if k in self.headers else v
        else:
            raise HTTPError("too many headers")
        te = self.headers.get("transfer-encoding", "").lower()
        self._chunked = "chunked" in te
        self._chunk_left = 0
        self.length: int | None = None
        if not self._chunked and "content-length" in self.headers:
            try:
                self.length = int(self.headers["content-length"])
            except ValueError:
                raise HTTPError("bad Content-Length") from None
        no_body = method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200
        if no_body:
            self.length = 0
            self._chunked = False
        self.will_close = (self.version == "HTTP/1.0" or self.headers.get("connection", "").lower() == "close"
                           or (self.length is None and not self._chunked))
        self._done = self.length == 0

    def isclosed(self) -> bool:
        return self._done

    def _read_chunked(self, n: int) -> bytes:
        f = self._conn._file
        if self._chunk_left == 0:
            line = f.readline(MAX_HEADER_LINE)
            if not line:
                raise HTTPError("connection closed in a chunked body")
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HTTPError("bad chunk size") from None
            if self._chunk_left == 0:
                while f.readline(MAX_HEADER_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self._done = True
                return b""
        data = f.read(min(n, self._chunk_left))
        if not data:
            raise HTTPError("connection closed in a chunked body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            f.readline(MAX_HEADER_LINE)
        return data

    def read(self, n: int | None = None) -> bytes:
        """Up to `n` bytes of the body (all of it if None); b'' at its end."""
        if self._done:
            return b""
        if n is None:
            parts = []
            while chunk := self.read(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        f = self._conn._file
        if self._chunked:
            return self._read_chunked(n)
        if self.length is None:
            data = f.read1(n) if n else b""
            if not data:
                self._done = True
            return data
        data = f.read1(min(n, self.length))
        if not data and self.length:
            raise HTTPError(f"connection closed with {self.length} bytes of the body missing")
        self.length -= len(data)
        if self.length == 0:
            self._done = True
        return data


class Connection:
    def __init__(self, scheme: str, netloc: str, timeout: float, ssl_context=None):
        self.scheme, self.netloc = scheme, netloc
        host, _, port = netloc.rpartition(":") if netloc.rsplit(":", 1)[-1].isdigit() and "]" not in netloc.rsplit(":", 1)[-1] else (netloc, "", "")
        self.host = host.strip("[]")
        self.port = int(port) if port else (443 if scheme == "https" else 80)
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._sock = None
        self._file = None

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            try:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self._sock = sock
        self._file = sock.makefile("rb", buffering=1 << 16)

    def request(self, method: str, path: str, headers: dict) -> Response:
        if self._sock is None:
            self._connect()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.netloc}", "User-Agent: kubelet-py",
                 "Accept-Encoding: identity"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return Response(self, method)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None
