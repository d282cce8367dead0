"""What configMap, secret, downwardAPI and projected volumes hold (pure): each is a payload,
{relative path: (bytes, mode)}, computed from the pod and the objects it names, as upstream's
MakePayload / CollectData (pkg/volume/{configmap,secret,downwardapi,projected}) compute it.

Objects are looked up through `objects`, a mapping {(kind, name): object or None} of the pod's
namespace that the caller snapshots (see `referenced`)."""

from __future__ import annotations

import base64
import binascii

File = tuple[bytes, int]
Payload = dict[str, File]
DEFAULT_MODE = 0o644  # configMap, secret, downwardAPI and projected defaultMode
API_DATA = ("configMap", "secret", "downwardAPI", "projected")


class VolumeError(Exception):
    """A volume that cannot be set up: `field` is the pod's field path, `volume` its name. An
    error with `retry` (a missing object or key) is tried again at the next sync, as upstream's
    FailedMount."""

    def __init__(self, field: str, why: str, volume: str = "", retry: bool = False):
        super().__init__(f"{field}: {why}" if field else why)
        self.field, self.why, self.volume, self.retry = field, why, volume, retry


def volume_kind(vol: dict) -> str:
    for k in ("emptyDir", "hostPath") + API_DATA:
        if k in vol:
            return k
    others = [k for k in vol if k != "name"]
    return others[0] if others else ""


def referenced(pod: dict) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod's volumes name."""
    out = set()
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if "configMap" in vol:
            out.add(("ConfigMap", vol["configMap"].get("name", "")))
        if "secret" in vol:
            out.add(("Secret", vol["secret"].get("secretName", "")))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if "configMap" in src:
                out.add(("ConfigMap", src["configMap"].get("name", "")))
            if "secret" in src:
                out.add(("Secret", src["secret"].get("name", "")))
    return out


# ---- ConfigMap and Secret ------------------------------------------------------------------

def configmap_data(cm: dict) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[k] = _b64(v, f"ConfigMap {cm['metadata']['name']} binaryData.{k}")
    return out


def secret_data(secret: dict) -> dict[str, bytes]:
    out = {k: _b64(v, f"Secret {secret['metadata']['name']} data.{k}") for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():  # the API server folds it into data
        out[k] = str(v).encode()
    return out


def _b64(v, where: str) -> bytes:
    if isinstance(v, bytes):
        return v
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise VolumeError(where, "not valid base64") from None


def key_payload(what: str, data: dict[str, bytes] | None, name: str, items: list | None, default_mode: int,
                optional: bool, field: str, volume: str) -> Payload:
    """A ConfigMap's or Secret's keys as files (`what`: "configmap" or "secret"); `data` None:
    the object does not exist."""
    if data is None:
        if optional:
            return {}
        raise VolumeError(field, f'{what} "{name}" not found', volume, retry=True)
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out: Payload = {}
    for i, it in enumerate(items):
        key = it.get("key", "")
        if key not in data:
            if optional:
                continue
            noun = "config" if what == "configmap" else "secret"
            raise VolumeError(f"{field}.items[{i}].key", f"{what} references non-existent {noun} key: {key}", volume,
                              retry=True)
        out[it["path"]] = (data[key], it["mode"] if it.get("mode") is not None else default_mode)
    return out


# ---- the downward API (values as the env builder resolves them: kubelet_py.pods.env) ------

def downward_payload(items: list | None, pod: dict, default_mode: int, allocatable: dict, field: str) -> Payload:
    """downwardAPI items: fieldRef (labels and annotations as sorted `k="v"` lines) and
    resourceFieldRef (ceil(value / divisor), an unset limit being the node's allocatable)."""
    from kubelet_py.pods.env import EnvError, field_ref_value, resource_field_value
    out: Payload = {}
    for i, it in enumerate(items or []):
        where = f"{field}.items[{i}]"
        try:
            if it.get("fieldRef"):
                ref = it["fieldRef"]
                val = field_ref_value(pod, ref.get("fieldPath", ""), ref.get("apiVersion", "v1"))
            elif it.get("resourceFieldRef"):
                val = resource_field_value(it["resourceFieldRef"], pod, {}, allocatable)
            else:
                raise VolumeError(where, "one of fieldRef and resourceFieldRef is required")
        except EnvError as e:
            raise VolumeError(f"{where}.{'fieldRef' if it.get('fieldRef') else 'resourceFieldRef'}", str(e)) from None
        out[it["path"]] = (val.encode(), it["mode"] if it.get("mode") is not None else default_mode)
    return out


# ---- one volume ----------------------------------------------------------------------------

def check_payload(payload: Payload, field: str) -> None:
    """The writer's rules (atomic_writer.go validatePath): relative, no `..` element, not
    starting with `..`, at most 4096 bytes, each name at most 255."""
    for p in payload:
        if not p or p.startswith("/") or ".." in p.split("/") or p.startswith("..") or len(p) > 4096 \
                or any(len(c) > 255 for c in p.split("/")) or "\0" in p:
            raise VolumeError(field, f"invalid file path {p!r} in the volume")


def payload(vol: dict, index: int, pod: dict, objects: dict, allocatable: dict) -> Payload | None:
    """The files of an API-data volume (None for emptyDir and hostPath)."""
    kind = volume_kind(vol)
    name = vol.get("name", "")
    field = f"spec.volumes[{index}].{kind}"
    src = vol.get(kind) or {}
    if kind == "configMap":
        cm = objects.get(("ConfigMap", src.get("name", "")))
        out = key_payload("configmap", configmap_data(cm) if cm is not None else None, src.get("name", ""),
                          src.get("items"), _mode(src), bool(src.get("optional")), field, name)
    elif kind == "secret":
        s = objects.get(("Secret", src.get("secretName", "")))
        out = key_payload("secret", secret_data(s) if s is not None else None, src.get("secretName", ""),
                          src.get("items"), _mode(src), bool(src.get("optional")), field, name)
    elif kind == "downwardAPI":
        out = downward_payload(src.get("items"), pod, _mode(src), allocatable, field)
    elif kind == "projected":
        out = {}
        mode = _mode(src)
        for j, s in enumerate(src.get("sources") or []):
            sf = f"{field}.sources[{j}]"
            if "configMap" in s:
                cs = s["configMap"]
                cm = objects.get(("ConfigMap", cs.get("name", "")))
                out.update(key_payload("configmap", configmap_data(cm) if cm is not None else None, cs.get("name", ""),
                                       cs.get("items"), mode, bool(cs.get("optional")), f"{sf}.configMap", name))
            elif "secret" in s:
                ss = s["secret"]
                sec = objects.get(("Secret", ss.get("name", "")))
                out.update(key_payload("secret", secret_data(sec) if sec is not None else None, ss.get("name", ""),
                                       ss.get("items"), mode, bool(ss.get("optional")), f"{sf}.secret", name))
            elif "downwardAPI" in s:
                out.update(downward_payload(s["downwardAPI"].get("items"), pod, mode, allocatable,
                                            f"{sf}.downwardAPI"))
            else:
                what = next(iter(s), "")
                raise VolumeError(f"{sf}.{what}", "not supported on this node (kubelet-py has no service "
                                  "account tokens)" if what == "serviceAccountToken" else "not supported on this node",
                                  name)
    else:
        return None
    check_payload(out, field)
    return out


def _mode(src: dict) -> int:
    return src["defaultMode"] if src.get("defaultMode") is not None else DEFAULT_MODE
