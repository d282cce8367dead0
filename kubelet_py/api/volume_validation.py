"""Volumes of a pod spec, and the checks they share with containers (enums, local paths, the
downward API's field and resource selectors), as upstream's ValidateVolumes and helpers do."""

from __future__ import annotations

import posixpath
import re

from kubelet_py.api import names, quantity
from kubelet_py.api.errors import FieldError, Path, duplicate, forbidden, invalid, not_supported, required
from kubelet_py.api.meta_validation import messages_as_errors

FILE_MODE = "must be a number between 0 and 0777 (octal), both inclusive"

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket")
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
                   "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid")
# what ConvertDownwardAPIFieldLabel knows, before the narrower lists above
KNOWN_FIELD_LABELS = frozenset(ENV_FIELD_PATHS + VOLUME_FIELD_PATHS + (
    "spec.restartPolicy", "spec.schedulerName", "status.phase"))
RESOURCE_FIELD_PATHS = ("limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
                        "requests.ephemeral-storage", "requests.memory")
VOLUME_SOURCES = ("hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
                  "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
                  "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
                  "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
                  "image")


def enum_errors(value: str, path: Path, supported: tuple) -> list[FieldError]:
    if value in supported:
        return []
    if value == "":
        return [required(path)]
    return [not_supported(path, value, supported)]


def field_ref_errors(ref: dict, allowed: tuple, path: Path) -> list[FieldError]:
    version, fpath = ref.get("apiVersion", ""), ref.get("fieldPath", "")
    if not version:
        return [required(path.child("apiVersion"))]
    if not fpath:
        return [required(path.child("fieldPath"))]
    if version != "v1":
        return [invalid(path.child("fieldPath"), fpath, f"error converting fieldPath: unsupported pod version: "
                                                        f"{version}")]
    m = re.fullmatch(r"(metadata\.(?:labels|annotations))\['(.*)'\]", fpath)
    if m:
        key = m.group(2).lower() if m.group(1).endswith("annotations") else m.group(2)
        return messages_as_errors(path, key, names.is_qualified_name(key))
    if fpath not in KNOWN_FIELD_LABELS:
        return [invalid(path.child("fieldPath"), fpath, f"error converting fieldPath: field label not supported: "
                                                        f"{fpath}")]
    if fpath not in allowed:
        return [not_supported(path.child("fieldPath"), fpath, allowed)]
    return []


def resource_field_ref_errors(ref: dict, path: Path, volume: bool) -> list[FieldError]:
    errs = []
    resource = ref.get("resource", "")
    if volume and not ref.get("containerName"):
        errs.append(required(path.child("containerName")))
    elif not resource:
        errs.append(required(path.child("resource")))
    elif resource not in RESOURCE_FIELD_PATHS and not re.fullmatch(r"(limits|requests)\.hugepages-.+", resource):
        errs.append(not_supported(path.child("resource"), resource, RESOURCE_FIELD_PATHS))
    divisor = ref.get("divisor")
    if divisor is not None and resource:
        d = quantity.value(divisor)
        if resource.endswith(".cpu"):
            if d not in (quantity.value("1m"), 1):
                errs.append(invalid(path.child("divisor"), divisor,
                                    "only divisor's values 1m and 1 are supported with the cpu resource"))
        elif d not in {quantity.value(s) for s in ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi",
                                                   "1Ti", "1Pi", "1Ei")}:
            what = "memory" if "memory" in resource else "local ephemeral storage" \
                if "ephemeral" in resource else "hugepages"
            errs.append(invalid(path.child("divisor"), divisor, "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, "
                                f"1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the {what} resource"))
    return errs


def local_descending_path(target: str, path: Path) -> list[FieldError]:
    errs = []
    if posixpath.isabs(target):
        errs.append(invalid(path, target, "must be a relative path"))
    if ".." in target.split("/"):
        errs.append(invalid(path, target, "must not contain '..'"))
    return errs


def local_non_reserved_path(target: str, path: Path) -> list[FieldError]:
    errs = local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid(path, target, "must not start with '..'"))
    return errs


def validate_volumes(volumes: list, path: Path) -> tuple[dict, list[FieldError]]:
    """(the valid volumes by name, errors): a mount of an invalid volume is also `Not found`, as upstream."""
    errs, valid, seen = [], {}, set()
    for i, vol in enumerate(volumes):
        p = path.index(i)
        el = _volume_source(vol, p)
        name = vol.get("name", "")
        if not name:
            el.append(required(p.child("name")))
        else:
            el += messages_as_errors(p.child("name"), name, names.is_dns1123_label(name))
        if name in seen:
            el.append(duplicate(p.child("name"), name))
        seen.add(name)
        if el:
            errs += el
        else:
            valid[name] = vol
    return valid, errs


def _mode(src: dict, key: str, path: Path) -> list[FieldError]:
    if key in src and not 0 <= src[key] <= 0o777:
        return [invalid(path.child(key), src[key], FILE_MODE)]
    return []


def _key_to_paths(items: list, path: Path) -> list[FieldError]:
    errs = []
    for i, kp in enumerate(items):
        p = path.index(i)
        if not kp.get("key"):
            errs.append(required(p.child("key")))
        if not kp.get("path"):
            errs.append(required(p.child("path")))
        errs += local_non_reserved_path(kp.get("path", ""), p.child("path"))
        errs += _mode(kp, "mode", p)
    return errs


def _downward_items(items: list, path: Path) -> list[FieldError]:
    errs = []
    for i, f in enumerate(items):
        p = path.index(i)
        if not f.get("path"):
            errs.append(required(p.child("path")))
        errs += local_non_reserved_path(f.get("path", ""), p.child("path"))
        if "fieldRef" in f:
            errs += field_ref_errors(f["fieldRef"], VOLUME_FIELD_PATHS, p.child("fieldRef"))
            if "resourceFieldRef" in f:
                errs.append(invalid(p, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
        elif "resourceFieldRef" in f:
            errs += resource_field_ref_errors(f["resourceFieldRef"], p.child("resourceFieldRef"), volume=True)
        else:
            errs.append(required(p, "one of fieldRef and resourceFieldRef is required"))
        errs += _mode(f, "mode", p)
    return errs


def _volume_source(vol: dict, path: Path) -> list[FieldError]:
    present = [s for s in VOLUME_SOURCES if s in vol]
    if not present:
        return [required(path, "must specify a volume type")]
    errs = [forbidden(path.child(s), "may not specify more than 1 volume type") for s in present[1:]]
    kind = present[0]
    src, p = vol[kind], path.child(kind)
    if kind == "hostPath":
        if not src.get("path"):
            errs.append(required(p.child("path")))
        else:
            if ".." in src["path"].split("/"):
                errs.append(invalid(p.child("path"), src["path"], "must not contain '..'"))
            if src.get("type", "") not in HOST_PATH_TYPES:
                errs.append(not_supported(p.child("type"), src["type"], HOST_PATH_TYPES))
    elif kind == "emptyDir":
        if "sizeLimit" in src and quantity.value(src["sizeLimit"]) < 0:
            errs.append(forbidden(p.child("sizeLimit"), "SizeLimit field must be a valid resource quantity"))
    elif kind in ("secret", "configMap"):
        name_key = "secretName" if kind == "secret" else "name"
        if not src.get(name_key):
            errs.append(required(p.child(name_key)))
        errs += _mode(src, "defaultMode", p)
        errs += _key_to_paths(src.get("items", []), p.child("items"))
    elif kind == "downwardAPI":
        errs += _mode(src, "defaultMode", p)
        errs += _downward_items(src.get("items", []), p.child("items"))
    elif kind == "projected":
        errs += _mode(src, "defaultMode", p)
        errs += _projected(src.get("sources", []), p.child("sources"))
    elif kind == "persistentVolumeClaim":
        if not src.get("claimName"):
            errs.append(required(p.child("claimName")))
    elif kind == "image":
        if not src.get("reference"):
            errs.append(required(p.child("reference")))
        if "pullPolicy" in src:
            errs += enum_errors(src["pullPolicy"], p.child("pullPolicy"), PULL_POLICIES)
    return errs


def _projected(sources: list, path: Path) -> list[FieldError]:
    errs, paths = [], set()
    for i, src in enumerate(sources):
        p = path.index(i)
        kinds = [k for k in ("secret", "configMap", "downwardAPI", "serviceAccountToken", "clusterTrustBundle",
                             "podCertificate") if k in src]
        if len(kinds) > 1:
            errs.append(forbidden(p, "may not specify more than 1 volume type per source"))
        for k in kinds:
            s, sp = src[k], p.child(k)
            if k in ("secret", "configMap"):
                if not s.get("name"):
                    errs.append(required(sp.child("name")))
                errs += _key_to_paths(s.get("items", []), sp.child("items"))
                item_paths = [kp.get("path", "") for kp in s.get("items", [])]
            elif k == "downwardAPI":
                errs += _downward_items(s.get("items", []), sp.child("items"))
                item_paths = [f.get("path", "") for f in s.get("items", [])]
            elif k == "serviceAccountToken":
                if s.get("expirationSeconds", 3600) < 600:
                    errs.append(invalid(sp.child("expirationSeconds"), s["expirationSeconds"],
                                        "may not specify a duration less than 10 minutes"))
                if not s.get("path"):
                    errs.append(required(sp.child("path")))
                item_paths = [s.get("path", "")]
            else:
                item_paths = []
            for ip in item_paths:
                if ip and ip in paths:
                    errs.append(invalid(path, ip, "conflicting duplicate paths"))
                paths.add(ip)
    return errs
