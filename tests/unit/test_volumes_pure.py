"""Volumes, the pure parts: payloads of configMap/secret/downwardAPI/projected volumes, the plan
(dirs, tmpfs, mounts, propagation, subPathExpr), hostPath type rules, fsGroup modes, subPath
link resolution; and the atomic writer's layout and the handle-based subPath walk on a plain
temporary directory (no mounts, no root)."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from kubelet_py.volumes import atomic_writer, content, hostpath, ownership, plan, subpath
from kubelet_py.volumes.content import VolumeError


def _pod(volumes, containers=None, **spec):
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"b": "2", "a": 'x"y'},
                         "annotations": {"k": "v"}},
            "spec": {"volumes": volumes, "containers": containers or [{"name": "c", "image": "i"}], **spec}}


CM = {"metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"},
      "binaryData": {"bin": base64.b64encode(b"\0\1").decode()}}
SEC = {"metadata": {"name": "s"}, "data": {"user": base64.b64encode(b"admin").decode()}}


# ---- payloads ------------------------------------------------------------------------------

def test_configmap_all_keys_with_default_mode_and_binary_data():
    pod = _pod([{"name": "v", "configMap": {"name": "cm"}}])
    assert content.payload(pod["spec"]["volumes"][0], 0, pod, {("ConfigMap", "cm"): CM}, {}) == {
        "a": (b"1", 0o644), "b": (b"2", 0o644), "bin": (b"\0\1", 0o644)}


def test_configmap_items_modes_and_missing_key():
    vol = {"name": "v", "configMap": {"name": "cm", "defaultMode": 0o600,
                                      "items": [{"key": "a", "path": "x/a.txt", "mode": 0o400},
                                                {"key": "b", "path": "b"}]}}
    pod = _pod([vol])
    assert content.payload(vol, 0, pod, {("ConfigMap", "cm"): CM}, {}) == {"x/a.txt": (b"1", 0o400), "b": (b"2", 0o600)}
    vol["configMap"]["items"].append({"key": "nope", "path": "n"})
    with pytest.raises(VolumeError) as e:
        content.payload(vol, 0, pod, {("ConfigMap", "cm"): CM}, {})
    assert e.value.field == "spec.volumes[0].configMap.items[2].key" and e.value.retry
    assert "configmap references non-existent config key: nope" in str(e.value)
    vol["configMap"]["optional"] = True
    assert "n" not in content.payload(vol, 0, pod, {("ConfigMap", "cm"): CM}, {})


def test_missing_objects_fail_unless_optional():
    vol = {"name": "v", "secret": {"secretName": "gone"}}
    with pytest.raises(VolumeError) as e:
        content.payload(vol, 3, _pod([]), {("Secret", "gone"): None}, {})
    assert str(e.value) == 'spec.volumes[3].secret: secret "gone" not found' and e.value.retry
    vol["secret"]["optional"] = True
    assert content.payload(vol, 3, _pod([]), {("Secret", "gone"): None}, {}) == {}


def test_secret_data_is_decoded_and_string_data_wins():
    s = {**SEC, "stringData": {"pw": "p"}}
    vol = {"name": "v", "secret": {"secretName": "s", "defaultMode": 0o400}}
    assert content.payload(vol, 0, _pod([vol]), {("Secret", "s"): s}, {}) == {"user": (b"admin", 0o400),
                                                                              "pw": (b"p", 0o400)}


def test_downward_api_fields_labels_and_resources():
    vol = {"name": "v", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "one", "fieldRef": {"fieldPath": "metadata.labels['b']"}, "mode": 0o600},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "requests.memory", "divisor": "1Mi"}}]}}
    c = {"name": "c", "image": "i", "resources": {"requests": {"memory": "1.5Mi"}}}
    pod = _pod([vol], [c])
    got = content.payload(vol, 0, pod, {}, {"cpu": "2", "memory": "1Gi"})
    assert got["labels"] == (b'a="x\\"y"\nb="2"', 0o644)
    assert got["one"] == (b"2", 0o600) and got["name"] == (b"p", 0o644)
    assert got["cpu"] == (b"2000", 0o644)  # no limit: the node's allocatable
    assert got["mem"] == (b"2", 0o644)  # ceil(1.5)


def test_projected_merges_sources_and_refuses_service_account_tokens():
    vol = {"name": "v", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cm", "items": [{"key": "a", "path": "cm-a"}]}},
        {"secret": {"name": "s"}},
        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}
    pod = _pod([vol])
    assert content.payload(vol, 0, pod, {("ConfigMap", "cm"): CM, ("Secret", "s"): SEC}, {}) == {
        "cm-a": (b"1", 0o440), "user": (b"admin", 0o440), "ns": (b"ns", 0o440)}
    vol["projected"]["sources"].append({"serviceAccountToken": {"path": "token"}})
    with pytest.raises(VolumeError) as e:
        content.payload(vol, 0, pod, {("ConfigMap", "cm"): CM, ("Secret", "s"): SEC}, {})
    assert e.value.field == "spec.volumes[0].projected.sources[3].serviceAccountToken"
    assert "not supported" in str(e.value)


def test_referenced_objects_and_bad_payload_paths():
    pod = _pod([{"name": "a", "configMap": {"name": "c1"}}, {"name": "b", "secret": {"secretName": "s1"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "s2"}}, {"configMap": {"name": "c2"}}]}}])
    assert content.referenced(pod) == {("ConfigMap", "c1"), ("ConfigMap", "c2"), ("Secret", "s1"), ("Secret", "s2")}
    for bad in ("../x", "/abs", "..hidden", "a/../b"):
        with pytest.raises(VolumeError):
            content.check_payload({bad: (b"", 0o644)}, "f")


# ---- plan ----------------------------------------------------------------------------------

def test_plan_paths_tmpfs_and_limits():
    pod = _pod([{"name": "e", "emptyDir": {"sizeLimit": "1Mi"}},
                {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "s", "secret": {"secretName": "x"}}, {"name": "c", "configMap": {"name": "x"}},
                {"name": "h", "hostPath": {"path": "/srv", "type": "Directory"}}])
    e, m, s, c, h = plan.plan_volumes(pod, "/r")
    assert e.path == "/r/kubelet/pods/u-1/volumes/kubernetes.io~empty-dir/e"
    assert e.tmpfs is None and e.size_limit == 1 << 20
    assert m.tmpfs == "mode=0777,size=67108864"
    assert s.tmpfs and s.read_only and s.path.endswith("kubernetes.io~secret/s")
    assert c.tmpfs is None and c.read_only  # configMaps on disk, mounted read-only
    assert (h.path, h.host_type, h.owned) == ("/srv", "Directory", False)
    with pytest.raises(VolumeError, match="nfs is not supported"):
        plan.plan_volumes(_pod([{"name": "n", "nfs": {"server": "x", "path": "/"}}]), "/r")


def test_container_mounts_options_order_subpaths_and_propagation():
    c = {"name": "c", "image": "i", "env": [{"name": "POD", "value": "p1"}], "volumeMounts": [
        {"name": "e", "mountPath": "/a/b"}, {"name": "e", "mountPath": "/a", "readOnly": True},
        {"name": "e", "mountPath": "/logs", "subPathExpr": "$(POD)/logs"},
        {"name": "h", "mountPath": "/h", "mountPropagation": "HostToContainer"},
        {"name": "c", "mountPath": "/cfg"}]}
    pod = _pod([{"name": "e", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/srv"}},
                {"name": "c", "configMap": {"name": "x"}}], [c])
    vols = plan.plan_volumes(pod, "/r")
    ms = plan.container_mounts(pod, "containers", 0, vols, "/r", {"POD": "p1"})
    assert [m.destination for m in ms] == ["/a", "/logs", "/h", "/cfg", "/a/b"]
    by = {m.destination: m for m in ms}
    assert by["/a"].options == ("rbind", "rprivate", "ro") and by["/a/b"].options == ("rbind", "rprivate", "rw")
    assert by["/h"].options == ("rbind", "rslave", "rw") and by["/h"].source == "/srv"
    assert by["/cfg"].options[-1] == "ro"  # API data: always read-only
    assert by["/logs"].subpath == "p1/logs" and by["/logs"].source == "/r/kubelet/pods/u-1/volume-subpaths/e/c/2"
    assert by["/logs"].oci() == {"destination": "/logs", "type": "bind", "source": by["/logs"].source,
                                 "options": ["rbind", "rprivate", "rw"]}


def test_bidirectional_needs_privileged_and_subpath_expr_cannot_escape():
    c = {"name": "c", "image": "i",
         "volumeMounts": [{"name": "h", "mountPath": "/h", "mountPropagation": "Bidirectional"}]}
    pod = _pod([{"name": "h", "hostPath": {"path": "/srv"}}], [c])
    with pytest.raises(VolumeError, match="only to privileged"):
        plan.container_mounts(pod, "containers", 0, plan.plan_volumes(pod, "/r"), "/r")
    c["securityContext"] = {"privileged": True}
    assert plan.container_mounts(pod, "containers", 0, plan.plan_volumes(pod, "/r"), "/r")[0].options[1] == "rshared"
    c["volumeMounts"] = [{"name": "h", "mountPath": "/h", "subPathExpr": "$(X)"}]
    with pytest.raises(VolumeError, match="subPathExpr"):
        plan.container_mounts(pod, "containers", 0, plan.plan_volumes(pod, "/r"), "/r", {"X": "../etc"})


def test_subpath_dotdot_is_a_validation_error():
    from kubelet_py.api.load import admit
    from kubelet_py.api.errors import ApiError
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"volumes": [{"name": "v", "emptyDir": {}}],
                    "containers": [{"name": "c", "image": "i",
                                    "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "a/../../b"}]}]}}
    with pytest.raises(ApiError) as e:
        admit(doc)
    assert "spec.containers[0].volumeMounts[0].subPath" in str(e.value) and "must not contain '..'" in str(e.value)


# ---- hostPath, fsGroup, subPath rules ------------------------------------------------------

@pytest.mark.parametrize("kind,mode,want", [
    ("", None, None), ("", stat.S_IFREG, None),
    ("Directory", stat.S_IFDIR, None), ("Directory", stat.S_IFREG, "is not a directory"),
    ("Directory", None, "is not a directory"), ("DirectoryOrCreate", None, None),
    ("DirectoryOrCreate", stat.S_IFREG, "is not a directory"),
    ("File", stat.S_IFREG, None), ("File", stat.S_IFDIR, "is not a file"), ("File", None, "is not a file"),
    ("FileOrCreate", None, None), ("FileOrCreate", stat.S_IFDIR, "is not a file"),
    ("Socket", stat.S_IFSOCK, None), ("Socket", stat.S_IFREG, "is not a socket file"),
    ("CharDevice", stat.S_IFCHR, None), ("CharDevice", stat.S_IFBLK, "is not a character device"),
    ("BlockDevice", stat.S_IFBLK, None), ("BlockDevice", stat.S_IFCHR, "is not a block device")])
def test_hostpath_type_rules(kind, mode, want):
    got = hostpath.check(kind, "/p", mode)
    assert got == (None if want is None else f"hostPath type check failed: /p {want}")


def test_fs_group_modes_and_on_root_mismatch():
    assert ownership.group_mode(0o644, False, False) == 0o664
    assert ownership.group_mode(0o600, False, True) == 0o640
    assert ownership.group_mode(0o755, True, False) == 0o2775
    assert ownership.group_mode(0o777, True, False) == 0o2777
    st = os.stat_result((stat.S_IFDIR | 0o2775, 0, 0, 0, 0, 2000, 0, 0, 0, 0))
    assert ownership.skip_change("OnRootMismatch", st, 2000, False)
    assert not ownership.skip_change("Always", st, 2000, False)
    assert not ownership.skip_change("OnRootMismatch", st, 2001, False)
    st = os.stat_result((stat.S_IFDIR | 0o775, 0, 0, 0, 0, 2000, 0, 0, 0, 0))
    assert not ownership.skip_change("OnRootMismatch", st, 2000, False)  # no setgid: not done


def test_subpath_link_resolution_rules():
    assert subpath.resolve_link(0, "a/b") == (0, ["a", "b"])
    assert subpath.resolve_link(2, "../x") == (1, ["x"])
    assert subpath.resolve_link(1, "../../x") is None  # above the volume's root
    assert subpath.resolve_link(3, "/etc") is None  # absolute: the host's, never the volume's
    assert subpath.resolve_link(1, "a/../../b") == (1, ["b"])
    with pytest.raises(ValueError):
        subpath.components("a/../b")
    with pytest.raises(ValueError):
        subpath.components("/a")


def test_open_beneath_follows_links_inside_and_refuses_links_out(tmp_path):
    vol, outside = tmp_path / "vol", tmp_path / "outside"
    vol.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("no")
    (vol / "d").mkdir()
    (vol / "d" / "f").write_text("yes")
    os.symlink("d", vol / "in")
    os.symlink("../outside", vol / "out")
    os.symlink(str(outside), vol / "abs")
    os.symlink("../../outside", vol / "d" / "deep")
    fd = subpath.open_beneath(str(vol), "in/f", "f")
    try:
        assert os.stat(f"/proc/self/fd/{fd}").st_ino == os.stat(vol / "d" / "f").st_ino
    finally:
        os.close(fd)
    for sp in ("out", "abs", "out/secret", "d/deep", "d/deep/secret", "in/deep"):
        with pytest.raises(VolumeError, match="leads out of the volume"):
            subpath.open_beneath(str(vol), sp, "spec.containers[0].volumeMounts[0].subPath")
    fd = subpath.open_beneath(str(vol), "new/dir", "f")  # missing: made as directories
    os.close(fd)
    assert (vol / "new" / "dir").is_dir()
    assert sorted(os.listdir(outside)) == ["secret"]


# ---- the atomic writer's layout (a plain directory) ------------------------------------------

def test_atomic_writer_layout_update_and_no_op(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    assert atomic_writer.write(str(d), {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)}, now=0)
    data = os.readlink(d / "..data")
    assert data.startswith("..1970_01_01_00_00_00.")
    assert os.readlink(d / "a") == "..data/a" and os.readlink(d / "sub") == "..data/sub"
    assert (d / "sub" / "b").read_bytes() == b"2" and stat.S_IMODE(os.stat(d / "sub" / "b").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d / data).st_mode) == 0o755
    assert not atomic_writer.write(str(d), {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)})  # same: nothing written
    assert os.readlink(d / "..data") == data
    assert atomic_writer.write(str(d), {"a": (b"new", 0o644), "c": (b"3", 0o644)})
    new = os.readlink(d / "..data")
    assert new != data and not (d / data).exists()
    assert sorted(os.listdir(d)) == sorted(["..data", new, "a", "c"])  # the stale `sub` link went
    assert (d / "a").read_bytes() == b"new"


def test_atomic_writer_mode_change_is_an_update(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    atomic_writer.write(str(d), {"a": (b"1", 0o644)})
    assert atomic_writer.write(str(d), {"a": (b"1", 0o400)})
    assert stat.S_IMODE(os.stat(d / "a").st_mode) == 0o400
