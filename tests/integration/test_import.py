"""Import of OCI layouts, oci-archives, docker-archives and rootfs tarballs, checked on a real
overlay mount and side by side with umoci; bad archives get clear errors and store nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from runtime.image.archive import import_path, import_rootfs
from runtime.image.build import (TarEntry, build_image, layer_from_tar, make_tar, write_docker_archive,
                                 write_oci_archive, write_oci_layout)
from runtime.image.digest import digest_bytes
from runtime.image.errors import DigestMismatch, ImageError, ManifestError, NotFound
from runtime.image.store import ImageStore
from runtime.image.testimages import busybox_image, layered_image
from tests.conftest import need_tool

pytestmark = pytest.mark.root
NAME = "kubelet-py.local/layered:1"


@pytest.fixture
def store(tmp_root):
    return ImageStore(tmp_root)


def assert_empty(store: ImageStore) -> None:
    assert os.listdir(store.blobs) == [], "a failed import stored blobs"
    assert os.listdir(store.snapshots) == [], "a failed import stored snapshots"
    assert os.listdir(store.tmp) == []
    assert store.records() == []


class Overlay:
    def __init__(self, tmp_path, lowers):
        self.merged = tmp_path / "merged"
        for d in ("merged", "upper", "work"):
            (tmp_path / d).mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={':'.join(lowers)},upperdir={tmp_path / 'upper'},workdir={tmp_path / 'work'}",
                        str(self.merged)], check=True)

    def close(self):
        subprocess.run(["umount", str(self.merged)], check=True)


def tree(root: str) -> dict:
    """path -> (type, mode, uid, gid, size-or-target) for comparing two unpacked rootfs."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            extra = os.readlink(p) if stat.S_ISLNK(st.st_mode) else st.st_size if stat.S_ISREG(st.st_mode) else None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, extra)
    return out


def check_layered_view(root: str) -> None:
    assert not os.path.lexists(f"{root}/etc/layer1-only.txt")  # whiteout
    assert not os.path.lexists(f"{root}/etc/layer2.txt")  # whiteout of a file from the layer below
    assert open(f"{root}/etc/layer3.txt").read() == "layer 3\n"
    assert sorted(os.listdir(f"{root}/opt/old")) == ["b.txt"]  # opaque dir
    assert os.readlink(f"{root}/data/file-becomes-symlink") == "../etc/hostname"
    assert os.path.isdir(f"{root}/data/symlink-becomes-dir") and not os.path.islink(f"{root}/data/symlink-becomes-dir")
    assert os.listdir(f"{root}/data/symlink-becomes-dir") == ["inside.txt"]
    a, b = os.stat(f"{root}/data/hardlink.txt"), os.stat(f"{root}/data/hardlink-src.txt")
    assert a.st_nlink == 2 and stat.S_IMODE(a.st_mode) == 0o640 and a.st_size == b.st_size == 7
    assert stat.S_IMODE(os.stat(f"{root}/tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(f"{root}/bin/suid-true").st_mode) == 0o4755
    assert os.readlink(f"{root}/bin/sh") == "/bin/busybox"


@pytest.mark.parametrize("fmt,compression", [
    (f, c) for f in ("layout", "oci-archive", "docker-archive") for c in ("mixed", "gzip", "zstd", None)
    if not (f == "docker-archive" and c in ("mixed", "zstd"))  # docker save never writes zstd
])
def test_import_layered_image_and_mount_it(store, tmp_path, fmt, compression):
    im = layered_image(compression)
    path = str(tmp_path / "img")
    if fmt == "layout":
        write_oci_layout(path, {NAME: im})
    elif fmt == "oci-archive":
        write_oci_archive(path, {NAME: im})
    else:
        write_docker_archive(path, {NAME: im})
    (rec,) = import_path(store, path)
    assert rec.name == NAME
    image = store.image(NAME)
    assert image.config.cmd == ("sh",)
    assert len(image.layer_dirs) == 3
    ov = Overlay(tmp_path, list(image.layer_dirs))
    try:
        check_layered_view(str(ov.merged))
    finally:
        ov.close()


def test_same_view_as_umoci(store, tmp_path):
    umoci = need_tool("umoci")
    im = layered_image("gzip")
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, {"layered": im})
    import_path(store, layout, name=NAME)
    subprocess.run([umoci, "unpack", "--image", f"{layout}:layered", str(tmp_path / "bundle")],
                   check=True, capture_output=True)
    ov = Overlay(tmp_path, list(store.image(NAME).layer_dirs))
    try:
        ours = tree(str(ov.merged))
    finally:
        ov.close()
    theirs = tree(str(tmp_path / "bundle" / "rootfs"))
    assert ours == theirs


def test_shared_base_layer_unpacked_once(store, tmp_path):
    write_oci_layout(str(tmp_path / "a"), {"kubelet-py.local/a:1": busybox_image()})
    write_oci_layout(str(tmp_path / "b"), {"kubelet-py.local/b:1": layered_image("gzip")})
    import_path(store, str(tmp_path / "a"))
    assert len(os.listdir(store.snapshots)) == 1
    import_path(store, str(tmp_path / "b"))
    assert len(os.listdir(store.snapshots)) == 3  # the base is shared, two new layers


def test_multiple_refs_in_one_layout(store, tmp_path):
    write_oci_layout(str(tmp_path / "l"), {"kubelet-py.local/a:1": busybox_image(), "b": layered_image("gzip")})
    names = sorted(r.name for r in import_path(store, str(tmp_path / "l")))
    assert names == ["docker.io/library/b:latest", "kubelet-py.local/a:1"]
    with pytest.raises(ImageError, match="--ref"):
        import_path(store, str(tmp_path / "l"), name="x:1")
    (r,) = import_path(store, str(tmp_path / "l"), name="x:1", ref="b")
    assert r.name == "docker.io/library/x:1"


def test_import_rootfs(store, tmp_path):
    src = tmp_path / "rootfs"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "hello").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "bin" / "hello", 0o755)
    tarball = str(tmp_path / "rootfs.tar.gz")
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(str(src), arcname=".")
    rec = import_rootfs(store, tarball, "kubelet-py.local/hello:1", entrypoint=["/bin/hello"], cmd=["x"],
                        env=["A=1"], working_dir="/bin")
    im = store.image(rec.name)
    assert (im.config.entrypoint, im.config.cmd, im.config.env, im.config.working_dir) == \
           (("/bin/hello",), ("x",), ("A=1",), "/bin")
    assert os.access(os.path.join(im.layer_dirs[0], "bin", "hello"), os.X_OK)


def test_rm_and_prune_respect_names_and_leases(store, tmp_path):
    write_oci_layout(str(tmp_path / "a"), {"kubelet-py.local/a:1": busybox_image()})
    write_oci_layout(str(tmp_path / "b"), {"kubelet-py.local/b:1": layered_image("gzip")})
    import_path(store, str(tmp_path / "a"))
    (b,) = import_path(store, str(tmp_path / "b"))
    assert store.prune() == {"blobs": 0, "snapshots": 0, "bytes": 0}
    store.add_lease("ctr-1", [b.digest])
    store.remove("kubelet-py.local/b:1")
    assert store.prune()["snapshots"] == 0  # a container still uses b
    store.remove_lease("ctr-1")
    r = store.prune()
    assert r["snapshots"] == 2 and r["blobs"] == 4  # b's two own layers, its config and manifest
    assert len(os.listdir(store.snapshots)) == 1
    store.image("kubelet-py.local/a:1")  # a is intact
    store.remove("kubelet-py.local/a:1")
    store.prune()
    assert os.listdir(store.blobs) == [] and os.listdir(store.snapshots) == []


# ---- bad input --------------------------------------------------------------------------------

def _layout(tmp_path, manifest: dict | bytes, blobs: dict[str, bytes], media_type: str | None = None) -> str:
    """A layout whose single ref points at the given manifest document."""
    path = str(tmp_path / "bad")
    data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    blobs = dict(blobs)
    blobs[digest_bytes(data)] = data
    write_oci_layout(path, {}, extra=blobs)
    desc = {"mediaType": media_type or "application/vnd.oci.image.manifest.v1+json",
            "digest": digest_bytes(data), "size": len(data),
            "annotations": {"org.opencontainers.image.ref.name": "kubelet-py.local/bad:1"}}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [desc]}, f)
    return path


def _parts():
    im = busybox_image()
    return im, json.loads(im.manifest), im.blobs()


def test_missing_blob(store, tmp_path):
    im, m, blobs = _parts()
    del blobs[im.layers[0].digest]
    with pytest.raises(NotFound, match="missing"):
        import_path(store, _layout(tmp_path, m, blobs))
    assert_empty(store)


def test_layer_count_differs_from_diff_ids(store, tmp_path):
    im, m, blobs = _parts()
    m["layers"].append(m["layers"][0])
    with pytest.raises(ManifestError, match="2 layers but the config has 1"):
        import_path(store, _layout(tmp_path, m, blobs))
    assert_empty(store)


def test_unknown_layer_media_type(store, tmp_path):
    im, m, blobs = _parts()
    m["layers"][0]["mediaType"] = "application/x-evil"
    with pytest.raises(ManifestError, match=r"layers\[0\].mediaType"):
        import_path(store, _layout(tmp_path, m, blobs))
    assert_empty(store)


def test_duplicate_keys_are_rejected(store, tmp_path):  # CVE-2014-8179
    im, m, blobs = _parts()
    raw = json.dumps(m)[:-1] + ', "layers": []}'
    with pytest.raises(ManifestError, match="duplicate key"):
        import_path(store, _layout(tmp_path, raw.encode(), blobs))
    assert_empty(store)


def test_manifest_and_index_at_once(store, tmp_path):  # CVE-2021-41190
    im, m, blobs = _parts()
    m["manifests"] = []
    for mt in ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"):
        with pytest.raises(ManifestError, match="ambiguous|mediaType"):
            import_path(store, _layout(tmp_path, m, blobs, mt))
    assert_empty(store)


@pytest.mark.parametrize("digest", ["sha256:../../../../etc/passwd", "sha256:" + "A" * 64, "sha256:" + "a" * 63,
                                    "md5:" + "a" * 32, 7])
def test_invalid_digests_never_reach_a_path(store, tmp_path, digest):  # CVE-2024-3727
    im, m, blobs = _parts()
    m["layers"][0]["digest"] = digest
    with pytest.raises(ImageError, match="digest"):
        import_path(store, _layout(tmp_path, m, blobs))
    assert_empty(store)


def test_corrupt_blob_in_layout(store, tmp_path):
    im = busybox_image()
    path = str(tmp_path / "l")
    write_oci_layout(path, {"kubelet-py.local/c:1": im})
    blob = os.path.join(path, "blobs", "sha256", im.layers[0].digest.split(":")[1])
    data = bytearray(open(blob, "rb").read())
    data[1000] ^= 0xFF
    open(blob, "wb").write(bytes(data))
    with pytest.raises(DigestMismatch) as e:
        import_path(store, path)
    assert im.layers[0].digest in str(e.value) and "got sha256:" in str(e.value)
    assert_empty(store)


def test_diff_id_mismatch(store, tmp_path):
    good = layer_from_tar(make_tar([TarEntry("f", data=b"1")]))
    good.diff_id = "sha256:" + "2" * 64
    im = build_image([good])
    path = str(tmp_path / "l")
    write_oci_layout(path, {"kubelet-py.local/d:1": im})
    with pytest.raises(DigestMismatch, match="diff_id"):
        import_path(store, path)
    assert_empty(store)


def test_huge_index_json_refused(store, tmp_path):  # CVE-2023-25153
    path = str(tmp_path / "l")
    write_oci_layout(path, {"kubelet-py.local/a:1": busybox_image()})
    with open(os.path.join(path, "index.json"), "ab") as f:
        f.write(b" " * (5 << 20))
    with pytest.raises(ManifestError, match="larger than"):
        import_path(store, path)
    assert_empty(store)


def test_truncated_archive(store, tmp_path):
    path = str(tmp_path / "a.tar")
    write_oci_archive(path, {"kubelet-py.local/a:1": busybox_image()})
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(ImageError):
        import_path(store, path)
    assert_empty(store)


def _docker_archive_with(tmp_path, mutate) -> str:
    path = str(tmp_path / "d.tar")
    write_docker_archive(path, {"kubelet-py.local/d:1": busybox_image()})
    out = str(tmp_path / "d2.tar")
    with tarfile.open(path) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isreg() else None
            if m.name == "manifest.json":
                doc = json.loads(data)
                mutate(doc, dst)
                data = json.dumps(doc).encode()
                m.size = len(data)
            import io
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    return out


def test_docker_archive_paths_cannot_leave_the_archive(store, tmp_path):  # CVE-2014-9358
    def up(doc, _):
        doc[0]["Config"] = "../../../../etc/passwd"
    with pytest.raises(ManifestError, match="inside the archive"):
        import_path(store, _docker_archive_with(tmp_path, up))

    def sym(doc, dst):
        ti = tarfile.TarInfo("evil/layer.tar")
        ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/shadow"
        dst.addfile(ti)
        doc[0]["Layers"] = ["evil/layer.tar"]
    with pytest.raises(NotFound, match="evil/layer.tar"):
        import_path(store, _docker_archive_with(tmp_path, sym))
    assert_empty(store)


def test_not_an_archive(store, tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"hello")
    with pytest.raises(ImageError, match="not a readable tar"):
        import_path(store, str(p))
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ImageError, match="neither an OCI layout"):
        import_path(store, str(tmp_path / "emptydir"))


def kpy(root, *args):
    return subprocess.run([sys.executable, "-m", "kubelet_py.cli", "--root", root, *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("args,needle", [
    (["image", "import", "/nonexistent/x"], "/nonexistent/x: no such file"),
    (["image", "inspect", "UPPER/Case:1"], "invalid image reference"),
    (["image", "inspect", "kubelet-py.local/none:1"], "not found in the store"),
    (["image", "rm", "busybox@sha256:1234"], "invalid image reference"),
    (["image", "import-rootfs", "/nonexistent.tar", "--name", "a:1"], "no such file"),
    (["image", "import-rootfs", "/dev/null", "--name", "a:1", "--env", "NOEQUALS"], "K=V"),
    (["image", "pull", "busybox", "--platform", "linux"], "os/arch"),
])
def test_cli_errors_are_one_clear_line(tmp_root, args, needle):
    r = kpy(tmp_root, *args)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert needle in r.stderr
    assert len(lines) <= 3 and "Traceback" not in r.stderr  # click usage errors take 3 lines


def test_cli_global_options_from_environment(tmp_path):
    root = str(tmp_path / "envroot")
    env = dict(os.environ, KUBELET_PY_ROOT=root)
    r = subprocess.run([sys.executable, "-m", "kubelet_py.cli", "demo"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert os.path.isdir(os.path.join(root, "images", "snapshots"))
    r = subprocess.run([sys.executable, "-m", "kubelet_py.cli", "image", "ls", "-o", "json"], capture_output=True,
                       text=True, env=env)
    assert json.loads(r.stdout)[0]["name"] == "kubelet-py.local/busybox:1.35"


def test_a_containers_rootfs_mounts_with_whole_paths_or_from_its_state_dir(store, tmp_path):
    """runtime.rootfs.mount_rootfs: the overlay's options name the layers by the state dir's
    whole path when they can; a path overlayfs cannot take in its options (a comma, a colon)
    is mounted from inside the state dir (a thread with a cwd of its own), the caller's cwd
    unmoved."""
    from runtime.rootfs import mount_rootfs, remove_rootfs
    write_oci_layout(str(tmp_path / "img"), {NAME: layered_image("gzip")})
    import_path(store, str(tmp_path / "img"))
    layers = list(store.image(NAME).layer_dirs)
    cwd = os.getcwd()
    for name, whole in (("plain", True), ("odd,name:x", False)):
        state, mnt = str(tmp_path / name), str(tmp_path / f"root-{len(name)}")
        mount_rootfs(layers, state, mnt)
        try:
            check_layered_view(mnt)
            line = next(ln for ln in open("/proc/self/mountinfo") if f" {mnt} " in ln)
            assert (f"upperdir={state}/upper" in line) == whole, line
        finally:
            remove_rootfs(state, mnt)
        assert not os.path.exists(mnt) and os.getcwd() == cwd
