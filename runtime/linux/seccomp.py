"""Seccomp filters (kernel edge): an OCI `linux.seccomp` object is compiled with libseccomp
(through the `pyseccomp` ctypes binding) into a classic BPF program *on the parent's side*,
before the container's fork (in a throwaway compiler process, see `compile_filter`); the
container's init (or an exec'd process) then loads that program with one `seccomp(2)` call.
Nothing is imported, resolved or allocated by libseccomp after the fork (security.md 0.4):
`Filter.load()` is a single raw syscall on memory prepared beforehand.

What runc does and we do the same way (`libcontainer/seccomp/seccomp_linux.go`):
- syscall names this libseccomp does not know on any architecture are skipped (runc logs them);
  names that exist only on another architecture of the filter (`socketcall` on x86_64 with
  SCMP_ARCH_X86 added) are kept: libseccomp translates them per architecture;
- a rule whose action equals the default action is dropped (libseccomp refuses it);
- a rule with more than one condition on the same argument index is added as one rule per
  condition (they OR), otherwise as one rule with all conditions (they AND);
- SCMP_ACT_KILL is KILL_THREAD; ERRNO and TRACE return `errnoRet`, EPERM when unset;
- the filter is loaded without libseccomp setting no_new_privs (the spec decides that), so when
  noNewPrivileges is false the loader must still hold CAP_SYS_ADMIN (see `oci/init.py`, become);
- SECCOMP_FILTER_FLAG_TSYNC is ignored: the process that loads the filter has one thread;
- more than 32 syscall names: libseccomp's binary-tree optimisation (SCMP_FLTATR_CTL_OPTIMIZE 2).

Where we differ: an architecture this libseccomp (or pyseccomp) has no constant for is skipped
(its syscalls meet the bad-architecture action, a kill) where runc fails the start.

As runc (its `patchbpf` stub), syscalls *newer* than every syscall the profile names, per
architecture, fail with ENOSYS rather than meet the default action: a libc then falls back
cleanly on a kernel newer than the profile (x32 calls on x86_64 go to libseccomp's program). Not
when the default action allows, or is ENOSYS already. SCMP_ACT_NOTIFY and seccomp agents are
refused by the spec parser."""

from __future__ import annotations

import json
import os
from collections import Counter

from ..errors import FAILED_PRECONDITION, INVALID_ARGUMENT, RuntimeFailure, from_wire
from . import sys as ksys

FLAG_BITS = {"SECCOMP_FILTER_FLAG_TSYNC": 0,  # ignored, see above
             "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
BPF_MAXINSNS = 4096
EPERM = 1
_NR_SCMP_ERROR = -1

_ARCH_ATTR = {"SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32", "SCMP_ARCH_ARM": "ARM",
              "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS", "SCMP_ARCH_MIPS64": "MIPS64",
              "SCMP_ARCH_MIPS64N32": "MIPS64N32", "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
              "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64",
              "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X",
              "SCMP_ARCH_PARISC": "PARISC", "SCMP_ARCH_PARISC64": "PARISC64", "SCMP_ARCH_RISCV64": "RISCV64",
              "SCMP_ARCH_LOONGARCH64": "LOONGARCH64"}
_OP_ATTR = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
            "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}


COMPILER_VERSION = 2  # part of every cache key of compiled programs: bump when the output changes
ENOSYS = 38
SECCOMP_RET_ERRNO = 0x00050000
X32_SYSCALL_BIT = 0x40000000
AUDIT_ARCH_X86_64 = 0xC000003E
_LD_ABS, _JEQ, _JGT, _JSET, _JA, _RET = 0x20, 0x15, 0x25, 0x45, 0x05, 0x06  # BPF_LD|W|ABS, BPF_JMP|..|K, BPF_RET|K


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return code.to_bytes(2, "little") + bytes([jt, jf]) + (k & 0xFFFFFFFF).to_bytes(4, "little")


def enosys_stub(last_syscalls: dict[int, int]) -> bytes:
    """BPF to put before a libseccomp program: for each audit arch -> highest syscall number the
    profile names, a larger number returns ENOSYS; everything else jumps to the program."""
    blocks = []
    for arch, last in sorted(last_syscalls.items()):
        x32 = arch == AUDIT_ARCH_X86_64
        blocks.append((arch, last, x32, 4 if x32 else 3))
    total = 1 + sum(b[3] for b in blocks) + 1  # ld arch, the blocks, `ja program`; then `ret ENOSYS`
    ret_at, prog_at = total, total + 1
    out = [_insn(_LD_ABS, 0, 0, 4)]  # A = seccomp_data.arch
    for arch, last, x32, n in blocks:
        i = len(out)
        out.append(_insn(_JEQ, 0, n - 1, arch))  # another arch: on to the next block (A still holds it)
        out.append(_insn(_LD_ABS, 0, 0, 0))  # A = seccomp_data.nr
        if x32:
            i = len(out)
            out.append(_insn(_JSET, prog_at - i - 1, 0, X32_SYSCALL_BIT))
        i = len(out)
        out.append(_insn(_JGT, ret_at - i - 1, prog_at - i - 1, last))
    out.append(_insn(_JA, 0, 0, prog_at - len(out) - 1))
    out.append(_insn(_RET, 0, 0, SECCOMP_RET_ERRNO | ENOSYS))
    assert len(out) == prog_at and all(b[3] < 256 for b in blocks)
    return b"".join(out)


class SeccompError(RuntimeFailure):
    """The profile could not be compiled or loaded. INTERNAL, unless libseccomp refused a part
    of the profile (INVALID_ARGUMENT, `field` names it) or is missing (FAILED_PRECONDITION)."""


class Filter:
    """A compiled filter: the BPF program and the seccomp(2) flags. Made in the parent; `load()`
    is safe in a forked child (one syscall, no allocation by libseccomp, no import)."""

    def __init__(self, program: bytes, flags: int, skipped_syscalls: list[str], skipped_arches: list[str]):
        if not program or len(program) % 8 or len(program) // 8 > BPF_MAXINSNS:
            raise SeccompError(f"seccomp: the compiled program has {len(program) / 8:g} instructions "
                               f"(the kernel takes 1..{BPF_MAXINSNS})", kind=INVALID_ARGUMENT, field="linux.seccomp")
        self.program = program
        self.flags = flags
        self.skipped_syscalls = skipped_syscalls
        self.skipped_arches = skipped_arches
        self._program = ksys.SeccompProgram(program, flags)

    @property
    def instructions(self) -> int:
        return len(self.program) // 8

    def load(self) -> None:
        """Install the filter on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN."""
        self._program.load()


def _pyseccomp():
    """The binding, imported in the compiler process only (see compile_filter). Its import runs
    ctypes.util.find_library: on the host, never after a container's fork."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError, OSError) as e:
        raise SeccompError(f"seccomp: libseccomp is not usable here ({e}): install libseccomp2 and pyseccomp",
                           kind=FAILED_PRECONDITION) from None
    return pyseccomp


def _action(sc, name: str, errno_ret: int | None) -> int:
    ret = EPERM if errno_ret is None else errno_ret
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return sc.KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return sc.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return sc.TRAP
    if name == "SCMP_ACT_ERRNO":
        return sc.ERRNO(ret)
    if name == "SCMP_ACT_TRACE":
        return sc.TRACE(ret)
    if name == "SCMP_ACT_ALLOW":
        return sc.ALLOW
    if name == "SCMP_ACT_LOG":
        return sc.LOG
    raise SeccompError(f"seccomp: action {name} is not supported", kind=INVALID_ARGUMENT)


class _Fd:
    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


_CACHE: dict[str, Filter] = {}


def compile_filter(profile: dict, where: str = "linux.seccomp") -> Filter:
    """Compile a validated `linux.seccomp` object (see `oci/seccomp_profile.validate`) into a
    Filter. Cached by content, so every exec into a container reuses its init's program.

    The work runs in a throwaway forked child that imports pyseccomp, compiles and sends the
    program back over a pipe: libseccomp, pyseccomp and what their import drags in
    (`ctypes.util`, hence `subprocess`; about 3 MB) never enter the caller, which may be a pod's
    long-lived supervisor. The caller waits for that child synchronously."""
    key = json.dumps(profile, sort_keys=True)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the compiler: only imports, compiles, writes, exits
        try:
            os.close(r)
            try:
                program, skipped, skipped_arches = _compile(profile, where)
                payload = json.dumps({"ok": True, "skipped": skipped, "arches": skipped_arches}).encode()
                payload += b"\n" + program
            except BaseException as e:  # noqa: BLE001 - sent to the parent
                msg = str(e) if isinstance(e, SeccompError) else f"seccomp: {type(e).__name__}: {e}"
                wire = e.to_wire() if isinstance(e, SeccompError) else {}
                payload = json.dumps({**wire, "ok": False, "error": msg}).encode() + b"\n"
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    try:
        while chunk := os.read(r, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    head, sep, program = b"".join(chunks).partition(b"\n")
    try:
        meta = json.loads(head) if sep else {"ok": False, "error": "seccomp: the compiler process died"}
    except ValueError:
        meta = {"ok": False, "error": "seccomp: the compiler process sent garbage"}
    if not meta["ok"]:
        raise from_wire(meta, SeccompError)
    flags = 0
    for fl in profile.get("flags") or []:
        flags |= FLAG_BITS[fl]
    out = Filter(program, flags, meta["skipped"], meta["arches"])
    if len(_CACHE) >= 32:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = out
    return out


def _compile(profile: dict, where: str) -> tuple[bytes, list[str], list[str]]:
    """libseccomp's work: (BPF program, skipped syscall names, skipped architectures)."""
    sc = _pyseccomp()
    default = _action(sc, profile["defaultAction"], profile.get("defaultErrnoRet"))
    try:
        f = sc.SyscallFilter(default)
        f.set_attr(sc.Attr.CTL_NNP, 0)
    except OSError as e:
        raise SeccompError(f"{where}.defaultAction: libseccomp: {e.strerror}", kind=INVALID_ARGUMENT,
                           field=f"{where}.defaultAction") from None
    skipped_arches = []
    for a in profile.get("architectures") or []:
        arch = getattr(sc.Arch, _ARCH_ATTR.get(a, ""), None)
        if arch is None:
            skipped_arches.append(a)  # this libseccomp does not know it: its syscalls hit the bad-arch kill
            continue
        try:
            if not f.exist_arch(arch):
                f.add_arch(arch)
        except OSError as e:
            raise SeccompError(f"{where}.architectures: {a}: libseccomp: {e.strerror}", kind=INVALID_ARGUMENT,
                               field=f"{where}.architectures") from None
    if sum(len(r["names"]) for r in profile.get("syscalls") or []) > 32:
        # libseccomp's binary-tree layout, as runc asks for long rule sets (the default profile:
        # a few comparisons per syscall instead of a linear scan); optional, not on old libseccomp
        try:
            f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
        except OSError:
            pass
    arches = [sc.system_arch()] + [int(getattr(sc.Arch, _ARCH_ATTR[a])) for a in profile.get("architectures") or []
                                   if a in _ARCH_ATTR and hasattr(sc.Arch, _ARCH_ATTR[a]) and a != "SCMP_ARCH_X32"]
    last_syscalls: dict[int, int] = {}
    skipped: list[str] = []
    for i, rule in enumerate(profile.get("syscalls") or []):
        for name in rule["names"]:
            for arch in set(arches):
                nr = sc.resolve_syscall(arch, name)
                if nr >= 0:  # libseccomp's negative pseudo-numbers: not a syscall of that arch
                    last_syscalls[arch] = max(last_syscalls.get(arch, 0), nr)
        act = _action(sc, rule["action"], rule.get("errnoRet"))
        if act == default:
            continue
        args = rule.get("args") or []
        conds = [sc.Arg(a["index"], getattr(sc, _OP_ATTR[a["op"]]), a["value"], a.get("valueTwo", 0)) for a in args]
        same_index = any(n > 1 for n in Counter(a["index"] for a in args).values())
        groups = [[c] for c in conds] if same_index else [conds]
        for name in rule["names"]:
            nr = sc.resolve_syscall(sc.Arch.NATIVE, name)
            if nr == _NR_SCMP_ERROR:
                skipped.append(name)
                continue
            for g in groups:
                try:
                    f.add_rule(act, nr, *g)
                except OSError as e:
                    raise SeccompError(f"{where}.syscalls[{i}]: {name}: libseccomp refused the rule: "
                                       f"{e.strerror}", kind=INVALID_ARGUMENT, field=f"{where}.syscalls[{i}]") from None
    fd = os.memfd_create("kpy-seccomp", os.MFD_CLOEXEC)
    try:
        try:
            f.export_bpf(_Fd(fd))
        except OSError as e:
            raise SeccompError(f"{where}: libseccomp could not generate the program: {e.strerror}") from None
        size = os.lseek(fd, 0, os.SEEK_CUR)
        os.lseek(fd, 0, os.SEEK_SET)
        program = b""
        while len(program) < size:
            chunk = os.read(fd, size - len(program))
            if not chunk:
                break
            program += chunk
    finally:
        os.close(fd)
    if last_syscalls and default not in (sc.ALLOW, sc.ERRNO(ENOSYS)):
        program = enosys_stub(last_syscalls) + program
    return program, sorted(set(skipped)), skipped_arches


def status_of(pid: int | str = "self") -> tuple[int, int]:
    """(Seccomp, Seccomp_filters) of a process, from /proc/PID/status."""
    mode = filters = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Seccomp:"):
                mode = int(line.split()[1])
            elif line.startswith("Seccomp_filters:"):
                filters = int(line.split()[1])
    return mode, filters
