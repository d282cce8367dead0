"""The pod's volumes as a plan (pure): where each lives, what backs it (a directory, a tmpfs,
a host path), and each container's volumeMounts as the OCI mounts the runtime carries out.

    <root>/kubelet/pods/<uid>/volumes/<plugin>/<name>               a volume (as upstream's)
    <root>/kubelet/pods/<uid>/volume-subpaths/<vol>/<container>/<n>  a subPath's staging mount
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .content import API_DATA, VolumeError, volume_kind

PLUGINS = {"emptyDir": "kubernetes.io~empty-dir", "configMap": "kubernetes.io~configmap",
           "secret": "kubernetes.io~secret", "downwardAPI": "kubernetes.io~downward-api",
           "projected": "kubernetes.io~projected"}
PROPAGATION = {"None": "rprivate", "HostToContainer": "rslave", "Bidirectional": "rshared"}
EMPTY_DIR_MODE = 0o777
DATA_DIR_MODE = 0o755


def pods_dir(root: str) -> str:
    return os.path.join(root, "kubelet", "pods")


def pod_dir(root: str, uid: str) -> str:
    return os.path.join(pods_dir(root), uid)


@dataclass(frozen=True)
class VolumePlan:
    name: str
    index: int
    kind: str  # emptyDir, hostPath, configMap, secret, downwardAPI, projected
    path: str  # the host path the container mounts (the volume's dir, or the hostPath)
    tmpfs: str | None = None  # mount options of a tmpfs at `path` (secrets, medium: Memory)
    size_limit: int | None = None  # emptyDir sizeLimit, bytes (on disk: enforced by eviction)
    host_type: str = ""  # hostPath type
    read_only: bool = False  # API-data volumes are always mounted read-only

    @property
    def field(self) -> str:
        return f"spec.volumes[{self.index}].{self.kind}"

    @property
    def api_data(self) -> bool:
        return self.kind in API_DATA

    @property
    def owned(self) -> bool:
        """fsGroup applies (upstream: every plugin here but hostPath)."""
        return self.kind != "hostPath"


def _bytes(q, field: str) -> int:
    from kubelet_py.quantity import QuantityError, to_bytes
    try:
        return to_bytes(str(q), field)
    except QuantityError as e:
        raise VolumeError(field, str(e)) from None


def plan_volumes(pod: dict, root: str) -> list[VolumePlan]:
    uid = pod["metadata"]["uid"]
    out = []
    for i, vol in enumerate((pod.get("spec") or {}).get("volumes") or []):
        kind, name = volume_kind(vol), vol["name"]
        src = vol.get(kind) or {}
        field = f"spec.volumes[{i}].{kind}"
        if kind == "hostPath":
            out.append(VolumePlan(name, i, kind, src["path"], host_type=src.get("type") or ""))
            continue
        if kind not in PLUGINS:
            raise VolumeError(field, f"volume type {kind} is not supported on this node", name)
        path = os.path.join(pod_dir(root, uid), "volumes", PLUGINS[kind], name)
        tmpfs, limit = None, None
        if kind == "emptyDir":
            if src.get("sizeLimit") is not None:
                limit = _bytes(src["sizeLimit"], f"{field}.sizeLimit")
            if src.get("medium") == "Memory":
                tmpfs = f"mode=0{EMPTY_DIR_MODE:o}" + (f",size={limit}" if limit else "")
            elif src.get("medium") not in (None, ""):
                raise VolumeError(f"{field}.medium", f"{src['medium']!r} is not supported on this node", name)
        elif kind == "secret" or (kind == "projected" and any("secret" in s for s in src.get("sources") or [])):
            tmpfs = f"mode=0{DATA_DIR_MODE:o}"  # secrets never touch a disk
        out.append(VolumePlan(name, i, kind, path, tmpfs=tmpfs, size_limit=limit, read_only=kind in API_DATA))
    return out


@dataclass(frozen=True)
class MountPlan:
    destination: str
    source: str  # the volume's path, or (subPath) the staging path
    options: tuple[str, ...]
    volume: str
    subpath: str | None = None  # resolved safely into the volume, then staged at `source`
    volume_path: str = ""
    field: str = ""

    def oci(self) -> dict:
        return {"destination": self.destination, "type": "bind", "source": self.source, "options": list(self.options)}


def expand_subpath_expr(expr: str, env: dict[str, str], field: str) -> str:
    """subPathExpr: `$(VAR)` from the container's env (kubelet's expansion), the result still a
    relative path without `..`."""
    from kubelet_py.pods.env import expand
    out = expand(expr, env)
    if out.startswith("/") or ".." in out.split("/"):
        raise VolumeError(field, f"subPathExpr {expr!r} expands to {out!r}: must be a relative path without '..'")
    return out


def container_mounts(pod: dict, lst: str, i: int, volumes: list[VolumePlan], root: str,
                     env: dict[str, str] | None = None) -> list[MountPlan]:
    """Container `lst[i]`'s volumeMounts as bind mounts: readOnly, propagation (None ->
    rprivate, HostToContainer -> rslave, Bidirectional -> rshared, privileged only), subPath /
    subPathExpr staged per container. Parents before children (by depth, as containerd sorts)."""
    c = pod["spec"][lst][i]
    by_name = {v.name: v for v in volumes}
    privileged = bool((c.get("securityContext") or {}).get("privileged"))
    out = []
    for j, m in enumerate(c.get("volumeMounts") or []):
        field = f"spec.{lst}[{i}].volumeMounts[{j}]"
        v = by_name.get(m.get("name", ""))
        if v is None:
            raise VolumeError(f"{field}.name", f"volume {m.get('name')!r} not found")
        prop = m.get("mountPropagation") or "None"
        if prop not in PROPAGATION:
            raise VolumeError(f"{field}.mountPropagation", f"{prop!r} is not supported")
        if prop == "Bidirectional" and not privileged:
            raise VolumeError(f"{field}.mountPropagation", "Bidirectional mount propagation is available only to "
                              "privileged containers")
        ro = bool(m.get("readOnly")) or v.read_only
        sub = m.get("subPath") or None
        if m.get("subPathExpr"):
            sub = expand_subpath_expr(m["subPathExpr"], env or {}, f"{field}.subPathExpr") or None
        source = v.path
        if sub is not None:
            source = os.path.join(pod_dir(root, pod["metadata"]["uid"]), "volume-subpaths", v.name, c["name"], str(j))
        out.append(MountPlan(m["mountPath"], source, ("rbind", PROPAGATION[prop], "ro" if ro else "rw"), v.name, sub,
                             v.path, f"{field}.subPath" + ("Expr" if m.get("subPathExpr") else "")))
    return sorted(out, key=lambda p: len([x for x in p.destination.split("/") if x]))
