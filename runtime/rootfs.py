"""Container root filesystems (kernel edge: overlay mounts).

    <root>/containers/<id>/upper, work     the container's writes (never the snapshots)
    <run-root>/containers/<id>/rootfs      the overlay mount point
The lowerdirs are the image's snapshots, top layer first, given relative to the snapshot store
(the mount is made from inside it) so that more layers fit the one-page option limit."""

from __future__ import annotations

from .errors import RuntimeFailure

import os
import shutil
import threading

from .linux import sys as ksys

PAGE = os.sysconf("SC_PAGE_SIZE")
_cwd_lock = threading.Lock()  # the mount is made with the store as cwd


class RootfsError(RuntimeFailure):
    pass


def overlay_options(snapshot_root: str, layer_dirs: list[str], upper: str, work: str) -> str:
    rel = [os.path.relpath(d, snapshot_root) for d in layer_dirs]
    opts = f"lowerdir={':'.join(rel)},upperdir={upper},workdir={work}"
    if len(opts) >= PAGE:
        raise RootfsError(f"{len(layer_dirs)} layers make overlay options of {len(opts)} bytes (limit {PAGE - 1})")
    return opts


def mount_rootfs(snapshot_root: str, layer_dirs: list[str], state_dir: str, mountpoint: str) -> None:
    upper, work = os.path.join(state_dir, "upper"), os.path.join(state_dir, "work")
    for d in (state_dir, work):
        os.makedirs(d, mode=0o700, exist_ok=True)
    # the upper dir's own mode becomes the mode of the container's `/`: 0755 as in images
    # (host users are kept out by the 0700 state dir above it)
    os.makedirs(upper, mode=0o755, exist_ok=True)
    os.chmod(upper, 0o755)
    os.makedirs(mountpoint, mode=0o700, exist_ok=True)
    opts = overlay_options(snapshot_root, layer_dirs, upper, work)
    with _cwd_lock:
        old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.chdir(snapshot_root)
            ksys.mount("overlay", mountpoint, "overlay", 0, opts)
        finally:
            os.fchdir(old)
            os.close(old)


def remove_rootfs(state_dir: str, mountpoint: str) -> None:
    """Unmount and delete; idempotent, and never deletes through a still-mounted rootfs."""
    if os.path.ismount(mountpoint):
        ksys.umount2(mountpoint, ksys.MNT_DETACH)
    if os.path.ismount(mountpoint):
        raise RootfsError(f"{mountpoint} is still mounted")
    if os.path.isdir(mountpoint):
        os.rmdir(mountpoint)  # empty once unmounted; never a recursive delete through a mount
    if os.path.isdir(state_dir):
        shutil.rmtree(state_dir)
