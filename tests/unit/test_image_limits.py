"""Image limits as a user sets them (global options and env vars -> UnpackLimits -> the store),
their checks that need no root (declared sizes, the decompressed stream), and the kinds of the
image store's errors (runtime.errors.RuntimeFailure)."""

from __future__ import annotations

import errno
import gzip
import io
import json

import click
import pytest

from kubelet_py.cli import cli, main, open_image_store, parse_count
from runtime import errors as K
from runtime.errors import RuntimeFailure, from_wire
from runtime.image.build import TarEntry, build_image, layer_from_tar, make_tar
from runtime.image.decompress import DecompressedStream
from runtime.image.digest import Verifier, validate_digest
from runtime.image.errors import (Cancelled, ConfigError, DigestError, DigestMismatch, ImageError, LayerError,
                                  LimitExceeded, ManifestError, NotFound, ReferenceError_, RegistryError,
                                  SizeMismatch, registry_kind)
from runtime.image.ingest import check_declared_sizes
from runtime.image.limits import UnpackLimits
from runtime.image.manifest import parse_config, parse_document
from runtime.image.reference import parse_reference
from runtime.image.registries import load_registries
from runtime.image.unpack import _errno_kind

GI, MI = 1 << 30, 1 << 20


# ---- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value,n", [("1048576", 1048576), ("1Gi", GI), ("500Mi", 500 * MI), ("1G", 10**9),
                                     ("64Ki", 65536), ("2Ti", 2 << 40), ("1e3", 1000), ("1", 1), (" 7Mi ", 7 * MI),
                                     ("1.5Ki", 1536)])
def test_parse_count_accepts_quantities(value, n):
    assert parse_count(value, "--max-layer-size") == n


@pytest.mark.parametrize("value", ["0", "-1", "-1Gi", "1.5", "500m", "abc", "", "1Gib", "1 Gi", "Gi", "0.5Ki1"])
def test_parse_count_rejects_naming_the_option(value):
    with pytest.raises(ValueError, match=r"^--max-image-size: .* is not a whole number of bytes of at least 1"):
        parse_count(value, "--max-image-size")


def _limits(args: list[str]) -> UnpackLimits:
    """The limits a command would get: the group's options parsed and its callback run."""
    ctx = cli.make_context("kubelet-py", [*args, "image", "ls"])
    with ctx:
        ctx.invoke(cli.callback, **ctx.params)
        return ctx.obj.image_limits


def test_defaults_are_the_store_defaults(monkeypatch):
    for v in ("KUBELET_PY_MAX_LAYER_SIZE", "KUBELET_PY_MAX_IMAGE_SIZE", "KUBELET_PY_MAX_LAYER_ENTRIES"):
        monkeypatch.delenv(v, raising=False)
    assert _limits([]) == UnpackLimits()
    assert (UnpackLimits().max_bytes, UnpackLimits().max_image_bytes, UnpackLimits().max_entries) == \
        (64 * GI, 256 * GI, 5_000_000)


def test_flags_set_the_limits(monkeypatch):
    for v in ("KUBELET_PY_MAX_LAYER_SIZE", "KUBELET_PY_MAX_IMAGE_SIZE", "KUBELET_PY_MAX_LAYER_ENTRIES"):
        monkeypatch.delenv(v, raising=False)
    got = _limits(["--max-layer-size", "1Gi", "--max-image-size", "3G", "--max-layer-entries", "1000"])
    assert (got.max_bytes, got.max_image_bytes, got.max_entries) == (GI, 3 * 10**9, 1000)
    assert (got.max_path, got.max_depth, got.max_header) == (4096, 256, MI)  # not options


def test_env_vars_set_the_limits_and_flags_win(monkeypatch):
    monkeypatch.setenv("KUBELET_PY_MAX_LAYER_SIZE", "500Mi")
    monkeypatch.setenv("KUBELET_PY_MAX_IMAGE_SIZE", "2Gi")
    monkeypatch.setenv("KUBELET_PY_MAX_LAYER_ENTRIES", "1M")
    got = _limits([])
    assert (got.max_bytes, got.max_image_bytes, got.max_entries) == (500 * MI, 2 * GI, 10**6)
    assert _limits(["--max-layer-size", "1Mi"]).max_bytes == MI


@pytest.mark.parametrize("args,env,needle", [
    (["--max-layer-size", "2.5"], {}, "'--max-layer-size': '2.5' is not a whole number of bytes"),
    (["--max-layer-entries", "0"], {}, "'--max-layer-entries': '0' is not a whole number of entries"),
    ([], {"KUBELET_PY_MAX_IMAGE_SIZE": "lots"}, "'lots' is not a whole number of bytes of at least 1 "
                                                "(e.g. 1048576, 500Mi, 1Gi, 1G) (from $KUBELET_PY_MAX_IMAGE_SIZE)"),
])
def test_bad_values_are_usage_errors_naming_option_and_env(monkeypatch, args, env, needle):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(click.BadParameter) as e:
        _limits(args)
    assert needle in e.value.format_message()


def test_the_store_is_opened_with_the_limits(tmp_path):
    ctx = cli.make_context("kubelet-py", ["--root", str(tmp_path), "--max-layer-size", "2Mi", "image", "ls"])
    with ctx:
        ctx.invoke(cli.callback, **ctx.params)
        store = open_image_store(ctx.obj)
    assert store.limits.max_bytes == 2 * MI
    assert store.root == str(tmp_path / "images")


@pytest.mark.parametrize("field", ["max_bytes", "max_image_bytes", "max_entries", "max_path"])
@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "1Gi"])
def test_unpack_limits_refuse_nonsense(field, bad):
    with pytest.raises(ValueError, match=f"UnpackLimits.{field}"):
        UnpackLimits(**{field: bad})


# ---- what the limits stop (pure parts) ----------------------------------------------------------

def _manifest(*layer_sizes_of_random: int):
    import os
    layers = [layer_from_tar(make_tar([TarEntry(f"f{i}", data=os.urandom(n))]), None)
              for i, n in enumerate(layer_sizes_of_random)]
    im = build_image(layers)
    return parse_document(im.manifest, "t"), layers


def test_declared_blob_over_the_layer_limit():
    m, layers = _manifest(4096, 3 * 4096)
    check_declared_sizes(m, UnpackLimits(max_bytes=layers[1].size))  # at the limit: fine
    with pytest.raises(LimitExceeded) as e:
        check_declared_sizes(m, UnpackLimits(max_bytes=layers[1].size - 1))
    err = e.value
    assert (err.layer, err.limit_name, err.limit, err.seen) == (layers[1].digest, "max-layer-size",
                                                                 layers[1].size - 1, layers[1].size)
    assert str(err) == (f"layer {layers[1].digest}: blob size declared by the manifest exceeds the max-layer-size "
                        f"limit of {layers[1].size - 1} bytes ({layers[1].size} bytes seen)")


def test_declared_blobs_over_the_image_limit():
    m, layers = _manifest(4096, 4096, 4096)
    total = sum(ly.size for ly in layers)
    check_declared_sizes(m, UnpackLimits(max_image_bytes=total))
    with pytest.raises(LimitExceeded) as e:
        check_declared_sizes(m, UnpackLimits(max_image_bytes=total - 1))
    assert (e.value.layer, e.value.limit_name, e.value.seen) == (layers[2].digest, "max-image-size", total)


def test_stream_stops_at_the_layer_limit_and_says_what_it_saw():
    s = DecompressedStream(io.BytesIO(gzip.compress(bytes(8 * MI))), "sha256:" + "a" * 64, 3 * MI)
    with pytest.raises(LimitExceeded) as e:
        s.finish()
    err = e.value
    assert err.kind == K.RESOURCE_EXHAUSTED and err.obj == "layer sha256:" + "a" * 64
    assert err.limit_name == "max-layer-size" and err.limit == 3 * MI
    assert 3 * MI < err.seen <= 4 * MI  # stopped at the first chunk over the limit, not at the end
    assert f"({err.seen} bytes seen)" in str(err)


def test_stream_counts_the_layers_below_against_the_image_limit():
    data = gzip.compress(bytes(2 * MI))
    ok = DecompressedStream(io.BytesIO(data), "l", 64 * MI, image_limit=5 * MI, image_before=3 * MI)
    assert ok.finish()[1] == 2 * MI  # 3 + 2 = 5: at the limit
    s = DecompressedStream(io.BytesIO(data), "l", 64 * MI, image_limit=5 * MI - 1, image_before=3 * MI)
    with pytest.raises(LimitExceeded) as e:
        s.finish()
    assert (e.value.limit_name, e.value.limit, e.value.seen) == ("max-image-size", 5 * MI - 1, 5 * MI)


# ---- kinds --------------------------------------------------------------------------------------

def test_every_image_error_is_a_runtime_failure():
    for cls in (ImageError, ReferenceError_, DigestError, DigestMismatch, SizeMismatch, ManifestError, LayerError,
                LimitExceeded, NotFound, RegistryError, Cancelled, ConfigError):
        assert issubclass(cls, RuntimeFailure), cls
    assert issubclass(LimitExceeded, LayerError)  # callers that catch LayerError still do
    assert ImageError("x").kind == K.INTERNAL
    assert ImageError("x", kind=K.INVALID_ARGUMENT, obj="o", field="f").to_wire() == \
        {"error": "x", "kind": K.INVALID_ARGUMENT, "obj": "o", "field": "f"}


def test_reference_error_from_the_parser():
    with pytest.raises(ReferenceError_) as e:
        parse_reference("Busy Box")
    assert (e.value.kind, e.value.obj, e.value.field) == (K.INVALID_ARGUMENT, "Busy Box", "image")


def test_digest_error_names_document_and_field():
    with pytest.raises(DigestError) as e:
        validate_digest("sha256:xyz", "blob")
    assert (e.value.kind, e.value.obj, e.value.field) == (K.INVALID_ARGUMENT, "blob", "digest")
    cfg = {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64, "md5:abc"]}}
    with pytest.raises(DigestError) as e:
        parse_config(json.dumps(cfg).encode(), "image x config")
    assert (e.value.kind, e.value.obj, e.value.field) == (K.INVALID_ARGUMENT, "image x config", "rootfs.diff_ids[1]")
    assert str(e.value) == "invalid digest 'md5:abc' in image x config rootfs.diff_ids[1]"


def test_manifest_error_names_document_and_field():
    with pytest.raises(ManifestError) as e:
        parse_config(json.dumps({"rootfs": {"type": "nope", "diff_ids": []}}).encode(), "image x config")
    assert (e.value.kind, e.value.obj, e.value.field) == (K.INVALID_ARGUMENT, "image x config", "rootfs.type")


def test_config_error_names_file_and_field(tmp_path):
    p = tmp_path / "registries.yaml"
    p.write_text("mirrors:\n  docker.io:\n    endpoint: [ftp://x]\n")
    with pytest.raises(ConfigError) as e:
        load_registries(str(p))
    assert (e.value.kind, e.value.obj) == (K.INVALID_ARGUMENT, str(p))
    assert e.value.field.startswith("mirrors.docker.io.endpoint")


def test_mismatches_are_invalid_argument():
    v = Verifier("blob b", "sha256:" + "0" * 64, 3)
    with pytest.raises(SizeMismatch) as e:
        v.update(b"abcd")
    assert (e.value.kind, e.value.obj, e.value.field) == (K.INVALID_ARGUMENT, "blob b", "size")
    v = Verifier("blob b", "sha256:" + "0" * 64, 3)
    v.update(b"abc")
    with pytest.raises(DigestMismatch) as e:
        v.check()
    assert (e.value.kind, e.value.obj) == (K.INVALID_ARGUMENT, "blob b")


def test_layer_errors():
    e = LayerError("sha256:ab", "unsupported tar entry type", "x/y")
    assert (e.kind, e.obj, e.field) == (K.INVALID_ARGUMENT, "layer sha256:ab", "x/y")
    assert LayerError("l", "disk", kind=K.RESOURCE_EXHAUSTED).kind == K.RESOURCE_EXHAUSTED
    with pytest.raises(LayerError) as e:
        DecompressedStream(io.BytesIO(b"BZh91AY&SY" + bytes(100)), "sha256:cd", MI)
    assert (e.value.kind, e.value.obj) == (K.INVALID_ARGUMENT, "layer sha256:cd")


@pytest.mark.parametrize("err,kind", [(errno.ENOSPC, K.RESOURCE_EXHAUSTED), (errno.EDQUOT, K.RESOURCE_EXHAUSTED),
                                      (errno.EPERM, K.INTERNAL), (errno.EIO, K.INTERNAL),
                                      (errno.ENAMETOOLONG, K.INVALID_ARGUMENT), (errno.EMLINK, K.INVALID_ARGUMENT)])
def test_unpack_os_errors_by_errno(err, kind):
    assert LayerError("l", "x", "e", kind=_errno_kind(err)).kind == kind


def test_limit_exceeded():
    e = LimitExceeded("sha256:ef", "number of tar entries", "max-layer-entries", 10, 11, "entries")
    assert (e.kind, e.obj, e.field, e.layer) == (K.RESOURCE_EXHAUSTED, "layer sha256:ef", "max-layer-entries",
                                                  "sha256:ef")
    assert str(e) == "layer sha256:ef: number of tar entries exceeds the max-layer-entries limit of 10 entries " \
                     "(11 entries seen)"


def test_not_found_and_cancelled():
    e = NotFound("image x", "not found in the store")
    assert (e.kind, e.obj) == (K.NOT_FOUND, "image x")
    assert Cancelled("image x: cancelled", obj="image x").kind == K.UNAVAILABLE


@pytest.mark.parametrize("status,kind", [(None, K.UNAVAILABLE), (500, K.UNAVAILABLE), (503, K.UNAVAILABLE),
                                         (401, K.FAILED_PRECONDITION), (403, K.FAILED_PRECONDITION),
                                         (404, K.NOT_FOUND), (429, K.RESOURCE_EXHAUSTED), (400, K.INVALID_ARGUMENT),
                                         (416, K.INVALID_ARGUMENT), (302, K.INTERNAL)])
def test_registry_error_kind_by_status(status, kind):
    assert registry_kind(status) == kind
    e = RegistryError("r.example/a:1", "why", status)
    assert (e.kind, e.obj, e.status) == (kind, "r.example/a:1", status)


def test_registry_error_kind_and_obj_may_be_named():
    e = RegistryError("r/a:1", "TLS", kind=K.FAILED_PRECONDITION, obj="blob sha256:00")
    assert (e.kind, e.obj) == (K.FAILED_PRECONDITION, "blob sha256:00")


def test_wire_round_trip_keeps_the_kind():
    e = from_wire(LimitExceeded("sha256:ef", "uncompressed size", "max-layer-size", 1, 2).to_wire(), ImageError)
    assert isinstance(e, ImageError) and (e.kind, e.obj, e.field) == (K.RESOURCE_EXHAUSTED, "layer sha256:ef",
                                                                       "max-layer-size")


def test_cli_prints_image_errors_as_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--root", str(tmp_path), "image", "inspect", "nothing:here"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err == "kubelet-py: error: image nothing:here: not found in the store\n"
