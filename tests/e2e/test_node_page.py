"""The node page in a real browser: a real daemon with `serve --listen 127.0.0.1:PORT
--token-file F`, and Debian's Chromium (headless) driven over its DevTools protocol (a websocket,
through aiohttp's client: no Playwright, nothing downloaded). The token is given to the browser
as the listener's cookie. The page lists a running pod and a crash-looping one, whose status turns
to CrashLoopBackOff on the page by itself (the list refreshes live); the running pod's page shows
its events, its log and the inspect picture (its bridge, veth and IP); a pod applied while the
page is open appears in the list without a reload; a click on the crash-looping pod's row shows its
previous attempt's log. An annotation and a log line holding markup (`<img src=x onerror=...>`,
`<script>`) show up as text: no element is made from them and their handlers never run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import time

import aiohttp
import pytest

from tests.conftest import need_tool
from tests.e2e.daemon import Daemon, condition, status_of

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"
TITLE = "kubelet-py node"
IMG_CANARY = '<img src=x onerror="document.title=\'pwned by an annotation\'">'
LOG_IMG_CANARY = '<img src=x onerror="document.title=\'pwned by a log\'">'
LOG_SCRIPT_CANARY = "<script>document.title='pwned by a script'</script>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def node(tmp_path):
    token = secrets.token_hex(16)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    os.chmod(token_file, 0o600)
    port = _free_port()
    daemon = Daemon(tmp_path, crashloop_max=60.0,
                    extra=["--listen", f"127.0.0.1:{port}", "--token-file", str(token_file)]).start()
    yield daemon, f"http://127.0.0.1:{port}", token
    leaks = daemon.cleanup()
    assert leaks == [], leaks


def _pod(name: str, script: str, annotations: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": name, "image": IMAGE, "command": ["sh", "-c", script]}]}}


class Browser:
    """Headless Chromium and one page of it, over the DevTools protocol."""

    def __init__(self, tmp_path):
        self.exe = need_tool("chromium")
        self.proc = subprocess.Popen(
            [self.exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={tmp_path / 'chromium'}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        deadline = time.monotonic() + 60
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            self.stderr.append(line)
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
        assert self.port, "chromium did not start:\n" + "".join(self.stderr[-30:])
        self.ws = self.session = None
        self.next_id = 0

    async def open(self):
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{self.port}/json/list") as r:
            targets = await r.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 << 20)

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        mine = self.next_id
        await self.ws.send_json({"id": mine, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive_json(), 30)
            if msg.get("id") == mine:
                assert "error" not in msg, (method, msg["error"])
                return msg["result"]

    async def js(self, expression: str):
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, (expression, r["exceptionDetails"])
        return r["result"].get("value")

    async def until(self, expression: str, what: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:  # (an exception is a no: the page may not be there yet)
            value = await self.js(f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()")
            if value:
                return value
            await asyncio.sleep(0.25)
        dom = await self.js("document.documentElement.outerHTML")
        raise AssertionError(f"the page: {what} not seen in {timeout}s; its DOM:\n{dom[-6000:]}")

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


ROWS = "[...document.querySelectorAll('#pods tbody tr')].map(tr => [...tr.cells].map(td => td.textContent))"


def _row(rows: list, name: str) -> list | None:
    return next((r for r in rows or [] if r[1] == name), None)


def test_the_node_page_in_a_browser(node, tmp_path):
    d, base, token = node
    web_script = f"echo {json.dumps(LOG_SCRIPT_CANARY)}; echo {json.dumps(LOG_IMG_CANARY)}; exec sleep 3600"
    d.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        _pod("web", web_script, {"note": IMG_CANARY}),
        _pod("crash", "echo crashing now; exit 3")]}))
    web = d.wait_for("web", lambda p: condition(p, "Ready") == "True", 60, what="Ready")
    ip = web["status"]["podIP"]

    # the listener asks for the token: without it, no page
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/page/api/pods", timeout=10)
    assert e.value.code == 401

    async def main():
        b = Browser(tmp_path)
        try:
            await b.open()
            await b.call("Network.enable")
            await b.call("Network.setCookie", name="kubelet_py_token", value=token, url=base + "/",
                         httpOnly=True, sameSite="Strict")
            await b.call("Page.navigate", url=base + "/#pod/default/web")
            # the list, live: web Running; crash turns to CrashLoopBackOff without a reload
            await b.until(f"(() => {{ const r = {ROWS}; return r.some(c => c[1] === 'web' && c[3] === 'Running'); }})()",
                          "web Running in the list")
            await b.until(f"(() => {{ const r = {ROWS}; "
                          "return r.some(c => c[1] === 'crash' && c[3] === 'CrashLoopBackOff'); })()",
                          "crash in CrashLoopBackOff in the list", timeout=90)
            rows = await b.js(ROWS)
            assert _row(rows, "web")[:6] == ["default", "web", "1/1", "Running", "0", ip], rows
            assert await b.js("document.querySelector('#pods tr[data-name=crash]').className") == "bad"
            # web's page: its events, its log, the picture of the kernel objects behind it
            await b.until("document.getElementById('detail').dataset.loaded === 'default/web'", "web's detail")
            await b.until("document.getElementById('picture').dataset.drawn === 'default/web'", "web's picture")
            await b.until("[...document.querySelectorAll('#events tbody tr')].some(tr => tr.cells[1].textContent"
                          " === 'Started')", "web's Started event")
            events = await b.js("[...document.querySelectorAll('#events tbody tr')].map(tr => tr.cells[1].textContent)")
            assert "Created" in events and "Started" in events, events
            log = await b.js("document.querySelector('#logs .log[data-container=web] pre').textContent")
            assert log == f"{LOG_SCRIPT_CANARY}\n{LOG_IMG_CANARY}\n", log
            boxes = await b.js("Object.fromEntries([...document.querySelectorAll('#picture g.box')]"
                               ".map(g => [g.dataset.id, g.textContent]))")
            assert d.bridge in boxes["bridge"] and ip in boxes["eth0"] and "pod default/web" in boxes["pod"], boxes
            assert any(k.startswith("container-web") for k in boxes) and "veth-host" in boxes
            assert await b.js("document.querySelectorAll('#picture g.problem').length") == 0
            annotations = await b.js("[...document.querySelectorAll('#summary dt')].find(dt => dt.textContent === "
                                     "'Annotations').nextElementSibling.textContent")
            assert IMG_CANARY in annotations
            # markup in the data is text: nothing made of it, nothing of it ran
            html = await b.js("document.documentElement.outerHTML")
            assert await b.js("document.title") == TITLE
            assert await b.js("document.querySelectorAll('img').length") == 0
            assert await b.js("[...document.scripts].map(s => s.getAttribute('src'))") == ["page/page.js"]
            assert "&lt;img src=x onerror=" in html and "&lt;script&gt;document.title" in html
            assert "<img" not in html and "<script>document" not in html

            # a pod applied while the page is open shows up without a reload
            await b.js("window.kpyMark = 'same page'")
            d.apply(json.dumps(_pod("late", "exec sleep 3600")))
            await b.until(f"{ROWS}.some(c => c[1] === 'late')", "the late pod in the list", timeout=30)
            assert await b.js("window.kpyMark") == "same page"

            # a click on a row opens that pod: the crash-looping one's previous attempt's log
            await b.js("document.querySelector('#pods tr[data-name=crash]').click()")
            await b.until("document.getElementById('detail').dataset.loaded === 'default/crash'", "crash's detail")
            await b.until("(document.querySelector('#logs .log[data-container=crash] pre') || {}).textContent"
                          " === 'crashing now\\n'", "crash's previous log")
            status = await b.js("[...document.querySelectorAll('#summary dt')].find(dt => dt.textContent === "
                                "'Status').nextElementSibling.textContent")
            assert status in ("CrashLoopBackOff", "Error", "Running"), status
            assert await b.js("location.hash") == "#pod/default/crash"

            # without the token the page asks for it, and shows the node again once given
            await b.call("Network.clearBrowserCookies")
            await b.until("!document.getElementById('login').hidden", "the token form")
            assert "bearer token" in await b.js("document.getElementById('login-why').textContent")
            await b.js("document.querySelector('#pods tbody').replaceChildren()")
            await b.js(f"document.getElementById('token').value = {json.dumps(token)}")
            await b.js("document.querySelector('#login button').click()")
            await b.until(f"document.getElementById('login').hidden && {ROWS}.length === 3", "the list again")
        finally:
            await b.close()
    asyncio.run(main())
    crash = d.pod("crash")
    assert status_of(crash, "crash")["restartCount"] >= 1
