"""The desired state: every object the agent was given (Pods, Namespaces, and the kinds later
issues implement), checkpointed before anything acts on it, with watches.

    <root>/kubelet/objects/<kind>/<namespace>/<name>.json   one file per object, mode 0600,
                                                           written atomically (Secrets too: never
                                                           anywhere else on disk)
    <root>/kubelet/objects/<kind>/_cluster/<name>.json      cluster-scoped kinds (Namespace)

An object is a plain dict in the Kubernetes JSON shape. `resourceVersion` is one counter over
the store, as an API server's; a watcher gets ADDED / MODIFIED / DELETED events in order. The
store never mutates what it is given or hands out: callers get copies. Used from the daemon's
event loop only (no locks)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os

from runtime.atomicfile import is_temp_name, write_json_atomic

log = logging.getLogger("kubelet_py.store")
CLUSTER = "_cluster"  # the directory of cluster-scoped objects
CLUSTER_SCOPED = {"Namespace", "Node"}


def key_of(obj: dict) -> tuple[str, str, str]:
    md = obj.get("metadata") or {}
    kind = obj.get("kind", "")
    return kind, "" if kind in CLUSTER_SCOPED else md.get("namespace") or "default", md.get("name", "")


class Watch:
    """A queue of (event type, object) for one watcher; closed by the store when dropped."""

    def __init__(self, store: "ObjectStore", kind: str, namespace: str | None, maxsize: int = 10000):
        self.store, self.kind, self.namespace = store, kind, namespace
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)
        self.overflowed = False

    def matches(self, kind: str, namespace: str) -> bool:
        return kind == self.kind and (self.namespace is None or namespace == self.namespace)

    def close(self) -> None:
        self.store.watches.discard(self)


class ObjectStore:
    def __init__(self, root: str):
        self.dir = os.path.join(root, "kubelet", "objects")
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.version = 0
        self.watches: set[Watch] = set()

    # ---- persistence -----------------------------------------------------------------------
    def _path(self, key: tuple[str, str, str]) -> str:
        kind, ns, name = key
        return os.path.join(self.dir, kind, ns or CLUSTER, f"{name}.json")

    def load(self) -> list[str]:
        """Read the checkpoint back (at start); returns the files that could not be read."""
        bad = []
        for kind in sorted(os.listdir(self.dir)) if os.path.isdir(self.dir) else []:
            for ns in sorted(os.listdir(os.path.join(self.dir, kind))):
                d = os.path.join(self.dir, kind, ns)
                for name in sorted(os.listdir(d)):
                    path = os.path.join(d, name)
                    if is_temp_name(name):
                        os.unlink(path)  # a write the crash interrupted: the old file stands
                        continue
                    try:
                        with open(path) as f:
                            obj = json.load(f)
                        self.objects[key_of(obj)] = obj
                        self.version = max(self.version, int(obj["metadata"].get("resourceVersion") or 0))
                    except (OSError, ValueError, KeyError, TypeError) as e:
                        log.error("checkpoint %s unreadable: %s", path, e)
                        bad.append(path)
        return bad

    def _write(self, key, obj: dict, durable: bool = True) -> None:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_json_atomic(path, obj, 0o600, durable=durable)

    def _unlink(self, key) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    # ---- reads -----------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        obj = self.objects.get((kind, "" if kind in CLUSTER_SCOPED else namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        return [copy.deepcopy(o) for (k, ns, _n), o in sorted(self.objects.items())
                if k == kind and (namespace is None or ns == namespace)]

    # ---- writes ----------------------------------------------------------------------------
    def put(self, obj: dict, durable: bool = True) -> dict:
        """Store `obj` (its metadata already set by the API layer) under a new resourceVersion,
        checkpointed before it is visible; returns the stored copy. `durable=False`: written,
        never torn, but not fsync'ed (a pod's status: recomputed from the runtime after a
        restart, while an fsync on the event loop cost 1-5 ms per change here)."""
        key = key_of(obj)
        obj = copy.deepcopy(obj)
        self.version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self._write(key, obj, durable)
        kind = "MODIFIED" if key in self.objects else "ADDED"
        self.objects[key] = obj
        self._notify(kind, key, obj)
        return copy.deepcopy(obj)

    def remove(self, kind: str, namespace: str, name: str) -> dict | None:
        key = (kind, "" if kind in CLUSTER_SCOPED else namespace, name)
        obj = self.objects.pop(key, None)
        if obj is None:
            return None
        self._unlink(key)
        self.version += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.version)}}
        self._notify("DELETED", key, obj)
        return copy.deepcopy(obj)

    def watch(self, kind: str, namespace: str | None = None) -> Watch:
        w = Watch(self, kind, namespace)
        self.watches.add(w)
        return w

    def _notify(self, event: str, key, obj: dict) -> None:
        for w in list(self.watches):
            if w.matches(key[0], key[1]):
                try:
                    w.queue.put_nowait((event, copy.deepcopy(obj)))
                except asyncio.QueueFull:  # a watcher that does not read is dropped, not waited for
                    w.overflowed = True
                    w.close()
