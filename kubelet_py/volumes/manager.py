"""The node's volume manager: sets up a pod's volumes (after its sandbox, before its first
container), hands each container its mounts, refreshes API-data volumes when their objects
change, measures disk emptyDirs against sizeLimit, and tears everything down with the pod.
Every method blocks (the pod workers call them in threads); each is idempotent.

Setup keeps an undo stack per volume: a failure part-way removes what was made for that volume
(the volumes before it stay, found as they are by the retry; teardown removes all). Teardown unmounts
everything below the pod's directory (deepest first) before anything is deleted, and the
deletion walks by handle, refusing to cross a mount or follow a symlink, so a hostPath (never
below the pod's directory) and anything outside it are never touched."""

from __future__ import annotations

import logging
import os
import threading

from . import atomic_writer, hostpath, ownership, subpath
from .content import VolumeError, payload, referenced
from .mounts import is_mount_point, mount_tmpfs, mounts_under, unmount_all_under
from .plan import (DATA_DIR_MODE, EMPTY_DIR_MODE, MountPlan, VolumePlan, container_mounts, plan_volumes, pod_dir,
                   pods_dir)
from .tree import disk_usage, remove_tree

log = logging.getLogger("kubelet_py.volumes")


def fs_group_of(pod: dict) -> tuple[int | None, str | None]:
    sc = (pod.get("spec") or {}).get("securityContext") or {}
    return sc.get("fsGroup"), sc.get("fsGroupChangePolicy")


class VolumeManager:
    def __init__(self, root: str, allocatable=dict):
        """`allocatable()`: the node's allocatable cpu, memory, ephemeral-storage (quantity
        strings), what an unset limit is in a downwardAPI resourceFieldRef."""
        self.root = root
        self.allocatable = allocatable
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    # ---- setup ---------------------------------------------------------------------------
    def setup(self, pod: dict, objects: dict) -> list[VolumePlan]:
        """Every volume of the pod ready to be mounted. `objects`: {(kind, name): obj or None}
        of the ConfigMaps and Secrets it names (content.referenced), snapshotted by the caller.
        Raises VolumeError (naming the field) for what cannot be set up."""
        uid = pod["metadata"]["uid"]
        plans = plan_volumes(pod, self.root)
        fs_group, policy = fs_group_of(pod)
        with self._lock(uid):
            os.makedirs(os.path.join(pod_dir(self.root, uid), "volumes"), 0o750, exist_ok=True)
            for v in plans:
                self._setup_one(pod, v, objects, fs_group, policy)
        return plans

    def _setup_one(self, pod: dict, v: VolumePlan, objects: dict, fs_group, policy) -> None:
        if v.kind == "hostPath":
            hostpath.prepare(v.path, v.host_type, v.field, v.name)
            return
        files = payload(pod["spec"]["volumes"][v.index], v.index, pod, objects, self.allocatable()) \
            if v.api_data else None
        undo = []
        try:
            if not os.path.isdir(v.path):
                os.makedirs(os.path.dirname(v.path), 0o750, exist_ok=True)
                os.mkdir(v.path, EMPTY_DIR_MODE if v.kind == "emptyDir" else DATA_DIR_MODE)
                undo.append(lambda: remove_tree(v.path))
            if v.tmpfs and not is_mount_point(v.path):
                mount_tmpfs(v.path, v.tmpfs)
                undo.insert(0, lambda: unmount_all_under(v.path))
            if v.kind == "emptyDir":
                os.chmod(v.path, EMPTY_DIR_MODE | (os.stat(v.path).st_mode & 0o2000))
                if fs_group is not None:
                    ownership.apply_fs_group(v.path, fs_group, readonly=False, policy=policy)
            else:
                if fs_group is not None:
                    os.chown(v.path, -1, fs_group)
                    os.chmod(v.path, ownership.group_mode(DATA_DIR_MODE, True, True))
                atomic_writer.write(v.path, files or {}, fs_group)
        except BaseException:
            for step in undo:
                try:
                    step()
                except OSError as e:
                    log.warning("volume %s: undo: %s", v.path, e)
            raise

    # ---- updates ---------------------------------------------------------------------------
    def refresh(self, pod: dict, objects: dict) -> list[str]:
        """Rewrite the API-data volumes whose content changed (objects, labels, annotations);
        the names rewritten. subPath mounts keep what was staged, as upstream's. A volume not
        set up yet, or whose object went away, is left as it is."""
        uid = pod["metadata"]["uid"]
        fs_group, _ = fs_group_of(pod)
        done = []
        with self._lock(uid):
            for v in plan_volumes(pod, self.root):
                if not v.api_data or not os.path.isdir(v.path):
                    continue
                if v.tmpfs and not is_mount_point(v.path):
                    continue  # torn down (or never mounted): never write a secret to the disk below
                try:
                    files = payload(pod["spec"]["volumes"][v.index], v.index, pod, objects, self.allocatable())
                except VolumeError as e:
                    log.info("pod %s volume %s: kept as it is: %s", uid, v.name, e)
                    continue
                if atomic_writer.write(v.path, files, fs_group):
                    done.append(v.name)
        return done

    # ---- containers ------------------------------------------------------------------------
    def mounts(self, pod: dict, lst: str, i: int, env: dict[str, str] | None = None) -> list[dict]:
        """Container `lst[i]`'s volume mounts as OCI mounts; subPaths resolved and staged now."""
        plans = plan_volumes(pod, self.root)
        out = []
        for m in container_mounts(pod, lst, i, plans, self.root, env):
            if m.subpath is not None:
                self._stage(pod, m)
            out.append(m.oci())
        return out

    def _stage(self, pod: dict, m: MountPlan) -> None:
        with self._lock(pod["metadata"]["uid"]):
            subpath.stage(m.volume_path, m.subpath, m.source, m.field)

    # ---- eviction --------------------------------------------------------------------------
    def over_limit(self, pod: dict) -> list[tuple[str, int, int]]:
        """(volume, bytes used, sizeLimit) of each disk emptyDir over its sizeLimit (du)."""
        out = []
        for v in plan_volumes(pod, self.root):
            if v.kind == "emptyDir" and v.size_limit and not v.tmpfs:
                used = disk_usage(v.path)
                if used > v.size_limit:
                    out.append((v.name, used, v.size_limit))
        return out

    # ---- teardown --------------------------------------------------------------------------
    def teardown(self, uid: str) -> None:
        """Unmount every mount under the pod's directory (tmpfs volumes, subPath stagings),
        then delete it by handle. Idempotent; a mount that stays stops the deletion (raised)."""
        d = pod_dir(self.root, uid)
        with self._lock(uid):
            if not os.path.lexists(d):
                return
            unmount_all_under(d)
            remove_tree(d)
        with self._guard:
            self._locks.pop(uid, None)

    def gc(self, wanted: set[str]) -> list[str]:
        """The daemon's start: volumes of pods no longer desired go (their containers are gone)."""
        removed = []
        base = pods_dir(self.root)
        try:
            uids = os.listdir(base)
        except FileNotFoundError:
            return removed
        for uid in uids:
            if uid in wanted:
                continue
            try:
                self.teardown(uid)
                removed.append(f"volumes of pod {uid}")
            except OSError as e:
                log.warning("pod %s: volumes left: %s (mounts: %s)", uid, e, mounts_under(pod_dir(self.root, uid)))
        return removed


__all__ = ["VolumeManager", "VolumeError", "referenced"]
