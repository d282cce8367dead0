"""The container's mounts (kernel edge, run by the init after the fork; raw syscalls only): the
root prepared for pivot_root, each `mounts` entry made inside the rootfs (race-safe: targets are
opened inside the root and mounted through /proc/self/fd), pivot_root, masked and read-only
paths, the read-only root."""

from __future__ import annotations

import errno
import os
import stat

from ..cgroups import ROOT as ROOT_CGROUP
from ..cgroups import Cgroup
from ..linux import sys as ksys
from ..linux.paths import open_in_root, proc_fd
from .errors import RunError
from .spec import Mount


def mount_flags(options: list[str]) -> tuple[int, int, list[str]]:
    """(flags, propagation flags, data options) of a mount's options (pure)."""
    flags, prop, data = 0, 0, []
    for o in options:
        if o in ksys.MOUNT_FLAGS:
            bit, on = ksys.MOUNT_FLAGS[o]
            flags = flags | bit if on else flags & ~bit
        elif o in ksys.PROPAGATION:
            prop |= ksys.PROPAGATION[o]
        else:
            data.append(o)
    return flags, prop, data


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash come octal-escaped."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def parent_mount(mountinfo: str, path: str) -> tuple[str, list[str]]:
    """(mount point, optional fields such as `shared:7`) of the mount that holds `path` (an
    absolute path without symlinks), from the text of /proc/self/mountinfo (pure). Of mounts
    stacked on one point, the last listed is the one on top."""
    best, tags = "/", []
    for line in mountinfo.splitlines():
        f = line.split(" ")
        if len(f) < 7:
            continue
        point = _unescape(f[4])
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, tags = point, f[6:f.index("-")] if "-" in f else []
    return best, tags


def prepare_root(rootfs: str, propagation: str | None) -> None:
    """The propagation of / (linux.rootfsPropagation, rslave by default), then, as runc: the
    mount holding the rootfs made private if it is shared (pivot_root refuses a new root whose
    parent is shared, and the bind below would propagate to the host's namespace), and the
    rootfs bound on itself: pivot_root needs a mount point."""
    prop = ksys.PROPAGATION.get(propagation or "rslave", ksys.MS_SLAVE | ksys.MS_REC)
    ksys.mount(None, "/", None, prop)
    with open("/proc/self/mountinfo") as f:
        point, tags = parent_mount(f.read(), rootfs)
    if any(t.startswith("shared:") for t in tags):
        ksys.mount(None, point, None, ksys.MS_PRIVATE)
    ksys.mount(rootfs, rootfs, None, ksys.MS_BIND | ksys.MS_REC)


def mount_ids_at(mountinfo: str, path: str) -> list[int]:
    """Ids of the mounts whose mount point is `path`, bottom first, from the text of
    /proc/self/mountinfo (pure)."""
    out = []
    for line in mountinfo.splitlines():
        f = line.split(" ")
        if len(f) > 4 and _unescape(f[4]) == path:
            out.append(int(f[0]))
    return out


def host_root(rootfs: str) -> None:
    """Without a mount namespace (the config's choice, in the caller's namespace): the rootfs
    bound on itself, as runc binds it, so that the container's mounts hang below one mount that
    delete detaches (detach_host_root). Unlike runc, the propagation of the caller's `/` is left
    as it is, and no mount of the caller's is made private."""
    ksys.mount(rootfs, rootfs, None, ksys.MS_BIND | ksys.MS_REC)


def detach_host_root(rootfs: str, ours: list[int] | tuple[int, ...]) -> None:
    """Detach, with everything below it, the mounts at `rootfs` that host_root made (`ours`:
    their ids), the topmost first, while the top one is ours; repeatable (a mount already gone
    is not found again, and a mount that is not ours is never touched)."""
    ours = set(ours)
    while ours:
        with open("/proc/self/mountinfo") as f:
            ids = mount_ids_at(f.read(), rootfs)
        if not ids or ids[-1] not in ours:
            return
        ksys.umount2(rootfs, ksys.MNT_DETACH | ksys.UMOUNT_NOFOLLOW)
        ours.discard(ids[-1])


def on_top(rootfs_fd: int, dest: str, flags: int) -> None:
    """mount(2) on what is now mounted at `dest`: an fd opened before the mount names the dir
    below it, so the target is resolved again (still inside the root, race-safe)."""
    fd = open_in_root(rootfs_fd, dest)
    try:
        ksys.mount(None, proc_fd(fd), None, flags)
    finally:
        os.close(fd)


def mount_one(rootfs_fd: int, m: Mount, cgroup: Cgroup | None, idmapped: int | None = None,
              own_cgroupns: bool = False) -> None:
    """`idmapped`: a bind mount's source as a detached idmapped tree (launch.py made it),
    attached instead of a plain bind. `own_cgroupns`: the container has a cgroup namespace of
    its own (what a cgroup2 the kernel refuses is replaced with)."""
    flags, prop, data = mount_flags(m.options)
    is_bind = m.type == "bind" or flags & ksys.MS_BIND
    if is_bind:
        # an idmapped source is known by its tree: a user namespace's root may not reach the path
        src_is_dir = stat.S_ISDIR(os.fstat(idmapped).st_mode) if idmapped is not None else os.path.isdir(m.source)
        fd = open_in_root(rootfs_fd, m.destination, "dir" if src_is_dir else "file")
        try:
            target = proc_fd(fd)
            if idmapped is not None:
                ksys.move_mount(idmapped, fd)
            else:
                ksys.mount(m.source, target, None, ksys.MS_BIND | (flags & ksys.MS_REC))
            remount = flags & ~(ksys.MS_BIND | ksys.MS_REC | ksys.MS_REMOUNT)
            if remount:
                on_top(rootfs_fd, m.destination, ksys.MS_BIND | ksys.MS_REMOUNT | remount)
            if prop:
                on_top(rootfs_fd, m.destination, prop)
        finally:
            os.close(fd)
        return
    fd = open_in_root(rootfs_fd, m.destination, "dir")
    try:
        target = proc_fd(fd)
        if m.type == "cgroup" and cgroup is not None and cgroup.version == "v2":
            # as runc on a unified host: cgroup2, which in the container's own cgroup namespace
            # shows its own cgroup, and without one the whole hierarchy (the config's choice;
            # the generator gives every unprivileged container a cgroup namespace on v2)
            _cgroup2(rootfs_fd, m.destination, target, flags | ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC,
                     cgroup, own_cgroupns)
        elif m.type == "cgroup":  # v1: runc's view, see mount_cgroup_v1
            os.close(fd)
            fd = None
            mount_cgroup_v1(rootfs_fd, m.destination, flags, cgroup)
        elif m.type == "cgroup2":
            _cgroup2(rootfs_fd, m.destination, target, flags, cgroup, own_cgroupns, ",".join(data) or None)
        else:
            try:
                ksys.mount(m.source, target, m.type, flags, ",".join(data) or None)
            except PermissionError:
                # in a user namespace that does not own the network namespace the kernel
                # refuses a new sysfs: the host's is bound instead, as runc (1.2) does
                if m.type != "sysfs":
                    raise
                ksys.mount("/sys", target, None, ksys.MS_BIND | ksys.MS_REC)
                on_top(rootfs_fd, m.destination, ksys.MS_BIND | ksys.MS_REMOUNT | flags)
        if prop:
            on_top(rootfs_fd, m.destination, prop)
    finally:
        if fd is not None:
            os.close(fd)


def _cgroup2(rootfs_fd: int, dest: str, target: str, flags: int, cgroup: Cgroup | None, own_cgroupns: bool,
             data: str | None = None) -> None:
    """A new cgroup2, or where the kernel refuses one (EPERM: a user namespace that does not
    own the cgroup namespace; EBUSY: the same one is already there, brought by a bind of the
    host's /sys), as runc: a bind of the container's own cgroup (in its own cgroup namespace)
    or of the whole hierarchy."""
    try:
        ksys.mount("cgroup2", target, "cgroup2", flags, data)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EBUSY):
            raise
        src = cgroup.dir("cpu") if own_cgroupns and cgroup is not None else ROOT_CGROUP
        ksys.mount(src, target, None, ksys.MS_BIND | ksys.MS_REC)
        on_top(rootfs_fd, dest, ksys.MS_BIND | ksys.MS_REMOUNT | flags)


def mount_cgroup_v1(rootfs_fd: int, dest: str, flags: int, cgroup: Cgroup | None) -> None:
    """runc's /sys/fs/cgroup on v1: a tmpfs (rw, mode 755: runc does not make it read-only),
    in it the container's own cgroup of every v1 hierarchy bound at the hierarchy's name with the
    mount's flags (`ro`), and for a hierarchy of several controllers (`cpu,cpuacct`) a link
    per controller to it. The hybrid host's cgroup2 is not shown, as runc does not show it."""
    fd = open_in_root(rootfs_fd, dest, "dir")
    try:
        ksys.mount("tmpfs", proc_fd(fd), "tmpfs", ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC, "mode=755")
    finally:
        os.close(fd)
    fd = open_in_root(rootfs_fd, dest)  # now the tmpfs, not the dir below it
    try:
        links = []
        for name, d in (cgroup.v1_mounts() if cgroup else []):
            sub = open_in_root(rootfs_fd, f"{dest}/{name}", "dir", 0o755)
            try:
                ksys.mount(d, proc_fd(sub), None, ksys.MS_BIND | ksys.MS_REC)
            finally:
                os.close(sub)
            on_top(rootfs_fd, f"{dest}/{name}", ksys.MS_BIND | ksys.MS_REMOUNT | flags | ksys.MS_NOSUID
                   | ksys.MS_NODEV | ksys.MS_NOEXEC)
            if "," in name:
                links += [(ctrl, name) for ctrl in name.split(",")]
        for ctrl, name in links:
            try:
                os.symlink(name, ctrl, dir_fd=fd)
            except FileExistsError:
                pass
    finally:
        os.close(fd)


def chroot(rootfs: str) -> None:
    """Without a mount namespace, as runc: the root changes for this process alone (pivot_root
    would change it for the caller's whole namespace)."""
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(fd)
        os.chroot(".")
        os.chdir("/")
    finally:
        os.close(fd)


def pivot(rootfs: str) -> None:
    old = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(new)
    ksys.pivot_root(".", ".")
    os.fchdir(old)
    ksys.mount(None, ".", None, ksys.MS_SLAVE | ksys.MS_REC)  # the unmount must not reach the host
    ksys.umount2(".", ksys.MNT_DETACH)
    os.chdir("/")
    os.close(old)
    os.close(new)


def mask(paths: list[str]) -> None:
    """Masked files get the null device bound over them, taken by handle and checked to be
    c 1:3: a mount over /dev/null must not turn masking into exposing (CVE-2025-31133)."""
    if not paths:
        return
    null = os.open("/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(null)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
            raise RunError("masking: /dev/null in the container is not the null device (c 1:3)")
        for p in paths:
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                ksys.mount("tmpfs", p, "tmpfs", ksys.MS_RDONLY, "nr_blocks=1,nr_inodes=1")
            else:
                ksys.mount(proc_fd(null), p, None, ksys.MS_BIND)
    finally:
        os.close(null)


def readonly(paths: list[str]) -> None:
    for p in paths:
        try:
            ksys.mount(p, p, None, ksys.MS_BIND | ksys.MS_REC)
        except FileNotFoundError:
            continue
        st = os.statvfs(p)
        keep = st.f_flag & (ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC)
        ksys.mount(None, p, None, ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY | keep)


def readonly_root() -> None:
    keep = os.statvfs("/").f_flag & (ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC)
    ksys.mount(None, "/", None, ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY | keep)
