"""ServiceHooks in an event loop, with a stand-in agent (the real NodeOptions and Backoff) and a
real notify socket: watchdog pings only while the sync loop is alive, STATUS when the pod count
changes, SIGHUP applying the live keys to the agent and logging the others."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

import pytest

from kubelet_py.cli import cli
from kubelet_py.node import NodeOptions
from kubelet_py.service import daemon
from kubelet_py.service.logfmt import set_level
from kubelet_py.service.notify import Notifier
from kubelet_py.status.backoff import Backoff


class Agent:
    def __init__(self):
        self.opts = NodeOptions(socket="/run/test.sock", max_pods=110)
        self.node_name = "n1"
        self.workers: dict = {}
        self.backoff = Backoff()
        self.stuck: str | None = None

    def unhealthy(self):
        return self.stuck


@pytest.fixture
def rx(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify"))
    s.setblocking(False)
    yield s
    s.close()


def drain(s) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(s.recv(4096))
        except BlockingIOError:
            return out


def serve_ctx(args):
    with cli.make_context("kubelet-py", ["serve"]) as parent:
        return cli.commands["serve"].make_context("serve", args, parent=parent)


def test_watchdog_pings_only_while_alive_and_status_follows_the_pods(tmp_path, rx, monkeypatch):
    monkeypatch.setattr(daemon, "STATUS_EVERY", 0.2)
    agent = Agent()
    hooks = daemon.ServiceHooks(Notifier(str(tmp_path / "notify"), watchdog=0.05))

    async def run():
        hooks.serving(serve_ctx(["--config", os.devnull]), agent)
        try:
            await asyncio.sleep(0.5)
            alive = drain(rx)
            agent.stuck = "the sync loop has not run for 31s"
            agent.workers["uid1"] = object()
            await asyncio.sleep(0.5)
            stuck = drain(rx)
        finally:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            hooks.stopping()
        return alive, stuck
    alive, stuck = asyncio.run(run())
    assert alive[0].startswith(b"READY=1\nSTATUS=serving on /run/test.sock, node n1, 0 pods\nMAINPID=")
    assert alive.count(b"WATCHDOG=1") >= 4
    assert b"WATCHDOG=1" not in stuck  # systemd restarts a daemon whose loop is stuck
    assert b"STATUS=serving on /run/test.sock, node n1, 1 pods" in stuck
    assert drain(rx)[-1].startswith(b"STOPPING=1\n")


def test_sighup_applies_live_keys_to_the_agent(tmp_path, rx, caplog):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("maxPods: 110\n")
    agent = Agent()
    hooks = daemon.ServiceHooks(Notifier(str(tmp_path / "notify")))
    ctx = serve_ctx(["--config", str(cfg)])
    saved = {n: logging.getLogger(n).level for n in ("kubelet_py", "runtime", "netns")}

    async def run():
        set_level("info")  # as ServiceHooks.begin does for the default --log-level
        hooks.serving(ctx, agent)
        try:
            cfg.write_text("maxPods: 3\ncrashloopMax: 20\nallowedUnsafeSysctls: 'kernel.msg*, net.core.somaxconn'\n"
                           "logLevel: debug\npodCidr: 10.1.0.0/16\n")
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(100):
                await asyncio.sleep(0.02)
                if agent.opts.max_pods == 3:
                    break
            await asyncio.gather(*hooks._tasks[1:])
            return logging.getLogger("kubelet_py").level
        finally:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            hooks.stopping()
    try:
        with caplog.at_level(logging.INFO, logger="kubelet_py.service"):
            level = asyncio.run(run())
    finally:
        for n, lvl in saved.items():
            logging.getLogger(n).setLevel(lvl)
    assert agent.opts.max_pods == 3
    assert agent.opts.allowed_unsafe_sysctls == ("kernel.msg*", "net.core.somaxconn")
    assert agent.backoff.policy.cap == 20.0
    assert level == logging.DEBUG  # (the e2e test holds that a --log-level flag beats the file)
    assert "SIGHUP: podCidr changed in" in caplog.text and "restart the daemon" in caplog.text
    msgs = drain(rx)
    assert any(m.startswith(b"RELOADING=1") for m in msgs)
