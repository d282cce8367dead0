"""Idmapped mounts with user namespaces (issue 15, item 6f): a container's rootfs (annotation
io.kubelet-py.rootfs-idmap) and its bind mounts (mounts[].uidMappings/gidMappings, the runtime
spec's) seen through maps, so that the namespace's root owns what the host's root owns, and its
writes land on disk with the host's ids. Debian's runc 1.1 has no idmapped mounts: checked from
inside against the disk, not side by side. Not in the VM group (its kernel, 6.1, cannot idmap
the overlayfs its test dirs live on); the host's filesystem (ext4) can."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from tests.integration.leaks import cgroups_under, mounts_under, remove_cgroup_tree
from tests.integration.runtime_helpers import busybox_rootfs

pytestmark = [pytest.mark.root]

OCI = os.path.join(os.path.dirname(sys.executable), "kubelet-py-oci")
MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
PROBE = r"""
ls -ln / | awk 'NR > 1 && $NF == "bin" { print "root-owner", $3 ":" $4 }'
ls -ln /vol | awk 'NR > 1 { print "vol-owner", $NF, $3 ":" $4 }'
touch /written-by-root 2>&1 && echo root-write-ok
(echo hi > /vol/written) 2>/dev/null && echo vol-write-ok; true
"""


@pytest.fixture
def world(tmp_path_factory):
    """A rootfs and a volume below /var/tmp (open to the namespace's root on the way; pytest's
    tmp dirs are 0700), owned by the host's root."""
    src = busybox_rootfs(tmp_path_factory.mktemp("idmap"), PROBE)
    d = tempfile.mkdtemp(prefix="kpy-idmap-", dir="/var/tmp")
    try:
        os.chmod(d, 0o755)
        shutil.copytree(src, f"{d}/rootfs", symlinks=True)
        os.mkdir(f"{d}/rootfs/vol")
        os.mkdir(f"{d}/vol", 0o755)
        with open(f"{d}/vol/data", "w") as f:
            f.write("host's\n")
        yield d
    finally:
        shutil.rmtree(d)


def _doc(world: str, rootfs_idmap: bool, vol_idmap: bool) -> dict:
    doc = {"ociVersion": "1.0.2", "root": {"path": f"{world}/rootfs"},
           "process": {"args": ["sh", "/probe.sh"], "cwd": "/", "env": ["PATH=/bin:/sbin"],
                       "user": {"uid": 0, "gid": 0}},
           "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                      {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                      {"destination": "/vol", "type": "bind", "source": f"{world}/vol", "options": ["rbind"]}],
           "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network", "user")],
                     "uidMappings": MAP, "gidMappings": MAP}}
    if rootfs_idmap:
        doc["annotations"] = {"io.kubelet-py.rootfs-idmap": "true"}
    if vol_idmap:
        doc["mounts"][-1].update(uidMappings=MAP, gidMappings=MAP)
    return doc


def _run(tmp_path, doc: dict, name: str = "c") -> subprocess.CompletedProcess:
    cid = f"kpyidm-{uuid.uuid4().hex[:8]}"
    doc["linux"]["cgroupsPath"] = f"/{cid}/{name}"
    b = tmp_path / f"bundle-{name}"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    try:
        return subprocess.run([OCI, "--root", str(tmp_path / "state"), "run", "--bundle", str(b), cid],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        left = cgroups_under(cid)
        remove_cgroup_tree(cid)
        assert left == []


def test_without_idmapped_mounts_the_hosts_root_is_nobody(tmp_path, world):
    """The baseline (runc's view, test_vs_runc): the host's root is unmapped, 65534, and the
    namespace's root cannot write what it owns."""
    p = _run(tmp_path, _doc(world, False, False))
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "root-owner 65534:65534" in out and "vol-owner data 65534:65534" in out, out
    assert "root-write-ok" not in out and "vol-write-ok" not in out, out


def test_idmapped_rootfs_and_volume_are_the_namespaces_roots(tmp_path, world):
    p = _run(tmp_path, _doc(world, True, True))
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "root-owner 0:0" in out and "vol-owner data 0:0" in out, out
    assert "root-write-ok" in out and "vol-write-ok" in out, out
    # on disk, the namespace's root wrote as the host's root (the maps undone), nothing else
    for path in (f"{world}/rootfs/written-by-root", f"{world}/vol/written"):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (0, 0), path
    assert mounts_under(world) == []


def test_a_volume_alone_can_be_idmapped(tmp_path, world):
    p = _run(tmp_path, _doc(world, False, True))
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "root-owner 65534:65534" in out and "vol-owner data 0:0" in out and "vol-write-ok" in out, out


def test_an_overlay_rootfs_is_mapped_or_refused_naming_the_annotation(tmp_path, world):
    """overlayfs itself cannot be idmapped on most kernels (its layers can): the error names the
    annotation and says so; a kernel that can maps it."""
    merged = f"{world}/merged"
    for d in ("upper", "work", "merged"):
        os.mkdir(f"{world}/{d}")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={world}/rootfs,upperdir={world}/upper,workdir={world}/work", merged], check=True)
    try:
        doc = _doc(world, True, False)
        doc["root"]["path"] = merged
        p = _run(tmp_path, doc)
    finally:
        subprocess.run(["umount", merged], check=True)
    if p.returncode == 0:
        assert "root-owner 0:0" in p.stdout, p.stdout
    else:
        assert "config.json: annotations.io.kubelet-py.rootfs-idmap: an idmapped mount of" in p.stderr and \
            "overlayfs: only its layers can" in p.stderr, p.stderr


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["linux"].update(namespaces=[n for n in d["linux"]["namespaces"] if n["type"] != "user"],
                                 uidMappings=None, gidMappings=None),
     "annotations.io.kubelet-py.rootfs-idmap: needs a new user namespace"),
    (lambda d: d["mounts"][0].update(uidMappings=MAP, gidMappings=MAP), "mounts[0].uidMappings: idmapped mounts are"),
    (lambda d: d["mounts"][-1].pop("gidMappings"), "mounts[2].gidMappings: must be a non-empty list"),
])
def test_idmaps_the_executor_refuses_name_the_field(tmp_path, world, mutate, field):
    doc = _doc(world, True, True)
    mutate(doc)
    p = _run(tmp_path, doc)
    assert p.returncode == 1 and f"config.json: {field}" in p.stderr, p.stderr


def test_a_generated_host_users_false_container_runs(tmp_path, world):
    """The request the kubelet makes for hostUsers: false (ContainerRequest.host_users, the pod's
    id range) gives a config the executor runs: the range mapped to 0..65535, the rootfs and the
    volume the namespace's root's, nothing of the host's root writable but them."""
    from runtime.cgroups import detect
    from runtime.image.manifest import ImageConfig
    from runtime.oci.generate import ContainerRequest, generate
    cfg = ImageConfig("amd64", "linux", (), cmd=("sh",), env=("PATH=/bin:/sbin",))
    req = ContainerRequest(name="u", command=["sh", "-c", "cat /proc/self/uid_map; sh /probe.sh"], host_users=False,
                           user_ids=(65536 * 7, 65536), extra_mounts=[
                               {"destination": "/vol", "type": "bind", "source": f"{world}/vol", "options": ["rbind"]}])
    doc = generate(req, cfg, f"{world}/rootfs", "x", detect(), nofile_hard=4096)
    p = _run(tmp_path, doc)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0].split() == ["0", str(65536 * 7), "65536"], out
    assert "root-owner 0:0" in out and "vol-owner data 0:0" in out and "vol-write-ok" in out, out
    st = os.stat(f"{world}/vol/written")
    assert (st.st_uid, st.st_gid) == (0, 0)
