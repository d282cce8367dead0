"""OCI/Docker manifests, indexes and image configs (pure, strict).

Documents are size-capped, parsed with duplicate keys rejected, and checked against their media
type before anything uses them (security.md 1.3.12-13)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .digest import validate_digest
from .errors import ManifestError

MAX_DOCUMENT = 4 * 1048 * 1048  # containerd's MaxManifestSize; also used for configs and index.json

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
# layer media type -> compression ("gzip", "zstd", None)
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": None,
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": None,
    "application/vnd.oci.image.layer.nondistributable.v1.tar": None,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))


def _no_duplicates(what: str):
    def hook(pairs):
        out = {}
        for k, v in pairs:
            if k in out:
                raise ManifestError(what, k, "duplicate key")
            out[k] = v
        return out
    return hook


def load_json(data: bytes, what: str) -> dict:
    """Parse one JSON object, size-capped, duplicate keys rejected."""
    if len(data) > MAX_DOCUMENT:
        raise ManifestError(what, "(document)", f"larger than {MAX_DOCUMENT} bytes")
    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicates(what))
    except ManifestError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(what, "(document)", f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestError(what, "(document)", "not a JSON object")
    return doc


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict = field(default_factory=dict, compare=False, hash=False)
    urls: tuple = ()


def _field(doc: dict, key: str, typ, what: str, required: bool = True, path: str | None = None):
    path = path or key
    if key not in doc:
        if required:
            raise ManifestError(what, path, "missing")
        return None
    val = doc[key]
    if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
        raise ManifestError(what, path, f"must be {getattr(typ, '__name__', typ)}, got {type(val).__name__}")
    return val


def parse_descriptor(d: object, what: str, path: str) -> Descriptor:
    if not isinstance(d, dict):
        raise ManifestError(what, path, "descriptor must be an object")
    mt = _field(d, "mediaType", str, what, path=f"{path}.mediaType")
    digest = _field(d, "digest", str, what, path=f"{path}.digest")
    validate_digest(digest, what, f"{path}.digest")
    size = _field(d, "size", int, what, path=f"{path}.size")
    if size < 0:
        raise ManifestError(what, f"{path}.size", f"negative ({size})")
    plat = None
    p = _field(d, "platform", dict, what, required=False, path=f"{path}.platform")
    if p is not None:
        plat = Platform(
            _field(p, "os", str, what, path=f"{path}.platform.os"),
            _field(p, "architecture", str, what, path=f"{path}.platform.architecture"),
            _field(p, "variant", str, what, required=False, path=f"{path}.platform.variant"),
        )
    ann = _field(d, "annotations", dict, what, required=False, path=f"{path}.annotations") or {}
    urls = _field(d, "urls", list, what, required=False, path=f"{path}.urls") or []
    return Descriptor(mt, digest, size, plat, ann, tuple(urls))


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def parse_document(data: bytes, what: str, media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or an index. `media_type` is what the transport claimed (HTTP
    Content-Type, a descriptor); the document's own mediaType must agree with it."""
    doc = load_json(data, what)
    own = _field(doc, "mediaType", str, what, required=False)
    if own is not None and media_type is not None and own != media_type and media_type not in ("application/json", ""):
        raise ManifestError(what, "mediaType", f"document says {own!r} but was served as {media_type!r}")
    mt = own or media_type
    is_index = "manifests" in doc
    is_manifest = "config" in doc or "layers" in doc
    if is_index and is_manifest:
        raise ManifestError(what, "(document)", "has both 'manifests' and 'config'/'layers' (ambiguous)")
    if mt is None:
        mt = OCI_INDEX if is_index else OCI_MANIFEST
    schema = doc.get("schemaVersion")
    if schema != 2:
        raise ManifestError(what, "schemaVersion", f"must be 2, got {schema!r}")
    if mt in INDEX_TYPES:
        if is_manifest or not is_index:
            raise ManifestError(what, "manifests", "an index must have 'manifests' and no 'config'/'layers'")
        ms = _field(doc, "manifests", list, what)
        return Index(mt, tuple(parse_descriptor(m, what, f"manifests[{i}]") for i, m in enumerate(ms)))
    if mt in MANIFEST_TYPES:
        if is_index:
            raise ManifestError(what, "manifests", "a manifest must not have 'manifests'")
        cfg = parse_descriptor(_field(doc, "config", dict, what), what, "config")
        if cfg.media_type not in CONFIG_TYPES:
            raise ManifestError(what, "config.mediaType", f"unknown config media type {cfg.media_type!r}")
        layers = _field(doc, "layers", list, what)
        descs = tuple(parse_descriptor(ly, what, f"layers[{i}]") for i, ly in enumerate(layers))
        for i, ly in enumerate(descs):
            if ly.media_type not in LAYER_TYPES:
                raise ManifestError(what, f"layers[{i}].mediaType", f"unknown layer media type {ly.media_type!r}")
        return Manifest(mt, cfg, descs)
    raise ManifestError(what, "mediaType", f"unknown media type {mt!r}")


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config a kubelet uses."""
    architecture: str
    os: str
    diff_ids: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""  # the image's StopSignal (`SIGQUIT`, `3`): the default stop signal of its containers
    exposed_ports: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict, compare=False, hash=False)
    created: str | None = None
    variant: str | None = None


def _str_list(c: dict, key: str, what: str) -> tuple[str, ...]:
    v = c.get(key)
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ManifestError(what, f"config.{key}", "must be a list of strings")
    return tuple(v)


def parse_config(data: bytes, what: str) -> ImageConfig:
    doc = load_json(data, what)
    rootfs = _field(doc, "rootfs", dict, what)
    if rootfs.get("type") != "layers":
        raise ManifestError(what, "rootfs.type", f"must be 'layers', got {rootfs.get('type')!r}")
    diff_ids = _field(rootfs, "diff_ids", list, what, path="rootfs.diff_ids")
    for i, d in enumerate(diff_ids):
        validate_digest(d, what, f"rootfs.diff_ids[{i}]")
    c = _field(doc, "config", dict, what, required=False) or {}
    ports = _field(c, "ExposedPorts", dict, what, required=False, path="config.ExposedPorts") or {}
    labels = _field(c, "Labels", dict, what, required=False, path="config.Labels") or {}
    return ImageConfig(
        architecture=_field(doc, "architecture", str, what, required=False) or "",
        os=_field(doc, "os", str, what, required=False) or "",
        variant=_field(doc, "variant", str, what, required=False),
        diff_ids=tuple(diff_ids),
        entrypoint=_str_list(c, "Entrypoint", what),
        cmd=_str_list(c, "Cmd", what),
        env=_str_list(c, "Env", what),
        working_dir=_field(c, "WorkingDir", str, what, required=False, path="config.WorkingDir") or "",
        user=_field(c, "User", str, what, required=False, path="config.User") or "",
        stop_signal=_field(c, "StopSignal", str, what, required=False, path="config.StopSignal") or "",
        exposed_ports=tuple(sorted(ports)),
        labels={str(k): str(v) for k, v in labels.items()},
        created=_field(doc, "created", str, what, required=False),
    )


def check_layers_match(manifest: Manifest, config: ImageConfig, what: str) -> None:
    if len(manifest.layers) != len(config.diff_ids):
        raise ManifestError(what, "layers", f"manifest has {len(manifest.layers)} layers but the config "
                            f"has {len(config.diff_ids)} rootfs.diff_ids")


_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> Platform:
    m = os.uname().machine
    variant = {"aarch64": "v8", "armv7l": "v7", "armv6l": "v6"}.get(m)
    return Platform("linux", _ARCH.get(m, m), variant)


def select_platform(index: Index, want: Platform, what: str) -> Descriptor:
    """Pick the manifest for `want` (containerd's matcher: os+arch, variant when both give one;
    an exact variant beats a missing one)."""
    best, best_score = None, -1
    for d in index.manifests:
        if d.media_type not in MANIFEST_TYPES or d.platform is None:
            continue
        p = d.platform
        if p.os != want.os or p.architecture != want.architecture:
            continue
        if p.variant and want.variant and p.variant != want.variant:
            continue
        score = 2 if p.variant == want.variant else 1
        if score > best_score:
            best, best_score = d, score
    if best is None:
        offered = sorted({f"{d.platform.os}/{d.platform.architecture}" + (f"/{d.platform.variant}" if d.platform.variant else "")
                          for d in index.manifests if d.platform})
        plat = f"{want.os}/{want.architecture}" + (f"/{want.variant}" if want.variant else "")
        raise ManifestError(what, "manifests", f"no manifest for platform {plat} (offers: {', '.join(offered) or 'none'})")
    return best
