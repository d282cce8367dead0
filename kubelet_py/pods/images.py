"""Image pulls as the kubelet decides them (imagePullPolicy Always / IfNotPresent / Never), run
in a thread of the daemon. The back-off after a failed pull is the status layer's arithmetic;
this module only answers "is it there" and "pull it"."""

from __future__ import annotations

import time

from runtime.image.errors import ImageError, NotFound
from runtime.image.registry import pull


class ImagePullError(Exception):
    """reason: ErrImagePull | ErrImageNeverPull | InvalidImageName, with upstream's message."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def image_present(store, ref: str) -> bool:
    try:
        store.image(ref)
        return True
    except NotFound:
        return False
    except ImageError as e:
        if e.kind == "INVALID_ARGUMENT":
            raise ImagePullError("InvalidImageName", f'Failed to apply default image tag "{ref}": {e}') from None
        raise


def ensure_image(store, registries, ref: str, policy: str) -> tuple[bool, float, int]:
    """Make `ref` present per `policy`: (pulled?, seconds, size in bytes)."""
    present = image_present(store, ref)
    if policy == "Never":
        if not present:
            raise ImagePullError("ErrImageNeverPull",
                                 f'Container image "{ref}" is not present with pull policy of Never')
        return False, 0.0, 0
    if policy == "IfNotPresent" and present:
        return False, 0.0, 0
    t0 = time.monotonic()
    try:
        pull(store, ref, registries)
    except ImageError as e:
        raise ImagePullError("ErrImagePull", f'failed to pull and unpack image "{ref}": {e}') from None
    size = store.image(ref).size
    return True, time.monotonic() - t0, size
