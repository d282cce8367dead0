"""Pure image logic: references, digests, documents, platform selection, decompression."""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import pytest

from runtime.image.build import TarEntry, make_tar
from runtime.image.decompress import DecompressedStream
from runtime.image.digest import Verifier, validate_digest
from runtime.image.errors import (DigestError, DigestMismatch, LayerError, ManifestError, ReferenceError_,
                                  SizeMismatch)
from runtime.image.manifest import (OCI_INDEX, OCI_MANIFEST, Index, Manifest, Platform, parse_config,
                                    parse_document, select_platform)
from runtime.image.reference import parse_reference
from runtime.image.unpack import UnpackLimits, split_name

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("ref,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.35", "docker.io/library/busybox:1.35"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1"),
    ("index.docker.io/user/app", "docker.io/user/app:latest"),
    ("127.0.0.1:5000/kpy/busybox:1.35", "127.0.0.1:5000/kpy/busybox:1.35"),
    ("localhost/app", "localhost/app:latest"),
    ("quay.io/a/b/c@" + D, "quay.io/a/b/c@" + D),
    ("quay.io/a:t@" + D, "quay.io/a:t@" + D),
    ("reg:5000/a__b.c-d", "reg:5000/a__b.c-d:latest"),
])
def test_reference_normalisation(ref, expected):
    assert str(parse_reference(ref)) == expected


@pytest.mark.parametrize("ref", ["", "Busybox", "a//b", "busybox:", "busybox:-x", "a@sha256:12",
                                 "a b", "-a", "a/b-", "quay.io/A/b", "x" * 300])
def test_bad_references(ref):
    with pytest.raises(ReferenceError_) as e:
        parse_reference(ref)
    assert repr(ref)[:20].strip("'") in str(e.value) or ref == ""


def test_reference_object():
    assert parse_reference("a").object == "latest"
    assert parse_reference("a@" + D).object == D


@pytest.mark.parametrize("d", ["sha256:" + "A" * 64, "sha256:../x", "md5:00", "sha256:" + "a" * 65, None, 3])
def test_invalid_digests(d):
    with pytest.raises(DigestError):
        validate_digest(d, "test")


def test_verifier_detects_digest_and_size():
    data = b"hello"
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    v = Verifier("x", good, 5)
    v.update(data)
    v.check()
    v = Verifier("x", good, 4)
    with pytest.raises(SizeMismatch):
        v.update(data)
    v = Verifier("x", D, 5)
    v.update(data)
    with pytest.raises(DigestMismatch) as e:
        v.check()
    assert D in str(e.value) and good in str(e.value)


def _manifest(**kw) -> dict:
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 2},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 3}]}
    doc.update(kw)
    return doc


def test_parse_manifest():
    m = parse_document(json.dumps(_manifest()).encode(), "t")
    assert isinstance(m, Manifest) and m.layers[0].size == 3


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.update(layers=None), "layers: must be list"),
    (lambda d: d["layers"][0].update(size=-1), r"layers\[0\].size: negative"),
    (lambda d: d["layers"][0].update(size=True), r"layers\[0\].size: must be int"),
    (lambda d: d["layers"][0].update(digest=5), r"layers\[0\].digest: must be str"),
    (lambda d: d.update(schemaVersion=1), "schemaVersion"),
    (lambda d: d["config"].update(mediaType="text/plain"), "config.mediaType"),
    (lambda d: d.update(manifests=[]), "ambiguous"),
    (lambda d: d.update(mediaType="application/x-unknown"), "unknown media type"),
])
def test_bad_manifests(mutate, needle):
    doc = _manifest()
    mutate(doc)
    with pytest.raises(ManifestError, match=needle):
        parse_document(json.dumps(doc).encode(), "t")


def test_served_media_type_must_match():
    with pytest.raises(ManifestError, match="served as"):
        parse_document(json.dumps(_manifest()).encode(), "t", OCI_INDEX)


def test_document_size_cap():
    with pytest.raises(ManifestError, match="larger than"):
        parse_document(b" " * (5 << 20), "t")


def _index(*plats) -> Index:
    ms = [{"mediaType": OCI_MANIFEST, "digest": "sha256:" + str(i) * 64, "size": 1,
           "platform": dict(zip(("os", "architecture", "variant"), p))} for i, p in enumerate(plats)]
    return parse_document(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ms}).encode(), "t")


def test_select_platform():
    idx = _index(("linux", "arm64", "v8"), ("linux", "amd64"), ("windows", "amd64"), ("linux", "arm", "v6"),
                 ("linux", "arm", "v7"))
    assert select_platform(idx, Platform("linux", "amd64"), "t").digest == "sha256:" + "1" * 64
    assert select_platform(idx, Platform("linux", "arm64", "v8"), "t").digest == "sha256:" + "0" * 64
    assert select_platform(idx, Platform("linux", "arm", "v7"), "t").digest == "sha256:" + "4" * 64
    with pytest.raises(ManifestError, match="no manifest for platform linux/s390x .*linux/amd64"):
        select_platform(idx, Platform("linux", "s390x"), "t")


def test_parse_config():
    cfg = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [D]},
           "config": {"Entrypoint": ["/e"], "Cmd": ["c"], "Env": ["A=1"], "WorkingDir": "/w", "User": "app",
                      "ExposedPorts": {"80/tcp": {}}, "Labels": {"k": "v"}}}
    c = parse_config(json.dumps(cfg).encode(), "t")
    assert (c.entrypoint, c.cmd, c.env, c.working_dir, c.user, c.exposed_ports, c.labels) == \
           (("/e",), ("c",), ("A=1",), "/w", "app", ("80/tcp",), {"k": "v"})
    cfg["rootfs"]["type"] = "other"
    with pytest.raises(ManifestError, match="rootfs.type"):
        parse_config(json.dumps(cfg).encode(), "t")


@pytest.mark.parametrize("name,parts", [("a/b", ("a", "b")), ("./a//b/", ("a", "b")), ("/abs/x", ("abs", "x")),
                                        (".", ())])
def test_split_name(name, parts):
    assert split_name(name, "l", UnpackLimits()) == parts


@pytest.mark.parametrize("name", ["../a", "a/../../b", "a/..", "x" * 5000, "a\0b", "/".join("d" * 300)])
def test_split_name_rejects(name):
    with pytest.raises(LayerError):
        split_name(name, "l", UnpackLimits())


def test_decompressed_stream_hashes_whole_stream():
    tar = make_tar([TarEntry("f", data=b"x" * 5000)]) + b"\0" * 10240  # extra padding counts
    s = DecompressedStream(io.BytesIO(gzip.compress(tar)), "l", 1 << 20)
    assert s.read(512)[:1] == b"f"
    diff, size = s.finish()
    assert (diff, size) == ("sha256:" + hashlib.sha256(tar).hexdigest(), len(tar))


def test_decompressed_stream_limit():
    s = DecompressedStream(io.BytesIO(gzip.compress(bytes(1 << 20))), "l", 1000)
    with pytest.raises(LayerError, match="uncompressed size exceeds the max-layer-size limit of 1000 bytes"):
        s.finish()
