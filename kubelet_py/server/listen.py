"""`serve --listen ADDR:PORT [--token-file PATH]`: the node endpoints over TCP, read-only.

    --listen PORT | :PORT    127.0.0.1:PORT (loopback)
    --listen ADDR:PORT       that address (`0.0.0.0:PORT` every IPv4 one, `[::1]:PORT` IPv6)
    --token-file PATH        the bearer token (the file's text, stripped) the endpoints ask for

What the listener answers (`decide`, pure):
- only GET and HEAD, on every path (405 otherwise): nothing that changes the node (apply, delete,
  exec) is routed there at all; logs only as the node page's tails of a pod's containers;
- `/healthz` to anyone (it tells nothing but whether the sync loop runs, like the kubelet's
  healthz port), and the node page's shell (HTML, script, style: no node data);
- `/pods`, `/stats/summary`, `/metrics` and the node page's data only with `Authorization: Bearer
  <token>` (or the token in the `kubelet_py_token` cookie, for a browser), else 401. Without
  --token-file they are refused (403): pod specs carry env values and the upstream read-only
  port that served them without auth (10255) is deprecated and off by default for that reason.

The node page (kubelet_py.server.page) adds its routes to the listener's aiohttp app, behind the
same checks."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os

log = logging.getLogger("kubelet_py.server.listen")
PUBLIC_PATHS = frozenset({"/healthz"})
READ_METHODS = frozenset({"GET", "HEAD"})
TOKEN_COOKIE = "kubelet_py_token"
MAX_TOKEN_BYTES = 4096


class ListenError(ValueError):
    """A --listen or --token-file value refused: `flag` names the flag, the message says why."""

    def __init__(self, flag: str, value: str, why: str):
        super().__init__(f"{flag} {value!r}: {why}")
        self.flag, self.value, self.why = flag, value, why


# ---- flags (pure) -----------------------------------------------------------------------------

def parse_listen(value: str) -> tuple[str, int]:
    """(address, port) of a --listen value; loopback when no address is given."""
    v = (value or "").strip()
    host, port = "", v
    if v.startswith("["):  # [v6]:port
        end = v.find("]")
        if end < 0 or not v[end + 1:].startswith(":"):
            raise ListenError("--listen", value, "an IPv6 address is written [ADDR]:PORT")
        host, port = v[1:end], v[end + 2:]
    elif ":" in v:
        host, _, port = v.rpartition(":")
        if ":" in host:
            raise ListenError("--listen", value, "an IPv6 address is written [ADDR]:PORT")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ListenError("--listen", value, "the port must be a number from 0 to 65535 (ADDR:PORT, :PORT or PORT)")
    if not host:
        return "127.0.0.1", int(port)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ListenError("--listen", value, f"{host!r} is not an IP address") from None
    return str(addr), int(port)


def parse_token(text: str, path: str) -> str:
    token = text.strip()
    if not token:
        raise ListenError("--token-file", path, "the file is empty")
    if any(c.isspace() for c in token):
        raise ListenError("--token-file", path, "the token must be one word (no spaces or line breaks)")
    return token


def read_token(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TOKEN_BYTES + 1)
        st = os.stat(path)
    except OSError as e:
        raise ListenError("--token-file", path, e.strerror or str(e)) from None
    if len(data) > MAX_TOKEN_BYTES:
        raise ListenError("--token-file", path, f"longer than {MAX_TOKEN_BYTES} bytes")
    try:
        token = parse_token(data.decode("ascii"), path)
    except UnicodeDecodeError:
        raise ListenError("--token-file", path, "the token must be ASCII") from None
    if st.st_mode & 0o077:
        log.warning("--token-file %s is readable by others than its owner (mode %o)", path, st.st_mode & 0o777)
    return token


def check_flags(listen: str | None, token_file: str | None) -> None:
    """serve's check, before anything starts: ListenError on a bad value."""
    if token_file and not listen:
        raise ListenError("--token-file", token_file, "needs --listen (the token guards the TCP listener)")
    if listen:
        parse_listen(listen)
    if token_file:
        read_token(token_file)


# ---- who gets what (pure) -----------------------------------------------------------------------

def bearer(authorization: str | None) -> str | None:
    scheme, _, cred = (authorization or "").strip().partition(" ")
    return cred.strip() or None if scheme.lower() == "bearer" else None


def decide(method: str, path: str, authorization: str | None, cookie: str | None,
           token: str | None, public: frozenset = PUBLIC_PATHS) -> tuple[int, str] | None:
    """None: serve it; else (status, message). `public`: the paths anyone may read."""
    if method not in READ_METHODS:
        return 405, f"{method} is not allowed: the TCP listener is read-only"
    if path in public:
        return None
    if token is None:
        return 403, f"{path} is served over TCP only with --token-file (a bearer token); /healthz is open"
    presented = bearer(authorization) or cookie
    if not presented:
        return 401, "Unauthorized: send Authorization: Bearer <token>"
    if not hmac.compare_digest(presented.encode("utf-8", "replace"), token.encode()):
        return 401, "Unauthorized: the bearer token is not the node's"
    return None


# ---- the listener (edge) -------------------------------------------------------------------------

def build_app(agent, token: str | None):
    from aiohttp import web
    from .api import _errors
    from .errors import status_body
    from . import page
    from .node_endpoints import add_routes
    # the page's shell (its HTML, script and style: no node data) is open too, so that a browser
    # without the cookie gets the page's token form rather than a 401
    public = PUBLIC_PATHS | page.PUBLIC_PATHS

    @web.middleware
    async def auth(request, handler):
        refused = decide(request.method, request.path, request.headers.get("Authorization"),
                         request.cookies.get(TOKEN_COOKIE), token, public)
        if refused is None:
            return await handler(request)
        code, message = refused
        reason = {401: "Unauthorized", 403: "Forbidden", 405: "MethodNotAllowed"}[code]
        headers = {"WWW-Authenticate": 'Bearer realm="kubelet-py"'} if code == 401 else {}
        if code == 405:
            headers["Allow"] = "GET, HEAD"
        return web.json_response(status_body(code, message, reason), status=code, headers=headers)

    app = web.Application(middlewares=[auth, _errors])
    add_routes(app.router, agent)
    page.add_routes(app, agent)
    return app


async def start_listener(agent):
    """The TCP site of `--listen` (None without it); `await runner.cleanup()` stops it."""
    import asyncio
    from aiohttp import web
    listen, token_file = agent.opts.listen, agent.opts.token_file
    if not listen:
        return None
    host, port = parse_listen(listen)
    token = await asyncio.to_thread(read_token, token_file) if token_file else None
    runner = web.AppRunner(build_app(agent, token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = [a[:2] for a in runner.addresses]  # the port the kernel chose for --listen 0
    log.info("node endpoints on %s (%s)", ", ".join(f"{h}:{p}" for h, p in bound) or f"{host}:{port}",
             "/healthz open, the rest with the bearer token" if token else "only /healthz: no --token-file")
    return runner
