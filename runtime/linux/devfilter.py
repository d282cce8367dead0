"""The cgroup v2 device filter: OCI device rules compiled to a BPF_PROG_TYPE_CGROUP_DEVICE
program and attached to the container's cgroup, as runc's devicefilter does (v2 has no
devices.allow/deny files). `compile_rules` is pure; `attach_device_filter` makes the syscalls."""

from __future__ import annotations

import os
import struct

from ..errors import INVALID_ARGUMENT, RuntimeFailure
from . import sys as ksys

# bpf_insn opcodes
LDXW = 0x61  # dst = *(u32 *)(src + off)
AND32_K = 0x54
RSH64_K = 0x77
MOV64_X = 0xBF
MOV64_K = 0xB7
JNE_K = 0x55
EXIT = 0x95
DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK / _CHAR
ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD / _READ / _WRITE
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6


class DeviceFilterError(RuntimeFailure):
    """A device rule the filter cannot express (INVALID_ARGUMENT, field linux.resources.devices),
    or the kernel refused the program (INTERNAL)."""


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: dict) -> list[tuple]:
    """Instructions for one rule; ("next",) jumps are resolved to the end of the block."""
    out: list[tuple] = []
    t = rule.get("type") or "a"
    if t != "a":
        out.append((JNE_K, 2, 0, "next", DEV_TYPE[t]))
    access = sum(ACCESS[c] for c in (rule.get("access") or "rwm"))
    if access != 7:  # every requested bit must be in the rule's access
        out += [(MOV64_X, 1, 3, 0, 0), (AND32_K, 1, 0, 0, 7 & ~access), (JNE_K, 1, 0, "next", 0)]
    for reg, key in ((4, "major"), (5, "minor")):
        v = rule.get(key)
        if v not in (None, -1):
            out.append((JNE_K, reg, 0, "next", v))
    out += [(MOV64_K, 0, 0, 0, 1 if rule.get("allow") else 0), (EXIT, 0, 0, 0, 0)]
    return out


def compile_rules(rules: list[dict]) -> bytes:
    """The program: the *last* matching rule decides (as with v1 devices.allow/deny), else deny."""
    for r in rules:
        if (r.get("type") or "a") not in ("a", "b", "c"):
            raise DeviceFilterError(f"device rule {r}: type must be a, b or c", kind=INVALID_ARGUMENT,
                                    field="linux.resources.devices")
        if any(c not in ACCESS for c in (r.get("access") or "rwm")):
            raise DeviceFilterError(f"device rule {r}: access must be made of r, w, m", kind=INVALID_ARGUMENT,
                                    field="linux.resources.devices")
    prog = [
        (LDXW, 2, 1, 0, 0), (AND32_K, 2, 0, 0, 0xFFFF),  # r2 = type
        (LDXW, 3, 1, 0, 0), (RSH64_K, 3, 0, 0, 16),  # r3 = access
        (LDXW, 4, 1, 4, 0), (LDXW, 5, 1, 8, 0),  # r4 = major, r5 = minor
    ]
    for rule in reversed(rules):
        block = _rule_block(rule)
        for i, (code, dst, src, off, imm) in enumerate(block):
            prog.append((code, dst, src, len(block) - i - 1 if off == "next" else off, imm))
        if len(block) == 2:  # matches every device: what follows is unreachable (the verifier refuses it)
            break
    else:
        prog += [(MOV64_K, 0, 0, 0, 0), (EXIT, 0, 0, 0, 0)]
    return b"".join(_insn(c, d, s, o, i) for c, d, s, o, i in prog)


def attach_device_filter(cgroup_dir: str, rules: list[dict]) -> None:
    code = compile_rules(rules)
    try:
        prog = ksys.bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, code)
    except OSError as e:
        raise DeviceFilterError(f"{cgroup_dir}: {e.strerror}") from None
    try:
        cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            ksys.bpf_prog_attach(cg, prog, BPF_CGROUP_DEVICE)
        finally:
            os.close(cg)
    except OSError as e:
        raise DeviceFilterError(f"{cgroup_dir}: attaching the device filter: {e.strerror}") from None
    finally:
        os.close(prog)
