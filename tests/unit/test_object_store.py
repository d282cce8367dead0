"""kubelet_py/config/store.py: the desired state is fsync'ed before it is acted on; a status is
written (read back by a restart) without the fsync."""

from __future__ import annotations

import os

from kubelet_py.config.store import ObjectStore


def test_a_put_is_fsynced_unless_not_durable(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))[1])
    store = ObjectStore(str(tmp_path))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "default"}, "spec": {}}
    store.put(pod)
    assert len(synced) == 2 and synced[1] == os.path.dirname(store._path(("Pod", "default", "a")))  # file, dir
    synced.clear()
    store.put({**pod, "status": {"phase": "Running"}}, durable=False)
    assert synced == []
    again = ObjectStore(str(tmp_path))
    assert again.load() == [] and again.get("Pod", "default", "a")["status"] == {"phase": "Running"}
