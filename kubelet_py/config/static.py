"""Static pods: the kubelet's file source (semantics 5.1). Every regular file of the manifest
directory (dot-files ignored, subdirectories not entered, sorted) holds one Pod; the directory
is watched with inotify and read again every 20 s. A pod's UID comes from its content, so an
edited file is a new pod: the old one is killed and the new one created (never updated in
place). A file removed deletes its pod. A bad file is logged and skipped: it never touches the
other files' pods."""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger("kubelet_py.static")
RESCAN_S = 20.0  # upstream's fileCheckFrequency
MAX_FILE = 10 << 20  # upstream's limit on a manifest file


class StaticPods:
    def __init__(self, agent, directory: str):
        self.agent, self.dir = agent, directory
        self.current: dict[str, dict] = {}  # path -> the pod this file made (as stored)
        self.bad: dict[str, str] = {}  # path -> why, logged once per content
        self.task: asyncio.Task | None = None
        self.changed: asyncio.Event | None = None

    def poke(self) -> None:
        """Scan now (a pod of ours was removed: its replacement may be created)."""
        if self.changed is not None:
            self.changed.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="static pods")

    def stop(self) -> None:
        if self.task:
            self.task.cancel()

    async def _run(self) -> None:
        from inotify_simple import INotify, flags
        loop = asyncio.get_running_loop()
        os.makedirs(self.dir, exist_ok=True)
        changed = self.changed = asyncio.Event()
        ino = INotify()
        ino.add_watch(self.dir, flags.CREATE | flags.DELETE | flags.MODIFY | flags.CLOSE_WRITE | flags.MOVED_TO |
                      flags.MOVED_FROM | flags.DELETE_SELF | flags.MOVE_SELF)

        def readable():
            ino.read(timeout=0)
            changed.set()
        loop.add_reader(ino.fileno(), readable)
        try:
            for pod in self.agent.store.list("Pod"):  # ours from before a restart
                src = (pod["metadata"].get("annotations") or {}).get("kubernetes.io/config.source-file")
                if src:
                    self.current[src] = pod
            while True:
                changed.clear()
                try:
                    await self.rescan()
                except Exception:  # noqa: BLE001 - the source goes on; the next scan retries
                    log.exception("static pods: scan of %s failed", self.dir)
                try:
                    await asyncio.wait_for(changed.wait(), RESCAN_S)
                    await asyncio.sleep(0.05)  # let an editor finish its writes
                except asyncio.TimeoutError:
                    pass
        finally:
            loop.remove_reader(ino.fileno())
            ino.close()

    def _read(self, path: str) -> dict | None:
        from ..api.static import load_static
        try:
            if os.path.getsize(path) > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE} bytes")
            with open(path, "rb") as f:
                data = f.read()
            pod, warnings = load_static(data, path, self.agent.node_name)
            for w in warnings:
                log.warning("static pod %s: %s", path, w)
        except Exception as e:  # noqa: BLE001 - a bad file is reported, never fatal to the others
            why = str(e)
            if self.bad.get(path) != why:
                log.error("static pod file %s skipped: %s", path, why)
                self.bad[path] = why
            return None
        self.bad.pop(path, None)
        return pod

    async def rescan(self) -> None:
        want: dict[str, dict] = {}
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            if name.startswith(".") or not os.path.isfile(path):
                continue
            pod = self._read(path)
            if pod is not None:
                want[path] = pod
            elif path in self.current:
                want[path] = self.current[path]  # a bad edit keeps the pod that runs
        for path, old in list(self.current.items()):
            new = want.get(path)
            if new is None or new["metadata"]["uid"] != old["metadata"]["uid"]:
                await self._delete(old)
                if new is None:
                    del self.current[path]
        for path, pod in want.items():
            old = self.current.get(path)
            if old is not None and old["metadata"]["uid"] == pod["metadata"]["uid"] and self._stored(old):
                continue
            md = pod["metadata"]
            existing = self.agent.store.get("Pod", md.get("namespace", "default"), md["name"])
            if existing is not None:
                if existing["metadata"]["uid"] != md["uid"]:
                    continue  # the old pod is still stopping; the next scan creates the new one
                self.current[path] = existing
                continue
            stored = self.agent.store.put(self.agent.admit_static(pod))
            self.current[path] = stored

    def _stored(self, pod: dict) -> bool:
        md = pod["metadata"]
        cur = self.agent.store.get("Pod", md.get("namespace", "default"), md["name"])
        return cur is not None and cur["metadata"]["uid"] == md["uid"]

    async def _delete(self, pod: dict) -> None:
        md = pod["metadata"]
        cur = self.agent.store.get("Pod", md.get("namespace", "default"), md["name"])
        if cur is not None and cur["metadata"]["uid"] == md["uid"] and not cur["metadata"].get("deletionTimestamp"):
            await self.agent.delete("Pod", md.get("namespace", "default"), md["name"])
