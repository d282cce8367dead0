"""The limits a user sets on what an import or pull may store (--max-layer-size, --max-image-size,
--max-layer-entries, or their KUBELET_PY_* env vars), through the CLI against a real store and a
real registry (Debian's docker-registry): every import format, import-rootfs and pull over each
limit fails with one line naming the layer digest, the limit and what was seen, and leaves nothing
(no blob, snapshot, temp file, index entry); at and under the limits the same images are stored."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest

from runtime.image.build import (TarEntry, build_image, layer_from_tar, make_tar, write_docker_archive,
                                 write_oci_archive, write_oci_layout)
from tests.conftest import need_tool
from tests.integration.registry_fixture import Registry

pytestmark = pytest.mark.root

MI = 1 << 20
LIMIT_LINE = re.compile(r"^kubelet-py: error: layer (sha256:[0-9a-f]{64}): (.+) exceeds the (max-[a-z-]+) limit of "
                        r"(\d+) (bytes|entries) \((\d+) (?:bytes|entries) seen\)$")
PROGRESS_LINE = re.compile(r"^[0-9a-f]{12}: (downloaded|unpacked) \d+ bytes$")


# ---- helpers ---------------------------------------------------------------------------------

def kpy(root: str, *args: str, env: dict | None = None, registries: str | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUBELET_PY_MAX_")}
    reg = ["--registries", registries] if registries else ["--registries", "/nonexistent/registries.yaml"]
    return subprocess.run([sys.executable, "-m", "kubelet_py.cli", "--root", root, *reg, *args],
                          capture_output=True, text=True, timeout=120, env={**clean, **(env or {})})


def limit_error(r: subprocess.CompletedProcess) -> tuple[str, str, str, int, int]:
    """(layer digest, what, limit name, limit, seen) of the one-line error of a failed command."""
    assert r.returncode == 1, (r.stdout, r.stderr)
    *progress, line = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr, r.stderr
    assert all(PROGRESS_LINE.match(p) for p in progress), r.stderr  # a pull's lines, then one error line
    m = LIMIT_LINE.match(line)
    assert m, line
    return m.group(1), m.group(2), m.group(3), int(m.group(4)), int(m.group(6))


def _listdir(p: str) -> list[str]:
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def store_state(root: str) -> dict:
    base = os.path.join(root, "images")
    index = {}
    if os.path.exists(os.path.join(base, "index.json")):
        with open(os.path.join(base, "index.json")) as f:
            index = json.load(f).get("images", {})
    return {"blobs": _listdir(os.path.join(base, "blobs", "sha256")),
            "snapshots": _listdir(os.path.join(base, "snapshots", "sha256")),
            "index": sorted(index), "tmp": _listdir(os.path.join(base, "tmp"))}


def assert_nothing_stored(root: str) -> None:
    assert store_state(root) == {"blobs": [], "snapshots": [], "index": [], "tmp": []}


def names(root: str) -> list[str]:
    r = kpy(root, "image", "ls", "-o", "json")
    assert r.returncode == 0, r.stderr
    return [im["name"] for im in json.loads(r.stdout)]


def hexof(digest: str) -> str:
    return digest.split(":", 1)[1]


def zeros_layer(name: str, n: int):
    """A layer of one file of `n` zero bytes, gzip'd: a blob of a few KiB that unpacks to n bytes."""
    return layer_from_tar(make_tar([TarEntry(name, data=bytes(n))]), "gzip")


def small_layer():
    return layer_from_tar(make_tar([TarEntry("etc/", "dir"), TarEntry("etc/hostname", data=b"limits\n")]), "gzip")


def tar_size(layer) -> int:
    return len(gzip.decompress(layer.blob))


def write(fmt: str, path: str, name: str, im) -> str:
    if fmt == "layout":
        write_oci_layout(path, {name: im})
    elif fmt == "oci-archive":
        write_oci_archive(path, {name: im})
    else:
        write_docker_archive(path, {name: im})
    return path


FORMATS = ["layout", "oci-archive", "docker-archive"]


@pytest.fixture(scope="module")
def zeros_image():
    """A small base layer and a 4 MiB-of-zeros layer (tiny blob, big unpacked)."""
    return build_image([small_layer(), zeros_layer("zeros", 4 * MI)], cmd=["sh"])


# ---- import ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_import_over_the_layer_limit_leaves_nothing(tmp_root, tmp_path, zeros_image, fmt):
    path = write(fmt, str(tmp_path / f"img-{fmt}"), "kubelet-py.local/zeros:1", zeros_image)
    big = zeros_image.layers[1]
    digest, what, name, limit, seen = limit_error(kpy(tmp_root, "--max-layer-size", "1Mi", "image", "import", path))
    assert (digest, what, name, limit) == (big.digest, "uncompressed size", "max-layer-size", MI)
    assert MI < seen <= 2 * MI  # stopped at the limit, not at the end of the layer
    assert_nothing_stored(tmp_root)  # the base layer, unpacked first, is gone too
    r = kpy(tmp_root, "image", "import", path, env={"KUBELET_PY_MAX_LAYER_SIZE": "8Mi"})
    assert r.returncode == 0, r.stderr
    assert names(tmp_root) == ["kubelet-py.local/zeros:1"]
    assert hexof(big.diff_id) in store_state(tmp_root)["snapshots"]


def test_layer_limit_is_inclusive(tmp_root, tmp_path, zeros_image):
    path = write("layout", str(tmp_path / "img"), "kubelet-py.local/zeros:1", zeros_image)
    exact = tar_size(zeros_image.layers[1])
    digest, _, _, limit, seen = limit_error(kpy(tmp_root, "--max-layer-size", str(exact - 1), "image", "import", path))
    assert (digest, limit, seen) == (zeros_image.layers[1].digest, exact - 1, exact)
    assert_nothing_stored(tmp_root)
    r = kpy(tmp_root, "--max-layer-size", str(exact), "image", "import", path)
    assert r.returncode == 0, r.stderr
    assert names(tmp_root) == ["kubelet-py.local/zeros:1"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_import_declared_blob_over_the_limit_is_refused_before_unpacking(tmp_root, tmp_path, fmt):
    rnd = layer_from_tar(make_tar([TarEntry("random.bin", data=os.urandom(2 * MI))]), None)
    im = build_image([small_layer(), rnd], cmd=["sh"])
    path = write(fmt, str(tmp_path / f"img-{fmt}"), "kubelet-py.local/random:1", im)
    digest, what, name, limit, seen = limit_error(kpy(tmp_root, "--max-layer-size", "2M", "image", "import", path))
    assert (digest, what, name, limit, seen) == (rnd.digest, "blob size declared by the manifest", "max-layer-size",
                                                 2 * 10**6, rnd.size)
    assert_nothing_stored(tmp_root)


@pytest.mark.parametrize("fmt", FORMATS)
def test_import_over_the_image_limit_leaves_nothing(tmp_root, tmp_path, fmt):
    a, b = zeros_layer("a", 3 * MI), zeros_layer("b", 3 * MI)
    im = build_image([a, b], cmd=["sh"])
    path = write(fmt, str(tmp_path / f"img-{fmt}"), "kubelet-py.local/two:1", im)
    digest, what, name, limit, seen = limit_error(
        kpy(tmp_root, "image", "import", path, env={"KUBELET_PY_MAX_IMAGE_SIZE": "5Mi"}))
    assert (digest, what, name, limit) == (b.digest, "uncompressed size of the image's layers", "max-image-size",
                                           5 * MI)
    assert 5 * MI < seen <= tar_size(a) + tar_size(b)
    assert_nothing_stored(tmp_root)
    r = kpy(tmp_root, "--max-image-size", str(tar_size(a) + tar_size(b)), "image", "import", path)
    assert r.returncode == 0, r.stderr
    assert names(tmp_root) == ["kubelet-py.local/two:1"]


def test_import_over_the_entries_limit(tmp_root, tmp_path):
    many = layer_from_tar(make_tar([TarEntry(f"f{i:03}", data=b"x") for i in range(30)]), "gzip")
    path = write("layout", str(tmp_path / "img"), "kubelet-py.local/many:1", build_image([many]))
    digest, what, name, limit, seen = limit_error(kpy(tmp_root, "--max-layer-entries", "29", "image", "import", path))
    assert (digest, what, name, limit, seen) == (many.digest, "number of tar entries", "max-layer-entries", 29, 30)
    assert_nothing_stored(tmp_root)
    r = kpy(tmp_root, "image", "import", path, env={"KUBELET_PY_MAX_LAYER_ENTRIES": "30"})
    assert r.returncode == 0, r.stderr


def test_a_stored_layer_counts_toward_the_limits(tmp_root, tmp_path, zeros_image):
    """Limits are the image's: a layer already stored (under larger limits) still counts, and the
    failure leaves the image that holds it untouched."""
    first = write("layout", str(tmp_path / "first"), "kubelet-py.local/zeros:1", zeros_image)
    assert kpy(tmp_root, "image", "import", first).returncode == 0
    before = store_state(tmp_root)
    big = zeros_image.layers[1]
    other = build_image([big, small_layer(), zeros_layer("more", 64 << 10)], cmd=["sh"])
    second = write("layout", str(tmp_path / "second"), "kubelet-py.local/other:1", other)
    digest, what, name, limit, seen = limit_error(kpy(tmp_root, "--max-layer-size", "1Mi", "image", "import", second))
    assert (digest, what, name, limit, seen) == (big.digest, "uncompressed size", "max-layer-size", MI, tar_size(big))
    assert store_state(tmp_root) == before
    r = kpy(tmp_root, "image", "inspect", "kubelet-py.local/zeros:1")
    assert r.returncode == 0, r.stderr


# ---- import-rootfs ---------------------------------------------------------------------------

def _rootfs(path: str, data: bytes, mode: str) -> str:
    src = os.path.join(os.path.dirname(path), "payload")
    with open(src, "wb") as f:
        f.write(data)
    with tarfile.open(path, mode) as tf:
        tf.add(src, arcname="payload")
    return path


def _sha256_file(path: str) -> str:
    import hashlib
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize("flag,name", [("--max-layer-size", "max-layer-size"), ("--max-image-size", "max-image-size")])
def test_import_rootfs_over_the_limits(tmp_root, tmp_path, flag, name):
    tarball = _rootfs(str(tmp_path / "rootfs.tar.gz"), bytes(4 * MI), "w:gz")
    digest, what, lname, limit, seen = limit_error(
        kpy(tmp_root, flag, "1Mi", "image", "import-rootfs", tarball, "--name", "kubelet-py.local/r:1"))
    what_expected = "uncompressed size" if name == "max-layer-size" else "uncompressed size of the image's layers"
    assert (digest, what, lname, limit) == (_sha256_file(tarball), what_expected, name, MI)
    assert MI < seen <= 2 * MI
    assert_nothing_stored(tmp_root)
    r = kpy(tmp_root, flag, "5Mi", "image", "import-rootfs", tarball, "--name", "kubelet-py.local/r:1")
    assert r.returncode == 0, r.stderr
    assert names(tmp_root) == ["kubelet-py.local/r:1"]


def test_import_rootfs_file_over_the_limit_is_refused_before_unpacking(tmp_root, tmp_path):
    tarball = _rootfs(str(tmp_path / "rootfs.tar"), os.urandom(2 * MI), "w")
    digest, what, name, limit, seen = limit_error(
        kpy(tmp_root, "--max-layer-size", "1Mi", "image", "import-rootfs", tarball, "--name", "kubelet-py.local/r:1"))
    assert (digest, what, name, limit, seen) == (_sha256_file(tarball), f"size of {tarball}", "max-layer-size", MI,
                                                 os.path.getsize(tarball))
    assert_nothing_stored(tmp_root)


# ---- pull ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory, zeros_image):
    """A plain-http registry holding kpy/zeros:1 (zeros_image) and kpy/random:1 (a base layer and a
    2 MiB layer of random bytes, uncompressed: its blob is as big as its tar)."""
    for t in ("docker-registry", "skopeo"):
        need_tool(t)
    rnd = layer_from_tar(make_tar([TarEntry("random.bin", data=os.urandom(2 * MI))]), None)
    random_image = build_image([small_layer(), rnd], cmd=["sh"])
    layout = str(tmp_path_factory.mktemp("layout"))
    write_oci_layout(layout, {"zeros": zeros_image, "random": random_image})
    reg = Registry(str(tmp_path_factory.mktemp("registry"))).start()
    try:
        reg.push_layout(layout, "zeros", "kpy/zeros:1")
        reg.push_layout(layout, "random", "kpy/random:1")
        reg.images = {"zeros": zeros_image, "random": random_image}
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def regfile(tmp_path, registry):
    return registry.registries_yaml(str(tmp_path / "registries.yaml"))


def test_pull_over_the_layer_limit_leaves_nothing(tmp_root, registry, regfile):
    big = registry.images["zeros"].layers[1]
    r = kpy(tmp_root, "image", "pull", f"{registry.host}/kpy/zeros:1", registries=regfile,
            env={"KUBELET_PY_MAX_LAYER_SIZE": "1Mi"})
    digest, what, name, limit, seen = limit_error(r)
    assert (digest, what, name, limit) == (big.digest, "uncompressed size", "max-layer-size", MI)
    assert MI < seen <= 2 * MI
    assert_nothing_stored(tmp_root)


def test_pull_over_the_image_limit_leaves_nothing(tmp_root, registry, regfile):
    im = registry.images["zeros"]
    r = kpy(tmp_root, "--max-image-size", "2Mi", "image", "pull", f"{registry.host}/kpy/zeros:1", registries=regfile)
    digest, what, name, limit, seen = limit_error(r)
    assert (digest, what, name, limit) == (im.layers[1].digest, "uncompressed size of the image's layers",
                                           "max-image-size", 2 * MI)
    assert 2 * MI < seen <= 3 * MI + tar_size(im.layers[0])
    assert_nothing_stored(tmp_root)


def test_pull_of_a_declared_blob_over_the_limit_downloads_nothing(tmp_root, registry, regfile):
    rnd = registry.images["random"].layers[1]
    fetched_before = registry.blob_gets()
    r = kpy(tmp_root, "--max-layer-size", "1Mi", "image", "pull", f"{registry.host}/kpy/random:1",
            registries=regfile)
    digest, what, name, limit, seen = limit_error(r)
    assert (digest, what, name, limit, seen) == (rnd.digest, "blob size declared by the manifest", "max-layer-size",
                                                 MI, rnd.size)
    assert_nothing_stored(tmp_root)
    fetched = registry.blob_gets()[len(fetched_before):]
    assert fetched, "the config blob is fetched before the sizes are checked"  # the log does show our GETs
    assert rnd.digest not in fetched
    assert registry.images["random"].layers[0].digest not in fetched  # no layer at all


def test_pull_under_the_limits_is_stored(tmp_root, registry, regfile):
    for repo in ("zeros", "random"):
        r = kpy(tmp_root, "--max-layer-size", "5Mi", "--max-image-size", "6Mi", "--max-layer-entries", "10",
                "image", "pull", f"{registry.host}/kpy/{repo}:1", registries=regfile)
        assert r.returncode == 0, r.stderr
    assert names(tmp_root) == [f"{registry.host}/kpy/random:1", f"{registry.host}/kpy/zeros:1"]
    snaps = store_state(tmp_root)["snapshots"]
    for im in registry.images.values():
        assert all(hexof(ly.diff_id) in snaps for ly in im.layers)
