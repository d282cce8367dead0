"""The CLI's client of the daemon's API on its unix socket (aiohttp over a UnixConnector).
Every call is a coroutine; `Client` is used inside one `asyncio.run` per command."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import aiohttp


class ClientError(Exception):
    """An error answer of the daemon (its Status message), or no daemon."""

    def __init__(self, message: str, code: int = 0, reason: str = ""):
        super().__init__(message)
        self.code, self.reason = code, reason


def pod_path(namespace: str, name: str | None = None, sub: str | None = None) -> str:
    p = f"/api/v1/namespaces/{quote(namespace)}/pods"
    if name:
        p += f"/{quote(name)}"
    if sub:
        p += f"/{sub}"
    return p


class Client:
    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self):
        if not os.path.exists(self.socket_path):
            raise ClientError(f"no daemon at {self.socket_path} (start one with `kubelet-py serve`)")
        self.session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket_path),
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        return self

    async def __aexit__(self, *exc):
        await self.session.close()

    async def _check(self, resp) -> dict:
        try:
            body = await resp.json(content_type=None)
        except (ValueError, aiohttp.ContentTypeError):
            body = {"message": (await resp.text()).strip()}
        if resp.status >= 400:
            raise ClientError(body.get("message") or f"HTTP {resp.status}", resp.status, body.get("reason", ""))
        return body

    async def request(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        try:
            async with self.session.request(method, f"http://kubelet-py{path}", json=body, params=params) as resp:
                return await self._check(resp)
        except aiohttp.ClientConnectionError as e:
            raise ClientError(f"the daemon at {self.socket_path} does not answer: {e}") from None

    async def get(self, path: str, params: dict | None = None) -> dict:
        return await self.request("GET", path, params=params)

    async def apply(self, items: list[dict], strict: bool = False) -> list[dict]:
        return (await self.request("POST", "/apis/kubelet-py/v1/apply", {"items": items, "strict": strict}))["items"]

    async def delete(self, path: str, params: dict | None = None) -> dict:
        return await self.request("DELETE", path, params=params)

    async def stream(self, path: str, params: dict | None = None):
        """The body as it arrives (a log, or JSON lines of a watch)."""
        try:
            async with self.session.get(f"http://kubelet-py{path}", params=params) as resp:
                if resp.status >= 400:
                    await self._check(resp)
                async for chunk in resp.content.iter_any():
                    yield chunk
        except aiohttp.ClientConnectionError as e:
            raise ClientError(f"the daemon at {self.socket_path} does not answer: {e}") from None

    async def watch(self, path: str, params: dict | None = None):
        buf = b""
        async for chunk in self.stream(path, {**(params or {}), "watch": "1"}):
            buf += chunk
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield json.loads(line)

    async def exec_ws(self, path: str, params: list[tuple[str, str]]):
        return await self.session.ws_connect(f"http://kubelet-py{path}", params=params)
