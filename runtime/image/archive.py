"""Importing images from files: an OCI layout dir, an oci-archive, a docker-archive (`docker
save`), or a plain rootfs tarball (`docker import`).

Archive members are looked up by cleaned name among *regular files only*: a path in
manifest.json or a blob that is a symlink, or that climbs out with `..`, is never followed
(CVE-2014-9358). Blob paths are built only from validated digests (CVE-2024-3727)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
import threading
from typing import Iterator

from ..errors import INVALID_ARGUMENT
from .build import LAYER_MEDIA, Layer, build_image
from .decompress import CHUNK, DecompressedStream, sniff_compression
from .digest import digest_bytes, validate_digest
from .errors import ImageError, LimitExceeded, ManifestError, NotFound
from .ingest import ingest, read_document
from .manifest import (MAX_DOCUMENT, OCI_CONFIG, OCI_MANIFEST, Descriptor, load_json, parse_config,
                       parse_descriptor)
from .reference import parse_reference
from .store import ImageRecord, ImageStore

REF_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


class _Files:
    """Read-only view of the archive's regular files by relative path."""

    def size(self, rel: str) -> int: ...
    def open(self, rel: str): ...
    def exists(self, rel: str) -> bool: ...

    def read(self, rel: str, what: str, limit: int = MAX_DOCUMENT) -> bytes:
        if not self.exists(rel):
            raise NotFound(f"{what}: {rel}", "missing from the archive")
        if self.size(rel) > limit:
            raise ManifestError(what, rel, f"larger than {limit} bytes")
        with self.open(rel) as f:
            return f.read(limit + 1)

    def chunks(self, rel: str) -> Iterator[bytes]:
        with self.open(rel) as f:
            while chunk := f.read(CHUNK):
                yield chunk


def _clean(rel: str, what: str) -> str:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if rel.startswith("/") or ".." in parts or not parts:
        raise ManifestError(what, rel, "path must stay inside the archive")
    return "/".join(parts)


class _DirFiles(_Files):
    def __init__(self, root: str):
        self.root = root
        self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _stat(self, rel: str):
        # resolve without following any symlink inside the layout
        fd = os.dup(self._fd)
        try:
            parts = rel.split("/")
            for p in parts[:-1]:
                nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nfd
            f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        st = os.fstat(f)
        if not stat.S_ISREG(st.st_mode):
            os.close(f)
            return None
        return f, st

    def exists(self, rel):
        r = self._stat(rel)
        if r:
            os.close(r[0])
        return r is not None

    def size(self, rel):
        f, st = self._stat(rel)
        os.close(f)
        return st.st_size

    def open(self, rel):
        r = self._stat(rel)
        if r is None:
            raise NotFound(f"{self.root}/{rel}", "missing or not a regular file")
        return os.fdopen(r[0], "rb")


class _TarFiles(_Files):
    def __init__(self, path: str):
        self.path = path
        try:
            self._tf = tarfile.open(path, "r:*")
            self._lock = threading.Lock()
            self._members = {}
            for m in self._tf:
                if m.isreg():
                    self._members["/".join(p for p in m.name.split("/") if p not in ("", "."))] = m
            self._tf.members = []
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ImageError(f"{path}: not a readable tar archive ({e})", kind=INVALID_ARGUMENT, obj=path) from None

    def exists(self, rel):
        return rel in self._members

    def size(self, rel):
        return self._members[rel].size

    def open(self, rel):
        m = self._members.get(rel)
        if m is None:
            raise NotFound(f"{self.path}: {rel}", "missing from the archive")
        return _MemberReader(self._tf.fileobj, self._lock, m.offset_data, m.size)


class _MemberReader:
    """One member's bytes; safe while layers are fetched in parallel from the same archive
    (each read seeks under the archive's lock)."""

    def __init__(self, fileobj, lock, offset: int, size: int):
        self._f, self._lock, self._pos, self._end = fileobj, lock, offset, offset + size

    def read(self, n: int = -1) -> bytes:
        n = self._end - self._pos if n is None or n < 0 else min(n, self._end - self._pos)
        if n <= 0:
            return b""
        with self._lock:
            self._f.seek(self._pos)
            data = self._f.read(n)
        if len(data) < n:
            raise ImageError(f"archive truncated: member ends early at offset {self._pos + len(data)}",
                             kind=INVALID_ARGUMENT)
        self._pos += n
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class LayoutSource:
    """Blobs of an OCI image layout (a dir or a tar of one)."""

    def __init__(self, files: _Files, where: str):
        self.files = files
        self.where = where

    def chunks(self, desc: Descriptor, what: str) -> Iterator[bytes]:
        rel = "blobs/" + validate_digest(desc.digest, what).replace(":", "/")
        if not self.files.exists(rel):
            raise NotFound(f"{what}", f"blob {rel} missing from {self.where}")
        yield from self.files.chunks(rel)


class MemorySource:
    """Blobs held in memory or in named files (built or synthesized images)."""

    def __init__(self, blobs: dict[str, bytes], files: dict[str, tuple[_Files | None, str]] | None = None):
        self.blobs = blobs
        self.files = files or {}

    def chunks(self, desc: Descriptor, what: str) -> Iterator[bytes]:
        if desc.digest in self.blobs:
            yield self.blobs[desc.digest]
            return
        if desc.digest not in self.files:
            raise NotFound(what, f"blob {desc.digest} missing")
        files, rel = self.files[desc.digest]
        if files is None:
            with open(rel, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
        else:
            yield from files.chunks(rel)


def _name_from(desc: Descriptor) -> str | None:
    for key in REF_ANNOTATIONS:
        v = desc.annotations.get(key)
        if v:
            return v
    return None


def _normalise(name: str) -> str:
    return str(parse_reference(name))


def import_layout(store: ImageStore, files: _Files, where: str, name: str | None,
                  ref: str | None, **kw) -> list[ImageRecord]:
    if not files.exists("oci-layout"):
        raise ManifestError(where, "oci-layout", "missing: not an OCI image layout")
    lay = load_json(files.read("oci-layout", f"{where} oci-layout"), f"{where} oci-layout")
    if lay.get("imageLayoutVersion") != "1.0.0":
        raise ManifestError(where, "oci-layout.imageLayoutVersion", f"unsupported {lay.get('imageLayoutVersion')!r}")
    index = load_json(files.read("index.json", f"{where} index.json"), f"{where} index.json")
    ms = index.get("manifests")
    if not isinstance(ms, list) or not ms:
        raise ManifestError(f"{where} index.json", "manifests", "missing or empty")
    descs = [parse_descriptor(m, f"{where} index.json", f"manifests[{i}]") for i, m in enumerate(ms)]
    if ref is not None:
        descs = [d for d in descs if _name_from(d) == ref]
        if not descs:
            raise NotFound(f"{where}", f"no image named {ref!r} in index.json")
    if name is not None and len(descs) > 1:
        raise ImageError(f"{where}: holds {len(descs)} images; pick one with --ref to use --name",
                         kind=INVALID_ARGUMENT, obj=where, field="name")
    source = LayoutSource(files, where)
    out = []
    for d in descs:
        n = name or _name_from(d)
        if not n:
            raise ImageError(f"{where}: image {d.digest} has no ref.name annotation; give --name",
                             kind=INVALID_ARGUMENT, obj=where, field="name")
        n = _normalise(n)
        top = read_document(source, d, f"{where} {d.digest}")
        out.append(ingest(store, n, source, top, d.media_type, **kw))
    return out


def import_docker_archive(store: ImageStore, files: _Files, where: str, name: str | None, **kw) -> list[ImageRecord]:
    entries = load_json(b'{"m":' + files.read("manifest.json", f"{where} manifest.json") + b"}",
                        f"{where} manifest.json").get("m")
    if not isinstance(entries, list) or not entries:
        raise ManifestError(f"{where} manifest.json", "(document)", "must be a non-empty list")
    if name is not None and len(entries) > 1:
        raise ImageError(f"{where}: holds {len(entries)} images; --name needs exactly one",
                         kind=INVALID_ARGUMENT, obj=where, field="name")
    out = []
    for i, e in enumerate(entries):
        what = f"{where} manifest.json[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers"), list):
            raise ManifestError(what, "Config/Layers", "missing or wrong type")
        cfg_rel = _clean(e["Config"], what)
        cbytes = files.read(cfg_rel, f"{what} Config")
        cfg = parse_config(cbytes, f"{what} Config")
        layers = []
        blob_files = {}
        for j, lp in enumerate(e["Layers"]):
            if not isinstance(lp, str):
                raise ManifestError(what, f"Layers[{j}]", "must be a string")
            rel = _clean(lp, what)
            if not files.exists(rel):
                raise NotFound(f"{what} Layers[{j}]", f"{rel} missing from the archive")
            digest, size, comp = _hash_file(files, rel)
            layers.append(_FileLayer(digest, size, LAYER_MEDIA[comp]))
            blob_files[digest] = (files, rel)
        tags = e.get("RepoTags") or []
        n = name or (tags[0] if tags and isinstance(tags[0], str) else None)
        if not n:
            raise ImageError(f"{what}: no RepoTags; give --name", kind=INVALID_ARGUMENT, obj=what, field="name")
        n = _normalise(n)
        # synthesize an OCI manifest for the docker config (what containerd's importer does)
        manifest = _manifest_for(cbytes, layers)
        if len(layers) != len(cfg.diff_ids):
            raise ManifestError(what, "Layers", f"{len(layers)} layers but the config has "
                                f"{len(cfg.diff_ids)} rootfs.diff_ids")
        source = MemorySource({digest_bytes(cbytes): cbytes}, blob_files)
        out.append(ingest(store, n, source, manifest, None, **kw))
    return out


class _FileLayer:
    def __init__(self, digest, size, media_type):
        self.digest, self.size, self.media_type = digest, size, media_type


def _manifest_for(cbytes: bytes, layers) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": digest_bytes(cbytes), "size": len(cbytes)},
           "layers": [{"mediaType": ly.media_type, "digest": ly.digest, "size": ly.size} for ly in layers]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _hash_file(files: _Files, rel: str) -> tuple[str, int, str | None]:
    h = hashlib.sha256()
    size = 0
    head = b""
    for chunk in files.chunks(rel):
        if not head:
            head = chunk[:8]
        h.update(chunk)
        size += len(chunk)
    return f"sha256:{h.hexdigest()}", size, sniff_compression(head)


def open_files(path: str) -> tuple[_Files, str]:
    if os.path.isdir(path):
        return _DirFiles(path), "dir"
    if not os.path.exists(path):
        raise NotFound(path, "no such file or directory")
    return _TarFiles(path), "tar"


def import_path(store: ImageStore, path: str, name: str | None = None, ref: str | None = None,
                **kw) -> list[ImageRecord]:
    """Import an OCI layout dir, an oci-archive or a docker-archive (told apart by content)."""
    files, kind = open_files(path)
    if files.exists("manifest.json") and not (kind == "dir" and files.exists("oci-layout")):
        if ref is not None:
            raise ImageError(f"{path}: --ref applies to OCI layouts only", kind=INVALID_ARGUMENT, obj=path,
                             field="ref")
        return import_docker_archive(store, files, path, name, **kw)
    if files.exists("oci-layout"):
        return import_layout(store, files, path, name, ref, **kw)
    raise ImageError(f"{path}: neither an OCI layout (no oci-layout file) nor a docker archive "
                     "(no manifest.json)", kind=INVALID_ARGUMENT, obj=path)


def import_rootfs(store: ImageStore, tarball: str, name: str, *, entrypoint=None, cmd=None,
                  env=None, working_dir="", user="", **kw) -> ImageRecord:
    """`docker import`: the tarball (tar, tar.gz or tar.zst) becomes the image's only layer."""
    n = _normalise(name)
    if not os.path.isfile(tarball):
        raise NotFound(tarball, "no such file")
    h_digest, size, comp = _hash_file(_DirFiles(os.path.dirname(os.path.abspath(tarball))),
                                      os.path.basename(tarball))
    limits = store.limits
    for name, limit in (("max-layer-size", limits.max_bytes), ("max-image-size", limits.max_image_bytes)):
        if size > limit:  # before the pass below reads it all
            raise LimitExceeded(h_digest, f"size of {tarball}", name, limit, size)
    with open(tarball, "rb", buffering=0) as f:  # diffID: a first pass over the decompressed tar
        stream = DecompressedStream(f, h_digest, limits.max_bytes, image_limit=limits.max_image_bytes)
        try:
            while stream.read(CHUNK):
                pass
            diff_id, _ = stream.finish()
        finally:
            stream.close()
    layer = Layer(None, h_digest, size, diff_id, LAYER_MEDIA[comp], path=tarball)
    im = build_image([layer], entrypoint=entrypoint, cmd=cmd, env=env, working_dir=working_dir, user=user)
    source = MemorySource(im.blobs(), {h_digest: (None, tarball)})
    return ingest(store, n, source, im.manifest, None, **kw)
