"""`kubelet-py image pull` against a real registry (Debian's docker-registry), images pushed
with skopeo: by tag, by digest, multi-platform indexes, TLS + Basic auth, missing tags, blobs
corrupted on the registry's disk, the registry dying mid-download, and layer sharing.

Every failure case also checks that nothing of the failed pull stays in the store."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import subprocess
import sys

import pytest

from runtime.image.build import TarEntry, build_image, layer_from_tar, make_index, make_tar, write_oci_layout
from runtime.image.manifest import Platform, host_platform
from runtime.image.registries import load_registries
from runtime.image.registry import pull
from runtime.image.store import ImageStore
from runtime.image.testimages import BUSYBOX, busybox_image, layered_image
from tests.conftest import need_tool
from tests.integration.registry_fixture import PASSWORD, USER, Registry, StallingProxy, wait_for

pytestmark = pytest.mark.root

REPO = "kpy/busybox"
TAG = "1.35"


# ---- helpers -------------------------------------------------------------------------------

def kpy(root: str, registries: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubelet_py.cli", "--root", root, "--registries", registries, *args],
                          capture_output=True, text=True, timeout=timeout)


def image_pull(root: str, registries: str, ref: str, *extra: str) -> subprocess.CompletedProcess:
    return kpy(root, registries, "image", "pull", *extra, ref)


def ls(root: str, registries: str) -> list[dict]:
    r = kpy(root, registries, "image", "ls", "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def inspect(root: str, registries: str, ref: str) -> dict:
    r = kpy(root, registries, "image", "inspect", ref)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _listdir(p: str) -> list[str]:
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def store_state(root: str) -> dict:
    """What the store holds: blob and snapshot names, index entries, temp files."""
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


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("kubelet-py: error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def hexof(digest: str) -> str:
    return digest.split(":", 1)[1]


def other_platform() -> Platform:
    return Platform("linux", "arm64", "v8") if host_platform().architecture != "arm64" else Platform("linux", "amd64")


def plat_arg(p: Platform) -> str:
    return "/".join(x for x in (p.os, p.architecture, p.variant) if x)


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def tools():
    for t in ("docker-registry", "skopeo", "htpasswd", "openssl"):
        need_tool(t)


@pytest.fixture(scope="module")
def images():
    host = busybox_image(labels={"arch": host_platform().architecture}, platform=host_platform())
    other = busybox_image(labels={"arch": other_platform().architecture}, platform=other_platform())
    return {"busybox": busybox_image(), "layered": layered_image(), "host": host, "other": other,
            "index": make_index([host, other])}


@pytest.fixture(scope="module")
def layout(tmp_path_factory, images):
    """One OCI layout holding every test image, as the ref names skopeo copies from."""
    d = str(tmp_path_factory.mktemp("layout"))
    extra = {**images["host"].blobs(), **images["other"].blobs()}
    write_oci_layout(d, {"busybox": images["busybox"], "layered": images["layered"], "multi": images["index"]},
                     extra=extra)
    return d


@pytest.fixture(scope="module")
def plain(tmp_path_factory, layout):
    """A plain-http registry with kpy/busybox:1.35, kpy/layered:1.35 and kpy/multi:1.0 (an index)."""
    reg = Registry(str(tmp_path_factory.mktemp("plain"))).start()
    try:
        reg.push_layout(layout, "busybox", f"{REPO}:{TAG}")
        reg.push_layout(layout, "layered", f"kpy/layered:{TAG}")
        reg.push_layout(layout, "multi", "kpy/multi:1.0", all_platforms=True)
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def secure(tmp_path_factory, layout):
    """An https registry (self-signed CA) with htpasswd Basic auth, holding kpy/busybox:1.35."""
    reg = Registry(str(tmp_path_factory.mktemp("tls")), tls=True).start()
    try:
        reg.push_layout(layout, "busybox", f"{REPO}:{TAG}")
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def private_registry(tmp_path):
    """A registry of the test's own, for tests that damage or kill it."""
    regs = []

    def make(**kw) -> Registry:
        reg = Registry(str(tmp_path / f"registry{len(regs)}"), **kw)
        regs.append(reg)
        return reg.start()
    yield make
    for reg in regs:
        reg.stop()


@pytest.fixture
def regfile(tmp_path, plain):
    return plain.registries_yaml(str(tmp_path / "registries.yaml"))


# ---- tests ---------------------------------------------------------------------------------

def test_pull_by_tag(tmp_root, plain, regfile, images):
    name = f"{plain.host}/{REPO}:{TAG}"
    r = image_pull(tmp_root, regfile, name)
    assert r.returncode == 0, r.stderr
    served = sha256(plain.raw_manifest(f"{REPO}:{TAG}"))
    assert served == images["busybox"].manifest_digest
    assert r.stdout.split() == [name, served]
    (layer,) = images["busybox"].layers
    size = len(images["busybox"].config) + layer.size
    assert ls(tmp_root, regfile) == [{"name": name, "digest": served, "size": size,
                                      "created": "1970-01-01T00:00:00Z"}]
    snap = os.path.join(tmp_root, "images", "snapshots", "sha256", hexof(layer.diff_id))
    assert _listdir(os.path.join(tmp_root, "images", "snapshots", "sha256")) == [hexof(layer.diff_id)]
    assert filecmp.cmp(os.path.join(snap, "fs", "bin", "busybox"), BUSYBOX, shallow=False)
    assert os.readlink(os.path.join(snap, "fs", "bin", "sh")) == "/bin/busybox"
    # the layer, config and manifest blobs, verified, under their digests
    assert set(store_state(tmp_root)["blobs"]) == {hexof(d) for d in images["busybox"].blobs()}
    assert store_state(tmp_root)["tmp"] == []


def test_pull_by_digest(tmp_root, plain, regfile, images):
    digest = images["busybox"].manifest_digest
    name = f"{plain.host}/{REPO}@{digest}"
    r = image_pull(tmp_root, regfile, name)
    assert r.returncode == 0, r.stderr
    assert [(i["name"], i["digest"]) for i in ls(tmp_root, regfile)] == [(name, digest)]
    # a digest this repository does not have (it is layered's manifest, in another repository)
    absent = f"{plain.host}/{REPO}@{images['layered'].manifest_digest}"
    line = one_line_error(image_pull(tmp_root, regfile, absent))
    assert absent in line and "not found" in line
    assert [i["name"] for i in ls(tmp_root, regfile)] == [name]


def test_multi_platform_index(tmp_root, plain, regfile, images):
    name = f"{plain.host}/kpy/multi:1.0"
    index_digest = sha256(plain.raw_manifest("kpy/multi:1.0"))
    assert index_digest == sha256(images["index"])
    r = image_pull(tmp_root, regfile, name)
    assert r.returncode == 0, r.stderr
    doc = inspect(tmp_root, regfile, name)
    assert doc["digest"] == images["host"].manifest_digest
    assert doc["index"] == index_digest
    assert doc["config"]["config"]["Labels"] == {"arch": host_platform().architecture}
    assert doc["config"]["architecture"] == host_platform().architecture
    blobs = store_state(tmp_root)["blobs"]
    assert hexof(index_digest) in blobs and hexof(images["other"].manifest_digest) not in blobs

    other = other_platform()
    r = image_pull(tmp_root, regfile, name, "--platform", plat_arg(other))
    assert r.returncode == 0, r.stderr
    doc = inspect(tmp_root, regfile, name)
    assert doc["digest"] == images["other"].manifest_digest
    assert doc["index"] == index_digest
    assert doc["config"]["config"]["Labels"] == {"arch": other.architecture}
    assert doc["config"]["architecture"] == other.architecture

    # a platform the index does not offer: a clear error, and the stored image is untouched
    line = one_line_error(image_pull(tmp_root, regfile, name, "--platform", "linux/s390x"))
    assert "linux/s390x" in line
    assert inspect(tmp_root, regfile, name)["digest"] == images["other"].manifest_digest


def test_tls_and_basic_auth(tmp_path, secure, images):
    name = f"{secure.host}/{REPO}:{TAG}"
    good = secure.registries_yaml(str(tmp_path / "good.yaml"))
    root = str(tmp_path / "ok")
    r = image_pull(root, good, name)
    assert r.returncode == 0, r.stderr
    assert [(i["name"], i["digest"]) for i in ls(root, good)] == [(name, images["busybox"].manifest_digest)]

    bad = secure.registries_yaml(str(tmp_path / "bad.yaml"), password="not-the-password")
    root = str(tmp_path / "badpass")
    line = one_line_error(image_pull(root, bad, name))
    assert "authentication" in line and name in line
    assert PASSWORD not in line and "not-the-password" not in line  # no password in messages
    assert_nothing_stored(root)

    # no CA configured: the self-signed certificate is refused, not silently accepted
    noca = str(tmp_path / "noca.yaml")
    with open(noca, "w") as f:
        json.dump({"configs": {secure.host: {"auth": {"username": USER, "password": PASSWORD}}}}, f)
    root = str(tmp_path / "noca")
    line = one_line_error(image_pull(root, noca, name))
    assert "certificate" in line.lower() or "tls" in line.lower()
    assert_nothing_stored(root)


def test_missing_tag(tmp_root, plain, regfile):
    name = f"{plain.host}/{REPO}:no-such-tag"
    line = one_line_error(image_pull(tmp_root, regfile, name))
    assert name in line and "not found" in line
    assert_nothing_stored(tmp_root)


@pytest.mark.parametrize("damage", ["same-size", "longer", "shorter"])
def test_corrupted_blob_on_registry(tmp_path, private_registry, layout, images, damage):
    reg = private_registry()
    reg.push_layout(layout, "busybox", f"{REPO}:{TAG}")
    (layer,) = images["busybox"].layers
    data_file = reg.blob_data(layer.digest)
    with open(data_file, "rb") as f:
        blob = f.read()
    assert sha256(blob) == layer.digest
    mid = len(blob) // 2
    damaged = {"same-size": blob[:mid] + bytes(b ^ 0xFF for b in blob[mid:mid + 64]) + blob[mid + 64:],
               "longer": blob + b"trailing junk",
               "shorter": blob[:mid]}[damage]
    with open(data_file, "wb") as f:
        f.write(damaged)
    root = str(tmp_path / "root")
    line = one_line_error(image_pull(root, reg.registries_yaml(str(tmp_path / "r.yaml")), f"{reg.host}/{REPO}:{TAG}"))
    assert layer.digest in line
    assert ("digest mismatch" if damage == "same-size" else "size mismatch") in line
    assert_nothing_stored(root)


BIG = 24 << 20


@pytest.fixture(scope="module")
def big_layout(tmp_path_factory, images):
    """busybox (as `busybox`) and `big`: busybox's base layer + a layer of 24 MiB of random
    (incompressible) bytes, uncompressed, so a download takes a while and can be broken."""
    base = images["busybox"].layers[0]
    big_layer = layer_from_tar(make_tar([TarEntry("data/", "dir"),
                                         TarEntry("data/random.bin", data=os.urandom(BIG))]), None)
    big = build_image([base, big_layer], cmd=["sh"])
    d = str(tmp_path_factory.mktemp("big"))
    write_oci_layout(d, {"big": big, "busybox": images["busybox"]})
    return d, big, big_layer


def test_registry_killed_mid_pull(tmp_path, private_registry, big_layout):
    """The registry is SIGKILLed while a layer is downloading. Over loopback a 24 MiB blob
    arrives in milliseconds, so a StallingProxy between the puller and the registry holds
    the blob response after 8 MiB: the kill then lands mid-blob every time. The proxy passes the
    registry's death on (the connection closes; new ones are refused), as a direct connection
    would see it."""
    reg = private_registry()
    lay, big, big_layer = big_layout
    reg.push_layout(lay, "busybox", f"{REPO}:{TAG}")
    reg.push_layout(lay, "big", f"kpy/big:{TAG}")
    proxy = StallingProxy(reg.port)
    try:
        regs = reg.registries_yaml(str(tmp_path / "r.yaml"), endpoint=f"http://127.0.0.1:{proxy.port}")
        root = str(tmp_path / "root")
        # something already stored, which the failed pull must leave alone: the shared base layer
        assert image_pull(root, regs, f"{reg.host}/{REPO}:{TAG}").returncode == 0
        before = store_state(root)
        assert len(before["snapshots"]) == 1

        proxy.arm(8 << 20)
        name = f"{reg.host}/kpy/big:{TAG}"
        p = subprocess.Popen([sys.executable, "-m", "kubelet_py.cli", "--root", root, "--registries", regs,
                              "image", "pull", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            tmpdir = os.path.join(root, "images", "tmp")

            def partial_blob():
                for n in _listdir(tmpdir):
                    if n.startswith("blob-"):
                        try:
                            if os.path.getsize(os.path.join(tmpdir, n)) > 0:
                                return n
                        except FileNotFoundError:
                            pass
                return None
            wait_for(proxy.stalled.is_set, 30, "the proxy to hold the blob response")
            wait_for(partial_blob, 10, "a partial blob under images/tmp")
            assert p.poll() is None, "the pull ended before the registry was killed"
            reg.kill()
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode != 0, out
        line = err.strip().splitlines()[-1]
        assert line.startswith("kubelet-py: error: ") and name in line, err
        # a dead registry, said as such (not a size or digest complaint about half a blob)
        assert "cannot reach" in line or "download failed" in line, err
        assert "Traceback" not in err
        after = store_state(root)
        assert {k: after[k] for k in ("blobs", "snapshots", "index")} == \
               {k: before[k] for k in ("blobs", "snapshots", "index")}
        with ImageStore(root).locked():  # the next store operation: leftovers of a crash go
            pass
        assert store_state(root)["tmp"] == []

        # the registry comes back on the same storage and port: the next pull succeeds
        reg.start()
        r = image_pull(root, regs, name)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [name, big.manifest_digest]
        snaps = store_state(root)["snapshots"]
        assert sorted(snaps) == sorted(before["snapshots"] + [hexof(big_layer.diff_id)])
        with open(os.path.join(root, "images", "snapshots", "sha256", hexof(big_layer.diff_id), "fs", "data",
                               "random.bin"), "rb") as f:
            assert len(f.read()) == BIG
    finally:
        proxy.close()


def test_broken_blob_download_resumes_with_range(tmp_path, private_registry, big_layout):
    """The connection drops 8 MiB into the big layer (the registry stays up): the pull asks for
    the rest with `Range`, gets 206, and the assembled blob verifies."""
    reg = private_registry()
    lay, big, big_layer = big_layout
    reg.push_layout(lay, "big", f"kpy/big:{TAG}")
    proxy = StallingProxy(reg.port)
    try:
        regs = reg.registries_yaml(str(tmp_path / "r.yaml"), endpoint=f"http://127.0.0.1:{proxy.port}")
        root = str(tmp_path / "root")
        proxy.arm(8 << 20, cut=True)
        name = f"{reg.host}/kpy/big:{TAG}"
        r = image_pull(root, regs, name)
        assert proxy.stalled.is_set()  # the cut did happen
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [name, big.manifest_digest]
        # the registry logs a request when its handler ends: the cut one ends when its writes fail
        wait_for(lambda: reg.blob_gets(200).count(big_layer.digest) == 1, 10, "the cut GET in the access log")
        assert reg.blob_gets(206).count(big_layer.digest) == 1  # the rest, not the whole blob again
        assert reg.blob_gets().count(big_layer.digest) == 2
        assert hexof(big_layer.digest) in store_state(root)["blobs"]
        assert store_state(root)["tmp"] == []
    finally:
        proxy.close()


def test_shared_base_layer_is_not_fetched_again(tmp_root, tmp_path, plain, regfile, images):
    store = ImageStore(tmp_root)
    cfg = load_registries(regfile)
    base = images["busybox"].layers[0]
    layered = images["layered"]
    assert layered.layers[0].digest == base.digest  # the premise: the same base blob

    fetched = []

    def progress(digest, phase, done, total):
        if phase == "downloaded":
            fetched.append(digest)
    rec = pull(store, f"{plain.host}/{REPO}:{TAG}", cfg, progress=progress)
    assert rec.digest == images["busybox"].manifest_digest
    assert fetched == [base.digest]
    snaps = store_state(tmp_root)["snapshots"]
    assert snaps == [hexof(base.diff_id)]
    meta = store.snapshot_meta(base.diff_id)
    base_gets = plain.blob_gets().count(base.digest)

    fetched.clear()
    rec = pull(store, f"{plain.host}/kpy/layered:{TAG}", cfg, progress=progress)
    assert rec.digest == layered.manifest_digest
    assert sorted(fetched) == sorted(ly.digest for ly in layered.layers[1:])
    assert plain.blob_gets().count(base.digest) == base_gets  # the registry never saw it asked for
    after = store_state(tmp_root)["snapshots"]
    assert len(after) == 3
    assert sorted(after) == sorted(hexof(ly.diff_id) for ly in layered.layers)
    assert store.snapshot_meta(base.diff_id) == meta  # not unpacked again
    im = store.image(f"{plain.host}/kpy/layered:{TAG}")
    assert len(im.layer_dirs) == 3 and im.layer_dirs[-1].endswith(f"{hexof(base.diff_id)}/fs")


def test_docker_hub_name_through_a_mirror_with_rewrite(tmp_root, tmp_path, plain, images):
    """`busybox:1.35` is docker.io/library/busybox:1.35; a mirror with a rewrite serves it from
    kpy/busybox on our registry (the mirror answers, so docker.io itself is never asked)."""
    regs = str(tmp_path / "mirror.yaml")
    with open(regs, "w") as f:
        json.dump({"mirrors": {"docker.io": {"endpoint": [plain.url], "rewrite": {"^library/(.*)": "kpy/$1"}}}}, f)
    r = image_pull(tmp_root, regs, "busybox:1.35")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["docker.io/library/busybox:1.35", images["busybox"].manifest_digest]
    assert [i["name"] for i in ls(tmp_root, regs)] == ["docker.io/library/busybox:1.35"]
