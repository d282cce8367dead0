"""Field errors as the API server words them, and the one exception that carries them.

A `FieldError` is upstream's `field.Error` (apimachinery `util/validation/field`): a reason
type, the field path, the bad value and a detail, plus where it came from (file, document,
object). `str()` gives one line, e.g.

    web.yaml: pod default/web: spec.containers[1].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive

`ApiError` carries every error found at once; its `str()` is one line per error. Its `kind`
uses the same strings as `runtime.errors` (gRPC canonical codes), by value."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

# upstream's field.ErrorType strings
REQUIRED = "Required value"
INVALID = "Invalid value"
NOT_SUPPORTED = "Unsupported value"
DUPLICATE = "Duplicate value"
FORBIDDEN = "Forbidden"
NOT_FOUND = "Not found"
TOO_LONG = "Too long"
TOO_MANY = "Too many"
# decoding, before validation (upstream answers these as a 400 with free text)
UNKNOWN_FIELD = "Unknown field"
PARSE = "Parse error"
# against the stored object (upstream's 409 statuses): the detail is the whole message
CONFLICT = "Conflict"
EXISTS = "Already exists"

# ApiError kinds: the strings of runtime.errors
INVALID_ARGUMENT = "INVALID_ARGUMENT"
ALREADY_EXISTS = "ALREADY_EXISTS"
NOT_FOUND_KIND = "NOT_FOUND"
FAILED_PRECONDITION = "FAILED_PRECONDITION"


class Path(str):
    """A field path as upstream prints it: `spec.containers[0].resources.limits[cpu]`."""

    def child(self, *names: str) -> Path:
        p = str(self)
        for n in names:
            p = f"{p}.{n}" if p else n
        return Path(p)

    def index(self, i: int) -> Path:
        return Path(f"{self}[{i}]")

    def key(self, k: str) -> Path:
        return Path(f"{self}[{k}]")


ROOT = Path("")


class _Omit:
    def __repr__(self):
        return "<omitted>"


OMIT = _Omit()


@dataclass(frozen=True)
class Source:
    """Where an object came from: a file name, the document's index in it (0-based) when the
    file holds several, and the item's index when the document is a List."""
    file: str
    document: int | None = None
    item: int | None = None

    def __str__(self) -> str:
        where = []
        if self.document is not None:
            where.append(f"document {self.document + 1}")
        if self.item is not None:
            where.append(f"item {self.item}")
        return f"{self.file} ({', '.join(where)})" if where else self.file


def format_value(value) -> str:
    """A bad value as Go's %v/%q would print it in a field error."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class FieldError:
    reason: str
    field: str = ""
    value: object = OMIT
    detail: str = ""
    source: Source | None = None
    obj: str | None = None  # "pod default/web", "namespace prod"
    line: int | None = None  # 1-based, for errors found while reading YAML

    def body(self) -> str:
        """Upstream's ErrorBody: the reason, the value unless the reason omits it, the detail."""
        if self.reason == UNKNOWN_FIELD:
            return f"unknown field {json.dumps(self.field)}"
        if self.reason in (PARSE, CONFLICT, EXISTS):
            return self.detail
        if self.reason in (REQUIRED, FORBIDDEN, TOO_LONG) or self.value is OMIT:
            s = self.reason
        else:
            s = f"{self.reason}: {format_value(self.value)}"
        return f"{s}: {self.detail}" if self.detail else s

    def __str__(self) -> str:
        parts = []
        if self.source is not None:
            parts.append(str(self.source))
        if self.obj:
            parts.append(self.obj)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field and self.reason != UNKNOWN_FIELD:
            parts.append(self.field)
        parts.append(self.body())
        return ": ".join(parts)

    def at(self, source: Source | None = None, obj: str | None = None) -> FieldError:
        """The same error with its origin filled in (what is already set is kept)."""
        return dataclasses.replace(self, source=self.source or source, obj=self.obj or obj)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, field, OMIT, detail)


def invalid(field: str, value, detail: str = "") -> FieldError:
    return FieldError(INVALID, field, value, detail)


def not_supported(field: str, value, supported) -> FieldError:
    detail = "supported values: " + ", ".join(json.dumps(str(v)) for v in supported) if supported else ""
    return FieldError(NOT_SUPPORTED, field, value, detail)


def duplicate(field: str, value) -> FieldError:
    return FieldError(DUPLICATE, field, value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(FORBIDDEN, field, OMIT, detail)


def not_found(field: str, value) -> FieldError:
    return FieldError(NOT_FOUND, field, value)


def too_long(field: str, max_bytes: int) -> FieldError:
    return FieldError(TOO_LONG, field, OMIT, f"may not be more than {max_bytes} bytes")


class ApiError(Exception):
    """Every error found in what was given, at once. `kind`: INVALID_ARGUMENT (bad input),
    ALREADY_EXISTS, NOT_FOUND or FAILED_PRECONDITION (a conflict with the stored object)."""

    def __init__(self, errors, kind: str = INVALID_ARGUMENT):
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.kind = kind
        super().__init__("\n".join(str(e) for e in self.errors))

    def fields(self) -> list[str]:
        return [e.field for e in self.errors]
