"""The daemon's API: HTTP+JSON on its unix socket (mode 0600, root only), shaped like the
Kubernetes API where one exists:

    GET    /healthz
    GET    /pods  /stats/summary  /metrics               the node endpoints (kubelet_py/server/node_endpoints.py)
    GET    /api/v1/namespaces[/NAME]                    ?watch=1   POST /api/v1/namespaces   DELETE .../NAME
    GET    /api/v1/pods                                  every namespace (?labelSelector, ?watch=1)
    GET    /api/v1/namespaces/NS/pods[/NAME]             ?labelSelector=a=b,c!=d  ?watch=1 (a JSON line per event)
    DELETE /api/v1/namespaces/NS/pods/NAME               ?gracePeriodSeconds=N
    GET    /api/v1/namespaces/NS/pods/NAME/log           ?container&follow&previous&tailLines&timestamps&sinceSeconds
    GET    /api/v1/namespaces/NS/pods/NAME/exec          ?container&command=..&stdin&tty  (WebSocket)
    GET    /api/v1/namespaces/NS/pods/NAME/inspect       the Linux behind the pod (kubelet_py/inspect)
    GET    /api/v1/namespaces/NS/events                  ?fieldSelector=involvedObject.name=NAME
    POST   /apis/kubelet-py/v1/apply                     {"items": [...], "strict": bool}: create or update each;
                                                          {"files": [{"name", "text"}]}: the manifests' objects
    GET    /apis/kubelet-py/v1/kinds/KIND                other kinds the store holds (ConfigMap, Secret, ...)
    GET    /api/v1[/namespaces/NS]/configmaps|secrets|services|endpoints  ?labelSelector ?watch=1;  POST .../NS/<plural>
    GET    /api/v1/namespaces/NS/configmaps|secrets|services|endpoints/NAME        DELETE the same
    (the same for /apis/discovery.k8s.io/v1[/namespaces/NS]/endpointslices[/NAME])

Errors are `Status` objects (`{"kind": "Status", "status": "Failure", "message", "reason",
"code"}`) as the API server sends them."""

from __future__ import annotations

import asyncio
import json
import logging
import os

from aiohttp import WSMsgType, web

from ..labels import SelectorError, matches, parse_selector
from .errors import ApiError, status_body

log = logging.getLogger("kubelet_py.server")
WATCH_IDLE_CHECK = 5.0  # seconds: how often an idle watch looks whether its client is still there
@web.middleware
async def _errors(request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return web.json_response(status_body(e.code, str(e), e.reason, e.details), status=e.code)
    except web.HTTPException:
        raise
    except Exception as e:  # noqa: BLE001 - every failure is an answer; the daemon goes on
        log.exception("%s %s", request.method, request.path)
        return web.json_response(status_body(500, f"{type(e).__name__}: {e}", "InternalError"), status=500)


def _list(kind: str, items: list[dict], version: int) -> dict:
    return {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": str(version)}, "items": items}


def _selector(request):
    try:
        return parse_selector(request.query.get("labelSelector", ""))
    except SelectorError as e:
        raise ApiError(400, str(e)) from None


_CONFIG_KINDS = {"configmaps": "ConfigMap", "secrets": "Secret", "services": "Service", "endpoints": "Endpoints",
                 "endpointslices": "EndpointSlice"}


def _load_files(files, strict: bool) -> tuple[list[dict], list[list[str]]]:
    """The objects of manifest files sent as `{"name", "text"}` (what `kubectl apply -f` reads),
    and each one's warnings; one 422 naming every error of every file (file, document, object,
    field), so nothing of a bad file is applied."""
    from ..api.errors import ApiError as FieldErrors
    from ..api.load import load
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str)
                                              and isinstance(f.get("text"), str) for f in files):
        raise ApiError(400, "apply: files must be a list of {name, text} objects")
    items, warnings, errors = [], [], []
    for f in files:
        try:
            docs = load(f["text"], f["name"], strict=strict)
        except FieldErrors as e:
            errors.append(str(e))
            continue
        for d in docs:
            items.append(d.obj)
            warnings.append([str(w) for w in d.warnings])
    if errors:
        raise ApiError(422, "\n".join(errors), "Invalid")
    return items, warnings


def _flag(request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


class Api:
    def __init__(self, agent):
        self.agent = agent
        self.app = web.Application(middlewares=[_errors], client_max_size=8 << 20)
        r = self.app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/api/v1/namespaces", self.list_namespaces)
        r.add_post("/api/v1/namespaces", self.create_namespace)
        r.add_get("/api/v1/namespaces/{name}", self.get_namespace)
        r.add_delete("/api/v1/namespaces/{name}", self.delete_namespace)
        r.add_get("/api/v1/pods", self.list_pods)
        r.add_get("/api/v1/namespaces/{ns}/pods", self.list_pods)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.get_pod)
        r.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self.delete_pod)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self.pod_log)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}/exec", self.pod_exec)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}/inspect", self.pod_inspect)  # kubelet_py/inspect
        r.add_get("/api/v1/namespaces/{ns}/events", self.events)
        r.add_post("/apis/kubelet-py/v1/apply", self.apply)
        r.add_get("/apis/kubelet-py/v1/kinds/{kind}", self.list_kind)
        # ConfigMaps and Secrets: list (?labelSelector, ?watch=1), create, get, delete
        # (and Services, Endpoints, and EndpointSlices at discovery.k8s.io's path, the same way)
        for group, cfg in (("/api/v1", "{plural:configmaps|secrets|services|endpoints}"),
                           ("/apis/discovery.k8s.io/v1", "{plural:endpointslices}")):
            r.add_get(f"{group}/{cfg}", self.list_config)
            r.add_get(f"{group}/namespaces/{{ns}}/{cfg}", self.list_config)
            r.add_post(f"{group}/namespaces/{{ns}}/{cfg}", self.create_config)
            r.add_get(f"{group}/namespaces/{{ns}}/{cfg}/{{name}}", self.get_config)
            r.add_delete(f"{group}/namespaces/{{ns}}/{cfg}/{{name}}", self.delete_config)
        from .node_endpoints import add_routes as node_endpoints  # GET /pods, /stats/summary, /metrics
        node_endpoints(r, agent, healthz=False)

    # ---- server life ------------------------------------------------------------------------
    async def start(self, socket_path: str) -> web.AppRunner:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        os.makedirs(os.path.dirname(socket_path), mode=0o700, exist_ok=True)
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        old = os.umask(0o177)  # 0600 from its creation: root only
        try:
            await web.UnixSite(runner, socket_path).start()
        finally:
            os.umask(old)
        return runner

    # ---- handlers ---------------------------------------------------------------------------
    async def healthz(self, request):
        why = self.agent.unhealthy()
        if why:
            return web.Response(status=500, text=why)
        return web.Response(text="ok")

    async def list_namespaces(self, request):
        if _flag(request, "watch"):  # `delete namespace` waits for its DELETED event
            return await self._watch(request, "Namespace", None, _selector(request))
        return web.json_response(_list("Namespace", self.agent.store.list("Namespace"), self.agent.store.version))

    async def get_namespace(self, request):
        obj = self.agent.store.get("Namespace", "", request.match_info["name"])
        if obj is None:
            raise ApiError(404, f'namespaces "{request.match_info["name"]}" not found')
        return web.json_response(obj)

    async def create_namespace(self, request):
        body = await self._json(request)
        res = await self.agent.apply([body], strict=False, create_only=True)
        return web.json_response(res[0]["object"], status=201)

    async def delete_namespace(self, request):
        obj = await self.agent.delete("Namespace", "", request.match_info["name"])
        return web.json_response(obj)

    async def list_pods(self, request):
        ns = request.match_info.get("ns")
        sel = _selector(request)
        if _flag(request, "watch"):
            return await self._watch(request, "Pod", ns, sel)
        pods = [p for p in self.agent.store.list("Pod", ns) if matches(sel, p)]
        return web.json_response(_list("Pod", pods, self.agent.store.version))

    async def _watch(self, request, kind: str, ns: str | None, sel) -> web.StreamResponse:
        """The current objects as ADDED, then every change, a JSON line each (as `?watch=1`)."""
        store = self.agent.store
        w = store.watch(kind, ns)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            name = request.query.get("fieldSelector", "").partition("metadata.name=")[2] or None
            for obj in store.list(kind, ns):
                if matches(sel, obj) and (name is None or obj["metadata"]["name"] == name):
                    await resp.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            while True:
                try:
                    event, obj = await asyncio.wait_for(w.queue.get(), WATCH_IDLE_CHECK)
                except asyncio.TimeoutError:  # a client that went (a CLI's delete, once it saw its
                    if request.transport is None or request.transport.is_closing():  # event) is let go
                        break
                    continue
                if matches(sel, obj) and (name is None or obj["metadata"]["name"] == name):
                    await resp.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            w.close()
        return resp

    async def get_pod(self, request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        obj = self.agent.store.get("Pod", ns, name)
        if obj is None:
            raise ApiError(404, f'pods "{name}" not found', details={"name": name, "kind": "pods"})
        return web.json_response(obj)

    async def delete_pod(self, request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        grace = request.query.get("gracePeriodSeconds")
        try:
            grace_s = int(grace) if grace is not None else None
        except ValueError:
            raise ApiError(400, f"gracePeriodSeconds: {grace!r} is not an integer") from None
        obj = await self.agent.delete("Pod", ns, name, grace_s)
        return web.json_response(obj)

    async def list_kind(self, request):
        kind = request.match_info["kind"]
        ns = request.query.get("namespace")
        return web.json_response(_list(kind, self.agent.store.list(kind, ns), self.agent.store.version))

    # ---- ConfigMaps and Secrets --------------------------------------------------------------
    async def list_config(self, request):
        kind, ns, sel = _CONFIG_KINDS[request.match_info["plural"]], request.match_info.get("ns"), _selector(request)
        if _flag(request, "watch"):
            return await self._watch(request, kind, ns, sel)
        objs = [o for o in self.agent.store.list(kind, ns) if matches(sel, o)]
        return web.json_response(_list(kind, objs, self.agent.store.version))

    async def create_config(self, request):
        kind, ns = _CONFIG_KINDS[request.match_info["plural"]], request.match_info["ns"]
        body = await self._json(request)
        if body.get("kind") != kind:
            raise ApiError(400, f"the body's kind must be {kind}")
        body.setdefault("metadata", {}).setdefault("namespace", ns)
        res = await self.agent.apply([body], strict=False, create_only=True)
        return web.json_response(res[0]["object"], status=201)

    async def get_config(self, request):
        plural, ns, name = request.match_info["plural"], request.match_info["ns"], request.match_info["name"]
        obj = self.agent.store.get(_CONFIG_KINDS[plural], ns, name)
        if obj is None:
            raise ApiError(404, f'{plural} "{name}" not found', details={"name": name, "kind": plural})
        return web.json_response(obj)

    async def delete_config(self, request):
        plural, ns, name = request.match_info["plural"], request.match_info["ns"], request.match_info["name"]
        return web.json_response(await self.agent.delete(_CONFIG_KINDS[plural], ns, name))

    async def events(self, request):
        ns = request.match_info["ns"]
        name = request.query.get("fieldSelector", "").partition("involvedObject.name=")[2] or None
        return web.json_response(_list("Event", self.agent.events(ns, name), self.agent.store.version))

    async def apply(self, request):
        body = await self._json(request)
        strict = bool(body.get("strict"))
        file_warnings: list[list[str]] = []
        if "files" in body:  # `apply -f`: the daemon reads and validates (the CLI need not load the api package)
            items, file_warnings = await asyncio.to_thread(_load_files, body["files"], strict)  # pure, CPU-bound
        else:
            items = body.get("items")
        if not isinstance(items, list):
            raise ApiError(400, "apply: items must be a list of objects")
        res = await self.agent.apply(items, strict=strict, dry_run=bool(body.get("dryRun")))
        for r, warnings in zip(res, file_warnings):
            r["warnings"] = warnings + list(r.get("warnings") or [])
        return web.json_response({"items": res})

    async def pod_log(self, request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        q = request.query
        try:
            tail = int(q["tailLines"]) if "tailLines" in q else None
            since = float(q["sinceSeconds"]) if "sinceSeconds" in q else None
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        reader = self.agent.log_reader(ns, name, q.get("container"), _flag(request, "previous"), tail, since,
                                       _flag(request, "timestamps"), _flag(request, "follow"))
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        try:
            async for chunk in reader:
                await resp.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    async def pod_inspect(self, request):
        from ..inspect.gather import inspect_pod  # reads in a worker thread
        return web.json_response(await inspect_pod(self.agent, request.match_info["ns"], request.match_info["name"]))

    async def pod_exec(self, request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        cmd = request.query.getall("command", [])
        if not cmd:
            raise ApiError(400, "exec: command is required")
        session = await self.agent.exec_session(ns, name, request.query.get("container"), cmd,
                                                tty=_flag(request, "tty"), stdin=_flag(request, "stdin"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await session.bridge(ws)
        return ws

    async def _json(self, request) -> dict:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the request body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body


__all__ = ["Api", "ApiError", "WSMsgType", "status_body"]
