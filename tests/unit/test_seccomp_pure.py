"""Seccomp profiles as data (pure): containerd's default profile, the linux.seccomp validator
behind the spec parser, Localhost profile files, and what the generator and CLI make of a
container's seccompProfile."""

from __future__ import annotations

import copy
import json
import os

import pytest

from runtime.image.manifest import ImageConfig
from runtime.linux.caps import DEFAULT, NAMES
from runtime.oci import seccomp_profile as sp
from runtime.oci.seccomp_profile import ProfileError, default_profile, load_localhost, parse_request, validate
from runtime.oci.spec import SpecError, parse
from runtime.oci.generate import ContainerRequest, generate

IMG = ImageConfig("amd64", "linux", (), cmd=("sh",))


def _allowed(profile: dict) -> set[str]:
    """Names allowed unconditionally."""
    return {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}


def _rules_for(profile: dict, name: str) -> list[dict]:
    return [r for r in profile["syscalls"] if name in r["names"]]


def _passes(args: list[dict], value: int) -> bool:
    """Does argument value `value` satisfy every condition (the kernel's view of one rule)?"""
    ok = True
    for a in args:
        op, v, v2 = a["op"], a["value"], a.get("valueTwo", 0)
        ok &= {"SCMP_CMP_EQ": value == v, "SCMP_CMP_NE": value != v, "SCMP_CMP_LT": value < v,
               "SCMP_CMP_LE": value <= v, "SCMP_CMP_GT": value > v, "SCMP_CMP_GE": value >= v,
               "SCMP_CMP_MASKED_EQ": value & v == v2}[op]
    return ok


def test_default_profile_shape():
    p = default_profile(DEFAULT, "x86_64")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert default_profile(DEFAULT, "aarch64")["architectures"] == ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"]
    assert default_profile(DEFAULT, "ppc64le")["architectures"] == []  # native only, as upstream
    assert default_profile(DEFAULT, "amd64") == p  # GOARCH spelling too
    allowed = _allowed(p)
    for name in ("read", "write", "execve", "openat", "mmap", "futex", "fork", "socketpair",
                 "setresuid", "capset", "prctl", "close_range", "getcwd", "chdir", "arch_prctl", "rseq",
                 "faccessat2", "epoll_pwait2", "name_to_handle_at", "ptrace",
                 "chroot"):  # ptrace: kernel >= 4.8; chroot: CAP_SYS_CHROOT is in the default set
        assert name in allowed, name
    for name in ("unshare", "setns", "mount", "umount2", "bpf", "keyctl", "add_key", "request_key", "kexec_load",
                 "open_by_handle_at", "reboot", "init_module", "clone3", "clone", "personality", "socket",
                 "io_uring_setup", "userfaultfd", "perf_event_open", "syslog", "acct", "swapon"):
        assert name not in allowed, name
    assert validate(p) == validate(validate(p))  # the generator's output is what the parser takes
    assert json.loads(json.dumps(p)) == p


def test_default_profile_argument_rules():
    p = default_profile(DEFAULT, "x86_64")
    personas = sorted(r["args"][0]["value"] for r in _rules_for(p, "personality"))
    assert personas == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    socket_rules = _rules_for(p, "socket")
    assert all(len(r["args"]) == 1 and r["args"][0]["index"] == 0 for r in socket_rules)
    families = {f for f in range(64) if any(_passes(r["args"], f) for r in socket_rules)}
    assert families == set(range(64)) - {38, 40}  # every family but AF_ALG and AF_VSOCK
    (clone,) = _rules_for(p, "clone")
    assert clone["action"] == "SCMP_ACT_ALLOW" and clone["args"][0]["index"] == 0
    assert clone["args"][0]["value"] == 0x7E020000
    assert _passes(clone["args"], 0x01200011)  # fork()'s flags from glibc
    for ns in (0x10000000, 0x00020000, 0x20000000, 0x40000000, 0x02000000, 0x04000000, 0x08000000):
        assert not _passes(clone["args"], 0x11 | ns)
    (clone3,) = _rules_for(p, "clone3")
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}  # ENOSYS: libc falls back
    s390 = default_profile(DEFAULT, "s390x")
    assert _rules_for(s390, "clone")[0]["args"][0]["index"] == 1
    assert "s390_runtime_instr" in _allowed(s390) and "arch_prctl" not in _allowed(s390)
    assert {"cacheflush", "set_tls"} <= _allowed(default_profile(DEFAULT, "aarch64"))


@pytest.mark.parametrize("cap,names", [
    ("CAP_SYS_ADMIN", {"unshare", "setns", "mount", "umount2", "bpf", "clone", "clone3", "sethostname", "syslog",
                       "fsopen", "open_tree", "perf_event_open", "quotactl"}),
    ("CAP_DAC_READ_SEARCH", {"open_by_handle_at"}),
    ("CAP_SYS_BOOT", {"reboot"}),
    ("CAP_SYS_MODULE", {"init_module", "finit_module", "delete_module"}),
    ("CAP_SYS_PACCT", {"acct"}),
    ("CAP_SYS_PTRACE", {"kcmp", "pidfd_getfd", "process_madvise"}),
    ("CAP_SYS_RAWIO", {"iopl", "ioperm"}),
    ("CAP_SYS_TIME", {"settimeofday", "clock_settime"}),
    ("CAP_SYS_TTY_CONFIG", {"vhangup"}),
    ("CAP_SYS_NICE", {"mbind", "set_mempolicy", "get_mempolicy"}),
    ("CAP_SYSLOG", {"syslog"}),
    ("CAP_BPF", {"bpf"}),
    ("CAP_PERFMON", {"perf_event_open"}),
])
def test_capability_groups(cap, names):
    base = _allowed(default_profile(DEFAULT, "x86_64"))
    with_cap = default_profile(DEFAULT + [cap], "x86_64")
    assert names <= _allowed(with_cap) and not names & base
    admin = cap == "CAP_SYS_ADMIN"
    # only CAP_SYS_ADMIN lifts the clone flag rule and the clone3 ENOSYS
    assert bool(_rules_for(with_cap, "clone3") and _rules_for(with_cap, "clone3")[0]["action"] == "SCMP_ACT_ERRNO") \
        is (not admin)
    assert any(r.get("args") for r in _rules_for(with_cap, "clone")) is (not admin)


def test_no_caps_and_old_kernels():
    p = default_profile([], "x86_64")
    assert "chroot" not in _allowed(p)  # CAP_SYS_CHROOT dropped: chroot goes too
    assert "ptrace" not in _allowed(default_profile(DEFAULT, "x86_64", kernel=(4, 4)))
    assert "ptrace" in _allowed(default_profile(DEFAULT, "x86_64", kernel=(4, 8)))
    with pytest.raises(ProfileError, match="unknown architecture"):
        default_profile(DEFAULT, "vax")


# ---- the parser: linux.seccomp fields are named -------------------------------------------------

def _doc(seccomp) -> dict:
    return {"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}], "seccomp": seccomp}}


def _bad(seccomp) -> SpecError:
    with pytest.raises(SpecError) as e:
        parse(_doc(seccomp))
    return e.value


def test_parse_accepts_and_normalises():
    spec = parse(_doc(default_profile(DEFAULT, "x86_64")))
    assert spec.seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and len(spec.seccomp["syscalls"]) > 10
    spec = parse(_doc({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
                       "flags": ["SECCOMP_FILTER_FLAG_LOG"]}))
    assert spec.seccomp == {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1, "architectures": [],
                            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": []}]}
    assert parse({**_doc(None)}).seccomp is None


def test_parse_errors_name_the_field():
    prof = default_profile(DEFAULT, "x86_64")
    bad = copy.deepcopy(prof)
    bad["syscalls"][3]["action"] = "SCMP_ACT_MAYBE"
    e = _bad(bad)
    assert e.field == "linux.seccomp.syscalls[3].action" and "SCMP_ACT_MAYBE" in str(e)
    bad = copy.deepcopy(prof)
    bad["syscalls"][1]["args"][0]["op"] = "SCMP_CMP_ALMOST"
    assert _bad(bad).field == "linux.seccomp.syscalls[1].args[0].op"
    cases = [
        ({"defaultAction": "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction"),
        ({}, "linux.seccomp.defaultAction"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "linux.seccomp.defaultErrnoRet"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]},
         "linux.seccomp.architectures[1]"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}, "linux.seccomp.flags[0]"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}, "linux.seccomp.flags[0]"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock"}, "linux.seccomp.listenerPath"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "extra": 1}, "linux.seccomp.extra"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}, "linux.seccomp.syscalls"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]},
         "linux.seccomp.syscalls[0].names"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "Bad Name"], "action": "SCMP_ACT_ALLOW"}]},
         "linux.seccomp.syscalls[0].names[1]"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}, "linux.seccomp.syscalls[0].action"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]},
         "linux.seccomp.syscalls[0].action"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "name": "x"}]},
         "linux.seccomp.syscalls[0].name"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                          "errnoRet": 70000}]}, "linux.seccomp.syscalls[0].errnoRet"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
         "linux.seccomp.syscalls[0].args[0].index"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                          "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
         "linux.seccomp.syscalls[0].args[0].value"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                          "args": [{"index": 0, "value": 1}]}]},
         "linux.seccomp.syscalls[0].args[0].op"),
        ("SCMP_ACT_ALLOW", "linux.seccomp"),
    ]
    for seccomp, field in cases:
        e = _bad(seccomp)
        assert e.field == field, (seccomp, str(e))
        assert str(e).startswith(f"config.json: {field}: ")


# ---- Localhost profile files --------------------------------------------------------------------

def _write(tmp_path, name: str, body) -> str:
    p = tmp_path / name
    p.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(p)


def test_localhost_oci_and_docker_format(tmp_path):
    oci = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    got = load_localhost(_write(tmp_path, "oci.json", oci))
    assert got["syscalls"] == [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": []}]
    docker = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "basics"},
            {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
             "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        ]}
    path = _write(tmp_path, "docker.json", docker)
    plain = load_localhost(path, DEFAULT, "x86_64", kernel=(6, 1))
    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = [r["names"] for r in plain["syscalls"]]
    assert names == [["read", "write"], ["arch_prctl"], ["clone"], ["ptrace"]]
    admin = load_localhost(path, DEFAULT + ["CAP_SYS_ADMIN"], "aarch64", kernel=(4, 4))
    assert admin["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert [r["names"] for r in admin["syscalls"]] == [["read", "write"], ["mount"], ["cacheflush"]]


def test_localhost_errors_name_file_and_field(tmp_path):
    cases = [
        ("missing.json", None, "cannot open"),
        ("notjson.json", "{nope", "not valid JSON"),
        ("dup.json", '{"defaultAction": "SCMP_ACT_ALLOW", "defaultAction": "SCMP_ACT_ERRNO"}', "duplicate key"),
        ("list.json", [1, 2], "must be a JSON object"),
        ("badaction.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},  # filtered out
            {"names": ["mkdir"], "action": "SCMP_ACT_DENY"}]}, "syscalls[2].action: unknown action"),
        ("badop.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]},
         "syscalls[0].args[0].op"),
        ("unknown.json", {"defaultAction": "SCMP_ACT_ALLOW", "sycalls": []}, "sycalls: unknown field"),
        ("nodefault.json", {"syscalls": []}, "defaultAction: missing"),
        ("botharch.json", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                           "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, "archMap: give either"),
        ("badinclude.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "includes": {"kernel": "5"}}]}, "syscalls[0].includes.kernel"),
        ("badmin.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "new"}}]},
         "syscalls[0].includes.minKernel"),
    ]
    for name, body, what in cases:
        path = str(tmp_path / name) if body is None else _write(tmp_path, name, body)
        with pytest.raises(ProfileError) as e:
            load_localhost(path, DEFAULT, "x86_64")
        assert str(e.value).startswith(f"seccomp profile {path}: ") and what in str(e.value), str(e.value)
    os.mkdir(tmp_path / "adir")
    with pytest.raises(ProfileError, match="not a regular file"):
        load_localhost(str(tmp_path / "adir"))
    with pytest.raises(ProfileError, match="absolute"):
        load_localhost("profiles/x.json")
    big = _write(tmp_path, "big.json", " " * (sp.MAX_PROFILE_BYTES + 1))
    with pytest.raises(ProfileError, match="larger than"):
        load_localhost(big)


# ---- the request, the generator and the CLI -----------------------------------------------------

def test_parse_request_spellings():
    assert parse_request(None) == parse_request("") == parse_request("unconfined") == ("Unconfined", None)
    assert parse_request("RuntimeDefault") == parse_request("runtime/default") == ("RuntimeDefault", None)
    assert parse_request("Localhost//var/lib/kubelet/seccomp/a.json") == ("Localhost", "/var/lib/kubelet/seccomp/a.json")
    assert parse_request("localhost//p.json") == ("Localhost", "/p.json")
    with pytest.raises(ProfileError, match="absolute"):
        parse_request("Localhost/profiles/a.json")
    with pytest.raises(ProfileError, match="unknown profile"):
        parse_request("Strict")


def test_generate_fills_linux_seccomp(tmp_path):
    def gen(**kw):
        return generate(ContainerRequest(name="c", **kw), IMG, "/r", "x", "v1")["linux"]
    assert "seccomp" not in gen()  # Unconfined: Kubernetes' default
    rd = gen(seccomp="RuntimeDefault")["seccomp"]
    assert rd == default_profile(DEFAULT, os.uname().machine)
    assert "seccomp" not in gen(seccomp="RuntimeDefault", privileged=True)
    admin = gen(seccomp="RuntimeDefault", cap_add=["SYS_ADMIN"])["seccomp"]
    assert "unshare" in _allowed(admin)  # the profile follows the bounding set
    none = gen(seccomp="RuntimeDefault", cap_drop=["ALL"])["seccomp"]
    assert "chroot" not in _allowed(none)
    path = _write(tmp_path, "p.json", {"defaultAction": "SCMP_ACT_ALLOW",
                                        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    assert gen(seccomp=f"Localhost/{path}")["seccomp"]["syscalls"][0]["names"] == ["mkdir"]
    with pytest.raises(ProfileError, match=str(tmp_path / "nope.json")):
        gen(seccomp=f"Localhost/{tmp_path / 'nope.json'}")
    parsed = parse(generate(ContainerRequest(name="c", seccomp="RuntimeDefault", command=["true"]), IMG, "/r", "x", "v1"))
    assert parsed.seccomp["syscalls"][0]["names"] == sp.ALLOWED


def test_cli_seccomp_option(tmp_path):
    import click
    from kubelet_py.cli import _seccomp_request
    assert _seccomp_request("unconfined") == "Unconfined"
    assert _seccomp_request("runtime-default") == "RuntimeDefault"
    assert _seccomp_request(f"localhost={tmp_path}/p.json") == f"Localhost/{tmp_path}/p.json"
    rel = _seccomp_request("localhost=p.json")
    assert rel == "Localhost/" + os.path.abspath("p.json")
    for bad in ("strict", "localhost="):
        with pytest.raises(click.BadParameter):
            _seccomp_request(bad)


def test_known_capability_names_only():
    # every capability the profile keys on is one the runtime knows by name
    assert set(sp.BY_CAP) <= set(NAMES)


def _run_bpf(prog: bytes, arch: int, nr: int):
    """A tiny classic-BPF evaluator for the stub's instructions: 'program' when it falls into the
    program that follows it, else the returned value."""
    insns = [(int.from_bytes(prog[i:i + 2], "little"), prog[i + 2], prog[i + 3], int.from_bytes(prog[i + 4:i + 8], "little"))
             for i in range(0, len(prog), 8)]
    pc, a = 0, 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            a = {0: nr, 4: arch}[k]
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if a == k else jf)
        elif code == 0x25:
            pc += 1 + (jt if a > k else jf)
        elif code == 0x45:
            pc += 1 + (jt if a & k else jf)
        elif code == 0x05:
            pc += 1 + k
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected BPF code {code:#x}")
    return "program"


def test_enosys_stub_for_syscalls_newer_than_the_profile():
    from runtime.linux.seccomp import AUDIT_ARCH_X86_64, enosys_stub
    i386 = 0x40000003
    stub = enosys_stub({AUDIT_ARCH_X86_64: 452, i386: 462})
    enosys = 0x00050000 | 38
    assert _run_bpf(stub, AUDIT_ARCH_X86_64, 453) == enosys
    assert _run_bpf(stub, AUDIT_ARCH_X86_64, 452) == "program"
    assert _run_bpf(stub, AUDIT_ARCH_X86_64, 0) == "program"
    assert _run_bpf(stub, AUDIT_ARCH_X86_64, 0x40000000 | 1000) == "program"  # x32: libseccomp decides
    assert _run_bpf(stub, i386, 463) == enosys and _run_bpf(stub, i386, 453) == "program"
    assert _run_bpf(stub, 0xC00000B7, 5000) == "program"  # an arch the stub does not know


def test_a_seccomp_cache_not_ours_alone_is_not_trusted(tmp_path):
    import os
    import pytest
    from runtime.oci.seccomp_cache import private as _private
    d = tmp_path / "cache"
    d.mkdir(mode=0o700)
    _private(os.lstat(d), str(d))  # ours, 0700: trusted
    os.chmod(d, 0o777)
    with pytest.raises(ValueError, match="not ours alone"):
        _private(os.lstat(d), str(d))
    os.chmod(d, 0o700)
    os.symlink(d, tmp_path / "link")
    with pytest.raises(ValueError, match="not ours alone"):
        _private(os.lstat(tmp_path / "link"), "link")
