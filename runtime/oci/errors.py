"""The executor's own error: a container that could not be started or entered. Bad input is a
SpecError (spec.py, INVALID_ARGUMENT with the field); the base of both is runtime.errors."""

from __future__ import annotations

from ..errors import RuntimeFailure


class RunError(RuntimeFailure):
    """The container could not be started; names the step. INTERNAL unless raised with a kind
    (a missing bundle is NOT_FOUND, a config.json that is not JSON INVALID_ARGUMENT)."""
