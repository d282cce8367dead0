"""Seccomp on the real kernel: the compiled default profile against raw syscalls, containers
under RuntimeDefault / Unconfined / Localhost (init and exec), and the same bundle side by side
with Debian's runc."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import uuid

import pytest

from runtime.image.store import ImageStore
from runtime.image.testimages import DEFAULT_IMAGE
from runtime.linux.caps import DEFAULT
from runtime.linux.seccomp import compile_filter, status_of
from runtime.oci.seccomp_profile import default_profile, validate
from runtime.oci.generate import ContainerRequest, generate
from tests.conftest import host_is_cgroup2, need_tool
from tests.integration.runtime_helpers import busybox_rootfs, run_container, runtime_env

pytestmark = [pytest.mark.root, pytest.mark.cgroups]

NOT_PERMITTED = "Operation not permitted"


@pytest.fixture
def env(tmp_path):
    yield from runtime_env(tmp_path)


run = run_container


def _status(out: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())
            if k in ("Seccomp", "Seccomp_filters", "NoNewPrivs", "CapEff")}


STATUS = "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs|CapEff):' /proc/self/status"
ORDINARY = ("ls / >/dev/null && cat /etc/passwd >/dev/null && mkdir -p /tmp/d && echo x > /tmp/d/f && "
            "cp /tmp/d/f /tmp/d/g && rm -r /tmp/d && ps >/dev/null && sleep 0 && date >/dev/null && "
            "(true | wc -l) >/dev/null && echo ordinary-ok")


# ---- the compiled filter against raw syscalls (no container) -----------------------------------

_NR = {"x86_64": {"unshare": 272, "keyctl": 250, "add_key": 248, "bpf": 321, "clone3": 435, "mount": 165,
                  "personality": 135, "socket": 41, "getppid": 110, "open_by_handle_at": 304, "kexec_load": 246,
                  "setns": 308},
       "aarch64": {"unshare": 97, "keyctl": 219, "add_key": 217, "bpf": 280, "clone3": 435, "mount": 40,
                   "personality": 92, "socket": 198, "getppid": 173, "open_by_handle_at": 265, "kexec_load": 104,
                   "setns": 268}}[os.uname().machine]


def test_default_filter_on_raw_syscalls():
    """containerd's default profile, compiled and loaded in a forked child: what it refuses and
    how (EPERM, ENOSYS for clone3), what it lets through (argument rules included)."""
    filt = compile_filter(validate(default_profile(DEFAULT, os.uname().machine)))
    assert 100 < filt.instructions <= 4096
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(name, *a):
        r = libc.syscall(ctypes.c_long(_NR[name]), *[ctypes.c_long(x) for x in a])
        return "ok" if r >= 0 else os.strerror(ctypes.get_errno())

    def call_nr(nr):
        r = libc.syscall(ctypes.c_long(nr))
        return "ok" if r >= 0 else os.strerror(ctypes.get_errno())

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports over the pipe
        try:
            os.close(r)
            before = status_of()
            filt.load()
            out = {
                "before": before, "after": status_of(),
                "unshare_user": call("unshare", 0x10000000), "unshare_uts": call("unshare", 0x04000000),
                "setns": call("setns", 0, 0), "mount": call("mount", 0, 0, 0, 0, 0),
                "keyctl": call("keyctl", 0, 0), "add_key": call("add_key", 0, 0, 0, 0, 0),
                "bpf": call("bpf", 0, 0, 0), "kexec_load": call("kexec_load", 0, 0, 0, 0),
                "open_by_handle_at": call("open_by_handle_at", 0, 0, 0), "clone3": call("clone3", 0, 0),
                "getppid": call("getppid"), "personality_query": call("personality", 0xFFFFFFFF),
                "personality_noaslr": call("personality", 0x0040000),
                "socket_unix": call("socket", 1, 1, 0), "socket_inet": call("socket", 2, 2, 0),
                "socket_alg": call("socket", 38, 5, 0), "socket_vsock": call("socket", 40, 1, 0),
                "fork": "ok" if _fork_and_wait() == 0 else "failed",
                "newer_than_profile": call_nr(1000),
            }
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    got = json.loads(data)
    assert got["before"] == [0, 0] and got["after"] == [2, 1]
    eperm = os.strerror(1)
    for name in ("unshare_user", "unshare_uts", "setns", "mount", "keyctl", "add_key", "bpf", "kexec_load",
                 "open_by_handle_at", "personality_noaslr", "socket_alg", "socket_vsock"):
        assert got[name] == eperm, (name, got[name])
    assert got["clone3"] == os.strerror(38)  # ENOSYS, so that glibc falls back to clone(2)
    assert got["newer_than_profile"] == os.strerror(38)  # runc's stub: ENOSYS past the last known syscall
    for name in ("getppid", "personality_query", "socket_unix", "socket_inet", "fork"):
        assert got[name] == "ok", (name, got[name])


def test_compiling_keeps_libseccomp_out_of_the_caller():
    """The supervisor compiles profiles for its containers: libseccomp, pyseccomp and the
    subprocess module their import pulls in stay in the throwaway compiler process."""
    code = ("import os, sys; from runtime.linux.caps import DEFAULT; "
            "from runtime.oci.seccomp_profile import default_profile, validate; "
            "from runtime.linux.seccomp import compile_filter; "
            "f = compile_filter(validate(default_profile(DEFAULT, os.uname().machine))); "
            "print(f.instructions > 100, sorted(m for m in ('pyseccomp', 'subprocess', 'ctypes.util') if m in sys.modules), "
            "any('libseccomp' in line for line in open('/proc/self/maps')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert p.stdout.split() == ["True", "[]", "False"], p.stderr


def _fork_and_wait() -> int:
    pid = os.fork()  # glibc's fork: clone(2) without namespace flags, allowed by the argument rule
    if pid == 0:
        os._exit(0)
    return os.waitpid(pid, 0)[1]


# ---- containers -------------------------------------------------------------------------------

def test_runtime_default_in_a_container(env):
    p = run(env, "--seccomp", "runtime-default",
            script=f"{STATUS}; unshare -U true; echo userns=$?; unshare -m true; echo mntns=$?; {ORDINARY}")
    st = _status(p.stdout)
    assert st["Seccomp"] == "2" and st["Seccomp_filters"] == "1" and st["NoNewPrivs"] == "0"
    assert st["CapEff"] == "00000000a80425fb"  # loaded before the capabilities were set, and they are intact
    assert "userns=1" in p.stdout and "mntns=1" in p.stdout and NOT_PERMITTED in p.stderr
    assert "ordinary-ok" in p.stdout


def test_unconfined_is_the_default(env):
    p = run(env, script=f"{STATUS}; unshare -U true && echo userns-ok")
    st = _status(p.stdout)
    assert st["Seccomp"] == "0" and st["Seccomp_filters"] == "0"
    assert "userns-ok" in p.stdout  # what RuntimeDefault takes away (above) is there without it
    assert _status(run(env, "--privileged", "--seccomp", "runtime-default", script=STATUS).stdout)["Seccomp"] == "0"


def test_both_load_points_with_a_non_root_user(env):
    # no_new_privs off: the filter goes in before setresuid/capset drop CAP_SYS_ADMIN
    st = _status(run(env, "--user", "1000", "--seccomp", "runtime-default", script=STATUS).stdout)
    assert st == {"Seccomp": "2", "Seccomp_filters": "1", "NoNewPrivs": "0", "CapEff": "0000000000000000"}
    # no_new_privs on: just before execve
    st = _status(run(env, "--user", "1000", "--no-new-privs", "--seccomp", "runtime-default", script=STATUS).stdout)
    assert st == {"Seccomp": "2", "Seccomp_filters": "1", "NoNewPrivs": "1", "CapEff": "0000000000000000"}


def test_localhost_profile_denies_mkdir(env):
    prof = env["tmp"] / "no-mkdir.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    p = run(env, "--seccomp", f"localhost={prof}", script=f"{STATUS}; mkdir /x; echo mkdir=$?; touch /y && echo touch-ok")
    assert _status(p.stdout)["Seccomp"] == "2"
    assert "mkdir=1" in p.stdout and "touch-ok" in p.stdout
    assert f"mkdir: can't create directory '/x': {NOT_PERMITTED}" in p.stderr
    # (a bad or missing profile file: tests/unit/test_seccomp_pure.py; a bad linux.seccomp field
    # in a bundle: test_runtime.py's test_bad_bundle_field_is_named)


def test_exec_gets_the_same_filter(env):
    from runtime import pod as api
    from runtime.container import Paths
    paths = Paths(env["root"], env["run"], env["cg"])
    store = ImageStore(env["root"])
    api.run_pod_sandbox(paths, api.PodConfig(uid="pod-sc", name="scpod", etc_files=False))
    try:
        req = ContainerRequest(name="c", command=["sleep", "600"], seccomp="RuntimeDefault")
        api.create_container(store, paths, "pod-sc", DEFAULT_IMAGE, req, cid="c",
                             log_path=os.path.join(env["run"], "logs", "c", "0.log"))
        api.start_container(paths, "pod-sc", "c")
        code, out, err = api.exec_sync(paths, "pod-sc", "c", ["sh", "-c", f"{STATUS}; unshare -U true; echo userns=$?"])
        st = _status(out.decode())
        assert code == 0 and st["Seccomp"] == "2" and st["Seccomp_filters"] == "1", (out, err)
        assert b"userns=1" in out and NOT_PERMITTED.encode() in err
    finally:
        api.remove_pod_sandbox(store, paths, "pod-sc", grace=0)


# ---- side by side with runc ---------------------------------------------------------------------

RUNC_PROBE = r"""
grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status
unshare -U true 2>/dev/null; echo "unshare-U=$?"
unshare -m true 2>/dev/null; echo "unshare-m=$?"
ls / >/dev/null; echo "ls=$?"
"""


@pytest.fixture(scope="module")
def vs_rootfs(tmp_path_factory):
    return busybox_rootfs(tmp_path_factory.mktemp("scvsrunc"), RUNC_PROBE)


def _run_doc(tmp_path, runtime: str, doc: dict, cid: str) -> subprocess.CompletedProcess:
    b = tmp_path / runtime
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    if runtime == "runc":
        cmd = [need_tool("runc"), "--root", str(tmp_path / "runc-state"), "run", "--bundle", str(b), cid]
    else:
        cmd = [sys.executable, "-m", "kubelet_py.cli", "runtime", "run", "--bundle", str(b), cid]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("no_new_privs", [False, True], ids=["nnp-off", "nnp-on"])
def test_runtime_default_same_as_runc(tmp_path, vs_rootfs, no_new_privs):
    from runtime.image.manifest import ImageConfig
    need_tool("runc")
    cfg = ImageConfig("amd64", "linux", (), cmd=("sh",), env=("PATH=/usr/sbin:/usr/bin:/sbin:/bin",))
    req = ContainerRequest(name="sc", command=["sh", "/probe.sh"], seccomp="RuntimeDefault",
                           allow_privilege_escalation=False if no_new_privs else None)
    doc = generate(req, cfg, vs_rootfs, "x", "v2" if host_is_cgroup2() else "v1")
    doc["root"]["readonly"] = True
    assert doc["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    cid = f"kpysc-{uuid.uuid4().hex[:8]}"  # also the cgroup parent: unique per run
    outs = {}
    try:
        for rt in ("runc", "ours"):
            d = json.loads(json.dumps(doc))
            d["linux"]["cgroupsPath"] = f"{cid}/{rt}"
            p = _run_doc(tmp_path, rt, d, f"{cid}{rt[0]}")
            assert p.returncode == 0, (rt, p.stderr)
            outs[rt] = sorted(ln.replace("\t", " ") for ln in p.stdout.splitlines() if ln.strip())
    finally:
        for c in ("cpu", "cpuacct", "memory", "pids", "devices", "cpuset", "blkio", "freezer", "systemd", "unified", ""):
            top = f"/sys/fs/cgroup/{c}/{cid}".replace("//", "/")
            if os.path.isdir(top):
                for dirpath, _dirs, _files in os.walk(top, topdown=False):
                    os.rmdir(dirpath)
    assert outs["ours"] == outs["runc"], outs
    assert "Seccomp: 2" in outs["ours"] and "Seccomp_filters: 1" in outs["ours"]
    assert "unshare-U=1" in outs["ours"] and "ls=0" in outs["ours"]
    assert f"NoNewPrivs: {int(no_new_privs)}" in outs["ours"]
