"""Typed errors of the image store. Each names the object (reference, blob, entry) it concerns.

Every one is a `runtime.errors.RuntimeFailure`: `kind` is the gRPC canonical code a CRI
ImageService would answer with, `obj` what it concerns (`image <ref>`, `blob <digest>`, `layer
<digest>`, a file), `field` the document or request field when the kind is INVALID_ARGUMENT.
`runtime.errors` has no CANCELLED, ABORTED, UNAUTHENTICATED, PERMISSION_DENIED or DATA_LOSS: the
nearest of its kinds is used and the choice is said in each class."""

from __future__ import annotations

from ..errors import (FAILED_PRECONDITION, INTERNAL, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED,
                      UNAVAILABLE, RuntimeFailure)


class ImageError(RuntimeFailure):
    """Base of every image-store error; str() is one line fit for a CLI. A bare ImageError is
    INTERNAL unless its raise names a kind."""


class ReferenceError_(ImageError):
    """A malformed image reference: INVALID_ARGUMENT, field `image` (CRI's ImageSpec.image, a
    container's `image`), obj the reference as given."""

    kind = INVALID_ARGUMENT

    def __init__(self, ref: str, why: str):
        super().__init__(f"invalid image reference {ref!r}: {why}", obj=ref, field="image")
        self.ref = ref
        self.why = why


class DigestError(ImageError):
    """A digest string that is not a valid content address: INVALID_ARGUMENT; obj is the document
    or object that holds it, field its path there (`digest` when there is none)."""

    kind = INVALID_ARGUMENT

    def __init__(self, value: object, where: str, *, obj: str | None = None, field: str | None = None):
        super().__init__(f"invalid digest {value!r} in {where}", obj=obj or where, field=field or "digest")
        self.value = value
        self.where = where


class DigestMismatch(ImageError):
    """Content whose digest differs from what its descriptor claims: INVALID_ARGUMENT. The image
    (the request's argument) contradicts itself; fetching the same content again cannot help, so
    it is not UNAVAILABLE (gRPC's DATA_LOSS, the exact word, is not among runtime.errors.KINDS and
    CRI does not use it). obj is what was checked."""

    kind = INVALID_ARGUMENT

    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}", obj=what)
        self.what = what
        self.expected = expected
        self.actual = actual


class SizeMismatch(ImageError):
    """Content whose size differs from its descriptor's `size`: INVALID_ARGUMENT, as DigestMismatch."""

    kind = INVALID_ARGUMENT

    def __init__(self, what: str, expected: int, actual: int):
        super().__init__(f"{what}: size mismatch: expected {expected} bytes, got {actual}", obj=what, field="size")
        self.what = what
        self.expected = expected
        self.actual = actual


class ManifestError(ImageError):
    """A manifest, index, config or archive document that breaks the image spec: INVALID_ARGUMENT,
    obj the document, field the JSON path in it."""

    kind = INVALID_ARGUMENT

    def __init__(self, what: str, field: str, why: str):
        super().__init__(f"{what}: {field}: {why}", obj=what, field=field)
        self.what = what
        self.why = why


class LayerError(ImageError):
    """A layer that cannot be unpacked safely (bad entry, bad compression): INVALID_ARGUMENT, as
    DigestMismatch (the layer is bad whatever the node's state); obj `layer <digest>`, field the
    tar entry's name. A raise may set another kind: a full disk is RESOURCE_EXHAUSTED, another
    refusal of the kernel INTERNAL."""

    kind = INVALID_ARGUMENT

    def __init__(self, layer: str, why: str, entry: str | None = None, *, kind: str | None = None):
        where = f" (entry {entry!r})" if entry is not None else ""
        super().__init__(f"layer {layer}{where}: {why}", kind=kind, obj=f"layer {layer}", field=entry)
        self.layer = layer
        self.why = why
        self.entry = entry


class LimitExceeded(LayerError):
    """A layer or image over one of the store's limits (`UnpackLimits`, set by --max-layer-size,
    --max-image-size, --max-layer-entries): RESOURCE_EXHAUSTED. Names the layer's digest, the
    limit (`limit_name`, `limit`) and what was seen when it stopped (`seen`, in `unit`); field is
    the limit's name."""

    kind = RESOURCE_EXHAUSTED

    def __init__(self, layer: str, quantity: str, limit_name: str, limit: int, seen: int, unit: str = "bytes"):
        why = f"{quantity} exceeds the {limit_name} limit of {limit} {unit} ({seen} {unit} seen)"
        super().__init__(layer, why)
        self.field = limit_name
        self.limit_name = limit_name
        self.limit = limit
        self.seen = seen
        self.unit = unit


class NotFound(ImageError):
    """An image, blob or tag that does not exist (locally or on a registry): NOT_FOUND."""

    kind = NOT_FOUND

    def __init__(self, what: str, why: str = "not found"):
        super().__init__(f"{what}: {why}", obj=what)
        self.what = what


def registry_kind(status: int | None) -> str:
    """The kind of a registry failure by its HTTP status (None: no answer at all).

    No answer, 5xx: UNAVAILABLE (the registry may come back). 401/403: FAILED_PRECONDITION: the
    credentials this node is configured with do not let it pull, and asking again changes nothing
    until registries.yaml does (CRI has no UNAUTHENTICATED here; containerd's answer reaches the
    kubelet as ErrImagePull either way). 404: NOT_FOUND. 429: RESOURCE_EXHAUSTED (a rate limit
    is a quota). Other 4xx: INVALID_ARGUMENT (the registry refuses what was asked). Else INTERNAL."""
    if status is None or 500 <= status <= 599:
        return UNAVAILABLE
    if status in (401, 403):
        return FAILED_PRECONDITION
    if status == 404:
        return NOT_FOUND
    if status == 429:
        return RESOURCE_EXHAUSTED
    if 400 <= status <= 499:
        return INVALID_ARGUMENT
    return INTERNAL


class RegistryError(ImageError):
    """A registry answer we cannot use (auth failure, bad status, connection lost); the kind
    follows `registry_kind(status)` unless the raise names one (a TLS setup the node cannot use is
    FAILED_PRECONDITION). obj is the reference, or `blob <digest>` when a blob failed."""

    def __init__(self, ref: str, why: str, status: int | None = None, *, kind: str | None = None,
                 obj: str | None = None):
        super().__init__(f"{ref}: {why}", kind=kind or registry_kind(status), obj=obj or ref)
        self.ref = ref
        self.why = why
        self.status = status


class Cancelled(ImageError):
    """A pull or import abandoned before its end (another layer failed, or its caller gave up);
    nothing of it is kept. UNAVAILABLE: trying again is the remedy (gRPC's CANCELLED is not among
    runtime.errors.KINDS)."""

    kind = UNAVAILABLE


class ConfigError(ImageError):
    """A bad registries.yaml: INVALID_ARGUMENT, obj the file, field the key path in it."""

    kind = INVALID_ARGUMENT

    def __init__(self, path: str, field: str, why: str):
        super().__init__(f"{path}: {field}: {why}", obj=path, field=field)
        self.path = path
