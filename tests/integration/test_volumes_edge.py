"""The volume edge on the real kernel: the atomic writer's swap under a concurrent reader, secret
volumes on tmpfs with their modes, subPath symlink escapes refused with nothing outside touched
and the staged mount being the checked object, hostPath types on real sockets and devices,
fsGroup ownership, and teardown that unmounts before it deletes and never crosses a mount."""

from __future__ import annotations

import base64
import os
import socket
import stat
import threading

import pytest

from kubelet_py.volumes import atomic_writer, hostpath
from kubelet_py.volumes.content import VolumeError
from kubelet_py.volumes.manager import VolumeManager
from kubelet_py.volumes.mounts import mounts_under
from kubelet_py.volumes.tree import CrossesMount, remove_tree
from runtime.linux import sys as ksys

pytestmark = [pytest.mark.root]


def _mounts(prefix) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(prefix))]


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    yield r
    for p in reversed(_mounts(tmp_path)):  # a failed test's leftovers
        ksys.umount2(p, ksys.MNT_DETACH)


def _pod(volumes, uid="uid-1", fs_group=None):
    sc = {"fsGroup": fs_group} if fs_group is not None else {}
    return {"metadata": {"name": "p", "namespace": "default", "uid": uid},
            "spec": {"securityContext": sc, "volumes": volumes, "containers": [{"name": "c", "image": "i"}]}}


def test_the_swap_is_atomic_for_a_reader(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    atomic_writer.write(str(d), {"a": (b"0", 0o644), "b": (b"0", 0o644)})
    stop, mixed, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            try:  # both through ..data, as one snapshot: the directory ..data names at that instant
                data = os.readlink(d / "..data")
                a, b = (d / data / "a").read_bytes(), (d / data / "b").read_bytes()
                pa = (d / "a").read_bytes()  # the user-visible link resolves to one complete set
            except FileNotFoundError:  # the old directory went after the swap: read again
                continue
            except Exception as e:  # noqa: BLE001 - reported by the test, not lost in the thread
                mixed.append(e)
                return
            reads[0] += 1
            if a != b:
                mixed.append((a, b))
            if pa not in (str(i).encode() for i in range(200)):
                mixed.append(pa)
    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(1, 200):
            v = str(i).encode()
            assert atomic_writer.write(str(d), {"a": (v, 0o644), "b": (v, 0o644)})
    finally:
        stop.set()
        t.join()
    assert mixed == [] and reads[0] > 0
    assert len([n for n in os.listdir(d) if n.startswith("..2")]) == 1  # every old directory removed


def test_secret_volume_is_a_tmpfs_with_modes_and_fs_group(root):
    vm = VolumeManager(str(root))
    pod = _pod([{"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o400,
                                         "items": [{"key": "k", "path": "k"},
                                                   {"key": "j", "path": "d/j", "mode": 0o600}]}}],
               fs_group=3000)
    sec = {"metadata": {"name": "sec"}, "data": {"k": base64.b64encode(b"v1").decode(),
                                                 "j": base64.b64encode(b"v2").decode()}}
    vm.setup(pod, {("Secret", "sec"): sec})
    vol = root / "kubelet/pods/uid-1/volumes/kubernetes.io~secret/s"
    assert str(vol) in _mounts(root)
    with open("/proc/self/mountinfo") as f:
        line = next(ln for ln in f if ln.split()[4] == str(vol))
    assert " - tmpfs " in line
    k, j = os.stat(vol / "k"), os.stat(vol / "d" / "j")
    assert (stat.S_IMODE(k.st_mode), stat.S_IMODE(j.st_mode)) == (0o440, 0o640)  # fsGroup adds group read
    assert (k.st_gid, j.st_gid) == (3000, 3000)
    assert k.st_dev != os.stat(vol.parent).st_dev  # the bytes live in the tmpfs, not on the disk below
    assert (vol / "k").read_bytes() == b"v1"
    vm.teardown("uid-1")
    assert _mounts(root) == [] and not (root / "kubelet/pods/uid-1").exists()
    vm.teardown("uid-1")  # idempotent


def test_memory_empty_dir_has_its_size_limit_and_disk_usage_is_measured(root):
    vm = VolumeManager(str(root))
    pod = _pod([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                {"name": "e", "emptyDir": {"sizeLimit": "64Ki"}}])
    vm.setup(pod, {})
    m = root / "kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/m"
    e = root / "kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/e"
    assert os.statvfs(m).f_blocks * os.statvfs(m).f_frsize == 1 << 20
    assert stat.S_IMODE(os.stat(e).st_mode) == 0o777
    assert vm.over_limit(pod) == []
    (e / "big").write_bytes(os.urandom(200 << 10))
    os.sync()
    over = vm.over_limit(pod)
    assert [(n, lim) for n, _u, lim in over] == [("e", 64 << 10)] and over[0][1] >= 200 << 10
    vm.teardown("uid-1")
    assert _mounts(root) == []


def test_subpath_escape_is_refused_and_nothing_outside_is_touched(root, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("host")
    before = sorted(os.listdir(canary)), os.stat(canary / "secret")
    vm = VolumeManager(str(root))
    c = {"name": "c", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "esc"},
                                                     {"name": "v", "mountPath": "/y", "subPath": "dir/deeper/f"}]}
    pod = _pod([{"name": "v", "emptyDir": {}}])
    pod["spec"]["containers"] = [c]
    vm.setup(pod, {})
    vol = root / "kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/v"
    os.symlink(str(canary), vol / "esc")  # what a container could do in its emptyDir
    (vol / "dir").mkdir()
    os.symlink("../../../../../../../..", vol / "dir" / "deeper")
    with pytest.raises(VolumeError) as e:
        vm.mounts(pod, "containers", 0)
    assert "leads out of the volume" in str(e.value) and e.value.field == "spec.containers[0].volumeMounts[0].subPath"
    c["volumeMounts"] = c["volumeMounts"][1:]
    with pytest.raises(VolumeError, match="leads out of the volume"):
        vm.mounts(pod, "containers", 0)
    assert sorted(os.listdir(canary)) == before[0]
    after = os.stat(canary / "secret")
    assert (after.st_mtime_ns, after.st_atime_ns, after.st_ino) == (before[1].st_mtime_ns, before[1].st_atime_ns,
                                                                     before[1].st_ino)
    assert mounts_under(str(root / "kubelet/pods/uid-1/volume-subpaths")) == []
    vm.teardown("uid-1")
    assert sorted(os.listdir(canary)) == ["secret"] and (canary / "secret").read_text() == "host"


def test_the_staged_mount_is_the_checked_object_even_if_the_path_is_swapped(root, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    vm = VolumeManager(str(root))
    c = {"name": "c", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "work"}]}
    pod = _pod([{"name": "v", "emptyDir": {}}])
    pod["spec"]["containers"] = [c]
    vm.setup(pod, {})
    vol = root / "kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/v"
    (vol / "work").mkdir()
    (vol / "work" / "mine").write_text("in the volume")
    [m] = vm.mounts(pod, "containers", 0)
    staged = m["source"]
    assert staged.startswith(str(root / "kubelet/pods/uid-1/volume-subpaths/v/c/"))
    os.rename(vol / "work", vol / "moved")
    os.symlink(str(canary), vol / "work")  # after the check: too late, the mount holds the checked dir
    assert os.listdir(staged) == ["mine"]
    assert os.stat(staged).st_ino == os.stat(vol / "moved").st_ino
    with pytest.raises(VolumeError, match="leads out of the volume"):
        vm.mounts(pod, "containers", 0)  # a restart checks again: now refused
    vm.teardown("uid-1")
    assert _mounts(root) == [] and os.listdir(canary) == []


def test_hostpath_types_on_real_files_sockets_and_devices(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    sock = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    blk = tmp_path / "blk"
    os.mknod(blk, stat.S_IFBLK | 0o600, os.makedev(7, 200))
    ok = [(str(tmp_path), "Directory"), (str(f), "File"), (str(sock), "Socket"), ("/dev/null", "CharDevice"),
          (str(blk), "BlockDevice"), (str(f), ""), ("/nonexistent-kpy", "")]
    for path, kind in ok:
        hostpath.prepare(path, kind, "spec.volumes[0].hostPath")
    bad = [(str(f), "Directory", "is not a directory"), (str(tmp_path), "File", "is not a file"),
           (str(f), "Socket", "is not a socket file"), (str(blk), "CharDevice", "is not a character device"),
           ("/dev/null", "BlockDevice", "is not a block device"), (str(tmp_path / "none"), "File", "is not a file"),
           (str(f), "DirectoryOrCreate", "is not a directory"), (str(tmp_path), "FileOrCreate", "is not a file")]
    for path, kind, why in bad:
        with pytest.raises(VolumeError) as e:
            hostpath.prepare(path, kind, "spec.volumes[2].hostPath", "h")
        assert str(e.value) == f"spec.volumes[2].hostPath.type: hostPath type check failed: {path} {why}"
    os.umask(0o022)
    hostpath.prepare(str(tmp_path / "new" / "deep"), "DirectoryOrCreate", "f")
    assert stat.S_IMODE(os.stat(tmp_path / "new" / "deep").st_mode) == 0o755
    hostpath.prepare(str(tmp_path / "new" / "file"), "FileOrCreate", "f")
    assert stat.S_IMODE(os.stat(tmp_path / "new" / "file").st_mode) == 0o644
    with pytest.raises(VolumeError, match="parent directory does not exist"):
        hostpath.prepare(str(tmp_path / "missing" / "file"), "FileOrCreate", "spec.volumes[0].hostPath")
    assert not (tmp_path / "missing").exists()
    s.close()


def test_fs_group_on_an_empty_dir_and_on_root_mismatch(root):
    vm = VolumeManager(str(root))
    pod = _pod([{"name": "e", "emptyDir": {}}], fs_group=4000)
    pod["spec"]["securityContext"]["fsGroupChangePolicy"] = "OnRootMismatch"
    vm.setup(pod, {})
    e = root / "kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/e"
    st = os.stat(e)
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (4000, 0o2777)
    (e / "f").write_text("x")
    assert os.stat(e / "f").st_gid == 4000  # the setgid directory gives new files the group
    os.chown(e / "f", 0, 0)
    os.chmod(e / "f", 0o600)
    vm.setup(pod, {})  # OnRootMismatch: the root is right, nothing below is walked
    assert (os.stat(e / "f").st_gid, stat.S_IMODE(os.stat(e / "f").st_mode)) == (0, 0o600)
    pod["spec"]["securityContext"]["fsGroupChangePolicy"] = "Always"
    vm.setup(pod, {})
    assert (os.stat(e / "f").st_gid, stat.S_IMODE(os.stat(e / "f").st_mode)) == (4000, 0o660)
    vm.teardown("uid-1")


def test_teardown_unmounts_first_and_never_deletes_through_a_mount(root, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "keep").write_text("host data")
    os.symlink(str(host), root / "link-out")
    vm = VolumeManager(str(root))
    pod = _pod([{"name": "e", "emptyDir": {}}, {"name": "h", "hostPath": {"path": str(host)}}])
    c = {"name": "c", "image": "i", "volumeMounts": [{"name": "e", "mountPath": "/x", "subPath": "sub"}]}
    pod["spec"]["containers"] = [c]
    vm.setup(pod, {})
    vm.mounts(pod, "containers", 0)
    pdir = root / "kubelet/pods/uid-1"
    e = pdir / "volumes/kubernetes.io~empty-dir/e"
    os.symlink(str(host), e / "to-host")  # a link the container made: removed, never followed
    # a bind of a host dir under the pod's directory (as a crash could leave): remove_tree refuses it
    trap = e / "trap"
    trap.mkdir()
    ksys.mount(str(host), str(trap), None, ksys.MS_BIND)
    with pytest.raises(CrossesMount):
        remove_tree(str(pdir))
    assert (host / "keep").read_text() == "host data"
    vm.teardown("uid-1")  # unmounts every mount below the pod's dir first, then deletes
    assert not pdir.exists() and _mounts(root) == []
    assert sorted(os.listdir(host)) == ["keep"] and (host / "keep").read_text() == "host data"


def test_gc_removes_the_volumes_of_pods_no_longer_wanted(root):
    vm = VolumeManager(str(root))
    for uid in ("keep-me", "drop-me"):
        vm.setup(_pod([{"name": "m", "emptyDir": {"medium": "Memory"}}], uid=uid), {})
    assert vm.gc({"keep-me"}) == ["volumes of pod drop-me"]
    assert os.listdir(root / "kubelet/pods") == ["keep-me"]
    assert len(_mounts(root)) == 1
    vm.teardown("keep-me")
