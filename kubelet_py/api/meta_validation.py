"""Object metadata and the name formats of each kind (ValidateObjectMeta, ValidateLabels,
ValidateAnnotations), shared by every kind's validation."""

from __future__ import annotations

from kubelet_py.api import names
from kubelet_py.api.errors import FieldError, Path, forbidden, invalid, required, too_long

TOTAL_ANNOTATION_SIZE = 256 * 1024
NAMESPACED = {"Pod", "ConfigMap", "Secret", "Service", "EndpointSlice", "Endpoints"}
META = Path("metadata")

# each kind's ValidateNameFunc
NAME_FUNCS = {
    "Pod": names.name_is_dns_subdomain,
    "Namespace": names.name_is_dns_label,
    "ConfigMap": names.name_is_dns_subdomain,
    "Secret": names.name_is_dns_subdomain,
    "Service": names.name_is_dns1035_label,
    "EndpointSlice": names.name_is_dns_subdomain,
    "Endpoints": names.name_is_dns_subdomain,
}


def object_ref(obj: dict) -> str:
    """How an error names its object: `pod default/web`, `namespace prod`."""
    kind = str(obj.get("kind") or "object").lower()
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else "(no name)")
    if obj.get("kind") == "Namespace":
        return f"{kind} {name}"
    return f"{kind} {meta.get('namespace') or 'default'}/{name}"


def messages_as_errors(path: str, value, msgs: list[str]) -> list[FieldError]:
    return [invalid(path, value, m) for m in msgs]


def validate_labels(labels: dict, path: str) -> list[FieldError]:
    errs = []
    for k, v in (labels or {}).items():
        errs += messages_as_errors(path, k, names.is_qualified_name(k))
        errs += messages_as_errors(path, v, names.is_valid_label_value(v))
    return errs


def validate_annotations(annotations: dict, path: str) -> list[FieldError]:
    errs = []
    total = 0
    for k, v in (annotations or {}).items():
        errs += messages_as_errors(path, k, names.is_qualified_name(k.lower()))
        total += len(k.encode()) + len(v.encode())
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


def validate_object_meta(meta: dict, namespaced: bool, name_fn, path: Path = META) -> list[FieldError]:
    errs = []
    generate = meta.get("generateName", "")
    if generate:
        errs += messages_as_errors(path.child("generateName"), generate, name_fn(generate, True))
    name = meta.get("name", "")
    if not name:
        if not generate:  # create() makes a name from generateName first, as the API server does
            errs.append(required(path.child("name"), "name or generateName is required"))
    else:
        errs += messages_as_errors(path.child("name"), name, name_fn(name, False))
    ns = meta.get("namespace", "")
    if namespaced:
        if not ns:
            errs.append(required(path.child("namespace")))
        else:
            errs += messages_as_errors(path.child("namespace"), ns, names.name_is_dns_label(ns))
    elif ns:
        errs.append(forbidden(path.child("namespace"), "not allowed on this type"))
    if meta.get("generation", 0) < 0:
        errs.append(invalid(path.child("generation"), meta["generation"], "must be greater than or equal to 0"))
    errs += validate_labels(meta.get("labels"), path.child("labels"))
    errs += validate_annotations(meta.get("annotations"), path.child("annotations"))
    for i, f in enumerate(meta.get("finalizers", [])):
        errs += messages_as_errors(path.child("finalizers").index(i), f, names.is_qualified_name(f))
    return errs
