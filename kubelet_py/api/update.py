"""What the API server does when it stores an object: `create` fills the system fields, `update`
checks an update as ValidatePodUpdate & co. do and bumps the versions.

Both take objects already admitted (load.admit: decoded, defaulted, valid) and return the object
to store, never changing their arguments. `update` is a PUT: the new object replaces the old one
whole, so a default that depends on another field (imagePullPolicy on the image's tag) is
recomputed from the new manifest."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Callable

from kubelet_py.api import service_validation
from kubelet_py.api.errors import (ALREADY_EXISTS, CONFLICT, EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, ApiError,
                                   FieldError, Path, forbidden, invalid, required)
from kubelet_py.api.meta_validation import object_ref
from kubelet_py.api.pod_validation import MAX_INT32
from kubelet_py.api.resources import qos_class

POD_UPDATE_FORBIDDEN = ("pod updates may not change fields other than `spec.containers[*].image`,"
                        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
                        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
                        "to 1 if it was previously negative)")
IMMUTABLE = "field is immutable when `immutable` is set"
SYSTEM_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "selfLink", "deletionTimestamp",
                 "deletionGracePeriodSeconds", "managedFields")
MAX_DIFFS = 10
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's utilrand alphanumerics (no vowels, no 0/1/3)
_MAX_GENERATE_PREFIX = 58  # 63 minus the 5 random characters


def timestamp(now) -> str:
    """RFC 3339 in seconds, UTC, as metav1.Time marshals: 2025-01-02T03:04:05Z."""
    if isinstance(now, (int, float)):
        now = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name_suffix(uid: str) -> str:
    n = int.from_bytes(uid.encode(), "big")
    out = ""
    for _ in range(5):
        n, r = divmod(n, len(_NAME_ALPHABET))
        out += _NAME_ALPHABET[r]
    return out


def create(obj: dict, now, uid_factory: Callable[[], str], *, version: str | None = None) -> dict:
    """The object as first stored: a name from generateName when there is none, a new uid,
    creationTimestamp, resourceVersion (`version`, or "1"), generation 1 for a Pod, and a Pod's
    status set to Pending with its QoS class, as the pod strategy's PrepareForCreate does."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    for key in SYSTEM_FIELDS:
        meta.pop(key, None)
    uid = uid_factory()
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"][:_MAX_GENERATE_PREFIX] + _name_suffix(uid)
    meta["uid"] = uid
    meta["creationTimestamp"] = timestamp(now)
    meta["resourceVersion"] = version or "1"
    if out.get("kind") == "Pod":
        meta["generation"] = 1
        out["status"] = {"phase": "Pending", "qosClass": qos_class(out.get("spec", {}))}
    return out


def already_exists(obj: dict) -> ApiError:
    meta = obj.get("metadata", {})
    kind = str(obj.get("kind", "")).lower()
    return ApiError([FieldError(EXISTS, "metadata.name", meta.get("name", ""),
                                f'{kind}s "{meta.get("name", "")}" already exists').at(obj=object_ref(obj))],
                    kind=ALREADY_EXISTS)


def update(old: dict, new: dict, *, version: str | None = None) -> dict:
    """The stored object after a PUT of `new` over `old`: system fields and status kept, the
    kind's update rules checked (ApiError with every refusal), resourceVersion bumped (to
    `version`, or old+1) and a Pod's generation bumped when its spec changed. An update that
    changes nothing returns `old` unchanged, as the API server skips the write."""
    ref = object_ref(old)
    for key in ("kind", "apiVersion"):
        if new.get(key) != old.get(key):
            raise ApiError([invalid(key, new.get(key), "field is immutable").at(obj=ref)])
    ometa, nmeta = old.get("metadata", {}), new.get("metadata", {})
    for key in ("name", "namespace"):
        if nmeta.get(key, "") != ometa.get(key, ""):
            raise ApiError([invalid(f"metadata.{key}", nmeta.get(key, ""), "field is immutable").at(obj=ref)])
    if nmeta.get("uid") and nmeta["uid"] != ometa.get("uid"):
        raise ApiError([FieldError(CONFLICT, "metadata.uid", nmeta["uid"],
                                   f"Precondition failed: UID in precondition: {nmeta['uid']}, UID in object meta: "
                                   f"{ometa.get('uid')}").at(obj=ref)], kind=FAILED_PRECONDITION)
    if nmeta.get("resourceVersion") and nmeta["resourceVersion"] != ometa.get("resourceVersion"):
        kind = str(old.get("kind", "")).lower()
        raise ApiError([FieldError(CONFLICT, "metadata.resourceVersion", nmeta["resourceVersion"],
                                   f'Operation cannot be fulfilled on {kind}s "{ometa.get("name")}": the object has '
                                   "been modified; please apply your changes to the latest version and try again")
                        .at(obj=ref)], kind=FAILED_PRECONDITION)
    out = copy.deepcopy(new)
    if old.get("kind") == "Service":
        out = service_validation.patch_allocated_values(out, old)
    meta = out.setdefault("metadata", {})
    for key in SYSTEM_FIELDS:
        meta.pop(key, None)
        if key in ometa:
            meta[key] = copy.deepcopy(ometa[key])
    if "status" in old:
        out["status"] = copy.deepcopy(old["status"])
    else:
        out.pop("status", None)
    kind = old.get("kind")
    errs: list[FieldError] = []
    if kind == "Pod":
        errs = validate_pod_update(out, old)
    elif kind == "Namespace":
        out["spec"] = copy.deepcopy(old.get("spec", {}))  # finalizers change only through /finalize
    elif kind in ("ConfigMap", "Secret"):
        errs = _immutable_data(out, old)
    elif kind == "Service":
        errs = service_validation.validate_service_update(out, old)
    if errs:
        raise ApiError([e.at(obj=ref) for e in errs], kind=INVALID_ARGUMENT)
    if out == old:
        return copy.deepcopy(old)
    meta["resourceVersion"] = version or str(int(ometa.get("resourceVersion", "0") or 0) + 1)
    if kind == "Pod" and out.get("spec") != old.get("spec"):
        meta["generation"] = ometa.get("generation", 0) + 1
    return out


def validate_pod_update(new: dict, old: dict) -> list[FieldError]:
    """ValidatePodUpdate's own rules (the new pod is already valid on its own)."""
    spec = Path("spec")
    nspec, ospec = new.get("spec", {}), old.get("spec", {})
    errs: list[FieldError] = []
    for key in ("containers", "initContainers"):
        nc, oc = nspec.get(key, []), ospec.get(key, [])
        if len(nc) != len(oc):
            return errs + [forbidden(spec.child(key), "pod updates may not add or remove containers")]
        for i, c in enumerate(nc):
            image = c.get("image", "")
            if not image:
                errs.append(required(spec.child(key).index(i).child("image")))
            elif image.strip() != image:
                errs.append(invalid(spec.child(key).index(i).child("image"), image,
                                    "must not have leading or trailing whitespace"))
    adl = spec.child("activeDeadlineSeconds")
    if "activeDeadlineSeconds" in nspec:
        n = nspec["activeDeadlineSeconds"]
        if not 0 <= n <= MAX_INT32:
            return errs + [invalid(adl, n, f"must be between 0 and {MAX_INT32}, inclusive")]
        if "activeDeadlineSeconds" in ospec and ospec["activeDeadlineSeconds"] < n:
            return errs + [invalid(adl, n, "must be less than or equal to previous value")]
    elif "activeDeadlineSeconds" in ospec:
        errs.append(invalid(adl, None, "must not update from a positive integer to nil value"))
    errs += _only_added_tolerations(nspec.get("tolerations", []), ospec.get("tolerations", []),
                                    spec.child("tolerations"))
    munged = copy.deepcopy(nspec)
    for key in ("containers", "initContainers"):
        for c, oc in zip(munged.get(key, []), ospec.get(key, [])):
            c["image"] = oc.get("image", "")
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged.pop(key, None)
        if key in ospec:
            munged[key] = copy.deepcopy(ospec[key])
    if munged != ospec:
        errs += [forbidden(p, POD_UPDATE_FORBIDDEN) for p in diff_paths(ospec, munged, spec)[:MAX_DIFFS]]
    return errs


def _only_added_tolerations(new: list, old: list, path: Path) -> list[FieldError]:
    """Every old toleration must still be there; only its tolerationSeconds may change."""
    def but_seconds(t: dict) -> dict:
        return {k: v for k, v in t.items() if k != "tolerationSeconds"}
    for o in old:
        if not any(but_seconds(o) == but_seconds(n) for n in new):
            return [forbidden(path, "existing toleration can not be modified except its tolerationSeconds")]
    return []


def diff_paths(a, b, path: Path = Path("")) -> list[Path]:
    """The field paths where two JSON values differ (a list of another length is one path)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k, _MISSING) != b.get(k, _MISSING):
                out += diff_paths(a.get(k, _MISSING), b.get(k, _MISSING), path.child(k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                out += diff_paths(x, y, path.index(i))
        return out
    return [path] if a != b else []


_MISSING = object()


def _immutable_data(new: dict, old: dict) -> list[FieldError]:
    errs = []
    if old.get("immutable"):
        if not new.get("immutable"):
            errs.append(forbidden("immutable", IMMUTABLE))
        for key in ("data", "binaryData"):
            if new.get(key, {}) != old.get(key, {}):
                errs.append(forbidden(key, IMMUTABLE))
    if old.get("kind") == "Secret" and new.get("type") != old.get("type"):
        errs.append(invalid("type", new.get("type", ""), "field is immutable"))
    return errs
