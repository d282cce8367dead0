"""Container root filesystems (kernel edge: overlay mounts).

    <root>/containers/<id>/upper, work     the container's writes (never the snapshots)
    <root>/containers/<id>/l/<n>           short links to the image's snapshots, top layer = 0
    <run-root>/containers/<id>/rootfs      the overlay mount point
The overlay options fit in one page (the kernel's limit for mount data): they name the layers
by the short links (`l/0:l/1:...`, as Docker's overlay2 does) and upper/work relative to the
container's state dir, from which the mount is made. So an image may have as many layers as
overlayfs stacks (500).

A rootfs for a user namespace (`idmap`: a hostUsers: false pod's) cannot be an idmapped overlay
(the kernel refuses to idmap an overlay mount), so, as containerd and containers/storage do,
each lower layer is idmapped (mount_setattr MOUNT_ATTR_IDMAP with the pod's user namespace) and
the overlay stacks those; the upper dir belongs to the namespace's root. The idmapped layers are
attached (at l/<n>, then dirs) only in a private mount namespace of a short-lived thread, where
the overlay is made and from which a copy of it is moved to the mount point: the overlay holds
its own references to its layers, so nothing but the overlay is ever mounted in the host's
namespace, and nothing is left behind if the process dies half-way."""

from __future__ import annotations

from .errors import RuntimeFailure

import os
import shutil
from os.path import ismount  # a module attribute: the test double (runtime/fake.py) stands in for it

from .linux import sys as ksys
from .linux.userns import let_others_search
from .threadns import CLONE_FS, in_own_thread

PAGE = os.sysconf("SC_PAGE_SIZE")
OVL_MAX_STACK = 500  # fs/overlayfs: the most lower layers one mount takes


class RootfsError(RuntimeFailure):
    pass


def overlay_options(n_layers: int, base: str = "") -> str:
    """The mount options for `n_layers` lower layers linked as l/0 (top) .. l/<n-1>, relative
    to the container's state dir (or below `base`, that dir's absolute path)."""
    if not 1 <= n_layers <= OVL_MAX_STACK:
        raise RootfsError(f"an image of {n_layers} layers: overlayfs stacks 1 to {OVL_MAX_STACK}")
    b = f"{base}/" if base else ""
    opts = f"lowerdir={':'.join(f'{b}l/{i}' for i in range(n_layers))},upperdir={b}upper,workdir={b}work"
    if len(opts) >= PAGE:
        raise RootfsError(f"{n_layers} layers make overlay options of {len(opts)} bytes (limit {PAGE - 1})")
    return opts


def mount_rootfs(layer_dirs: list[str], state_dir: str, mountpoint: str,
                 idmap: tuple[str, int, int] | None = None) -> None:
    """Overlay `layer_dirs` (top layer first) with the container's upper dir at `mountpoint`.
    `idmap`: (a pinned user namespace, the host uid and gid of its root): the layers seen
    through its maps, the upper dir its root's, and the dir holding `mountpoint` open to its
    root's group (0710, as containerd's bundle dirs), so that the container's init, root of the
    namespace, reaches its rootfs."""
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
        if os.path.islink(link):
            os.unlink(link)
        if idmap:  # a mount point, in the private namespace only
            os.makedirs(link, mode=0o700, exist_ok=True)
        else:
            if os.path.isdir(link):
                os.rmdir(link)
            os.symlink(os.path.abspath(d), link)
    os.makedirs(mountpoint, mode=0o700, exist_ok=True)
    mountpoint = os.path.abspath(mountpoint)
    if idmap:
        userns, uid, gid = idmap
        os.chown(upper, uid, gid)
        os.chown(os.path.dirname(mountpoint), 0, gid)
        os.chmod(os.path.dirname(mountpoint), 0o710)
        let_others_search(os.path.dirname(os.path.dirname(mountpoint)))
        here = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)  # the caller's: the overlay's
        try:
            in_own_thread(lambda: _mount_idmapped(layer_dirs, state_dir, mountpoint, opts, userns, here),
                          ksys.CLONE_NEWNS | CLONE_FS)
        finally:
            os.close(here)
        return

    base = os.path.abspath(state_dir)
    if not any(c in base for c in ",:\\"):
        try:
            absolute = overlay_options(len(layer_dirs), base)
        except RootfsError:  # too long with the whole paths: from the state dir, below
            absolute = None
        if absolute is not None:
            # mounted from here (a thread's start and join under a busy GIL cost up to a few
            # ms of a pod's start)
            ksys.mount("overlay", mountpoint, "overlay", 0, absolute)
            return

    def mount_from_state_dir():  # in a thread with a cwd of its own: the caller's never moves
        os.chdir(state_dir)
        ksys.mount("overlay", mountpoint, "overlay", 0, opts)
    in_own_thread(mount_from_state_dir, CLONE_FS)


def _mount_idmapped(layer_dirs: list[str], state_dir: str, mountpoint: str, opts: str, userns_path: str,
                    host_ns: int) -> None:
    """In a thread in a mount namespace of its own (its caller's copy): idmapped layers at
    l/<n>, the overlay on them, a copy of it moved to `mountpoint` in the caller's namespace
    (`host_ns`, an fd)."""
    userns = os.open(userns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ksys.mount(None, "/", None, ksys.MS_REC | ksys.MS_PRIVATE)  # nothing below propagates out
        for i, d in enumerate(layer_dirs):
            tree = ksys.open_tree_clone(d, False)
            try:
                try:
                    ksys.idmap_tree(tree, userns, False, d)
                except OSError as e:
                    if e.errno == 22:
                        raise RootfsError(f"layer {d}: its filesystem cannot be idmapped on this kernel (a "
                                          "hostUsers: false pod needs idmapped layers: ext4, xfs, btrfs; tmpfs "
                                          "from 6.3)") from None
                    raise
                ksys.move_mount(tree, os.path.join(state_dir, "l", str(i)))
            finally:
                os.close(tree)
        os.chdir(state_dir)
        ksys.mount("overlay", mountpoint, "overlay", 0, opts)
        rootfs = ksys.open_tree_clone(mountpoint, False)
        try:
            ksys.setns(host_ns, ksys.CLONE_NEWNS)
            ksys.move_mount(rootfs, mountpoint)
        finally:
            os.close(rootfs)
    finally:
        os.close(userns)


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
