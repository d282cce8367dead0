"""Seccomp profiles as data (pure): containerd's default profile (what Kubernetes calls
`RuntimeDefault`), the validator of an OCI `linux.seccomp` object, and the loader of a
`Localhost` profile file.

The default profile reproduces containerd's `contrib/seccomp/seccomp_default.go`
(`DefaultProfile`), containerd main of 2025-2026: an allow-list on top of
`defaultAction: SCMP_ACT_ERRNO` (EPERM), the architectures of the host, groups of syscalls that
are allowed only when the container's *bounding* set holds a capability, a few per-architecture
groups, and argument rules:

- `personality` only for the personas 0x0, 0x8 (PER_LINUX32), 0x20000 (UNAME26), 0x20008 and
  0xffffffff (the query);
- `socket` for every address family except AF_ALG (38) and AF_VSOCK (40), written as three
  single-condition rules (`< 38`, `== 39`, `> 40`) because runc turns several conditions on the
  same argument into separate (OR-ed) rules;
- without CAP_SYS_ADMIN: `clone` only when none of the namespace flags is set (argument 0, or 1
  on s390) and `clone3` fails with ENOSYS (so that libcs fall back to `clone`, whose flags a
  filter can see; moby PR 42681);
- `ptrace`, `process_vm_readv`, `process_vm_writev` for everyone on kernels >= 4.8 (where
  ptrace can no longer be used to bypass seccomp).

Names that this libseccomp or architecture does not know are kept in the profile (it is data)
and skipped when compiled, as runc does (`runtime/linux/seccomp.py`).

A `Localhost` profile is a JSON file in the format of the kubelet's seccomp directory: the OCI
`LinuxSeccomp` object (what containerd reads), plus the Docker profile extras that real files
carry (`archMap`, per-rule `name`, `comment`, `includes`/`excludes`), which are resolved here for
this host. Errors name the file and the field."""

from __future__ import annotations

import json
import os
import re
import stat

from ..errors import INVALID_ARGUMENT, RuntimeFailure

EPERM = 1
ENOSYS = 38
AF_ALG = 38
AF_VSOCK = 40
CLONE_NAMESPACE_FLAGS = (0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
                         | 0x02000000)  # NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP = 0x7e020000
MAX_PROFILE_BYTES = 1 << 20

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
          "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
          "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
          "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64")
# flags the executor carries out; SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only means something
# with SCMP_ACT_NOTIFY, which needs a seccomp agent (listenerPath): not supported
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
_ALL_FLAGS = FLAGS + ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",)

# Go's GOARCH (containerd's switch), from this machine's `uname -m` or a GOARCH name
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
           "i686": "386", "386": "386", "armv7l": "arm", "armv6l": "arm", "arm": "arm", "s390x": "s390x",
           "s390": "s390", "ppc64le": "ppc64le", "riscv64": "riscv64", "loongarch64": "loong64",
           "loong64": "loong64", "mips64": "mips64", "mips64el": "mipsel64", "mipsel64": "mipsel64"}
_ARCHES_OF = {
    "amd64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "arm64": ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"],
    "mips64": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32"],
    "mips64n32": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32"],
    "mipsel64": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32"],
    "mipsel64n32": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32"],
    "s390x": ["SCMP_ARCH_S390", "SCMP_ARCH_S390X"],
    "riscv64": ["SCMP_ARCH_RISCV64"],  # there is no SCMP_ARCH_RISCV32
    "loong64": ["SCMP_ARCH_LOONGARCH64"],
}  # any other GOARCH (ppc64le, 386, arm): an empty list, i.e. the native architecture only
_NATIVE_SCMP = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86",
                "arm": "SCMP_ARCH_ARM", "s390x": "SCMP_ARCH_S390X", "s390": "SCMP_ARCH_S390",
                "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64", "loong64": "SCMP_ARCH_LOONGARCH64",
                "mips64": "SCMP_ARCH_MIPS64", "mipsel64": "SCMP_ARCH_MIPSEL64"}

# the unconditional allow-list, alphabetical as upstream keeps it
ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat getcpu getcwd
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid
getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
lchown lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek
lremovexattr lseek lsetxattr lsm_get_self_attr lsm_list_modules lsm_set_self_attr lstat lstat64 madvise
membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
map_shadow_stack mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat
openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll
ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64
pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
waitpid write writev
""".split()

PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

# kernel >= 4.8: ptrace can no longer bypass seccomp, so these are allowed to everyone
PTRACE_SINCE_4_8 = ["process_vm_readv", "process_vm_writev", "ptrace"]

BY_ARCH = {
    "ppc64le": ["sync_file_range2", "swapcontext"],
    "arm": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
    "arm64": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
    "amd64": ["arch_prctl", "modify_ldt"],
    "386": ["modify_ldt"],
    "s390": ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
    "s390x": ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
    "riscv64": ["riscv_flush_icache", "riscv_hwprobe"],
}

# allowed when the bounding set holds the capability (upstream's switch, in its order)
BY_CAP = {
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
    "CAP_SYS_ADMIN": ["bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                      "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
                      "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
                      "umount2", "unshare"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}


class ProfileError(RuntimeFailure):
    """A seccomp profile that is malformed or asks for something the executor cannot do. `field`
    is the path of the offending field (`linux.seccomp.syscalls[3].action`); `file` is the
    Localhost profile it came from, if any."""

    kind = INVALID_ARGUMENT

    def __init__(self, field: str, why: str, file: str | None = None):
        where = f"seccomp profile {file}: " if file else ""
        super().__init__(f"{where}{field}: {why}" if field else f"{where}{why}", field=field,
                         obj=f"seccomp profile {file}" if file else None)
        self.why = why
        self.file = file


def goarch(arch: str) -> str:
    """`uname -m` or GOARCH -> GOARCH (the names containerd's switches use)."""
    try:
        return _GOARCH[arch]
    except KeyError:
        raise ProfileError("", f"unknown architecture {arch!r}") from None


def _kernel_at_least(kernel: tuple[int, int] | None, want: tuple[int, int]) -> bool:
    return kernel is None or tuple(kernel[:2]) >= want


def default_profile(caps: list[str], arch: str, kernel: tuple[int, int] | None = None) -> dict:
    """containerd's default profile for a container whose bounding set is `caps`, on `arch`
    (`uname -m` or GOARCH), as the OCI `linux.seccomp` object. `kernel` is (major, minor) of the
    running kernel; None means a current one (kubelet-py needs far more than 4.8 anyway)."""
    ga = goarch(arch)
    rules: list[dict] = [{"names": list(ALLOWED), "action": "SCMP_ACT_ALLOW"}]
    for lo, op in ((AF_ALG, "SCMP_CMP_LT"), (AF_ALG + 1, "SCMP_CMP_EQ"), (AF_VSOCK, "SCMP_CMP_GT")):
        rules.append({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": lo, "valueTwo": 0, "op": op}]})
    for persona in PERSONAS:
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": persona, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]})
    if _kernel_at_least(kernel, (4, 8)):
        rules.append({"names": list(PTRACE_SINCE_4_8), "action": "SCMP_ACT_ALLOW"})
    if ga in BY_ARCH:
        rules.append({"names": list(BY_ARCH[ga]), "action": "SCMP_ACT_ALLOW"})
    admin = False
    for cap in caps:  # in the order of the bounding set, as upstream loops over it
        if cap in BY_CAP:
            admin = admin or cap == "CAP_SYS_ADMIN"
            rules.append({"names": list(BY_CAP[cap]), "action": "SCMP_ACT_ALLOW"})
    if not admin:
        flags_arg = 1 if ga in ("s390", "s390x") else 0  # s390's clone takes the flags second
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": flags_arg, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM,
            "architectures": list(_ARCHES_OF.get(ga, [])), "syscalls": rules}


# ---- validation of an OCI linux.seccomp object ----------------------------------------------

_TOP = {"defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata", "syscalls"}
_RULE = {"names", "action", "errnoRet", "args"}
_ARG = {"index", "value", "valueTwo", "op"}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _int(v, field: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProfileError(field, f"must be an integer in {lo}..{hi}")
    return v


def _only(d: dict, allowed: set, where: str) -> None:
    for k in d:
        if k not in allowed:
            raise ProfileError(_join(where, k), "unknown field")


def _action(v, field: str) -> str:
    if v not in ACTIONS:
        raise ProfileError(field, f"unknown action {v!r} (one of {', '.join(ACTIONS)})")
    if v == "SCMP_ACT_NOTIFY":
        raise ProfileError(field, "SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath): not supported")
    return v


def validate(obj, where: str = "linux.seccomp") -> dict:
    """Check an OCI `linux.seccomp` object strictly and return a normalised copy: every field
    present, `errnoRet`/`valueTwo` filled in. Raises ProfileError naming the field."""
    if not isinstance(obj, dict):
        raise ProfileError(where, "must be an object")
    _only(obj, _TOP, where)
    if "defaultAction" not in obj:
        raise ProfileError(_join(where, "defaultAction"), "missing")
    out: dict = {"defaultAction": _action(obj["defaultAction"], _join(where, "defaultAction"))}
    out["defaultErrnoRet"] = EPERM
    if obj.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = _int(obj["defaultErrnoRet"], _join(where, "defaultErrnoRet"), 0, 4095)
    arches = [] if obj.get("architectures") is None else obj["architectures"]
    if not isinstance(arches, list):
        raise ProfileError(_join(where, "architectures"), "must be a list")
    for i, a in enumerate(arches):
        if a not in ARCHES:
            raise ProfileError(f"{_join(where, 'architectures')}[{i}]", f"unknown architecture {a!r}")
    out["architectures"] = list(dict.fromkeys(arches))
    flags = [] if obj.get("flags") is None else obj["flags"]
    if not isinstance(flags, list):
        raise ProfileError(_join(where, "flags"), "must be a list")
    for i, f in enumerate(flags):
        if f not in _ALL_FLAGS:
            raise ProfileError(f"{_join(where, 'flags')}[{i}]", f"unknown flag {f!r}")
        if f not in FLAGS:
            raise ProfileError(f"{_join(where, 'flags')}[{i}]", f"{f} needs a seccomp agent: not supported")
    out["flags"] = list(dict.fromkeys(flags))
    if obj.get("listenerPath"):
        raise ProfileError(_join(where, "listenerPath"), "seccomp agents (SCMP_ACT_NOTIFY) are not supported")
    if obj.get("listenerMetadata") is not None and not isinstance(obj["listenerMetadata"], str):
        raise ProfileError(_join(where, "listenerMetadata"), "must be a string")
    rules = [] if obj.get("syscalls") is None else obj["syscalls"]
    if not isinstance(rules, list):
        raise ProfileError(_join(where, "syscalls"), "must be a list")
    out["syscalls"] = []
    for i, r in enumerate(rules):
        at = f"{_join(where, 'syscalls')}[{i}]"
        if not isinstance(r, dict):
            raise ProfileError(at, "must be an object")
        _only(r, _RULE, at)
        names = r.get("names")
        if not isinstance(names, list) or not names:
            raise ProfileError(f"{at}.names", "must be a non-empty list of syscall names")
        for j, n in enumerate(names):
            if not isinstance(n, str) or not _NAME.match(n):
                raise ProfileError(f"{at}.names[{j}]", f"not a syscall name: {n!r}")
        if "action" not in r:
            raise ProfileError(f"{at}.action", "missing")
        rule = {"names": list(names), "action": _action(r["action"], f"{at}.action")}
        if r.get("errnoRet") is not None:
            rule["errnoRet"] = _int(r["errnoRet"], f"{at}.errnoRet", 0, 4095)
        args = [] if r.get("args") is None else r["args"]
        if not isinstance(args, list) or len(args) > 6:
            raise ProfileError(f"{at}.args", "must be a list of at most 6 conditions")
        rule["args"] = []
        for k, a in enumerate(args):
            aat = f"{at}.args[{k}]"
            if not isinstance(a, dict):
                raise ProfileError(aat, "must be an object")
            _only(a, _ARG, aat)
            if a.get("op") not in OPS:
                raise ProfileError(f"{aat}.op", f"unknown operator {a.get('op')!r} (one of {', '.join(OPS)})")
            rule["args"].append({
                "index": _int(a.get("index"), f"{aat}.index", 0, 5),
                "value": _int(a.get("value", 0), f"{aat}.value", 0, 2**64 - 1),
                "valueTwo": _int(a.get("valueTwo", 0), f"{aat}.valueTwo", 0, 2**64 - 1),
                "op": a["op"]})
        out["syscalls"].append(rule)
    return out


# ---- Localhost profiles -----------------------------------------------------------------------

_DOCKER_TOP = _TOP | {"archMap"}
_DOCKER_RULE = _RULE | {"name", "comment", "includes", "excludes"}
_FILTER = {"arches", "caps", "minKernel"}


def _no_dup_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _kernel_tuple(s: str) -> tuple[int, ...]:
    m = re.match(r"^(\d+)\.(\d+)", s)
    if not m:
        raise ValueError(s)
    return int(m.group(1)), int(m.group(2))


def _applies(flt, field: str, caps: list[str], ga: str, kernel: tuple[int, int] | None, include: bool) -> bool:
    """Docker's includes/excludes of one rule, on this host."""
    if flt is None:
        return True
    if not isinstance(flt, dict):
        raise ProfileError(field, "must be an object")
    _only(flt, _FILTER, field)
    arches = flt.get("arches") or []
    need = flt.get("caps") or []
    if not isinstance(arches, list) or not isinstance(need, list):
        raise ProfileError(field, "arches and caps must be lists")
    min_kernel = flt.get("minKernel")
    if min_kernel is not None:
        try:
            mk = _kernel_tuple(str(min_kernel))
        except ValueError:
            raise ProfileError(f"{field}.minKernel", f"not a kernel version: {min_kernel!r}") from None
    if include:
        if arches and ga not in arches:
            return False
        if need and not all(c in caps for c in need):
            return False
        if min_kernel is not None and kernel is not None and tuple(kernel) < mk:
            return False
        return True
    if arches and ga in arches:
        return False
    if need and any(c in caps for c in need):
        return False
    return True


def load_localhost(path: str, caps: list[str] | None = None, arch: str | None = None,
                   kernel: tuple[int, int] | None = None) -> dict:
    """Read a Localhost profile (OCI `LinuxSeccomp` JSON, Docker extras resolved for `caps`,
    `arch` and `kernel`, by default this host's) and return the validated `linux.seccomp` object.
    Errors name the file and the field."""
    caps = list(caps or [])
    ga = goarch(arch or os.uname().machine)
    if kernel is None:
        try:
            kernel = _kernel_tuple(os.uname().release)
        except ValueError:
            kernel = None
    if not os.path.isabs(path):
        raise ProfileError("", "a Localhost profile must be an absolute path", path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise ProfileError("", f"cannot open: {e.strerror}", path) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ProfileError("", "not a regular file", path)
        data = b""
        while len(data) <= MAX_PROFILE_BYTES and (chunk := os.read(fd, MAX_PROFILE_BYTES + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError("", f"larger than {MAX_PROFILE_BYTES} bytes", path)
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_dup_keys)
    except (UnicodeDecodeError, ValueError) as e:
        raise ProfileError("", f"not valid JSON: {e}", path) from None
    if not isinstance(doc, dict):
        raise ProfileError("", "must be a JSON object", path)
    try:
        _only(doc, _DOCKER_TOP, "")
        oci = {k: v for k, v in doc.items() if k in _TOP}
        if doc.get("archMap") and doc.get("architectures"):
            raise ProfileError("archMap", "give either architectures or archMap, not both")
        if doc.get("archMap") is not None:
            amap = doc["archMap"]
            if not isinstance(amap, list):
                raise ProfileError("archMap", "must be a list")
            native = _NATIVE_SCMP.get(ga)
            arches: list[str] = []
            for i, m in enumerate(amap):
                if not isinstance(m, dict):
                    raise ProfileError(f"archMap[{i}]", "must be an object")
                _only(m, {"architecture", "subArchitectures"}, f"archMap[{i}]")
                if m.get("architecture") == native:
                    subs = m.get("subArchitectures") or []
                    if not isinstance(subs, list):
                        raise ProfileError(f"archMap[{i}].subArchitectures", "must be a list")
                    arches += [native, *subs]
            oci["architectures"] = arches
        rules = [] if doc.get("syscalls") is None else doc["syscalls"]
        if not isinstance(rules, list):
            raise ProfileError("syscalls", "must be a list")
        kept = []
        for i, r in enumerate(rules):
            at = f"syscalls[{i}]"
            if not isinstance(r, dict):
                raise ProfileError(at, "must be an object")
            _only(r, _DOCKER_RULE, at)
            if "name" in r and "names" in r:
                raise ProfileError(f"{at}.name", "give either name or names, not both")
            if not _applies(r.get("includes"), f"{at}.includes", caps, ga, kernel, True):
                continue
            if not _applies(r.get("excludes"), f"{at}.excludes", caps, ga, kernel, False):
                continue
            rule = {k: v for k, v in r.items() if k in _RULE}
            if "name" in r:
                rule["names"] = [r["name"]]
            kept.append((i, rule))
        oci["syscalls"] = [rule for _i, rule in kept]
        try:
            return validate(oci, "")
        except ProfileError as e:
            # point at the rule's index in the file, not in the filtered list
            m = re.match(r"^syscalls\[(\d+)\](.*)$", e.field)
            field = f"syscalls[{kept[int(m.group(1))][0]}]{m.group(2)}" if m else e.field
            raise ProfileError(field, e.why) from None
    except ProfileError as e:
        raise ProfileError(e.field, e.why, path) from None


# ---- what a container asks for ----------------------------------------------------------------

def parse_request(value: str | None) -> tuple[str, str | None]:
    """A container's seccompProfile, Kubernetes or CRI spelling -> (type, localhost path).
    `Unconfined` (the default), `RuntimeDefault`, `Localhost/<absolute path>`; also the CRI's
    `unconfined`, `runtime/default`, `docker/default`, `localhost/<path>`."""
    v = (value or "").strip()
    if v in ("", "Unconfined", "unconfined"):
        return "Unconfined", None
    if v in ("RuntimeDefault", "runtime/default", "docker/default"):
        return "RuntimeDefault", None
    for prefix in ("Localhost/", "localhost/"):
        if v.startswith(prefix):
            path = v[len(prefix):]
            if not path.startswith("/"):
                # the kubelet joins localhostProfile under its seccomp dir before the CRI sees it
                raise ProfileError("seccompProfile", f"Localhost profile {path!r} must be an absolute path")
            return "Localhost", path
    raise ProfileError("seccompProfile", f"unknown profile {value!r} (Unconfined, RuntimeDefault or Localhost/<path>)")
