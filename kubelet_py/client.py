"""The CLI's client of the daemon's API on its unix socket.

`SyncClient` is what a command uses: blocking HTTP/1.1 over AF_UNIX through the small client of
runtime/image/http.py (its `Response`: Content-Length and chunked bodies), one connection per
request. A plain command imports nothing heavier than `socket` and `json` for it: aiohttp's client
cost about 200 ms of imports, `http.client` about 16 ms (the `email` package and `ssl`), this
module about 1 ms (measured with `python -X importtime` here). Streams (a log, the JSON lines of a
`?watch=1`) are read from the response as they arrive, with an optional deadline.

`Client` is the same API for coroutines (`run -f`, `exec`, the benchmark): every blocking step
runs in a worker thread, so the event loop is never blocked; `exec_ws` is the one path on aiohttp
(its WebSocket client), imported there only."""

from __future__ import annotations

import json
import os
import socket
import time

from runtime.image.http import Connection, Response

CONNECT_TIMEOUT = 5.0
READ_SIZE = 1 << 16
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(text: str) -> str:
    """Percent-encoding of everything but RFC 3986's unreserved characters (not urllib.parse's:
    with ipaddress it is ~3 ms of every command's imports)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


def query_string(params) -> str:
    """`k=v&...` of a dict or of (key, value) pairs; a list value repeats its key."""
    pairs = params.items() if isinstance(params, dict) else params
    return "&".join(f"{quote(str(k))}={quote(str(v))}" for k, vs in pairs
                    for v in (vs if isinstance(vs, (list, tuple)) else (vs,)))


class ClientError(Exception):
    """An error answer of the daemon (its Status message), or no daemon (code 0)."""

    def __init__(self, message: str, code: int = 0, reason: str = "", details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.details = code, reason, details


def pod_path(namespace: str, name: str | None = None, sub: str | None = None) -> str:
    p = f"/api/v1/namespaces/{quote(namespace)}/pods"
    if name:
        p += f"/{quote(name)}"
    if sub:
        p += f"/{sub}"
    return p


def no_daemon(socket_path: str) -> ClientError:
    return ClientError(f"no daemon at {socket_path} (start one with `kubelet-py serve`)")


def unreachable(socket_path: str, e: BaseException) -> ClientError:
    return ClientError(f"the daemon at {socket_path} does not answer: {e}")


def status_error(status: int, body: bytes) -> ClientError:
    """The ClientError of an error answer: a `Status` object's message, reason and details, or
    the body's text when it is not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = body.decode("utf-8", "replace").strip()
        return ClientError(text or f"HTTP {status}", status)
    return ClientError(doc.get("message") or f"HTTP {status}", status, doc.get("reason") or "", doc.get("details"))


class UnixConnection(Connection):
    """runtime.image.http's connection over the daemon's unix socket, with a request body."""

    def __init__(self, socket_path: str, timeout: float = CONNECT_TIMEOUT):
        super().__init__("http", "kubelet-py", timeout)
        self.socket_path = socket_path

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
            sock.settimeout(None)  # an answer may take long (a watch, a follow): deadlines are the caller's
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._file = sock.makefile("rb", buffering=READ_SIZE)

    def request(self, method: str, path: str, headers: dict, body: bytes = b"") -> Response:
        if self._sock is None:
            self._connect()
        lines = [f"{method} {path} HTTP/1.1", "Host: kubelet-py", "User-Agent: kubelet-py", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return Response(self, method)

    def set_deadline(self, deadline: float | None) -> None:
        """Reads from now on fail with TimeoutError at `deadline` (time.monotonic()); None: never."""
        if deadline is None:
            self._sock.settimeout(None)
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        self._sock.settimeout(left)

    def abort(self) -> None:
        """Wake a read blocked in another thread (it ends as at EOF)."""
        try:
            if self._sock is not None:
                self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Stream:
    """An answer's body as it arrives (a log, a watch): `read()` the next piece, b"" at its end."""

    def __init__(self, client: "SyncClient", conn: UnixConnection, resp: Response, deadline: float | None):
        self.client, self.conn, self.resp, self.deadline = client, conn, resp, deadline

    def read(self) -> bytes:
        """The next piece of the body (b"" at its end); TimeoutError past the deadline."""
        try:
            self.conn.set_deadline(self.deadline)
            return self.resp.read(READ_SIZE)
        except TimeoutError:
            raise
        except OSError as e:
            raise self.client.unreachable(e) from None

    def __iter__(self):
        try:
            while chunk := self.read():
                yield chunk
        finally:
            self.close()

    def abort(self) -> None:
        self.conn.abort()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class WatchStream(Stream):
    """The events of a `?watch=1` (one JSON object a line): ADDED for what exists when it opens
    (the daemon registers the watch before it answers), then MODIFIED / DELETED as they happen."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._buf = b""

    def next_event(self) -> dict | None:
        """The next event; None when the stream ends; TimeoutError past the deadline."""
        while b"\n" not in self._buf:
            chunk = self.read()
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            raise ClientError(f"the daemon sent a watch event that is not JSON: {line[:80]!r}") from None

    def __iter__(self):
        try:
            while (ev := self.next_event()) is not None:
                yield ev
        finally:
            self.close()


class SyncClient:
    """Blocking calls to the daemon; each opens its own connection (so threads may share one)."""

    def __init__(self, socket_path: str, connect_timeout: float = CONNECT_TIMEOUT):
        self.socket_path = socket_path
        self.connect_timeout = connect_timeout

    def __enter__(self):
        self.check_present()
        return self

    def __exit__(self, *exc):
        return None

    def check_present(self) -> None:
        if not os.path.exists(self.socket_path):
            raise no_daemon(self.socket_path)

    def unreachable(self, e: BaseException) -> ClientError:
        return unreachable(self.socket_path, e)

    def _open(self, method: str, path: str, body: dict | None, params) -> tuple[UnixConnection, Response]:
        if params:
            path += "?" + query_string(params)
        headers, data = {}, b""
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if body is not None or method not in ("GET", "HEAD"):
            headers["Content-Length"] = str(len(data))
        conn = UnixConnection(self.socket_path, self.connect_timeout)
        try:
            return conn, conn.request(method, path, headers, data)
        except FileNotFoundError:
            conn.close()
            raise no_daemon(self.socket_path) from None
        except OSError as e:
            conn.close()
            raise self.unreachable(e) from None

    def _body(self, conn: UnixConnection, resp: Response) -> bytes:
        try:
            return resp.read()
        except OSError as e:
            raise self.unreachable(e) from None
        finally:
            conn.close()

    def request(self, method: str, path: str, body: dict | None = None, params=None) -> dict:
        conn, resp = self._open(method, path, body, params)
        data = self._body(conn, resp)
        if resp.status >= 400:
            raise status_error(resp.status, data)
        try:
            return json.loads(data)
        except ValueError:
            return {"message": data.decode("utf-8", "replace").strip()}

    def get(self, path: str, params=None) -> dict:
        return self.request("GET", path, params=params)

    def apply(self, items: list[dict], strict: bool = False) -> list[dict]:
        return self.request("POST", "/apis/kubelet-py/v1/apply", {"items": items, "strict": strict})["items"]

    def delete(self, path: str, params=None) -> dict:
        return self.request("DELETE", path, params=params)

    def stream(self, path: str, params=None, deadline: float | None = None, cls=Stream) -> Stream:
        """The body as it arrives; the answer's status is checked (a ClientError) before this returns."""
        conn, resp = self._open("GET", path, None, params)
        if resp.status >= 400:
            raise status_error(resp.status, self._body(conn, resp))
        return cls(self, conn, resp, deadline)

    def watch(self, path: str, params=None, deadline: float | None = None) -> WatchStream:
        """A watch of `path` (a list): when this returns, the daemon has registered it, so every
        change from then on is among its events."""
        return self.stream(path, {**(params or {}), "watch": "1"}, deadline, WatchStream)


class Client:
    """`SyncClient` for coroutines: `async with Client(socket) as c`, `await c.get(...)`,
    `async for ev in c.watch(...)`; each blocking step in a worker thread."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self.sync = SyncClient(socket_path)
        self._session = None  # aiohttp's, for exec_ws only

    async def __aenter__(self):
        self.sync.check_present()
        return self

    async def __aexit__(self, *exc):
        if self._session is not None:
            await self._session.close()

    @staticmethod
    async def _thread(fn, *args):
        import asyncio  # already loaded: this runs in the caller's event loop
        return await asyncio.to_thread(fn, *args)

    async def request(self, method: str, path: str, body: dict | None = None, params=None) -> dict:
        return await self._thread(self.sync.request, method, path, body, params)

    async def get(self, path: str, params=None) -> dict:
        return await self.request("GET", path, params=params)

    async def apply(self, items: list[dict], strict: bool = False) -> list[dict]:
        return await self._thread(self.sync.apply, items, strict)

    async def delete(self, path: str, params=None) -> dict:
        return await self.request("DELETE", path, params=params)

    async def stream(self, path: str, params=None):
        """The body as it arrives (a log, or JSON lines of a watch)."""
        s = await self._thread(self.sync.stream, path, params)
        try:
            while chunk := await self._thread(s.read):
                yield chunk
        finally:
            s.abort()  # a read still blocked in its thread (this was cancelled) ends now
            s.close()

    async def watch(self, path: str, params=None):
        w = await self._thread(self.sync.watch, path, params)
        try:
            while (ev := await self._thread(w.next_event)) is not None:
                yield ev
        finally:
            w.abort()
            w.close()

    async def exec_ws(self, path: str, params: list[tuple[str, str]]):
        # aiohttp's client: ~200 ms of imports (python -X importtime), paid by `exec` alone
        import aiohttp
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket_path),
                                                  timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        return await self._session.ws_connect(f"http://kubelet-py{path}", params=params)
