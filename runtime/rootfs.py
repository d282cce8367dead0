"""Container root filesystems (kernel edge: overlay mounts).

    <root>/containers/<id>/upper, work     the container's writes (never the snapshots)
    <root>/containers/<id>/l/<n>           short links to the image's snapshots, top layer = 0
    <run-root>/containers/<id>/rootfs      the overlay mount point
The overlay options fit in one page (the kernel's limit for mount data): they name the layers
by the short links (`l/0:l/1:...`, as Docker's overlay2 does) and upper/work relative to the
container's state dir, from which the mount is made. So an image may have as many layers as
overlayfs stacks (500)."""

from __future__ import annotations

from .errors import RuntimeFailure

import os
import shutil
from os.path import ismount  # a module attribute: the test double (runtime/fake.py) stands in for it

from .linux import sys as ksys
from .threadns import CLONE_FS, in_own_thread

PAGE = os.sysconf("SC_PAGE_SIZE")
OVL_MAX_STACK = 500  # fs/overlayfs: the most lower layers one mount takes


class RootfsError(RuntimeFailure):
    pass


def overlay_options(n_layers: int) -> str:
    """The mount options for `n_layers` lower layers linked as l/0 (top) .. l/<n-1>, relative
    to the container's state dir."""
    if not 1 <= n_layers <= OVL_MAX_STACK:
        raise RootfsError(f"an image of {n_layers} layers: overlayfs stacks 1 to {OVL_MAX_STACK}")
    opts = f"lowerdir={':'.join(f'l/{i}' for i in range(n_layers))},upperdir=upper,workdir=work"
    if len(opts) >= PAGE:
        raise RootfsError(f"{n_layers} layers make overlay options of {len(opts)} bytes (limit {PAGE - 1})")
    return opts


def mount_rootfs(layer_dirs: list[str], state_dir: str, mountpoint: str) -> None:
    """Overlay `layer_dirs` (top layer first) with the container's upper dir at `mountpoint`."""
    opts = overlay_options(len(layer_dirs))
    upper, work, links = (os.path.join(state_dir, n) for n in ("upper", "work", "l"))
    for d in (state_dir, work, links):
        os.makedirs(d, mode=0o700, exist_ok=True)
    # the upper dir's own mode becomes the mode of the container's `/`: 0755 as in images
    # (host users are kept out by the 0700 state dir above it)
    os.makedirs(upper, mode=0o755, exist_ok=True)
    os.chmod(upper, 0o755)
    for i, d in enumerate(layer_dirs):
        link = os.path.join(links, str(i))
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.path.abspath(d), link)
    os.makedirs(mountpoint, mode=0o700, exist_ok=True)
    mountpoint = os.path.abspath(mountpoint)

    def mount_from_state_dir():  # in a thread with a cwd of its own: the caller's never moves
        os.chdir(state_dir)
        ksys.mount("overlay", mountpoint, "overlay", 0, opts)
    in_own_thread(mount_from_state_dir, CLONE_FS)


def remove_rootfs(state_dir: str, mountpoint: str) -> None:
    """Unmount and delete; idempotent, and never deletes through a still-mounted rootfs."""
    if ismount(mountpoint):
        ksys.umount2(mountpoint, ksys.MNT_DETACH)
    if ismount(mountpoint):
        raise RootfsError(f"{mountpoint} is still mounted")
    if os.path.isdir(mountpoint):
        os.rmdir(mountpoint)  # empty once unmounted; never a recursive delete through a mount
    if os.path.isdir(state_dir):
        shutil.rmtree(state_dir)
