"""Manifests in, objects out: what `kubectl apply -f FILE` sends and the API server admits.

`load(data, file)` reads a file's text (multi-document YAML, JSON, a `v1` List), decodes each
object against its kind (unknown fields are warnings, or errors with `strict=True`), applies
the API server's defaults and validates it. Every error of every document comes back at once in
one ApiError, each naming the file, the document, the object and the field; nothing is
returned unless the whole file is good, so a file applies whole or not at all.

Kinds: `v1` Pod, Namespace, ConfigMap, Secret, Service, Endpoints and `discovery.k8s.io/v1` EndpointSlice.

Limits: MAX_FILE_BYTES per file (the kubelet's static-pod cap) and MAX_DOCUMENT_BYTES per
document (the API server's request-body cap)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from kubelet_py.api import schema
from kubelet_py.api.defaults import set_defaults
from kubelet_py.api.errors import PARSE, ApiError, FieldError, Source, required
from kubelet_py.api.meta_validation import object_ref
from kubelet_py.api.service_validation import service_warnings
from kubelet_py.api.validation import validate
from kubelet_py.api.yamlread import ReadError, looks_like_json, normalize_numbers, read_json, read_yaml

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DOCUMENT_BYTES = 3 * 1024 * 1024

KINDS = {
    ("v1", "Pod"): "Pod",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Service"): "Service",
    ("v1", "Endpoints"): "Endpoints",
    ("discovery.k8s.io/v1", "EndpointSlice"): "EndpointSlice",
}
SUPPORTED = "v1 Pod, Namespace, ConfigMap, Secret, Service, Endpoints; discovery.k8s.io/v1 EndpointSlice"


@dataclass(frozen=True)
class Document:
    """One admitted object: decoded, defaulted and valid; `warnings` are its unknown fields."""
    obj: dict
    source: Source
    warnings: tuple[FieldError, ...] = ()


def _text(data: str | bytes, file: str, max_file_bytes: int) -> str:
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_file_bytes:
        raise ApiError([FieldError(PARSE, detail=f"file is larger than {max_file_bytes} bytes ({size})",
                                   source=Source(file))])
    if isinstance(data, str):
        return data
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            break
    else:
        enc = "utf-8"
    try:
        return data.decode(enc)
    except UnicodeDecodeError as e:
        raise ApiError([FieldError(PARSE, detail=f"not {enc.upper()} text (byte {e.start})",
                                   source=Source(file))]) from None


def read_objects(data: str | bytes, file: str, *, max_file_bytes: int = MAX_FILE_BYTES,
                 max_document_bytes: int = MAX_DOCUMENT_BYTES) -> list[tuple[dict, Source]]:
    """The objects of a file as plain JSON-shaped dicts, each with its Source; Lists expanded,
    empty documents skipped. Nothing is checked beyond being an object."""
    text = _text(data, file, max_file_bytes)
    try:
        raws = None
        if looks_like_json(text):
            try:
                raws = read_json(text, max_document_bytes)
            except ReadError:
                raws = None  # flow-style YAML can start with "{" too
        if raws is None:
            raws = read_yaml(text, max_document_bytes)
    except ReadError as e:
        src = Source(file, e.document if e.document else None)
        raise ApiError([e.field_error().at(src)]) from None
    docs = [r for r in raws if r.value is not None]
    multi = len(docs) > 1
    out, errors = [], []
    for raw in docs:
        src = Source(file, raw.index if multi else None)
        value = normalize_numbers(raw.value)
        if not isinstance(value, dict):
            errors.append(FieldError(PARSE, detail="a document must be an object (a mapping), not a "
                                     + ("list" if isinstance(value, list) else type(value).__name__),
                                     source=src, line=raw.line))
            continue
        kind = value.get("kind")
        if value.get("apiVersion") == "v1" and isinstance(kind, str) and kind.endswith("List"):
            items = value.get("items") or []
            if not isinstance(items, list):
                errors.append(FieldError(PARSE, "items", detail="must be a list", source=src, line=raw.line))
                continue
            item_kind = kind[:-4]
            for i, item in enumerate(items):
                isrc = Source(file, src.document, i)
                if not isinstance(item, dict):
                    errors.append(FieldError(PARSE, f"items[{i}]", detail="must be an object", source=isrc))
                    continue
                if item_kind and ("v1", item_kind) in KINDS:  # typed lists leave kind out of their items
                    item = {"apiVersion": "v1", "kind": item_kind, **item}
                out.append((item, isrc))
            continue
        out.append((value, src))
    if errors:
        raise ApiError(errors)
    return out


def kind_of(obj: dict) -> str | None:
    return KINDS.get((obj.get("apiVersion"), obj.get("kind")))


def decode(obj: dict, source: Source | None = None, strict: bool = False) \
        -> tuple[dict, list[FieldError], list[FieldError]]:
    """(decoded object, errors, warnings) for one object: its kind checked, then its fields."""
    ref = object_ref(obj)
    errs = []
    if not obj.get("apiVersion"):
        errs.append(required("apiVersion"))
    if not obj.get("kind"):
        errs.append(required("kind"))
    if errs:
        return obj, [e.at(source, ref) for e in errs], []
    kind = kind_of(obj)
    if kind is None:
        detail = f"no matches for kind {str(obj.get('kind'))!r} in version {str(obj.get('apiVersion'))!r}" \
                 f" (this agent serves {SUPPORTED})"
        return obj, [FieldError(PARSE, detail=detail.replace("'", '"')).at(source, ref)], []
    decoded, errs, warns = schema.decode(obj, kind, strict)
    return decoded, [e.at(source, ref) for e in errs], [w.at(source, ref) for w in warns]


def admit(obj: dict, source: Source | None = None, strict: bool = False, *,
          service_account: bool = True) -> Document:
    """One object through decode, defaults and validation; ApiError with all its errors."""
    decoded, errs, warns = decode(obj, source, strict)
    if errs:
        raise ApiError(errs)
    defaulted = set_defaults(decoded, service_account=service_account)
    errs = validate(defaulted, source)
    if errs:
        raise ApiError(errs)
    warns += [w.at(source, object_ref(defaulted)) for w in service_warnings(defaulted)]
    return Document(defaulted, source or Source("-"), tuple(warns))


def load(data: str | bytes, file: str, *, strict: bool = False, max_file_bytes: int = MAX_FILE_BYTES,
         max_document_bytes: int = MAX_DOCUMENT_BYTES) -> list[Document]:
    """Every object of a file, admitted; or one ApiError with every error of every document."""
    docs, errors = [], []
    for obj, src in read_objects(data, file, max_file_bytes=max_file_bytes, max_document_bytes=max_document_bytes):
        try:
            docs.append(admit(obj, src, strict))
        except ApiError as e:
            errors.extend(e.errors)
    if errors:
        raise ApiError(errors)
    return docs
