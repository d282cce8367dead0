"""Image references (pure): parse and normalise `[registry/]path[:tag][@digest]` as docker does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .digest import validate_digest
from .errors import DigestError, ReferenceError_

DEFAULT_REGISTRY = "docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?$|^\[[0-9a-fA-F:.]+\](?::[0-9]+)?$"
)
MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    registry: str  # e.g. "docker.io", "127.0.0.1:5000"
    repository: str  # e.g. "library/busybox"
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def object(self) -> str:
        """What to ask the registry's manifests endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.registry, self.repository, None, digest)


def parse_reference(ref: str) -> Reference:
    """Parse and normalise; `busybox` -> `docker.io/library/busybox:latest`."""
    if not isinstance(ref, str) or not ref:
        raise ReferenceError_(str(ref), "empty")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise ReferenceError_(ref, "contains whitespace")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        try:
            validate_digest(digest, "reference")
        except DigestError:
            raise ReferenceError_(ref, f"bad digest {digest!r}") from None
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise ReferenceError_(ref, f"bad tag {tag!r}")
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"
                           or parts[0] != parts[0].lower()):
        registry, path = parts[0], parts[1:]
        if not _DOMAIN.match(registry):
            raise ReferenceError_(ref, f"bad registry {registry!r}")
    else:
        registry, path = DEFAULT_REGISTRY, parts
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and len(path) == 1:
        path = ["library", *path]
    for comp in path:
        if not _COMPONENT.match(comp):
            raise ReferenceError_(ref, f"bad repository component {comp!r} (lowercase letters, digits, "
                                  "and single separators . _ __ - only)")
    repository = "/".join(path)
    if len(registry) + 1 + len(repository) > MAX_NAME:
        raise ReferenceError_(ref, f"name longer than {MAX_NAME} characters")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, repository, tag, digest)
