"""Static pods (semantics 5.1; upstream `pkg/kubelet/config/common.go` applyDefaults).

A manifest file holds one Pod. The kubelet decodes and defaults it, derives its UID from its
content, the node and the file, then names it `<name>-<lower(node)>`, binds it to the node,
annotates it (`kubernetes.io/config.hash` = the UID, `kubernetes.io/config.source` = file,
`kubernetes.io/config.seen` = when it was first read), tolerates every NoExecute taint and
marks it Pending. Editing the file gives a new UID, so the pod is replaced, not updated.

The UID: upstream hashes a deep print of its in-memory Go struct (FNV-128a in recent kubelets,
MD5 in older ones) and no other program can reproduce those bytes. Ours is FNV-128a, written as
32 lowercase hex digits, of exactly these bytes, in this order:

  1. the decoded, defaulted pod (before any step above) as JSON with sorted keys, no spaces
     (separators "," and ":"), non-ASCII characters as UTF-8: json.dumps(pod, sort_keys=True,
     separators=(",", ":"), ensure_ascii=False).encode("utf-8");
  2. b"host:" + the node name (as given, not lower-cased), UTF-8;
  3. b"file:" + the file's path (as given), UTF-8.

So the UID is stable across restarts of the agent (the same file on the same node) and changes
with any change of meaning of the file, but not with its formatting or comments."""

from __future__ import annotations

import copy
import datetime as dt
import json

from kubelet_py.api.defaults import set_defaults
from kubelet_py.api.errors import PARSE, ApiError, FieldError, Path, Source, forbidden, required
from kubelet_py.api.load import MAX_FILE_BYTES, decode, read_objects
from kubelet_py.api.meta_validation import object_ref
from kubelet_py.api.validation import validate

CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_SEEN = "kubernetes.io/config.seen"

_FNV128_OFFSET = 0x6C62272E07BB014262B821756295C58D
_FNV128_PRIME = 0x0000000001000000000000000000013B
_MASK128 = (1 << 128) - 1


def fnv128a(data: bytes, h: int = _FNV128_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV128_PRIME) & _MASK128
    return h


def hashed_bytes(pod: dict, node_name: str, path: str) -> bytes:
    """Exactly what static_uid hashes (see the module's docstring)."""
    dump = json.dumps(pod, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return dump + b"host:" + node_name.encode("utf-8") + b"file:" + path.encode("utf-8")


def static_uid(pod: dict, node_name: str, path: str) -> str:
    return f"{fnv128a(hashed_bytes(pod, node_name, path)):032x}"


def seen_timestamp(when: dt.datetime) -> str:
    """RFC 3339 with nanoseconds (Go's RFC3339Nano drops trailing zeros), as kubetypes.NewTimestamp."""
    when = when.astimezone(dt.timezone.utc)
    frac = f"{when.microsecond:06d}000".rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def static_pod(pod: dict, *, node_name: str, path: str, seen: dt.datetime | None = None) -> dict:
    """The pod as the kubelet runs it from `path` on `node_name`. `pod`: decoded and defaulted
    (set_defaults with service_account=False), not yet validated."""
    uid = static_uid(pod, node_name, path)
    out = copy.deepcopy(pod)
    meta = out.setdefault("metadata", {})
    meta["uid"] = uid
    meta["name"] = f"{meta.get('name', '')}-{node_name.lower()}"
    if not meta.get("namespace"):
        meta["namespace"] = "default"
    spec = out.setdefault("spec", {})
    spec["nodeName"] = node_name
    annotations = meta.setdefault("annotations", {})
    annotations[CONFIG_HASH] = uid
    annotations[CONFIG_SOURCE] = "file"
    if seen is not None:
        annotations[CONFIG_SEEN] = seen_timestamp(seen)
    tolerations = spec.setdefault("tolerations", [])
    wanted = {"operator": "Exists", "effect": "NoExecute"}
    if wanted not in tolerations:  # AddOrUpdateTolerationInPod
        tolerations.append(wanted)
    out["status"] = {"phase": "Pending"}
    return out


def api_references(pod: dict) -> list[FieldError]:
    """What a static pod may not use, as it has no API server to read it from: Secrets,
    ConfigMaps, ServiceAccounts, PersistentVolumeClaims, ResourceClaims, ClusterTrustBundles
    (upstream refuses to admit such static pods since 1.34)."""
    spec = pod.get("spec", {})
    sp = Path("spec")
    errs = []

    def ref(path: Path, what: str) -> None:
        errs.append(forbidden(path, f"a static pod may not reference {what}"))

    if spec.get("serviceAccountName"):
        ref(sp.child("serviceAccountName"), "service accounts")
    for i, s in enumerate(spec.get("imagePullSecrets", [])):
        ref(sp.child("imagePullSecrets").index(i), "secrets")
    if spec.get("resourceClaims"):
        ref(sp.child("resourceClaims"), "resourceclaims")
    for i, v in enumerate(spec.get("volumes", [])):
        vp = sp.child("volumes").index(i)
        for key, what in (("secret", "secrets"), ("configMap", "configmaps"),
                          ("persistentVolumeClaim", "persistentvolumeclaims"), ("ephemeral", "persistentvolumeclaims")):
            if key in v:
                ref(vp.child(key), what)
        for j, src in enumerate(v.get("projected", {}).get("sources", [])):
            pp = vp.child("projected", "sources").index(j)
            for key, what in (("secret", "secrets"), ("configMap", "configmaps"),
                              ("serviceAccountToken", "service accounts"),
                              ("clusterTrustBundle", "clustertrustbundles")):
                if key in src:
                    ref(pp.child(key), what)
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key, [])):
            cp = sp.child(key).index(i)
            for j, e in enumerate(c.get("env", [])):
                vf = e.get("valueFrom", {})
                for k, what in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
                    if k in vf:
                        ref(cp.child("env").index(j).child("valueFrom", k), what)
            for j, ef in enumerate(c.get("envFrom", [])):
                for k, what in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
                    if k in ef:
                        ref(cp.child("envFrom").index(j).child(k), what)
    return errs


def load_static(data: str | bytes, path: str, node_name: str, *, seen: dt.datetime | None = None,
                strict: bool = False) -> tuple[dict, tuple[FieldError, ...]]:
    """(the static pod, its warnings) from a manifest file; ApiError naming the file otherwise."""
    src = Source(path)
    objs = read_objects(data, path, max_file_bytes=MAX_FILE_BYTES)
    if len(objs) != 1 or objs[0][0].get("kind") != "Pod":
        found = ", ".join(str(o.get("kind")) for o, _ in objs) or "nothing"
        raise ApiError([FieldError(PARSE, detail=f"a static pod file holds exactly one Pod (found {found})",
                                   source=src)])
    obj = objs[0][0]
    decoded, errs, warns = decode(obj, src, strict)
    if errs:
        raise ApiError(errs)
    if not decoded.get("metadata", {}).get("name"):
        raise ApiError([required("metadata.name", "a static pod needs a name").at(src, object_ref(decoded))])
    pod = static_pod(set_defaults(decoded, service_account=False), node_name=node_name, path=path, seen=seen)
    ref = object_ref(pod)
    errs = validate(pod, src) + [e.at(src, ref) for e in api_references(pod)]
    if errs:
        raise ApiError(errs)
    return pod, tuple(warns)
