"""volumeMounts' mountPropagation end to end, through a real `kubelet-py serve` and the CLI:

- HostToContainer: a tmpfs the host mounts under a shared hostPath after the container started
  is seen inside it (and its unmount too);
- Bidirectional (privileged): a tmpfs the container mounts under its mount point is seen by the
  host; the container unmounts it when it is stopped (upstream's contract: the kubelet never
  touches what is under a hostPath, the container must unmount what it mounted), so deleting the
  pod leaves nothing on the host, while a container that does not unmount leaves its mount there;
- HostToContainer on a hostPath whose mount is private: CreateContainerError naming the path and
  its mount, in containerd's words, retried: once the mount is made shared the container starts.

This host's / is private, so each test makes its own host dir a shared (or private) mount point,
and unmounts everything under it at the end, even on failure. Pod names carry a `volprop-` prefix."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.e2e.daemon import Daemon, status_of
from tests.integration.leaks import mounts_under

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"


def _container(name: str, script: str, propagation: str, privileged: bool = False) -> dict:
    c = {"name": name, "image": IMAGE, "command": ["sh", "-c", script],
         "volumeMounts": [{"name": "h", "mountPath": "/vol", "mountPropagation": propagation}]}
    if privileged:
        c["securityContext"] = {"privileged": True}
    return c


def _pod(name: str, script: str, host_dir: str, propagation: str, privileged: bool = False, more=()) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [_container("c", script, propagation, privileged), *more],
                                "terminationGracePeriodSeconds": 10,
                                "volumes": [{"name": "h", "hostPath": {"path": host_dir, "type": "Directory"}}]}})


def _running(p) -> bool:
    sts = (p.get("status") or {}).get("containerStatuses") or [{}]
    return (p.get("status") or {}).get("phase") == "Running" and all("running" in (s.get("state") or {}) for s in sts)


def _exec(d: Daemon, pod: str, script: str) -> str:
    return d.cli("exec", pod, "--", "sh", "-c", script).stdout.strip()


def _until(pred, timeout: float = 15, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _delete(d: Daemon, name: str, uid: str) -> None:
    d.cli("delete", "pod", name)
    pod_dir = os.path.join(d.root, "kubelet", "pods", uid)
    assert _until(lambda: not os.path.exists(pod_dir), 30, 0.2), f"pod {name} not gone in 30 s"


def _host_dir(tmp_path, name: str, make: str):
    """A host dir bound on itself and made `make` (shared, private); every mount under it goes at
    the end."""
    d = os.path.realpath(tmp_path / name)
    os.mkdir(d)
    subprocess.run(["mount", "--bind", d, d], check=True)
    try:  # private first: a peer group of its own, also where / is shared (systemd's hosts)
        subprocess.run(["mount", "--make-private", d], check=True)
        if make != "private":
            subprocess.run(["mount", f"--make-{make}", d], check=True)
        yield d
    finally:
        subprocess.run(["umount", "-R", d], check=True)
    assert mounts_under(d) == []


@pytest.fixture
def shared_dir(tmp_path):
    yield from _host_dir(tmp_path, "shared", "shared")


@pytest.fixture
def private_dir(tmp_path):
    yield from _host_dir(tmp_path, "private", "private")


def test_host_to_container_sees_what_the_host_mounts_later(shared_dir, d):
    d.apply(_pod("volprop-h2c", "sleep 3600", shared_dir, "HostToContainer"))
    pod = d.wait_for("volprop-h2c", _running, 60, what="Running")
    assert "master:" in _exec(d, "volprop-h2c", "grep ' /vol ' /proc/self/mountinfo")  # rslave
    sub = os.path.join(shared_dir, "sub")
    os.mkdir(sub)
    subprocess.run(["mount", "-t", "tmpfs", "kpy-e2e-host", sub], check=True)
    with open(os.path.join(sub, "flag"), "w") as f:
        f.write("from-host")
    assert _until(lambda: _exec(d, "volprop-h2c", "cat /vol/sub/flag 2>/dev/null; true") == "from-host"), \
        "the host's mount did not reach the container"
    subprocess.run(["umount", sub], check=True)  # and the unmount reaches it too
    assert _until(lambda: _exec(d, "volprop-h2c", "grep -c ' /vol/sub ' /proc/self/mountinfo; true") == "0")
    _delete(d, "volprop-h2c", pod["metadata"]["uid"])
    assert mounts_under(shared_dir) == [shared_dir]


BIDIRECTIONAL = ("trap 'umount /vol/in && rmdir /vol/in; exit 0' TERM; "
                 "mkdir -p /vol/in && mount -t tmpfs kpy-e2e-container /vol/in && echo from-container > /vol/in/f; "
                 "sleep 3600 & wait")
KEPT = "mkdir -p /vol/kept && mount -t tmpfs kpy-e2e-kept /vol/kept && touch /vol/kept/f; sleep 3600"


def test_bidirectional_mounts_reach_the_host_and_go_with_the_pod(shared_dir, d):
    """Two privileged containers: `c` unmounts its tmpfs when stopped (as upstream asks of them),
    `kept` does not; the kubelet never unmounts anything under a hostPath for it, as upstream's."""
    d.apply(_pod("volprop-bidi", BIDIRECTIONAL, shared_dir, "Bidirectional", privileged=True,
                 more=[_container("kept", KEPT, "Bidirectional", privileged=True)]))
    pod = d.wait_for("volprop-bidi", _running, 60, what="Running")
    inner, kept = os.path.join(shared_dir, "in"), os.path.join(shared_dir, "kept")
    assert _until(lambda: os.path.exists(os.path.join(inner, "f")) and os.path.exists(os.path.join(kept, "f"))), \
        "the containers' mounts did not reach the host"
    assert os.path.ismount(inner) and open(os.path.join(inner, "f")).read() == "from-container\n"
    assert "shared:" in _exec(d, "volprop-bidi", "grep ' /vol ' /proc/self/mountinfo")  # rshared
    _delete(d, "volprop-bidi", pod["metadata"]["uid"])
    # `c` unmounted its own when it was stopped, and the unmount reached the host; `kept`'s stays
    assert mounts_under(shared_dir) == [shared_dir, kept]
    assert not os.path.exists(inner) and os.path.exists(os.path.join(kept, "f"))
    subprocess.run(["umount", kept], check=True)


def test_host_to_container_on_a_private_mount_fails_naming_the_path(private_dir, d):
    d.apply(_pod("volprop-priv", "sleep 3600", private_dir, "HostToContainer"))
    want = f'path "{private_dir}" is mounted on "{private_dir}" but it is not a shared or slave mount'
    pod = d.wait_for("volprop-priv", lambda p: want in ((status_of(p, "c").get("state") or {}).get("waiting") or {})
                     .get("message", ""), 60, what="CreateContainerError")
    waiting = status_of(pod, "c")["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerError", waiting
    assert "/vol (rslave)" in waiting["message"], waiting
    assert pod["status"]["phase"] == "Pending"
    assert want in d.cli("describe", "pod", "volprop-priv").stdout  # the Failed event says it too
    # retried as upstream retries a CreateContainerError: once the mount is shared, it starts
    subprocess.run(["mount", "--make-shared", private_dir], check=True)
    pod = d.wait_for("volprop-priv", _running, 40, what="Running once the hostPath's mount is shared")
    assert "master:" in _exec(d, "volprop-priv", "grep ' /vol ' /proc/self/mountinfo")
    _delete(d, "volprop-priv", pod["metadata"]["uid"])
