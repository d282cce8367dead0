"""Streaming, bounded decompression of layer blobs (pure computation over a file object).

The decompressed bytes are hashed as they pass (the layer's diffID covers the *whole* stream,
trailer and padding included) and counted against a limit, so a bomb stops at the limit with
bounded memory (security.md 1.3.11)."""

from __future__ import annotations

import hashlib
import zlib

from .errors import LayerError, LimitExceeded

CHUNK = 1 << 20
ZSTD_MAX_WINDOW = 1 << 27  # 128 MiB: zstd's own default cap for streaming decoders
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_UNSUPPORTED = {b"\xfd7zXZ\x00": "xz", b"BZh": "bzip2", b"\x04\x22\x4d\x18": "lz4"}


def sniff_compression(head: bytes) -> str | None:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


class DecompressedStream:
    """A read()-able view of the decompressed layer; `finish()` drains to EOF and returns
    (diffID, uncompressed size).

    `limit` caps this layer's uncompressed bytes (max-layer-size); `image_limit`, if given, caps
    them together with the `image_before` bytes of the image's layers below (max-image-size).
    Either stops the stream with LimitExceeded as soon as a chunk crosses it."""

    def __init__(self, src, layer: str, limit: int, *, image_limit: int | None = None, image_before: int = 0):
        self._src = src
        self.layer = layer
        self.limit = limit
        self.image_limit = image_limit
        self.image_before = image_before
        self.count = 0
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._eof = False
        self._pos = 0  # bytes handed out; tell()/seek() let tarfile run in its seekable mode
        self._hist = b""  # the last bytes handed out, for tarfile's one-byte look-back
        self._q = self._thread = None
        self._stop = False
        head = src.read(8)
        for magic, name in _UNSUPPORTED.items():
            if head.startswith(magic):
                raise LayerError(layer, f"unsupported compression {name} (only gzip, zstd or none)")
        self.compression = sniff_compression(head)
        self._in = head  # compressed bytes not yet fed to the decoder
        if self.compression == "gzip":
            self._gz = zlib.decompressobj(wbits=31)
        elif self.compression == "zstd":
            import zstandard  # only zstd layers pay for the import

            self._zerr = zstandard.ZstdError
            self._zst = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(
                _Prefixed(head, src), read_size=CHUNK, read_across_frames=True)

    def _produce(self, want: int) -> bytes:
        """Return up to about `want` new decompressed bytes, b'' at the end of the stream."""
        want = max(want, CHUNK)
        if self.compression == "zstd":
            try:
                out = self._zst.read(want)
            except self._zerr as e:
                raise LayerError(self.layer, f"corrupt zstd stream: {e}") from None
            return out
        if self.compression is None:
            data, self._in = self._in or self._src.read(want), b""
            return data
        while True:  # gzip, possibly several members, possibly NUL padding after the last
            if not self._in:
                self._in = self._src.read(CHUNK)
                if not self._in:
                    if self._gz is not None:
                        raise LayerError(self.layer, "truncated gzip stream")
                    return b""
            if self._gz is None:  # between members
                if not self._in.strip(b"\0"):
                    self._in = b""
                    continue
                if len(self._in) < 2:
                    self._in += self._src.read(CHUNK)
                if not self._in.startswith(GZIP_MAGIC):
                    raise LayerError(self.layer, "garbage after the gzip stream")
                self._gz = zlib.decompressobj(wbits=31)
            try:
                out = self._gz.decompress(self._in, want)
            except zlib.error as e:
                raise LayerError(self.layer, f"corrupt gzip stream: {e}") from None
            if self._gz.eof:
                self._in, self._gz = self._gz.unused_data, None
            else:
                self._in = self._gz.unconsumed_tail
            if out:
                return out

    def _account(self, data: bytes) -> None:
        self.count += len(data)
        if self.count > self.limit:
            raise LimitExceeded(self.layer, "uncompressed size", "max-layer-size", self.limit, self.count)
        if self.image_limit is not None and self.image_before + self.count > self.image_limit:
            raise LimitExceeded(self.layer, "uncompressed size of the image's layers", "max-image-size",
                                self.image_limit, self.image_before + self.count)
        self._hash.update(data)

    def _next(self) -> bytes:
        """The next decompressed, counted and hashed chunk; b'' at the end."""
        if self._q is None:
            data = self._produce(CHUNK)
            if data:
                self._account(data)
            return data
        item = self._q.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _pump(self) -> None:
        """Decompress and hash ahead in a thread (zlib, zstd and sha256 release the GIL), as
        `tar -xzf` runs gzip in a second process; the queue bounds memory to a few chunks."""
        try:
            while not self._stop:
                data = self._produce(CHUNK)
                if data:
                    self._account(data)
                self._q.put(data)
                if not data:
                    return
        except BaseException as e:  # handed to the reader
            self._q.put(e)

    def start_prefetch(self) -> None:
        import queue
        import threading
        self._q = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._pump, name="kpy-decompress", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the prefetch thread (after an error the rest of the stream is not needed)."""
        if self._thread is not None:
            import queue  # loaded with the thread (prefetch), not at import
            self._stop = True
            while self._thread.is_alive():
                try:
                    self._q.get(timeout=0.05)  # drained so that the thread's put never blocks
                except queue.Empty:
                    continue
            self._thread = None

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ValueError("unbounded read")  # never the whole layer in memory
        while len(self._buf) < n and not self._eof:
            data = self._next()
            if not data:
                self._eof = True
                break
            self._buf += data
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._pos += len(out)
        self._hist = (self._hist + out)[-512:] if len(out) < 512 else out[-512:]
        return out

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        """Forward seeks skip (still hashed and counted); backward only within the last 512 bytes."""
        if whence == 1:
            pos += self._pos
        if pos < self._pos:
            back = self._pos - pos
            if whence == 2 or back > len(self._hist):
                raise OSError("backward seek in a decompressed stream")
            self._buf[:0] = self._hist[-back:]
            self._hist = self._hist[:-back]
            self._pos = pos
        while self._pos < pos:
            if not self.read(min(pos - self._pos, CHUNK)):
                break
        return self._pos

    def finish(self) -> tuple[str, int]:
        """Drain what the tar reader left (trailer, padding) and return (diffID, size)."""
        self._buf.clear()
        while not self._eof:
            if not self._next():
                self._eof = True
        self.close()
        return f"sha256:{self._hash.hexdigest()}", self.count


class _Prefixed:
    """A file object that first returns `head` (the sniffed bytes), then reads `src`."""

    def __init__(self, head: bytes, src):
        self._head = head
        self._src = src

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = self._head, b""
            return out
        return self._src.read(n)
