"""The node page: a small read-only web page of the node, served by the `--listen` listener.
`add_routes(app, agent)` registers on its aiohttp app:

    GET /                                     the page (index.html next to this file)
    GET /page/page.js, /page/page.css         its script and style: no build step, nothing external
    GET /page/api/pods                        {"node", "pods": [row]}: the pods list, polled every 2 s
    GET /page/api/pods/NS/NAME                one pod: its row, labels, annotations, conditions,
                                              containers, events and each container's log tail
                                              (`?logs=0`: not the logs; the page reads them every 10 s,
                                              a log and its rotated files being read whole)
    GET /page/api/pods/NS/NAME/inspect        {"picture", "problems", "text"}: `inspect pod` drawn

Everything the page shows is computed by model.py (pure) from what the agent holds: the store's
pods, `agent.events`, `agent.log_reader` (the files read in a worker thread) and the inspect
report (kubelet_py/inspect: gathered in a worker thread, as `kubelet-py inspect pod` has it).
Nothing here writes. The script puts data into the page only as text (textContent, SVG text
nodes), never as markup, and the page is served with a Content-Security-Policy that allows no
inline script, no other origin and nothing but this page's own script and style: a pod name,
label, event message or log line holding markup shows as that markup's text.

Live refresh is polling, every 2 s, rather than the store's watch: the pods list shows ages and
`(5m ago)` restart times that change with the clock, not with the store, so the rows must be
recomputed on a clock anyway; a poll holds no connection and no watcher in the daemon between
refreshes (a forgotten browser tab costs one small request per 2 s, not a watch queue), needs no
reconnect logic across a daemon restart, and is a plain GET that any proxy in front passes."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from aiohttp import web

from ..errors import ApiError, status_body
from .model import LOG_TAIL_LINES, log_requests, log_tail, picture, pod_detail, pod_rows

log = logging.getLogger("kubelet_py.server.page")
HERE = os.path.dirname(os.path.abspath(__file__))
FILES = {"index.html": "text/html", "page.js": "text/javascript", "page.css": "text/css"}
# the page's own script and style only: no inline script or handler runs, nothing is loaded from elsewhere
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# the page's own files hold no data of the node: a listener may serve them without its token, so
# that a browser that has none gets the page, which asks for it (and keeps it in the listener's cookie)
PUBLIC_PATHS = frozenset({"/", "/page/page.js", "/page/page.css"})
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


def add_routes(app: web.Application, agent) -> None:
    """Register the page and its read-only JSON on `app` (the --listen listener's)."""
    page = _Page(agent)
    r = app.router
    r.add_get("/", page.index)
    r.add_get("/page/{file:page\\.(?:js|css)}", page.static)
    r.add_get("/page/api/pods", page.pods)
    r.add_get("/page/api/pods/{ns}/{name}", page.pod)
    r.add_get("/page/api/pods/{ns}/{name}/inspect", page.inspect)


def _read(name: str) -> bytes:
    with open(os.path.join(HERE, name), "rb") as f:
        return f.read()


async def _drain(reader) -> bytes:
    return b"".join([chunk async for chunk in reader])


def _read_log(reader) -> bytes:
    """In a worker thread: run the agent's log reader (an async generator that reads the CRI files
    with plain blocking reads; without follow it never waits on anything) on a loop of its own."""
    return asyncio.run(_drain(reader))


def _json(body, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers=HEADERS)


def _answers(handler):
    """An ApiError (no such pod, a container waiting) is answered as the API's Status object."""
    async def wrapped(self, request):
        try:
            return await handler(self, request)
        except ApiError as e:
            return _json(status_body(e.code, str(e), e.reason, e.details), e.code)
    return wrapped


class _Page:
    def __init__(self, agent):
        self.agent = agent
        self.files: dict[str, bytes] = {}

    async def _file(self, name: str) -> web.Response:
        if name not in self.files:
            self.files[name] = await asyncio.to_thread(_read, name)
        return web.Response(body=self.files[name], content_type=FILES[name], charset="utf-8", headers=HEADERS)

    async def index(self, request):
        return await self._file("index.html")

    async def static(self, request):
        return await self._file(request.match_info["file"])

    @_answers
    async def pods(self, request):
        return _json({"node": self.agent.node_name, "pods": pod_rows(self.agent.store.list("Pod"), time.time())})

    def _pod(self, request) -> tuple[str, str, dict]:
        ns, name = request.match_info["ns"], request.match_info["name"]
        pod = self.agent.store.get("Pod", ns, name)
        if pod is None:
            raise ApiError(404, f'pods "{name}" not found', details={"name": name, "kind": "pods"})
        return ns, name, pod

    @_answers
    async def pod(self, request):
        ns, name, pod = self._pod(request)
        logs = None if request.query.get("logs") == "0" else []
        for container, previous in log_requests(pod) if logs is not None else ():
            try:
                reader = self.agent.log_reader(ns, name, container, previous, LOG_TAIL_LINES, None, False, False)
                logs.append(log_tail(container, previous, await asyncio.to_thread(_read_log, reader), None))
            except ApiError as e:  # gone between the status and the read: say why instead of a tail
                logs.append(log_tail(container, previous, None, str(e)))
            except OSError as e:
                log.warning("log of %s/%s %s: %s", ns, name, container, e)
                logs.append(log_tail(container, previous, None, f"unreadable: {e}"))
        return _json(pod_detail(pod, self.agent.events(ns, name), logs, time.time()))

    @_answers
    async def inspect(self, request):
        from ...inspect.gather import inspect_pod  # gathers in a worker thread
        from ...inspect.report import render_text
        ns, name, _ = self._pod(request)
        report = await inspect_pod(self.agent, ns, name)

        def draw() -> dict:  # pure, but a node's many Service rules make it long: off the loop too
            return {"picture": picture(report), "problems": report.get("problems") or [], "text": render_text(report)}
        return _json(await asyncio.to_thread(draw))
