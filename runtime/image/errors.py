"""Typed errors of the image store. Each names the object (reference, blob, entry) it concerns."""

from __future__ import annotations


class ImageError(Exception):
    """Base of every image-store error; str() is one line fit for a CLI."""


class ReferenceError_(ImageError):
    """A malformed image reference."""

    def __init__(self, ref: str, why: str):
        super().__init__(f"invalid image reference {ref!r}: {why}")
        self.ref = ref
        self.why = why


class DigestError(ImageError):
    """A digest string that is not a valid content address."""

    def __init__(self, value: object, where: str):
        super().__init__(f"invalid digest {value!r} in {where}")
        self.value = value
        self.where = where


class DigestMismatch(ImageError):
    """Content whose digest or size differs from what its descriptor claims."""

    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")
        self.what = what
        self.expected = expected
        self.actual = actual


class SizeMismatch(ImageError):
    def __init__(self, what: str, expected: int, actual: int):
        super().__init__(f"{what}: size mismatch: expected {expected} bytes, got {actual}")
        self.what = what
        self.expected = expected
        self.actual = actual


class ManifestError(ImageError):
    """A manifest, index, config or archive document that breaks the image spec."""

    def __init__(self, what: str, field: str, why: str):
        super().__init__(f"{what}: {field}: {why}")
        self.what = what
        self.field = field
        self.why = why


class LayerError(ImageError):
    """A layer that cannot be unpacked safely (bad entry, bad compression, too big)."""

    def __init__(self, layer: str, why: str, entry: str | None = None):
        where = f" (entry {entry!r})" if entry is not None else ""
        super().__init__(f"layer {layer}{where}: {why}")
        self.layer = layer
        self.why = why
        self.entry = entry


class NotFound(ImageError):
    """An image, blob or tag that does not exist (locally or on a registry)."""

    def __init__(self, what: str, why: str = "not found"):
        super().__init__(f"{what}: {why}")
        self.what = what


class RegistryError(ImageError):
    """A registry answer we cannot use (auth failure, bad status, connection lost)."""

    def __init__(self, ref: str, why: str, status: int | None = None):
        super().__init__(f"{ref}: {why}")
        self.ref = ref
        self.why = why
        self.status = status


class ConfigError(ImageError):
    """A bad registries.yaml."""

    def __init__(self, path: str, field: str, why: str):
        super().__init__(f"{path}: {field}: {why}")
        self.path = path
        self.field = field
