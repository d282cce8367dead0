"""The one ctypes module: every raw syscall the runtime makes that `os` does not offer.

Loaded once at import, so nothing is looked up (no find_library, no lazy import) after a
process has entered a container's mount namespace (security.md 0.4)."""

from __future__ import annotations

import ctypes
import os
import struct

_libc = ctypes.CDLL("libc.so.6", use_errno=True)  # the one handle on libc of the runtime
_libc.syscall.restype = ctypes.c_long

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_pivot_root = {"x86_64": 155, "aarch64": 41}[os.uname().machine]
_SYS_capset = {"x86_64": 126, "aarch64": 91}[os.uname().machine]
_SYS_capget = {"x86_64": 125, "aarch64": 90}[os.uname().machine]
_SYS_seccomp = {"x86_64": 317, "aarch64": 277}[os.uname().machine]
_SYS_bpf = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
_SYS_open_tree, _SYS_move_mount, _SYS_mount_setattr = 428, 429, 442  # one table for both (5.2+, 5.12+)

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}", path)
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {fstype or ''} on {target}", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}", target)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


# ---- the new mount API: idmapped mounts ---------------------------------------------------------

AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40
MOUNT_ATTR_IDMAP = 0x00100000


def open_tree_clone(path: str, recursive: bool) -> int:
    """A detached copy of the mount at `path` (with the mounts below it if `recursive`), as an
    fd (close-on-exec): open_tree(OPEN_TREE_CLONE)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    return _check(_libc.syscall(_SYS_open_tree, ctypes.c_int(AT_FDCWD), _b(path), ctypes.c_uint(flags)),
                  f"open_tree {path}", path)


def idmap_tree(tree_fd: int, userns_fd: int, recursive: bool, what: str) -> None:
    """mount_setattr(MOUNT_ATTR_IDMAP) of a detached tree with the mappings of a user namespace."""
    attr = ctypes.create_string_buffer(struct.pack("<QQQQ", MOUNT_ATTR_IDMAP, 0, 0, userns_fd), 32)
    _check(_libc.syscall(_SYS_mount_setattr, ctypes.c_int(tree_fd), b"",
                         ctypes.c_uint(AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)), attr, ctypes.c_size_t(32)),
           f"mount_setattr(MOUNT_ATTR_IDMAP) of {what}", what)


def move_mount(tree_fd: int, target: str | int) -> None:
    """Attach a detached tree (an open_tree fd) at `target`: a path, or an fd (an O_PATH handle:
    the kernel does not follow a /proc/self/fd magic link here)."""
    if isinstance(target, int):
        to_fd, to_path, flags = target, b"", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    else:
        to_fd, to_path, flags = AT_FDCWD, _b(target), MOVE_MOUNT_F_EMPTY_PATH
    _check(_libc.syscall(_SYS_move_mount, ctypes.c_int(tree_fd), b"", ctypes.c_int(to_fd), to_path,
                         ctypes.c_uint(flags)), f"move_mount to {target}", str(target))


AF_INET, SOCK_DGRAM, SOCK_CLOEXEC = 2, 2, 0o2000000
_libc.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]


def socket(domain: int, type_: int, protocol: int = 0) -> int:
    """socket(2) as a bare fd (for ioctls in a forked child, without the socket module)."""
    return _check(_libc.socket(domain, type_ | SOCK_CLOEXEC, protocol), "socket")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_SYS_pivot_root, _b(new_root), _b(put_old)), "pivot_root")


def sethostname(name: str) -> None:
    b = name.encode()
    _check(_libc.sethostname(b, len(b)), "sethostname")


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _check(_libc.prctl(option, a2, a3, a4, a5), f"prctl({option})")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_SYS_capset, ctypes.byref(hdr), data), "capset")


MOUNT_FLAGS = {
    "ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False), "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False), "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True), "async": (MS_SYNCHRONOUS, False), "remount": (MS_REMOUNT, True),
    "dirsync": (MS_DIRSYNC, True), "noatime": (MS_NOATIME, True), "atime": (MS_NOATIME, False),
    "nodiratime": (MS_NODIRATIME, True), "diratime": (MS_NODIRATIME, False), "bind": (MS_BIND, True),
    "rbind": (MS_BIND | MS_REC, True), "relatime": (MS_RELATIME, True), "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True), "nostrictatime": (MS_STRICTATIME, False),
    "nosymfollow": (MS_NOSYMFOLLOW, True), "mand": (MS_MANDLOCK, True), "nomand": (MS_MANDLOCK, False),
}
PROPAGATION = {"private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "slave": MS_SLAVE,
               "rslave": MS_SLAVE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
               "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC}
NAMESPACES = {"pid": CLONE_NEWPID, "network": CLONE_NEWNET, "mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC,
              "uts": CLONE_NEWUTS, "user": CLONE_NEWUSER, "cgroup": CLONE_NEWCGROUP}


# ---- seccomp(2) -----------------------------------------------------------------------------

SECCOMP_SET_MODE_FILTER = 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SeccompProgram:
    """A classic BPF program for seccomp(SECCOMP_SET_MODE_FILTER), with every argument of the
    call made now: `load()` in a forked child is one syscall on memory prepared beforehand."""

    __slots__ = ("_buf", "_prog", "_args")

    def __init__(self, program: bytes, flags: int):
        self._buf = ctypes.create_string_buffer(program, len(program))
        self._prog = _SockFprog(len(program) // 8, ctypes.addressof(self._buf))
        self._args = (ctypes.c_long(_SYS_seccomp), ctypes.c_long(SECCOMP_SET_MODE_FILTER), ctypes.c_long(flags),
                      ctypes.byref(self._prog))

    def load(self) -> None:
        """Install the filter on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN."""
        _check(_libc.syscall(*self._args), "loading the seccomp filter")


# ---- bpf(2): cgroup programs ------------------------------------------------------------------

BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8


def bpf_prog_load(prog_type: int, insns: bytes, license: bytes = b"Apache") -> int:
    """Load an eBPF program; returns its fd (close-on-exec). A refusal names the verifier's
    last words."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license)
    log = ctypes.create_string_buffer(65536)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQIIQ", attr, 0, prog_type, len(insns) // 8, ctypes.addressof(code), ctypes.addressof(lic),
                     1, len(log), ctypes.addressof(log))
    ret = _libc.syscall(_SYS_bpf, BPF_PROG_LOAD, attr, len(attr))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf(BPF_PROG_LOAD): {os.strerror(e)}; verifier: {log.value.decode(errors='replace')[-400:]}")
    return ret


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIII", attr, 0, target_fd, prog_fd, attach_type, flags)
    _check(_libc.syscall(_SYS_bpf, BPF_PROG_ATTACH, attr, len(attr)), "bpf(BPF_PROG_ATTACH)")
