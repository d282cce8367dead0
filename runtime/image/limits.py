"""The store's limits on what one import or pull may store (pure, import-light: the CLI reads its
defaults for its help text without loading the unpacker)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UnpackLimits:
    """What one import or pull may store. The first three are a user's to set (--max-layer-size,
    --max-image-size, --max-layer-entries); the rest bound the parsing of one tar entry, far above
    anything a real image holds, and are not options.

    The two byte limits apply twice: to the blobs as their manifest declares them (so a pull over a
    limit fails before it downloads anything, and a download stops at the declared size), and to the
    uncompressed tar streams as they are unpacked (so a bomb stops at the limit)."""
    max_bytes: int = 64 << 30  # one layer: its blob and its uncompressed tar (--max-layer-size)
    max_image_bytes: int = 256 << 30  # the sum over an image's layers, the same two ways (--max-image-size)
    max_entries: int = 5_000_000  # tar entries in one layer (--max-layer-entries)
    max_path: int = 4096
    max_depth: int = 256
    max_header: int = 1 << 20  # PAX / GNU long-name payloads (Go's archive/tar cap)

    def __post_init__(self):
        for f in ("max_bytes", "max_image_bytes", "max_entries", "max_path", "max_depth", "max_header"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"UnpackLimits.{f}: {v!r} is not a positive integer")
