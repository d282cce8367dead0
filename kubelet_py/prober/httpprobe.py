"""httpGet probes and hooks: a small HTTP/1.1 GET client on non-blocking sockets (edge: sockets).

It does what upstream's probe client does (`pkg/probe/http`, Go's net/http under it):
- one connection per request, `Connection: close`, no proxy, no compression asked for;
- HTTPS without certificate verification (SNI is the URL's host name, none for an IP);
- headers: the user's (names in Go's canonical form, several values each on its own line), then
  `User-Agent` and `Accept: */*` unless the user set them (an empty user Accept removes it); a
  user `Host` header sets the request's Host;
- redirects (301, 302, 303, 307, 308 with a Location) are followed while they stay on the first
  request's host name (its port and scheme may change); one to another host is not followed and
  its 3xx is the answer; the tenth redirect in a row is an error ("stopped after 10 redirects"),
  as Go's checker counts requests sent; each followed request carries the Referer Go adds;
- at most 10 KiB of the final body is read;
- the whole exchange, redirects and body included, runs within the timeout.
Errors read as Go's (`Get "URL": ...`), since they end up in events next to upstream's.

Cost: plain HTTP is read straight off the socket (loop.sock_recv into one buffer; a small answer
is one recv), with no transport, protocol or stream objects; HTTPS goes through asyncio's streams
for TLS. A request's bytes are built once per URL and headers (a probe sends the same every period)."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from .spec import LIFECYCLE_USER_AGENT, MAX_OUTPUT, PROBE_USER_AGENT, Outcome, Result, bounded, join_host_port
from .tcpprobe import DialError, dial

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
MAX_HEADER_BYTES = 1 << 20  # of one response's head; a larger one is an error
_MAX_1XX = 5
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HTTPError(Exception):
    """The request did not get a response (dial, TLS, protocol, timeout, redirect policy)."""


class _Protocol(Exception):
    pass


@dataclass(frozen=True)
class Reply:
    url: str  # of the request that got this answer
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes  # at most the limit asked for
    body_error: str | None = None  # reading the body failed (after the status came)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


_TLS: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _TLS
    if _TLS is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _TLS = ctx
    return _TLS


def canonical_header(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: `x-custom-thing` -> `X-Custom-Thing`; a name with a character
    outside the token set is left as it is."""
    if not name or any(c not in _TOKEN for c in name):
        return name
    out, upper = [], True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def probe_url(scheme: str, host: str, port: int, path: str) -> str:
    """scheme://host:port/path (upstream's formatURL: the path may carry a query)."""
    parts = urlsplit(path)
    p = parts.path
    if not p.startswith("/"):
        p = "/" + p
    q = f"?{parts.query}" if parts.query else ""
    return f"{scheme.lower()}://{join_host_port(host, port)}{p}{q}"


def _request_uri(parts) -> str:
    path = quote(parts.path or "/", safe="/!$&'()*+,;=:@-._~%")
    return path + (f"?{parts.query}" if parts.query else "")


def request_headers(user: list[tuple[str, str]] | tuple, user_agent: str) -> tuple[list[tuple[str, str]], str | None]:
    """The headers to send, in order, and the Host the user set (None: the URL's)."""
    hdrs = [(canonical_header(n), v) for n, v in user]
    for n, v in hdrs:
        if not n or any(c not in _TOKEN for c in n):
            raise HTTPError(f"net/http: invalid header field name {n!r}")
        if any(c in v for c in "\r\n\0"):
            raise HTTPError(f"net/http: invalid header field value for {n!r}")
    names = {n for n, _ in hdrs}
    if "User-Agent" not in names:
        hdrs.append(("User-Agent", user_agent))
    if "Accept" not in names:
        hdrs.append(("Accept", "*/*"))
    elif next(v for n, v in hdrs if n == "Accept") == "":
        hdrs = [(n, v) for n, v in hdrs if n != "Accept"]
    host = next((v for n, v in hdrs if n == "Host"), None) or None
    if host is not None and any(c in host for c in " \t\r\n\0/\\"):
        raise HTTPError("http: invalid Host header")
    return [(n, v) for n, v in hdrs if n != "Host"], host


def _hostname(parts) -> str:
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if ":" in netloc else netloc


def _port(parts) -> int:
    netloc = parts.netloc.rpartition("@")[2]
    tail = netloc.rsplit("]", 1)[-1] if netloc.startswith("[") else netloc
    if ":" in tail and tail.rsplit(":", 1)[1]:
        return int(tail.rsplit(":", 1)[1])
    return 443 if parts.scheme == "https" else 80


def _ready(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class _SockReader:
    """The reads of asyncio.StreamReader this client uses (readline, readexactly, read, with its
    errors and its 64 KiB line limit) over a connected non-blocking socket, through loop.sock_recv
    (which tries recv before it waits)."""

    LIMIT = 1 << 16  # StreamReader's default

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket):
        self._loop, self._sock = loop, sock
        self._buf = bytearray()
        self._eof = False
        self._fresh = True  # nothing read yet: the request was just sent

    async def _fill(self) -> None:
        if self._fresh:  # the answer cannot be there yet: wait for it rather than try a recv first
            self._fresh = False
            fd, fut = self._sock.fileno(), self._loop.create_future()
            self._loop.add_reader(fd, _ready, fut)
            try:
                await fut
            finally:
                self._loop.remove_reader(fd)
        data = await self._loop.sock_recv(self._sock, 65536)
        if data:
            self._buf += data
        else:
            self._eof = True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def readline(self) -> bytes:
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                if i > self.LIMIT:
                    del self._buf[:i + 1]
                    raise ValueError("Separator is found, but chunk is longer than limit")
                return self._take(i + 1)
            if len(self._buf) > self.LIMIT:
                self._buf.clear()
                raise ValueError("Separator is not found, and chunk exceed the limit")
            if self._eof:
                return self._take(len(self._buf))
            start = len(self._buf)
            await self._fill()

    async def readexactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._eof:
                partial = self._take(len(self._buf))
                raise asyncio.IncompleteReadError(partial, n)
            await self._fill()
        return self._take(n)

    async def read(self, n: int) -> bytes:
        if n == 0:
            return b""
        if not self._buf and not self._eof:
            await self._fill()
        return self._take(n)


async def _read_head(reader: asyncio.StreamReader | _SockReader) -> tuple[int, list[tuple[str, str]]]:
    skipped = 0
    while True:
        total = 0
        line = await reader.readline()
        if not line:
            raise _Protocol("EOF")
        total += len(line)
        status_line = line.decode("latin-1").rstrip("\r\n")
        proto, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not proto.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit() or rest[3:4] not in ("", " "):
            raise _Protocol(f"malformed HTTP response {status_line!r}")
        headers = []
        while True:
            line = await reader.readline()
            total += len(line)
            if total > MAX_HEADER_BYTES:
                raise _Protocol(f"net/http: server response headers exceeded {MAX_HEADER_BYTES} bytes; aborted")
            if not line:
                raise _Protocol("unexpected EOF")
            if line in (b"\r\n", b"\n"):
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise _Protocol(f"malformed MIME header line: {line.decode('latin-1').strip()}")
            headers.append((name.strip(), value.strip()))
        status = int(code)
        if 100 <= status < 200 and status != 101:
            skipped += 1
            if skipped > _MAX_1XX:
                raise _Protocol("too many 1xx informational responses")
            continue
        return status, headers


async def _read_body(reader: asyncio.StreamReader | _SockReader, status: int, headers: list, limit: int) -> bytes:
    if status in (204, 304) or 100 <= status < 200:
        return b""
    get = {k.lower(): v for k, v in reversed(headers)}
    if "chunked" in get.get("transfer-encoding", "").lower():
        out = bytearray()
        while len(out) < limit:
            size_line = await reader.readline()
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Protocol("malformed chunked encoding") from None
            if size == 0:
                break
            take = min(size, limit - len(out))
            out += await reader.readexactly(take)
            if take < size:
                break
            await reader.readexactly(2)
        return bytes(out)
    if "content-length" in get:
        try:
            n = int(get["content-length"])
        except ValueError:
            raise _Protocol(f"bad Content-Length {get['content-length']!r}") from None
        return await reader.readexactly(min(max(n, 0), limit))
    out = bytearray()
    while len(out) < limit:
        chunk = await reader.read(limit - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _why(e: BaseException) -> str:
    if isinstance(e, asyncio.IncompleteReadError):
        return "unexpected EOF"
    if isinstance(e, (asyncio.LimitOverrunError, ValueError)) and not isinstance(e, UnicodeError):
        return "net/http: response line too long"
    if isinstance(e, ssl.SSLError):
        return f"tls: {e.reason or e}".lower()
    if isinstance(e, OSError) and e.errno:
        return f"read: {os.strerror(e.errno).lower()}"
    return str(e) or type(e).__name__


@functools.lru_cache(maxsize=256)
def _prepared_headers(headers: tuple, user_agent: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    hdrs, host = request_headers(headers, user_agent)
    return tuple(hdrs), host


@functools.lru_cache(maxsize=1024)
def _request(url: str, host_header: str | None, hdrs: tuple, referer: str | None) -> bytes:
    """The bytes of a GET of `url` (already split and checked by the caller)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    lines = [f"GET {_request_uri(parts)} HTTP/1.1", f"Host: {host_header or netloc}"]
    lines += [f"{n}: {v}" for n, v in hdrs]
    if referer and not any(n == "Referer" for n, _ in hdrs):
        lines.append(f"Referer: {referer}")
    if not any(n == "Connection" and v.lower() == "close" for n, v in hdrs):
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def http_get(url: str, headers=(), *, user_agent: str = PROBE_USER_AGENT, timeout: float | None = None,
                   limit: int = MAX_OUTPUT) -> Reply:
    """GET `url` with the policy above. Raises HTTPError when no response came; a failure while
    reading the body is in the reply's `body_error`. Cancellation closes the connection."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    try:
        hdrs, host_override = _prepared_headers(tuple(headers), user_agent)
    except HTTPError as e:
        raise HTTPError(f'Get "{url}": {e}') from None
    first = urlsplit(url)
    cur, host_header, referer, sent = url, host_override, None, 0
    while True:
        parts = urlsplit(cur)
        if parts.scheme not in ("http", "https"):
            raise HTTPError(f'Get "{cur}": unsupported protocol scheme "{parts.scheme}"')
        sock = writer = None
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    sock = await dial(_hostname(parts), _port(parts), None)  # within this deadline
                    request = _request(cur, host_header, hdrs, referer)
                    if parts.scheme == "https":
                        reader, writer = await asyncio.open_connection(
                            sock=sock, ssl=_tls(), server_hostname=_hostname(parts))
                        sock = None  # the transport's now
                        writer.write(request)
                        await writer.drain()
                    else:
                        reader = _SockReader(loop, sock)
                        await loop.sock_sendall(sock, request)
                    status, resp_headers = await _read_head(reader)
            except TimeoutError:
                raise HTTPError(f'Get "{cur}": context deadline exceeded '
                                "(Client.Timeout exceeded while awaiting headers)") from None
            except DialError as e:
                raise HTTPError(f'Get "{cur}": {e}') from None
            except (OSError, _Protocol, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                raise HTTPError(f'Get "{cur}": {_why(e)}') from None
            sent += 1
            loc = next((v for k, v in resp_headers if k.lower() == "location"), "")
            if status in REDIRECT_CODES and loc:
                try:
                    nxt = urljoin(cur, loc)
                    nparts = urlsplit(nxt)
                    _port(nparts)
                except ValueError as e:
                    raise HTTPError(f'Get "{cur}": failed to parse Location header "{loc}": {e}') from None
                if _hostname(nparts) == _hostname(first):
                    if sent >= MAX_REDIRECTS:
                        raise HTTPError(f'Get "{loc}": stopped after {MAX_REDIRECTS} redirects')
                    # a custom Host survives only a Location without a scheme (Go's rule)
                    host_header = host_override if not urlsplit(loc).scheme else None
                    referer = None if (parts.scheme == "https" and nparts.scheme == "http") else \
                        parts._replace(netloc=parts.netloc.rpartition("@")[2], fragment="").geturl()
                    cur = nxt
                    continue
            body_error = None
            try:
                async with asyncio.timeout_at(deadline):
                    body = await _read_body(reader, status, resp_headers, limit)
            except TimeoutError:
                body = b""
                body_error = "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
            except (OSError, _Protocol, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                body, body_error = b"", _why(e)
            return Reply(cur, status, tuple(resp_headers), body, body_error)
        finally:
            if writer is not None:
                writer.transport.abort()
            elif sock is not None:
                sock.close()


async def http_probe(scheme: str, host: str, port: int, path: str, headers=(), timeout: float = 1.0) -> Outcome:
    """200-399 passes (300-399: the redirect was not followed, a WARNING); another status fails
    with "HTTP probe failed with statuscode: N"; no response fails with the error; a body that
    could not be read is a prober error (UNKNOWN), as upstream."""
    url = probe_url(scheme, host, port, path)
    try:
        r = await http_get(url, headers, user_agent=PROBE_USER_AGENT, timeout=timeout)
    except HTTPError as e:
        return Outcome(Result.FAILURE, bounded(str(e)))
    if r.body_error:
        return Outcome(Result.UNKNOWN, "", f'Get "{r.url}": {r.body_error}')
    body = bounded(r.body)
    if 200 <= r.status < 400:
        if r.status >= 300:
            return Outcome(Result.WARNING, bounded("Probe terminated redirects, Response body: " + body))
        return Outcome(Result.SUCCESS, body)
    return Outcome(Result.FAILURE, f"HTTP probe failed with statuscode: {r.status}")


async def http_hook(scheme: str, host: str, port: int, path: str, headers=(), timeout: float | None = None) -> int:
    """A lifecycle httpGet: the status code does not matter, only getting one; returns it.
    Raises HTTPError."""
    r = await http_get(probe_url(scheme, host, port, path), headers, user_agent=LIFECYCLE_USER_AGENT,
                       timeout=timeout)
    return r.status
