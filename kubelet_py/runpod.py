"""`kubelet-py run -f pod.yaml`: the command-line launch. The pod goes to the daemon when one
answers on --socket, or else to an agent embedded in this process (same code, no socket). Its
main container's log is streamed here; Ctrl-C (or SIGTERM) deletes the pod and waits until it is
gone; a pod with restartPolicy Never/OnFailure that completes ends the command with the main
container's exit code."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import click

log = logging.getLogger("kubelet_py.run")
TERMINAL = ("Succeeded", "Failed")


class _DaemonBackend:
    def __init__(self, client):
        self.c = client

    async def apply(self, objs):
        return [r["object"] for r in await self.c.apply(objs)]

    async def get_pod(self, ns, name):
        from .client import ClientError, pod_path
        try:
            return await self.c.get(pod_path(ns, name))
        except ClientError as e:
            if e.code == 404:
                return None
            raise

    def logs(self, ns, name, container):
        from .client import pod_path
        return self.c.stream(pod_path(ns, name, "log"), {"container": container, "follow": "1"})

    async def delete(self, obj):
        from .client import ClientError
        from .kubectl import _obj_path
        md = obj["metadata"]
        try:
            await self.c.delete(_obj_path(obj["kind"], md.get("namespace", "default"), md["name"]))
        except ClientError as e:
            if e.code != 404:
                raise


class _EmbeddedBackend:
    def __init__(self, agent):
        self.agent = agent

    async def apply(self, objs):
        return [r["object"] for r in await self.agent.apply(objs)]

    async def get_pod(self, ns, name):
        return self.agent.store.get("Pod", ns, name)

    def logs(self, ns, name, container):
        return self.agent.log_reader(ns, name, container, False, None, None, False, True)

    async def delete(self, obj):
        from .server.errors import ApiError
        md = obj["metadata"]
        try:
            await self.agent.delete(obj["kind"], md.get("namespace", "default"), md["name"])
        except ApiError as e:
            if e.code != 404:
                raise


async def _daemon_answers(socket_path: str) -> bool:
    if not os.path.exists(socket_path):
        return False
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket_path), 2)
        writer.close()
        return True
    except (OSError, asyncio.TimeoutError):
        return False


async def run_pod(gopts, objs: list[dict], pod: dict, *, node_name: str = "", pod_cidr: str = "10.244.0.0/16",
                  bridge: str = "kpy0") -> int:
    stop = asyncio.Event()  # Ctrl-C from the very start: the teardown always runs
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    try:
        return await _run_pod(gopts, objs, pod, stop, node_name, pod_cidr, bridge)
    finally:
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(s)


async def _run_pod(gopts, objs, pod, stop, node_name, pod_cidr, bridge) -> int:
    if await _daemon_answers(gopts.socket):
        from .client import Client
        async with Client(gopts.socket) as c:
            return await _drive(_DaemonBackend(c), objs, pod, stop, embedded=False)
    from .node import NodeAgent, NodeOptions
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="kubelet-py: %(message)s")
    agent = NodeAgent(NodeOptions(root=gopts.root, run_root=gopts.run_root, log_root=gopts.log_root, socket=gopts.socket,
                                  registries=gopts.registries, cgroup_root=gopts.cgroup_root, node_name=node_name,
                                  pod_cidr=pod_cidr, bridge=bridge, image_limits=gopts.image_limits))
    await agent.start(serve_socket=True)  # get, logs, exec and wait work while it runs
    try:
        if stop.is_set():
            return 130
        return await _drive(_EmbeddedBackend(agent), objs, pod, stop, embedded=True)
    finally:
        await agent.stop()


def _main_container(pod: dict) -> str:
    ann = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    return ann or pod["spec"]["containers"][0]["name"]


def _exit_code(pod: dict, name: str) -> int:
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        if st["name"] == name:
            term = (st.get("state") or {}).get("terminated") or (st.get("lastState") or {}).get("terminated") or {}
            return int(term.get("exitCode", 1))
    return 1


async def _drive(backend, objs: list[dict], pod: dict, stop: asyncio.Event, embedded: bool) -> int:
    applied = await backend.apply(objs)
    mine = next(o for o in applied if o["kind"] == "Pod")
    ns, name = mine["metadata"].get("namespace", "default"), mine["metadata"]["name"]
    main = _main_container(mine)
    click.echo(f"pod/{name} created", err=True)
    logger = asyncio.get_running_loop().create_task(_stream_logs(backend, ns, name, main))
    code = 130
    try:
        while not stop.is_set():
            cur = await backend.get_pod(ns, name)
            if cur is None:
                code = 1
                break
            phase = (cur.get("status") or {}).get("phase")
            if phase in TERMINAL:
                await asyncio.sleep(0.2)  # the last lines of the log
                code = _exit_code(cur, main)
                break
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
    finally:
        click.echo(f"pod/{name}: deleting", err=True)
        await backend.delete(mine)
        while await backend.get_pod(ns, name) is not None:  # its last lines are streamed meanwhile
            await asyncio.sleep(0.1)
        logger.cancel()
        if embedded:  # nobody else holds what this command applied
            for o in applied:
                if o["kind"] not in ("Pod", "Namespace"):
                    await backend.delete(o)
    return code


async def _stream_logs(backend, ns: str, name: str, container: str) -> None:
    """Follow the container's log; after a restart, the new instance's."""
    while True:
        pod = await backend.get_pod(ns, name)
        if pod is None:
            return
        sts = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        st = sts.get(container) or {}
        if "running" in (st.get("state") or {}) or "terminated" in (st.get("state") or {}):
            restarts = st.get("restartCount", 0)
            try:
                async for chunk in backend.logs(ns, name, container):
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
            except Exception as e:  # noqa: BLE001 - the pod may go while we read
                log.debug("logs: %s", e)
            # wait for a new instance (or the end)
            while True:
                pod = await backend.get_pod(ns, name)
                if pod is None:
                    return
                st = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}.get(container, {})
                if st.get("restartCount", 0) != restarts and "running" in (st.get("state") or {}):
                    break
                await asyncio.sleep(0.2)
        else:
            await asyncio.sleep(0.1)
