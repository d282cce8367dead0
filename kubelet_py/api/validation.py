"""Validation as the API server runs it on a create (pkg/apis/core/validation), for a decoded
and defaulted object: every error at once, each with upstream's field path, reason and words.

`validate(obj)` dispatches on the kind: Pods (pod_validation.py) and Namespaces fully;
Services, EndpointSlices and v1 Endpoints fully (service_validation.py); ConfigMaps and Secrets
lightly (metadata, keys, sizes) until their own issues take them further. `check_namespaces` is the one check that needs the store: the
daemon calls it with the namespaces that exist."""

from __future__ import annotations

import base64
import json

from kubelet_py.api import names, service_validation
from kubelet_py.api.errors import FieldError, Path, Source, invalid, not_found, required, too_long
from kubelet_py.api.meta_validation import (META, NAME_FUNCS, NAMESPACED, messages_as_errors, object_ref,
                                           validate_object_meta)
from kubelet_py.api.pod_validation import validate_pod

MAX_SECRET_SIZE = 1024 * 1024


def validate(obj: dict, source: Source | None = None) -> list[FieldError]:
    """Every error of a decoded, defaulted object, each carrying `source` and the object's ref."""
    kind = obj.get("kind")
    meta = obj.get("metadata", {})
    errs = validate_object_meta(meta, kind in NAMESPACED, NAME_FUNCS.get(kind, names.name_is_dns_subdomain))
    if kind == "Pod":
        errs += validate_pod(obj)
    elif kind == "Namespace":
        for i, f in enumerate(obj.get("spec", {}).get("finalizers", [])):
            errs += messages_as_errors(Path("spec.finalizers").index(i), f, names.is_qualified_name(f))
    elif kind == "ConfigMap":
        errs += _config_map(obj)
    elif kind == "Secret":
        errs += _secret(obj)
    elif kind == "Service":
        errs += service_validation.validate_service(obj)
    elif kind == "EndpointSlice":
        errs += service_validation.validate_endpoint_slice(obj)
    elif kind == "Endpoints":
        errs += service_validation.validate_endpoints(obj)
    ref = object_ref(obj)
    return [e.at(source, ref) for e in errs]


def _config_map(cm: dict) -> list[FieldError]:
    errs, total = [], 0
    data, binary = cm.get("data", {}), cm.get("binaryData", {})
    for k, v in data.items():
        errs += messages_as_errors(Path("data").key(k), k, names.is_config_map_key(k))
        if k in binary:
            errs.append(invalid(Path("data").key(k), k, "duplicate of key present in binaryData"))
        total += len(v.encode())
    for k, v in binary.items():
        errs += messages_as_errors(Path("binaryData").key(k), k, names.is_config_map_key(k))
        total += len(base64.b64decode(v))
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("", MAX_SECRET_SIZE))
    return errs


def _secret(secret: dict) -> list[FieldError]:
    errs, total = [], 0
    data = secret.get("data", {})
    path = Path("data")
    for k, v in data.items():
        errs += messages_as_errors(path.key(k), k, names.is_config_map_key(k))
        total += len(base64.b64decode(v))
    if total > MAX_SECRET_SIZE:
        errs.append(too_long(path, MAX_SECRET_SIZE))
    return errs + _secret_type(secret.get("type", ""), data, secret.get("metadata", {}), path)


SECRET_TYPE_KEYS = {"kubernetes.io/tls": ("tls.crt", "tls.key"), "kubernetes.io/dockercfg": (".dockercfg",),
                    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",)}
SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"


def _secret_type(kind: str, data: dict, meta: dict, path: Path) -> list[FieldError]:
    """ValidateSecret's switch on the built-in types (any other type is free-form)."""
    errs = [required(path.key(k)) for k in SECRET_TYPE_KEYS.get(kind, ()) if k not in data]
    if kind == "kubernetes.io/service-account-token" and not meta.get("annotations", {}).get(SERVICE_ACCOUNT_NAME):
        errs.append(required(META.child("annotations").key(SERVICE_ACCOUNT_NAME)))
    elif kind == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        errs += [required(path.key("username")), required(path.key("password"))]
    elif kind == "kubernetes.io/ssh-auth" and not data.get("ssh-privatekey"):  # present but empty too
        errs.append(required(path.key("ssh-privatekey")))
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson") and not errs:
        key = SECRET_TYPE_KEYS[kind][0]
        try:
            doc = json.loads(base64.b64decode(data[key]))
            if doc is not None and not isinstance(doc, dict):  # Go decodes null into a map, nothing else
                go_type = {list: "array", str: "string", bool: "bool"}.get(type(doc), "number")
                raise ValueError(f"json: cannot unmarshal {go_type} into Go value of type map[string]interface {{}}")
        except ValueError as e:
            errs.append(invalid(path.key(key), "<secret contents redacted>", str(e)))
    return errs


def check_namespaces(obj: dict, existing, source: Source | None = None) -> list[FieldError]:
    """The namespace of a namespaced object must exist (upstream's NamespaceLifecycle admission
    answers `namespaces "x" not found`). `existing`: the names of the namespaces in the store."""
    if obj.get("kind") not in NAMESPACED:
        return []
    ns = obj.get("metadata", {}).get("namespace") or "default"
    if ns in existing:
        return []
    return [not_found(META.child("namespace"), ns).at(source, object_ref(obj))]
