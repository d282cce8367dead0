"""The CLI's client of the daemon (kubelet_py/client.py) against the daemon's own aiohttp API
(kubelet_py/server/api.py) on a unix socket in a temp dir, served from a thread: plain requests,
error Status decoding, a watch's chunked stream (lines split across chunks), deadlines, the
async facade, and the commands that wait on a watch (delete, wait --for=delete) and apply's
files validated by the daemon."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from types import SimpleNamespace

import pytest
from aiohttp import web

from kubelet_py.cli import cli, main  # before kubelet_py.kubectl: cli registers the commands in order
from kubelet_py.client import Client, ClientError, SyncClient, WatchStream, pod_path, status_error
from kubelet_py.config.store import ObjectStore
from kubelet_py.server.api import Api
from kubelet_py.server.errors import ApiError

GONE_AFTER = 0.3  # the fake agent removes a deleted pod this long after the DELETE


def _pod(name: str, ns: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": {}}


class FakeAgent:
    """What the API calls of the agent: a real ObjectStore (its watches), pods that go
    GONE_AFTER seconds after their DELETE, as a pod worker's teardown would."""

    def __init__(self, root: str):
        self.store = ObjectStore(root)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.applied: list[dict] = []

    def unhealthy(self):
        return None

    async def apply(self, items, strict=False, create_only=False, dry_run=False):
        self.applied.extend(items)
        return [{"action": "created", "object": self.store.put(o), "warnings": []} for o in items]

    async def delete(self, kind, namespace, name, grace=None):
        obj = self.store.get(kind, namespace, name)
        if obj is None:
            raise ApiError(404, f'{kind.lower()}s "{name}" not found')
        self.loop.call_later(GONE_AFTER, self.store.remove, kind, namespace, name)
        return obj


async def _chunks(request):
    """A chunked body whose JSON lines are cut across writes (and two in one write)."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    for piece in (b'{"type": "ADDED", "object": {"n"', b': 1}}\n{"type": "MODIFIED", "object": {"n": 2}}\n',
                  b'{"type": "DELETED", ', b'"object": {"n": 3}}\n'):
        await resp.write(piece)
        await asyncio.sleep(0.05)
    return resp


async def _silent(request):
    resp = web.StreamResponse()
    await resp.prepare(request)
    await asyncio.sleep(30)
    return resp


async def _text_error(request):
    return web.Response(status=500, text="boom\n")


async def _echo(request):
    body = await request.json()
    return web.json_response({"method": request.method, "query": dict(request.query), "body": body})


@pytest.fixture
def daemon(tmp_path):
    loop = asyncio.new_event_loop()
    agent = FakeAgent(str(tmp_path / "root"))
    agent.loop = loop
    api = Api(agent)
    api.app.router.add_get("/test/chunks", _chunks)
    api.app.router.add_get("/test/silent", _silent)
    api.app.router.add_get("/test/text-error", _text_error)
    api.app.router.add_post("/test/echo", _echo)
    sock = str(tmp_path / "run" / "kpy.sock")
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(api.start(sock))
        started.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(10)

    def call(fn, *args):  # run fn in the server's loop (the store has no locks), wait for it
        done = threading.Event()
        out = []
        loop.call_soon_threadsafe(lambda: (out.append(fn(*args)), done.set()))
        assert done.wait(5)
        return out[0]
    yield SimpleNamespace(socket=sock, agent=agent, loop=loop, call=call)
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


def test_requests_answers_and_error_status(daemon):
    c = SyncClient(daemon.socket)
    daemon.call(daemon.agent.store.put, _pod("a"))
    assert c.get(pod_path("default", "a"))["metadata"]["name"] == "a"
    assert [p["metadata"]["name"] for p in c.get(pod_path("default"))["items"]] == ["a"]
    got = c.request("POST", "/test/echo", {"x": [1, "é"]}, {"labelSelector": "a=b,c!=d", "k": ["1", "2"]})
    assert got == {"method": "POST", "query": {"labelSelector": "a=b,c!=d", "k": "1"}, "body": {"x": [1, "é"]}}
    with pytest.raises(ClientError) as e:
        c.get(pod_path("default", "nope"))
    assert (e.value.code, e.value.reason, str(e.value)) == (404, "NotFound", 'pods "nope" not found')
    with pytest.raises(ClientError) as e:  # a Status with details (the daemon's 400 of a bad selector)
        c.get(pod_path("default"), {"labelSelector": "a in (("})
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    with pytest.raises(ClientError) as e:  # not a Status: the text
        c.get("/test/text-error")
    assert (e.value.code, str(e.value)) == (500, "boom")


def test_status_error_decoding():
    e = status_error(409, json.dumps({"kind": "Status", "message": "it exists", "reason": "AlreadyExists",
                                      "details": {"name": "x"}}).encode())
    assert (str(e), e.code, e.reason, e.details) == ("it exists", 409, "AlreadyExists", {"name": "x"})
    assert (str(status_error(502, b"")), status_error(502, b"").code) == ("HTTP 502", 502)
    assert str(status_error(400, b"[1, 2]")) == "[1, 2]"


def test_no_daemon_and_a_dead_socket(tmp_path):
    with pytest.raises(ClientError) as e:
        with SyncClient(str(tmp_path / "none.sock")):
            pass
    assert e.value.code == 0 and "no daemon at" in str(e.value)
    dead = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)
    s.close()  # the file stays, nobody listens
    with pytest.raises(ClientError) as e:
        SyncClient(dead).get("/healthz")
    assert e.value.code == 0 and "does not answer" in str(e.value)


def test_a_chunked_watch_stream_is_split_into_events(daemon):
    c = SyncClient(daemon.socket)
    with c.stream("/test/chunks", cls=WatchStream) as w:
        evs = list(w)
    assert [(e["type"], e["object"]["n"]) for e in evs] == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 3)]
    raw = b"".join(c.stream("/test/chunks"))
    assert raw.count(b"\n") == 3 and raw.endswith(b'{"n": 3}}\n')


def test_the_daemons_watch_sees_what_exists_then_changes(daemon):
    c = SyncClient(daemon.socket)
    daemon.call(daemon.agent.store.put, _pod("w1"))
    with c.watch(pod_path("default"), {"fieldSelector": "metadata.name=w1"}, time.monotonic() + 5) as w:
        first = w.next_event()
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "w1")
        daemon.call(daemon.agent.store.put, _pod("other"))  # filtered out by the field selector
        daemon.call(daemon.agent.store.remove, "Pod", "default", "w1")
        ev = w.next_event()
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("DELETED", "w1")


def test_a_stream_read_times_out_at_its_deadline(daemon):
    c = SyncClient(daemon.socket)
    t0 = time.monotonic()
    with c.stream("/test/silent", deadline=t0 + 0.3) as s:
        with pytest.raises(TimeoutError):
            s.read()
    assert 0.25 < time.monotonic() - t0 < 3


def test_wait_gone_returns_at_the_deleted_event(daemon):
    from kubelet_py.kubectl import wait_gone
    c = SyncClient(daemon.socket)
    daemon.call(daemon.agent.store.put, _pod("g"))
    assert wait_gone(c, "Pod", "default", "g", time.monotonic() + 0.2) is False  # still there at the deadline
    daemon.call(daemon.loop.call_later, 0.2, daemon.agent.store.remove, "Pod", "default", "g")
    t0 = time.monotonic()
    assert wait_gone(c, "Pod", "default", "g", time.monotonic() + 5) is True
    assert 0.15 < time.monotonic() - t0 < 1.5
    assert daemon.call(daemon.agent.store.get, "Pod", "default", "g") is None
    assert wait_gone(c, "Pod", "default", "g") is True  # already gone: no event needed


def _cli(sock, *args):
    from click.testing import CliRunner
    return CliRunner().invoke(cli, ["--socket", sock, *args], catch_exceptions=False)


def test_delete_returns_once_the_pod_is_gone(daemon):
    daemon.call(daemon.agent.store.put, _pod("d1"))
    t0 = time.monotonic()
    r = _cli(daemon.socket, "delete", "pod", "d1")
    took = time.monotonic() - t0
    assert r.exit_code == 0, r.output
    assert r.output == 'pod "d1" deleted from default namespace\n'
    assert daemon.call(daemon.agent.store.get, "Pod", "default", "d1") is None
    assert GONE_AFTER - 0.05 < took < GONE_AFTER + 1.5  # at the event, not a poll later
    daemon.call(daemon.agent.store.put, _pod("d2"))
    r = _cli(daemon.socket, "delete", "pod", "d2", "--no-wait")
    assert r.exit_code == 0 and daemon.call(daemon.agent.store.get, "Pod", "default", "d2") is not None


def test_delete_namespace_waits_on_the_namespace_watch(daemon):
    daemon.call(daemon.agent.store.put, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    r = _cli(daemon.socket, "delete", "namespace", "team")
    assert r.exit_code == 0, r.output
    assert daemon.call(daemon.agent.store.get, "Namespace", "", "team") is None


def test_wait_for_delete_and_for_a_condition(daemon):
    daemon.call(daemon.agent.store.put, _pod("w"))
    daemon.call(daemon.loop.call_later, 0.2, daemon.agent.store.remove, "Pod", "default", "w")
    r = _cli(daemon.socket, "wait", "pod/w", "--for=delete", "--timeout", "5s")
    assert (r.exit_code, r.output) == (0, "pod/w condition met\n")
    ready = {**_pod("r"), "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    daemon.call(daemon.loop.call_later, 0.2, daemon.agent.store.put, ready)  # created while it waits
    r = _cli(daemon.socket, "wait", "pod/r", "--for=condition=Ready", "--timeout", "5s")
    assert (r.exit_code, r.output) == (0, "pod/r condition met\n")
    with pytest.raises(SystemExit):  # main() turns the KpyError into one line and exit 1
        main(["--socket", daemon.socket, "wait", "pod/r", "--for=condition=Ready=false", "--timeout", "0.3s"])


def test_apply_sends_the_files_and_the_daemon_names_file_and_field(daemon, tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web, labelz: 1}\n"
                    "spec: {containers: [{name: a, image: busybox}]}\n")
    r = _cli(daemon.socket, "apply", "-f", str(good))
    assert r.exit_code == 0, r.output
    assert "pod/web created" in r.output
    assert "good.yaml" in r.output and "labelz" in r.output  # the unknown field's warning names the file
    assert daemon.agent.applied[0]["spec"]["restartPolicy"] == "Always"  # defaulted by the daemon's load
    bad = tmp_path / "web.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web2}\nspec:\n  containers:\n"
                   "  - {name: a, image: busybox}\n  - name: b\n    image: busybox\n"
                   "    livenessProbe: {httpGet: {port: 0}}\n")
    with pytest.raises(SystemExit) as e:
        main(["--socket", daemon.socket, "apply", "-f", str(bad)])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "web.yaml" in err and "spec.containers[1].livenessProbe.httpGet.port" in err and "Invalid" in err
    assert len(daemon.agent.applied) == 1  # nothing of the bad file


def test_the_async_client_streams_without_blocking_the_loop(daemon):
    daemon.call(daemon.agent.store.put, _pod("x"))

    async def go():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        t = asyncio.get_running_loop().create_task(tick())
        async with Client(daemon.socket) as c:
            assert (await c.get(pod_path("default", "x")))["metadata"]["name"] == "x"
            evs = [e["type"] async for e in c.watch("/test/chunks")]
            assert evs == ["ADDED", "MODIFIED", "DELETED"]
            with pytest.raises(ClientError):
                await c.delete(pod_path("default", "nope"))

            async def forever():
                async for _ in c.stream("/test/silent"):
                    pass
            f = asyncio.get_running_loop().create_task(forever())
            await asyncio.sleep(0.2)
            f.cancel()  # its thread's read is woken: asyncio.run below does not hang
            with pytest.raises(asyncio.CancelledError):
                await f
        t.cancel()
        return ticks
    t0 = time.monotonic()
    assert asyncio.run(go()) > 10  # the loop ran while the client waited
    assert time.monotonic() - t0 < 5


def test_plain_commands_import_neither_aiohttp_nor_asyncio(tmp_path):
    import subprocess
    import sys
    code = ("import sys; from kubelet_py.cli import main\n"
            "try:\n    main(['--socket', sys.argv[1], 'get', 'pods'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'asyncio')))")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none.sock")], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert "no daemon at" in p.stderr
    assert p.stdout.strip() == "[]", p.stdout


def test_a_watch_whose_client_went_is_dropped_by_the_daemon(daemon, monkeypatch):
    import kubelet_py.server.api as server_api
    monkeypatch.setattr(server_api, "WATCH_IDLE_CHECK", 0.1)
    c = SyncClient(daemon.socket)
    daemon.call(daemon.agent.store.put, _pod("k"))
    w = c.watch(pod_path("default"), {"fieldSelector": "metadata.name=k"})
    assert w.next_event()["type"] == "ADDED"
    assert daemon.call(lambda: len(daemon.agent.store.watches)) == 1
    w.close()  # no event comes after: only the idle check can notice
    deadline = time.monotonic() + 3
    while daemon.call(lambda: len(daemon.agent.store.watches)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.call(lambda: len(daemon.agent.store.watches)) == 0


def test_quote_and_query_string_match_urllib():
    from urllib.parse import quote as uquote
    from urllib.parse import urlencode

    from kubelet_py.client import quote, query_string
    for text in ("web-1", "a b/c?d&e=f", "é~._-", "metadata.name=x", "a in (b,c),d!=e"):
        assert quote(text) == uquote(text, safe="~")
    params = {"labelSelector": "app in (a,b)", "k": ["1", "2 3"], "n": 5}
    assert query_string(params) == urlencode(params, doseq=True, quote_via=uquote)
    assert query_string([("command", "sh"), ("command", "-c")]) == "command=sh&command=-c"
