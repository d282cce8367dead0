"""Digests (pure): validation before any digest reaches a path or URL, and a hashing writer."""

from __future__ import annotations

import hashlib
import re

from .errors import DigestError, DigestMismatch, SizeMismatch

_DIGEST = {"sha256": re.compile(r"^sha256:[a-f0-9]{64}$"), "sha512": re.compile(r"^sha512:[a-f0-9]{128}$")}


def validate_digest(value: object, where: str, field: str | None = None) -> str:
    """Return `value` if it is `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase), else raise a
    DigestError naming `where` (the object) and `field` (the digest's path in it, if any)."""
    if isinstance(value, str):
        algo = value.split(":", 1)[0]
        pat = _DIGEST.get(algo)
        if pat is not None and pat.match(value):
            return value
    raise DigestError(value, f"{where} {field}" if field else where, obj=where, field=field)


def digest_bytes(data: bytes, algo: str = "sha256") -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


class Verifier:
    """Hashes and counts bytes as they pass; `check()` compares with the expected digest and size."""

    def __init__(self, what: str, digest: str, size: int | None = None):
        self.what = what
        self.digest = digest
        self.size = size
        self.algo = digest.split(":", 1)[0]
        self._hash = hashlib.new(self.algo)
        self.count = 0

    def update(self, chunk: bytes) -> None:
        self.count += len(chunk)
        if self.size is not None and self.count > self.size:
            raise SizeMismatch(self.what, self.size, self.count)
        self._hash.update(chunk)

    @property
    def actual(self) -> str:
        return f"{self.algo}:{self._hash.hexdigest()}"

    def check(self) -> None:
        if self.size is not None and self.count != self.size:
            raise SizeMismatch(self.what, self.size, self.count)
        if self.actual != self.digest:
            raise DigestMismatch(self.what, self.digest, self.actual)
