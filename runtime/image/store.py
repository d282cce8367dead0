"""The image store (kernel edge: files under `<root>/images`).

    blobs/sha256/<hex>             content-addressed blobs, verified while written
    snapshots/sha256/<hex>/fs      one unpacked layer per diffID, shared by every image
    snapshots/sha256/<hex>/layer.json
    index.json                     image name -> manifest digest
    leases/<holder>.json           users (containers) that keep images from being pruned
    tmp/                           temp files and dirs; removed at open (left by a crash)
    lock                           flock: exclusive while images are added, removed or pruned

Nothing is visible under its final name until it is complete and verified: blobs and
snapshots are renamed into place, index.json is replaced atomically. The store root is 0700
so host users cannot reach setuid binaries in snapshots (CVE-2021-41091)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from ..atomicfile import fsync_dir, write_atomic
from ..errors import INTERNAL, INVALID_ARGUMENT, RESOURCE_EXHAUSTED
from .decompress import DecompressedStream
from .digest import Verifier, digest_bytes, validate_digest
from .errors import DigestMismatch, ImageError, LayerError, NotFound
from .manifest import ImageConfig, Manifest, check_layers_match, parse_config, parse_document
from .reference import parse_reference
from .limits import UnpackLimits
from .unpack import unpack_stream

PREFETCH_ABOVE = 4 << 20  # decompress in a second thread only for blobs bigger than this
_LEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")


@dataclass(frozen=True)
class ImageRecord:
    name: str
    digest: str  # manifest digest
    index_digest: str | None  # the multi-platform index it was selected from, if any
    added: float


@dataclass(frozen=True)
class Image:
    """A stored image: its record, manifest and config, and its snapshots top layer first."""
    record: ImageRecord
    manifest: Manifest
    config: ImageConfig
    size: int  # compressed bytes (manifest config + layers), as `docker images` shows
    layer_dirs: tuple[str, ...] = field(default=())  # overlay lowerdirs, top first


class _Txn:
    """What one add created, so a failure removes exactly that (nothing stored from a failed pull)."""

    def __init__(self):
        self.paths: list[str] = []


class ImageStore:
    def __init__(self, root: str, limits: UnpackLimits | None = None):
        self.root = os.path.join(root, "images")
        self.limits = limits or UnpackLimits()
        self.blobs = os.path.join(self.root, "blobs", "sha256")
        self.snapshots = os.path.join(self.root, "snapshots", "sha256")
        self.tmp = os.path.join(self.root, "tmp")
        self.leases = os.path.join(self.root, "leases")
        self.index_path = os.path.join(self.root, "index.json")
        os.makedirs(root, mode=0o700, exist_ok=True)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        for d in (self.blobs, self.snapshots, self.tmp, self.leases):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self._txn: _Txn | None = None

    # ---- locking -------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self):
        """Exclusive store lock; on first entry, leftovers of crashed writers are removed."""
        if self._txn is not None:  # re-entrant within one add
            yield
            return
        fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._clean_tmp()
            yield
        finally:
            os.close(fd)

    def _clean_tmp(self) -> None:
        for name in os.listdir(self.tmp):
            p = os.path.join(self.tmp, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)

    @contextlib.contextmanager
    def transaction(self):
        """Lock the store; on error remove every blob and snapshot this block created."""
        with self.locked():
            self._txn = txn = _Txn()
            try:
                yield
            except BaseException:
                for p in reversed(txn.paths):
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(p)
                raise
            finally:
                self._txn = None

    # ---- blobs ---------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        validate_digest(digest, "blob")
        algo, hexd = digest.split(":", 1)
        if algo != "sha256":
            return os.path.join(self.root, "blobs", algo, hexd)
        return os.path.join(self.blobs, hexd)

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def read_blob(self, digest: str, limit: int | None = None) -> bytes:
        try:
            with open(self.blob_path(digest), "rb") as f:
                data = f.read(limit + 1 if limit else -1)
        except FileNotFoundError:
            raise NotFound(f"blob {digest}") from None
        if limit is not None and len(data) > limit:
            raise ImageError(f"blob {digest}: larger than {limit} bytes", kind=RESOURCE_EXHAUSTED,
                             obj=f"blob {digest}")
        return data

    def write_blob(self, what: str, digest: str, size: int | None, chunks) -> str:
        """Store the bytes of the iterable `chunks` as blob `digest`, verified on the way;
        on mismatch nothing is stored. Returns the blob's path."""
        path = self.blob_path(digest)
        if os.path.exists(path):
            for _ in chunks:  # drain, so the source's own verification still runs
                pass
            return path
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        v = Verifier(what, digest, size)
        fd, tmp = tempfile.mkstemp(prefix="blob-", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                for chunk in chunks:
                    v.update(chunk)
                    f.write(chunk)
                v.check()
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if self._txn is not None:
            self._txn.paths.append(path)
        return path

    def put_blob(self, what: str, data: bytes, digest: str | None = None) -> str:
        digest = digest or digest_bytes(data)
        self.write_blob(what, digest, len(data), [data])
        return digest

    # ---- snapshots -----------------------------------------------------------------------
    def snapshot_dir(self, diff_id: str) -> str:
        validate_digest(diff_id, "diff_id")
        algo, hexd = diff_id.split(":", 1)
        if algo != "sha256":
            raise LayerError(diff_id, "only sha256 diffIDs are supported")
        return os.path.join(self.snapshots, hexd)

    def has_snapshot(self, diff_id: str) -> bool:
        return os.path.exists(os.path.join(self.snapshot_dir(diff_id), "layer.json"))

    def snapshot_meta(self, diff_id: str) -> dict:
        with open(os.path.join(self.snapshot_dir(diff_id), "layer.json"), "rb") as f:
            return json.loads(f.read())

    def has_layer(self, layer_digest: str, diff_id: str) -> bool:
        """True if the snapshot for `diff_id` exists and is known to come from this blob."""
        try:
            return layer_digest in self.snapshot_meta(diff_id).get("blobs", [])
        except FileNotFoundError:
            return False

    def layer_size(self, diff_id: str) -> int:
        """Uncompressed bytes of a stored snapshot's tar stream."""
        return int(self.snapshot_meta(diff_id).get("size", 0))

    def _stream(self, blob, layer_digest: str, image_before: int) -> DecompressedStream:
        return DecompressedStream(blob, layer_digest, self.limits.max_bytes,
                                  image_limit=self.limits.max_image_bytes, image_before=image_before)

    def unpack(self, layer_digest: str, diff_id: str, lower_diff_ids: list[str], image_before: int = 0) -> bool:
        """Unpack blob `layer_digest` into the snapshot for `diff_id` unless it exists.
        `lower_diff_ids` (top first) lend metadata to implicitly created parent dirs; `image_before`
        is the uncompressed size of the image's layers below, counted against max_image_bytes.
        A blob that claims an existing snapshot's diffID is hashed first: a false claim is a
        mismatch error and the snapshot is untouched (CVE-2014-8178). Returns True if it unpacked."""
        final = self.snapshot_dir(diff_id)
        what = f"{layer_digest} (diff_id {diff_id})"
        if self.has_snapshot(diff_id):
            if not self.has_layer(layer_digest, diff_id):
                with open(self.blob_path(layer_digest), "rb", buffering=0) as blob:
                    stream = self._stream(blob, layer_digest, image_before)
                    actual, _ = stream.finish()
                if actual != diff_id:
                    raise DigestMismatch(f"layer {what}: diff_id", diff_id, actual)
                meta = self.snapshot_meta(diff_id)
                meta["blobs"] = sorted(set(meta.get("blobs", [])) | {layer_digest})
                write_atomic(os.path.join(final, "layer.json"), json.dumps(meta).encode())
            return False
        work = tempfile.mkdtemp(prefix="snap-", dir=self.tmp)
        lowers = []
        try:
            os.mkdir(os.path.join(work, "fs"), 0o755)
            root_fd = os.open(os.path.join(work, "fs"), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            for low in lower_diff_ids:
                with contextlib.suppress(OSError):
                    lowers.append(os.open(os.path.join(self.snapshot_dir(low), "fs"),
                                          os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW))
            try:
                with open(self.blob_path(layer_digest), "rb", buffering=0) as blob:
                    stream = self._stream(blob, layer_digest, image_before)
                    big = os.fstat(blob.fileno()).st_size > PREFETCH_ABOVE
                    result = unpack_stream(stream, root_fd, lowers, self.limits, prefetch=big)
            finally:
                os.close(root_fd)
            if result.diff_id != diff_id:
                raise DigestMismatch(f"layer {what}: diff_id", diff_id, result.diff_id)
            meta = {"diff_id": diff_id, "size": result.size, "entries": result.entries,
                    "root_opaque": result.root_opaque, "compression": stream.compression,
                    "blobs": [layer_digest], "unpacked": time.time()}
            with open(os.path.join(work, "layer.json"), "w") as f:
                json.dump(meta, f)
            if os.path.exists(final):  # a dir without layer.json: never complete, replace it
                shutil.rmtree(final)
            os.rename(work, final)
            fsync_dir(self.snapshots)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        finally:
            for fd in lowers:
                os.close(fd)
        if self._txn is not None:
            self._txn.paths.append(final)
        return True

    # ---- index ---------------------------------------------------------------------------
    def _read_index(self) -> dict:
        try:
            with open(self.index_path, "rb") as f:
                doc = json.loads(f.read())
        except FileNotFoundError:
            return {}
        return doc.get("images", {})

    def records(self) -> list[ImageRecord]:
        return [ImageRecord(n, r["digest"], r.get("index"), r.get("added", 0.0))
                for n, r in sorted(self._read_index().items())]

    def tag(self, name: str, digest: str, index_digest: str | None = None) -> None:
        with self.locked():
            images = self._read_index()
            images[name] = {"digest": digest, "index": index_digest, "added": time.time()}
            write_atomic(self.index_path, json.dumps({"images": images}, indent=1, sort_keys=True).encode())

    def resolve(self, ref: str) -> ImageRecord:
        """Find a stored image by name (normalised), by `name@digest`, or by (a prefix of) digest."""
        images = self._read_index()
        rec = None
        if ref in images:
            rec = (ref, images[ref])
        else:
            hexish = ref.removeprefix("sha256:")
            if re.fullmatch(r"[a-f0-9]{6,64}", hexish):
                hits = [(n, r) for n, r in images.items() if r["digest"].removeprefix("sha256:").startswith(hexish)]
                if len(hits) > 1 and len({r["digest"] for _, r in hits}) > 1:
                    raise ImageError(f"image {ref}: ambiguous digest prefix", kind=INVALID_ARGUMENT,
                                     obj=f"image {ref}", field="image")
                rec = hits[0] if hits else None
            if rec is None:
                r = parse_reference(ref)
                if r.digest:
                    hits = [(n, v) for n, v in images.items()
                            if v["digest"] == r.digest or v.get("index") == r.digest]
                    rec = hits[0] if hits else None
                else:
                    key = str(r)
                    rec = (key, images[key]) if key in images else None
        if rec is None:
            raise NotFound(f"image {ref}", "not found in the store")
        n, v = rec
        return ImageRecord(n, v["digest"], v.get("index"), v.get("added", 0.0))

    def image(self, ref: str) -> Image:
        rec = self.resolve(ref)
        return self._load(rec)

    def _load(self, rec: ImageRecord) -> Image:
        what = f"image {rec.name}"
        m = parse_document(self.read_blob(rec.digest), f"{what} manifest {rec.digest}")
        cfg = parse_config(self.read_blob(m.config.digest), f"{what} config {m.config.digest}")
        dirs = []
        for diff_id in reversed(cfg.diff_ids):
            dirs.append(os.path.join(self.snapshot_dir(diff_id), "fs"))
            if self.snapshot_meta(diff_id).get("root_opaque"):
                break  # hides every lower layer: overlayfs ignores opaque on a lowerdir root
        size = m.config.size + sum(ly.size for ly in m.layers)
        return Image(rec, m, cfg, size, tuple(dirs))

    def images(self) -> list[Image]:
        return [self._load(r) for r in self.records()]

    def remove(self, ref: str) -> ImageRecord:
        with self.locked():
            rec = self.resolve(ref)
            images = self._read_index()
            del images[rec.name]
            write_atomic(self.index_path, json.dumps({"images": images}, indent=1, sort_keys=True).encode())
        return rec

    # ---- adding an image -------------------------------------------------------------------
    def commit_image(self, name: str, manifest_bytes: bytes, manifest_digest: str, config_bytes: bytes,
                     index: tuple[str, bytes] | None = None) -> ImageRecord:
        """Final step of every import/pull, inside a transaction, after the layers are unpacked:
        store the documents and point `name` at the manifest."""
        what = f"image {name}"
        m = parse_document(manifest_bytes, f"{what} manifest")
        cfg = parse_config(config_bytes, f"{what} config")
        check_layers_match(m, cfg, f"{what} manifest")
        for d in cfg.diff_ids:
            if not self.has_snapshot(d):
                raise LayerError(d, "snapshot missing after unpack", kind=INTERNAL)
        self.write_blob(f"{what} config", m.config.digest, m.config.size, [config_bytes])
        self.write_blob(f"{what} manifest", manifest_digest, len(manifest_bytes), [manifest_bytes])
        if index is not None:
            self.put_blob(f"{what} index", index[1], index[0])
        self.tag(name, manifest_digest, index[0] if index else None)
        return self.resolve(name)

    # ---- users and garbage collection ------------------------------------------------------
    def add_lease(self, holder: str, image_digests: list[str], durable: bool = True) -> None:
        """Register `holder` (e.g. a container id) as a user of these manifests: prune keeps them
        and their layers even after `image rm`. `durable=False`: not fsync'ed (a holder that
        does not outlive the host, as a container)."""
        if not _LEASE_NAME.match(holder):
            raise ImageError(f"lease {holder!r}: invalid holder name", kind=INVALID_ARGUMENT, obj=f"lease {holder}",
                             field="holder")
        for d in image_digests:
            validate_digest(d, f"lease {holder}")
        with self.locked():
            write_atomic(os.path.join(self.leases, f"{holder}.json"), json.dumps({"images": image_digests}).encode(),
                         durable=durable)

    def remove_lease(self, holder: str) -> None:
        if not _LEASE_NAME.match(holder):
            raise ImageError(f"lease {holder!r}: invalid holder name", kind=INVALID_ARGUMENT, obj=f"lease {holder}",
                             field="holder")
        with self.locked(), contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.leases, f"{holder}.json"))

    def _leased(self) -> set[str]:
        out = set()
        for name in os.listdir(self.leases):
            if name.endswith(".json"):
                with open(os.path.join(self.leases, name), "rb") as f:
                    out.update(json.loads(f.read()).get("images", []))
        return out

    def prune(self) -> dict:
        """Delete blobs and snapshots that no image name and no lease references."""
        with self.locked():
            keep_blobs, keep_snaps = set(), set()
            roots = {r.digest for r in self.records()} | self._leased()
            roots |= {r.index_digest for r in self.records() if r.index_digest}
            for digest in roots:
                keep_blobs.add(digest)
                try:
                    doc = parse_document(self.read_blob(digest), f"blob {digest}")
                except NotFound:
                    continue
                if isinstance(doc, Manifest):
                    keep_blobs.add(doc.config.digest)
                    keep_blobs.update(ly.digest for ly in doc.layers)
                    with contextlib.suppress(NotFound):
                        cfg = parse_config(self.read_blob(doc.config.digest), f"config {doc.config.digest}")
                        keep_snaps.update(cfg.diff_ids)
            removed_blobs = removed_snaps = 0
            freed = 0
            for name in os.listdir(self.blobs):
                if f"sha256:{name}" not in keep_blobs:
                    p = os.path.join(self.blobs, name)
                    freed += os.lstat(p).st_size
                    os.unlink(p)
                    removed_blobs += 1
            for name in os.listdir(self.snapshots):
                if f"sha256:{name}" not in keep_snaps:
                    shutil.rmtree(os.path.join(self.snapshots, name))
                    removed_snaps += 1
            return {"blobs": removed_blobs, "snapshots": removed_snaps, "bytes": freed}
