"""Adding an image to the store from any source (archive, registry, a built rootfs).

One pipeline for every source: resolve the top document (index -> this platform's manifest),
verify and parse the config, fetch the layers that have no snapshot yet (in parallel), unpack
them in order as they arrive, then commit the documents and the name. It all runs in one store
transaction: a failure anywhere removes every blob and snapshot it created."""

from __future__ import annotations

import threading
from typing import Callable, Iterator, Protocol

from .digest import Verifier, digest_bytes
from .errors import Cancelled, LimitExceeded, ManifestError
from .manifest import (MAX_DOCUMENT, Descriptor, Index, Manifest, Platform, check_layers_match,
                       host_platform, parse_config, parse_document, select_platform)
from .store import ImageRecord, ImageStore
from .limits import UnpackLimits

Progress = Callable[[str, str, int, int], None]  # (layer digest, phase, done, total)


class BlobSource(Protocol):
    def chunks(self, desc: Descriptor, what: str) -> Iterator[bytes]:
        """The blob's bytes, unverified (the caller verifies digest and size)."""


def read_document(source: BlobSource, desc: Descriptor, what: str) -> bytes:
    """A manifest/index/config blob, size-capped and verified."""
    if desc.size > MAX_DOCUMENT:
        raise ManifestError(what, "size", f"{desc.size} bytes exceeds the {MAX_DOCUMENT}-byte cap")
    v = Verifier(what, desc.digest, desc.size)
    parts = []
    for chunk in source.chunks(desc, what):
        v.update(chunk)
        parts.append(chunk)
    v.check()
    return b"".join(parts)


def resolve_top(source: BlobSource, top: bytes, media_type: str | None, what: str,
                platform: Platform | None = None) -> tuple[bytes, str, Manifest, tuple[str, bytes] | None]:
    """(manifest bytes, manifest digest, manifest, (index digest, index bytes) or None)."""
    doc = parse_document(top, what, media_type)
    if isinstance(doc, Index):
        desc = select_platform(doc, platform or host_platform(), what)
        mbytes = read_document(source, desc, f"{what} manifest {desc.digest}")
        m = parse_document(mbytes, f"{what} manifest {desc.digest}", desc.media_type)
        if not isinstance(m, Manifest):
            raise ManifestError(what, "manifests", f"{desc.digest} is a nested index")
        return mbytes, desc.digest, m, (digest_bytes(top), top)
    return top, digest_bytes(top), doc, None


def check_declared_sizes(manifest: Manifest, limits: UnpackLimits) -> None:
    """Refuse an image whose manifest declares a layer blob over max-layer-size, or blobs whose sum
    is over max-image-size, before any of it is fetched (the store's verifier stops a download at
    the declared size, so these bound what is downloaded)."""
    total = 0
    for desc in manifest.layers:
        if desc.size > limits.max_bytes:
            raise LimitExceeded(desc.digest, "blob size declared by the manifest", "max-layer-size",
                                limits.max_bytes, desc.size)
        total += desc.size
        if total > limits.max_image_bytes:
            raise LimitExceeded(desc.digest, "blob sizes of the image's layers declared by the manifest",
                                "max-image-size", limits.max_image_bytes, total)


def ingest(store: ImageStore, name: str, source: BlobSource, top: bytes, media_type: str | None,
           *, platform: Platform | None = None, progress: Progress | None = None,
           parallel: int = 4) -> ImageRecord:
    what = f"image {name}"
    with store.transaction():
        mbytes, mdigest, manifest, index = resolve_top(source, top, media_type, what, platform)
        cbytes = read_document(source, manifest.config, f"{what} config {manifest.config.digest}")
        config = parse_config(cbytes, f"{what} config {manifest.config.digest}")
        check_layers_match(manifest, config, f"{what} manifest")
        limits = store.limits
        check_declared_sizes(manifest, limits)
        todo = [i for i, d in enumerate(config.diff_ids) if not store.has_layer(manifest.layers[i].digest, d)]
        cancel = threading.Event()

        def fetch(i: int) -> None:
            desc = manifest.layers[i]
            if store.has_blob(desc.digest):
                return
            done = 0

            def counted():
                nonlocal done
                for chunk in source.chunks(desc, f"{what} layer {desc.digest}"):
                    if cancel.is_set():
                        raise Cancelled(f"{what}: cancelled", obj=what)
                    done += len(chunk)
                    if progress:
                        progress(desc.digest, "download", done, desc.size)
                    yield chunk
            store.write_blob(f"{what} layer {desc.digest}", desc.digest, desc.size, counted())
            if progress:
                progress(desc.digest, "downloaded", desc.size, desc.size)

        pool, futures = None, {}
        if len(todo) > 1:  # one layer (the common small image) needs no threads
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(max_workers=min(parallel, len(todo)), thread_name_prefix="kpy-fetch")
        try:
            futures = {i: pool.submit(fetch, i) for i in todo} if pool else {}
            wanted = set(todo)
            total = 0  # uncompressed bytes of the layers below, against max-image-size
            for i, diff_id in enumerate(config.diff_ids):
                desc = manifest.layers[i]
                if i in wanted:
                    futures[i].result() if pool else fetch(i)
                    if progress:
                        progress(desc.digest, "unpack", 0, desc.size)
                    store.unpack(desc.digest, diff_id, list(reversed(config.diff_ids[:i])), image_before=total)
                    if progress:
                        progress(desc.digest, "done", desc.size, desc.size)
                size = store.layer_size(diff_id)  # a stored layer counts too: the limits are the image's
                if size > limits.max_bytes:
                    raise LimitExceeded(desc.digest, "uncompressed size", "max-layer-size", limits.max_bytes, size)
                total += size
                if total > limits.max_image_bytes:
                    raise LimitExceeded(desc.digest, "uncompressed size of the image's layers", "max-image-size",
                                        limits.max_image_bytes, total)
        except BaseException:
            cancel.set()
            raise
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)  # nothing may land after a rollback
        return store.commit_image(name, mbytes, mdigest, cbytes, index)
