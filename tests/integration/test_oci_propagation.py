"""Bind mounts' propagation (a mount's `rslave`/`rshared` option with linux.rootfsPropagation, as
containerd writes them for HostToContainer/Bidirectional volumeMounts), run side by side with
Debian's runc on the same config.json (from `runc spec`):

- rslave: a tmpfs the host mounts under the source after the container started is seen inside;
  rprivate (the control): it is not;
- rshared: a tmpfs the container mounts under its mount point is seen by the host, and its
  unmount in the container reaches the host too.

The source is a host dir made a shared mount point of its own (this host's / is private); every
mount the test or a container made under it goes with it, even on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import need_tool
from tests.integration.leaks import cgroups_under, mounts_under, remove_cgroup_tree
from tests.integration.runtime_helpers import busybox_rootfs

pytestmark = [pytest.mark.root]

OCI = os.path.join(os.path.dirname(sys.executable), "kubelet-py-oci")
WAIT = 'i=0; while [ ! -e "$1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done'
# the container's mounts at and below /vol: mount point and propagation, peer group numbers dropped
SHOW = r"""awk '$5 ~ /^\/vol/ {o=""; for (i = 7; $i != "-"; i++) { f = $i; sub(/:[0-9]+$/, "", f); o = o " " f }
print "mnt", $5, "[" o " ]"}' /proc/self/mountinfo | sort"""
PROBE = f"""wait_for() {{ {WAIT}; }}
case "$MODE" in
host-to-container)
  touch /vol/started
  wait_for /vol/sub/flag
  ls /vol/sub
  {SHOW} ;;
bidirectional)
  mkdir -p /vol/in && mount -t tmpfs made-inside /vol/in && touch /vol/in/from-container
  wait_for /vol/in/ack
  {SHOW}
  umount /vol/in && echo unmounted ;;
esac
"""


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return busybox_rootfs(tmp_path_factory.mktemp("propagation"), PROBE)


@pytest.fixture
def shared_dir(tmp_path):
    """A host dir bound on itself and made shared: the source of the volume."""
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    try:  # private first: a peer group of its own, also where / is shared (systemd's hosts)
        subprocess.run(["mount", "--make-private", str(d)], check=True)
        subprocess.run(["mount", "--make-shared", str(d)], check=True)
        yield d
    finally:
        subprocess.run(["umount", "-R", str(d)], check=True)
    assert mounts_under(str(d)) == []


def _doc(tmp_path, rootfs: str, mode: str, source: str, propagation: str, root_propagation: str | None) -> dict:
    d = tmp_path / "spec"
    d.mkdir(exist_ok=True)
    subprocess.run([need_tool("runc"), "spec"], cwd=d, check=True)
    doc = json.loads((d / "config.json").read_text())
    doc["process"].update(terminal=False, args=["sh", "/probe.sh"], env=doc["process"]["env"] + [f"MODE={mode}"])
    doc["root"].update(path=rootfs, readonly=True)
    doc["mounts"].append({"destination": "/vol", "type": "bind", "source": source,
                          "options": ["rbind", propagation, "rw"]})
    if root_propagation:
        doc["linux"]["rootfsPropagation"] = root_propagation
    if mode == "bidirectional":  # mount(2) inside: CAP_SYS_ADMIN, as a privileged container has
        for k in ("bounding", "effective", "permitted"):
            doc["process"]["capabilities"][k].append("CAP_SYS_ADMIN")
    return doc


def _start(tmp_path, name: str, doc: dict) -> tuple[subprocess.Popen, str]:
    cid = f"kpyprop-{uuid.uuid4().hex[:8]}"
    doc = json.loads(json.dumps(doc))
    doc["linux"]["cgroupsPath"] = f"/{cid}/{name}"
    b = tmp_path / f"bundle-{name}"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    cmd = ([need_tool("runc"), "--root", str(tmp_path / "runc-state")] if name == "runc"
           else [OCI, "--root", str(tmp_path / "oci-state")])
    p = subprocess.Popen(cmd + ["run", "--bundle", str(b), f"{cid}-{name}"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    return p, cid


def _finish(p: subprocess.Popen, cid: str) -> str:
    try:
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        left = cgroups_under(cid)
        remove_cgroup_tree(cid)
    assert left == [], left
    assert p.returncode == 0, err
    return out


def _wait_path(path, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("propagation,seen", [("rslave", True), ("rprivate", False)])
def test_host_mounts_reach_an_rslave_mount_as_under_runc(tmp_path, rootfs, shared_dir, propagation, seen):
    outs = {}
    started = shared_dir / "started"
    doc = _doc(tmp_path, rootfs, "host-to-container", str(shared_dir), propagation,
               "rslave" if propagation == "rslave" else None)
    for name in ("runc", "ours"):
        p, cid = _start(tmp_path, name, doc)
        sub = shared_dir / "sub"
        try:
            assert _wait_path(started), f"{name}: the container did not start"
            sub.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "made-on-host", str(sub)], check=True)
            (sub / "flag").write_text("x")
        finally:
            outs[name] = _finish(p, cid)
            if os.path.ismount(sub):
                subprocess.run(["umount", str(sub)], check=True)
            if sub.exists():
                sub.rmdir()
            started.unlink(missing_ok=True)
    assert outs["ours"] == outs["runc"], outs
    lines = outs["ours"].splitlines()
    assert ("flag" in lines) is seen, lines
    if seen:
        assert "mnt /vol [ master ]" in lines and "mnt /vol/sub [ master ]" in lines, lines
    else:
        assert "mnt /vol [ ]" in lines and not any(ln.startswith("mnt /vol/sub") for ln in lines), lines


def test_container_mounts_reach_the_host_through_an_rshared_mount_as_under_runc(tmp_path, rootfs, shared_dir):
    outs = {}
    inner = shared_dir / "in"
    doc = _doc(tmp_path, rootfs, "bidirectional", str(shared_dir), "rshared", "rshared")
    for name in ("runc", "ours"):
        p, cid = _start(tmp_path, name, doc)
        try:
            assert _wait_path(inner / "from-container"), f"{name}: the container's mount did not reach the host"
            assert os.path.ismount(inner)
            (inner / "ack").write_text("x")
        finally:
            outs[name] = _finish(p, cid)
        # the container's unmount reached the host too: nothing of it is left here
        assert mounts_under(str(shared_dir)) == [str(shared_dir)], name
        assert not (inner / "from-container").exists()
        inner.rmdir()
    assert outs["ours"] == outs["runc"], outs
    lines = outs["ours"].splitlines()
    assert "mnt /vol [ shared ]" in lines and "mnt /vol/in [ shared ]" in lines and "unmounted" in lines, lines
