"""The kubelet's node endpoints, on the unix socket (kubelet_py/server/api.py) and on the TCP
listener of `serve --listen` (kubelet_py/server/listen.py):

    GET /healthz          200 `ok` while the sync loop is alive, 500 with the reason when stuck
    GET /pods             a v1 PodList of the node's pods (as the kubelet's /pods)
    GET /stats/summary    the Summary API (kubelet_py/stats.py), read in a worker thread
    GET /metrics          Prometheus text format (kubelet_py/metrics.py)

All read-only."""

from __future__ import annotations

import weakref

from aiohttp import web

_providers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def stats_provider(agent):
    """The agent's StatsProvider (one per agent: both listeners share its last samples)."""
    p = _providers.get(agent)
    if p is None:
        from ..stats import StatsProvider
        p = _providers[agent] = StatsProvider(agent)
    return p


class NodeEndpoints:
    def __init__(self, agent):
        self.agent = agent

    async def healthz(self, request):
        why = self.agent.unhealthy()
        if why:
            return web.Response(status=500, text=why)
        return web.Response(text="ok")

    async def pods(self, request):
        from .api import _list
        return web.json_response(_list("Pod", self.agent.store.list("Pod"), self.agent.store.version))

    async def summary(self, request):
        return web.json_response(await stats_provider(self.agent).summary())

    async def metrics(self, request):
        from ..metrics import CONTENT_TYPE
        return web.Response(body=self.agent.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(router: web.UrlDispatcher, agent, healthz: bool = True) -> NodeEndpoints:
    """Register the endpoints (`healthz=False` where the app has its own /healthz)."""
    e = NodeEndpoints(agent)
    if healthz:
        router.add_get("/healthz", e.healthz)
    router.add_get("/pods", e.pods)
    router.add_get("/stats/summary", e.summary)
    router.add_get("/metrics", e.metrics)
    return e
