"""Pulling from a registry: the OCI distribution API v2 (kernel edge: sockets).

`GET /v2/` and the `WWW-Authenticate` challenge (Bearer token from realm/service/scope, or Basic),
manifests by tag or digest with the Accept headers for OCI and Docker schema2, blobs by digest
with redirects followed (credentials never sent to another host), retries with back-off on 5xx
and connection errors, resumed with `Range` when a blob download breaks. What arrives is
verified by the store; nothing of a failed pull is kept."""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlencode, urljoin, urlsplit

from .decompress import CHUNK
from .http import Connection, HTTPError, Response
from .digest import digest_bytes
from ..errors import FAILED_PRECONDITION, RESOURCE_EXHAUSTED
from .errors import DigestMismatch, ImageError, NotFound, RegistryError
from .ingest import Progress, ingest
from .manifest import ACCEPT, INDEX_TYPES, MANIFEST_TYPES, MAX_DOCUMENT, Descriptor, Platform
from .reference import parse_reference
from .registries import Endpoint, RegistriesConfig, endpoints_for
from .store import ImageRecord, ImageStore

RETRIES = 4
BACKOFF = 0.2  # seconds, doubled per retry
TIMEOUT = 30.0
_RETRY_STATUS = {429, 500, 502, 503, 504}
_NET_ERRORS = (ConnectionError, socket.timeout, TimeoutError)  # HTTPError is a ConnectionError


def _is_tls_error(e: BaseException) -> bool:
    ssl = sys.modules.get("ssl")  # imported only once an https endpoint is used
    return ssl is not None and isinstance(e, ssl.SSLError)


def parse_challenge(header: str) -> tuple[str, dict]:
    """`Bearer realm="https://a/token",service="reg",scope="repository:x:pull"` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    i = 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            j = i + 1
            val = []
            while j < len(rest) and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < len(rest):
                    j += 1
                val.append(rest[j])
                j += 1
            params[key] = "".join(val)
            i = j + 1
        else:
            j = rest.find(",", i)
            j = len(rest) if j < 0 else j
            params[key] = rest[i:j].strip()
            i = j
    return scheme.lower(), params


def _error_text(body: bytes) -> str:
    try:
        errs = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errs) or ""
    except (ValueError, AttributeError):
        return ""


@dataclass
class _Response:
    status: int
    headers: dict
    resp: Response
    conn: Connection
    key: tuple

    def read(self, limit: int | None = None) -> bytes:
        data = self.resp.read(None if limit is None else limit + 1)
        return data


class RegistryClient:
    """One endpoint of one registry; thread-safe (a connection per request in flight)."""

    def __init__(self, endpoint: Endpoint, ref: str):
        self.ep = endpoint
        self.ref = ref
        u = urlsplit(endpoint.url)
        self.scheme, self.netloc, self.prefix = u.scheme, u.netloc, u.path.rstrip("/")
        self._ssl = self._ssl_context() if self.scheme == "https" else None
        self._idle: dict[tuple, list] = {}
        self._lock = threading.Lock()
        self._token: str | None = None
        self._basic: str | None = None
        auth = endpoint.config.auth
        if auth and (auth.username or auth.auth):
            raw = auth.auth or base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
            self._basic = f"Basic {raw}"

    def _ssl_context(self):
        """The system's CAs plus `ca_file` (as containerd adds it to the system pool), and the
        client certificate if one is configured."""
        import ssl
        tls = self.ep.config.tls
        ctx = ssl.create_default_context()
        if tls is None:
            return ctx
        for key, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if path and not os.path.isfile(path):
                raise RegistryError(self.ref, f"tls.{key} {path!r} for {self.ep.host}: no such file",
                                    kind=FAILED_PRECONDITION)
        try:
            if tls.ca_file:
                ctx.load_verify_locations(cafile=tls.ca_file)
            if tls.cert_file:
                ctx.load_cert_chain(tls.cert_file, tls.key_file)
        except (ssl.SSLError, OSError) as e:
            raise RegistryError(self.ref, f"TLS files for {self.ep.host} cannot be used: {e}",
                                kind=FAILED_PRECONDITION) from None
        if tls.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    # ---- connections -------------------------------------------------------------------
    def _conn(self, scheme: str, netloc: str):
        key = (scheme, netloc)
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
        ctx = None
        if scheme == "https":
            import ssl
            ctx = self._ssl if netloc == self.netloc else ssl.create_default_context()
        return Connection(scheme, netloc, TIMEOUT, ctx)

    def release(self, r: _Response) -> None:
        if r.resp.isclosed() and not r.resp.will_close:
            with self._lock:
                self._idle.setdefault(r.key, []).append(r.conn)
        else:
            r.conn.close()

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for c in conns:
                    c.close()
            self._idle.clear()

    # ---- requests ----------------------------------------------------------------------
    def _send(self, method: str, url: str, headers: dict) -> _Response:
        u = urlsplit(url)
        conn = self._conn(u.scheme, u.netloc)
        path = u.path + (f"?{u.query}" if u.query else "")
        try:
            resp = conn.request(method, path or "/", headers)
        except BaseException:
            conn.close()
            raise
        return _Response(resp.status, resp.headers, resp, conn, (u.scheme, u.netloc))

    def request(self, method: str, path: str, headers: dict | None = None, ok=(200,)) -> _Response:
        """Send with auth, redirects and retries; returns a response whose status is in `ok`."""
        url = f"{self.scheme}://{self.netloc}{self.prefix}{path}"
        delay = BACKOFF
        for attempt in range(RETRIES + 1):
            try:
                r = self._with_auth(method, url, dict(headers or {}))
            except _NET_ERRORS + (OSError,) as e:
                if _is_tls_error(e):
                    raise RegistryError(self.ref, f"TLS error talking to {self.netloc}: {getattr(e, 'reason', None) or e}",
                                        kind=FAILED_PRECONDITION) from None
                if attempt == RETRIES:
                    raise RegistryError(self.ref, f"cannot reach {self.netloc}: {e}") from None
                time.sleep(delay)
                delay *= 2
                continue
            if r.status in _RETRY_STATUS and attempt < RETRIES:
                r.read()
                self.release(r)
                time.sleep(delay)
                delay *= 2
                continue
            if r.status in ok:
                return r
            body = r.read(65536)
            self.release(r)
            self._fail(r.status, body, path)
        raise AssertionError("unreachable")

    def _fail(self, status: int, body: bytes, path: str):
        detail = _error_text(body)
        if status == 401:
            why = "authentication failed (wrong username or password?)" if self._basic else "authentication required (no credentials configured)"
            raise RegistryError(self.ref, f"{why}: {detail or 'unauthorized'}", status)
        if status == 403:
            raise RegistryError(self.ref, f"access denied: {detail or 'forbidden'}", status)
        if status == 404:
            obj = path.rsplit("/", 1)[-1]
            what = f"blob {obj}: " if "/blobs/" in path else (f"manifest {obj}: " if obj.startswith("sha256:") else "")
            raise NotFound(self.ref, f"{what}not found on {self.netloc}{' (' + detail + ')' if detail else ''}")
        raise RegistryError(self.ref, f"{self.netloc} answered {status} for {path}{': ' + detail if detail else ''}", status,
                            obj=f"blob {path.rsplit('/', 1)[-1]}" if "/blobs/" in path else None)

    def _with_auth(self, method: str, url: str, headers: dict) -> _Response:
        for _ in range(2):
            auth = self._token or self._basic
            r = self._follow(method, url, headers, auth)
            if r.status != 401:
                return r
            challenge = r.headers.get("www-authenticate", "")
            r.read()
            self.release(r)
            scheme, params = parse_challenge(challenge)
            if scheme == "bearer" and "realm" in params:
                new = self._fetch_token(params)
                if new == self._token:
                    break
                self._token = new
            else:
                break
        return self._follow(method, url, headers, self._token or self._basic)

    def _follow(self, method: str, url: str, headers: dict, auth: str | None) -> _Response:
        origin = urlsplit(url).netloc
        for _ in range(6):
            h = dict(headers)
            if auth and urlsplit(url).netloc == origin:
                h["Authorization"] = auth
            r = self._send(method, url, h)
            if r.status in (301, 302, 303, 307, 308) and "location" in r.headers:
                r.read()
                self.release(r)
                url = urljoin(url, r.headers["location"])
                if r.status == 303:
                    method = "GET"
                continue
            return r
        raise RegistryError(self.ref, "too many redirects")

    def _fetch_token(self, params: dict) -> str:
        q = {k: params[k] for k in ("service", "scope") if k in params}
        if "scope" not in q:
            q["scope"] = f"repository:{self.ep.repository}:pull"
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urlencode(q)
        h = {"Authorization": self._basic} if self._basic else {}
        r = self._send("GET", url, h)  # the realm may be another host: that is where creds go
        body = r.read(MAX_DOCUMENT)
        self.release(r)
        if r.status == 401:
            raise RegistryError(self.ref, "authentication failed at the token server (wrong username or password?)", 401)
        if r.status != 200:
            raise RegistryError(self.ref, f"token server answered {r.status}", r.status)
        try:
            doc = json.loads(body)
            return f"Bearer {doc.get('token') or doc['access_token']}"
        except (ValueError, KeyError, TypeError):
            raise RegistryError(self.ref, "token server answer has no token") from None

    # ---- the API -----------------------------------------------------------------------
    def manifest(self, obj: str) -> tuple[bytes, str, str | None]:
        """(bytes, content type, Docker-Content-Digest header) of a manifest or index."""
        r = self.request("GET", f"/v2/{self.ep.repository}/manifests/{obj}", {"Accept": ACCEPT})
        body = r.read(MAX_DOCUMENT)
        self.release(r)
        if len(body) > MAX_DOCUMENT:
            raise RegistryError(self.ref, f"manifest larger than {MAX_DOCUMENT} bytes", kind=RESOURCE_EXHAUSTED)
        ctype = r.headers.get("content-type", "").split(";")[0].strip()
        return body, ctype, r.headers.get("docker-content-digest")

    def blob_chunks(self, desc: Descriptor) -> Iterator[bytes]:
        """The blob's bytes as they arrive; a response cut short (less than its Content-Length,
        or a broken chunked body) is resumed with `Range`. A response that ends where it says it
        ends is the blob's end: if that differs from the descriptor's size, the caller's verifier
        reports it (asking again would not help)."""
        done = 0
        attempts = 0
        path = f"/v2/{self.ep.repository}/blobs/{desc.digest}"
        while True:
            headers = {"Range": f"bytes={done}-"} if done else {}
            r = self.request("GET", path, headers, ok=(200, 206))
            if done and r.status != 206:
                r.conn.close()
                raise RegistryError(self.ref, f"blob {desc.digest}: connection lost and the server cannot resume",
                                    obj=f"blob {desc.digest}")
            released = False
            try:
                while True:
                    chunk = r.resp.read(CHUNK)
                    if not chunk:
                        break
                    done += len(chunk)
                    yield chunk
                if r.resp.length:  # read(n) returns b"" rather than raise when the peer hangs up early
                    raise HTTPError(f"{r.resp.length} bytes of the body missing")
                released = True
                self.release(r)
                return
            except _NET_ERRORS + (OSError,) as e:  # TLS errors mid-body included
                attempts += 1
                if attempts > RETRIES:
                    raise RegistryError(self.ref, f"blob {desc.digest}: download failed after {done} bytes: {e!r}",
                                        obj=f"blob {desc.digest}") from None
                time.sleep(BACKOFF * 2 ** (attempts - 1))
            finally:
                if not released:  # broken, or abandoned by the consumer (a mismatch): never reuse
                    r.conn.close()


class RegistrySource:
    def __init__(self, client: RegistryClient):
        self.client = client

    def chunks(self, desc: Descriptor, what: str) -> Iterator[bytes]:
        # a manifest named by an index lives at /manifests/<digest>; registries (distribution
        # among them) do not serve it from /blobs/
        if desc.media_type in MANIFEST_TYPES + INDEX_TYPES:
            body, _, _ = self.client.manifest(desc.digest)
            return iter((body,))
        # descriptor `urls` (foreign layers) are never followed (CVE-2020-15157)
        return self.client.blob_chunks(desc)


def pull(store: ImageStore, ref: str, registries: RegistriesConfig, *, platform: Platform | None = None,
         progress: Progress | None = None, parallel: int = 4) -> ImageRecord:
    r = parse_reference(ref)
    name = str(r)
    first_answer: ImageError | None = None
    last: ImageError | None = None
    for ep in endpoints_for(registries, r.registry, r.repository):
        client = RegistryClient(ep, name)
        try:
            top, ctype, header_digest = client.manifest(r.object)
        except ImageError as e:
            client.close()
            if isinstance(e, NotFound) or getattr(e, "status", None) is not None:
                first_answer = first_answer or e
            last = e
            continue
        try:
            actual = digest_bytes(top)
            if r.digest and actual != r.digest:
                raise DigestMismatch(f"{name} manifest", r.digest, actual)
            if header_digest and header_digest.startswith("sha256:") and header_digest != actual:
                raise DigestMismatch(f"{name} manifest (Docker-Content-Digest)", header_digest, actual)
            return ingest(store, name, RegistrySource(client), top, ctype or None, platform=platform,
                          progress=progress, parallel=parallel)
        finally:
            client.close()
    raise first_answer or last or RegistryError(name, "no endpoint to pull from", kind=FAILED_PRECONDITION)
