"""The executor's kernel edges on their own, on the real kernel: `lo` brought up in a new network
namespace, the cgroup device filter loaded and attached through runtime/linux/sys.py, and
start/exec_in leaving the caller's Spec alone while giving the process HOME as runc does."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from runtime.linux import sys as ksys
from tests.integration.leaks import cgroups_under, remove_cgroup_tree
from tests.integration.runtime_helpers import busybox_rootfs

pytestmark = [pytest.mark.root]


def _in_child(fn) -> int:
    """Run fn() in a forked child; its exit status (0: fn returned)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_lo_up_in_a_new_network_namespace():
    import fcntl
    import struct
    from runtime.linux import net

    def flags() -> int:
        s = ksys.socket(ksys.AF_INET, ksys.SOCK_DGRAM)
        try:
            return struct.unpack("16sH14x", fcntl.ioctl(s, net.SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0)))[1]
        finally:
            os.close(s)

    def child():
        ksys.unshare(ksys.CLONE_NEWNET)
        assert not flags() & net.IFF_UP  # a new namespace's lo starts down
        net.lo_up()
        assert flags() & net.IFF_UP
        net.lo_up()  # already up: nothing to do, no error
        assert flags() & net.IFF_UP

    assert _in_child(child) == 0


@pytest.fixture
def cgroup2(tmp_path):
    """A private mount of the cgroup2 hierarchy (on a v1 host: the one with no controllers)
    and a fresh child cgroup in it."""
    mnt = tmp_path / "cg2"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "cgroup2", "none", str(mnt)], check=True)
    sub = mnt / f"kpytest-{uuid.uuid4().hex[:8]}"
    sub.mkdir()
    try:
        yield str(sub)
    finally:
        sub.rmdir()
        subprocess.run(["umount", str(mnt)], check=True)


def test_device_filter_loads_attaches_and_decides(cgroup2):
    from runtime.cgroups import effective_device_rules
    from runtime.linux.devfilter import DeviceFilterError, attach_device_filter

    # deny all, then runc's default allow-list (which has /dev/null, not /dev/kmsg)
    attach_device_filter(cgroup2, effective_device_rules([{"allow": False, "access": "rwm"}]))

    def child():
        with open(f"{cgroup2}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        os.close(os.open("/dev/null", os.O_RDONLY))
        try:
            os.close(os.open("/dev/kmsg", os.O_RDONLY))
        except PermissionError:
            os._exit(0)  # refused by the filter, as it must be
        os._exit(3)

    assert _in_child(child) == 0
    with pytest.raises(OSError, match=r"bpf\(BPF_PROG_LOAD\): .*verifier"):
        ksys.bpf_prog_load(15, bytes(8))  # one instruction that is no exit: the verifier refuses
    with pytest.raises(DeviceFilterError, match="attaching the device filter") as e:
        attach_device_filter("/proc", [{"allow": True}])  # not a cgroup
    assert e.value.kind == "INTERNAL"


@pytest.fixture
def executor_env(tmp_path_factory):
    rootfs = busybox_rootfs(tmp_path_factory.mktemp("execrootfs"), "true\n")
    cg = f"kpytest-{uuid.uuid4().hex[:8]}"
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
    yield rootfs, cg
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 0)
    left = cgroups_under(cg)
    remove_cgroup_tree(cg)
    assert left == [], left


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 4096):
        out += chunk
    os.close(fd)
    return out


def test_start_twice_and_exec_leave_the_spec_alone_and_give_home(executor_env):
    import copy
    from runtime.cgroups import detect
    from runtime.image.manifest import ImageConfig
    from runtime.linux.forkreport import reap
    from runtime.oci.generate import ContainerRequest, generate
    from runtime.oci.run import exec_in, spec_from, start
    rootfs, cg = executor_env
    req = ContainerRequest(name="h", command=["sh", "-c", "echo HOME=$HOME; exec sleep 30"])
    doc = generate(req, ImageConfig("amd64", "linux", ()), rootfs, f"{cg}/h", detect(), uid=1000, gid=1000)
    bundle = os.path.dirname(rootfs)
    spec, root = spec_from(doc, bundle)
    before = copy.deepcopy(spec)
    for n in range(2):  # the same Spec started twice: each container gets HOME, the Spec never does
        r, w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        started = start(spec._replace(cgroups_path=f"{cg}/h{n}"), root, f"h{n}", stdio=(devnull, w, w))
        os.close(w)
        os.close(devnull)
        try:
            assert os.read(r, 4096) == b"HOME=/home/app\n"  # app's home in the image's /etc/passwd
            assert spec == before and not any(e.startswith("HOME=") for e in spec.env)
            er, ew = os.pipe2(os.O_CLOEXEC)
            pid = exec_in(started.pid, spec, started.cgroup, ["sh", "-c", "echo $HOME; id -u"], stdio=(ew, ew, ew))
            os.close(ew)
            assert reap(pid) == 0 and _read_all(er) == b"/home/app\n1000\n"  # exec gets HOME too, as runc's
            er, ew = os.pipe2(os.O_CLOEXEC)
            pid = exec_in(started.pid, spec, started.cgroup, ["sh", "-c", "echo $HOME"], env=["HOME=/mine"],
                          stdio=(ew, ew, ew))
            os.close(ew)
            assert reap(pid) == 0 and _read_all(er) == b"/mine\n"  # one that is given is kept
            assert spec == before
        finally:
            os.close(r)
            started.cleanup()
            reap(started.pid)


def test_the_init_waits_for_its_cgroup_before_the_command(executor_env, monkeypatch):
    """The init joins its cgroup late (while it mounts: oci/launch.py late_join) but never runs
    the command before it is in it: with a join made slow on purpose (0.3 s before the write),
    the command's first look at /proc/self/cgroup still shows the container's cgroup."""
    import time
    from runtime.cgroups import Cgroup, detect
    from runtime.image.manifest import ImageConfig
    from runtime.linux.forkreport import reap
    from runtime.oci.generate import ContainerRequest, generate
    from runtime.oci.run import spec_from, start
    rootfs, cg = executor_env
    slow_add = Cgroup.add

    def add(self, pid):
        time.sleep(0.3)
        slow_add(self, pid)
    monkeypatch.setattr(Cgroup, "add", add)
    req = ContainerRequest(name="late", command=["cat", "/proc/self/cgroup"])
    doc = generate(req, ImageConfig("amd64", "linux", ()), rootfs, f"{cg}/late", detect())
    spec, root = spec_from(doc, os.path.dirname(rootfs))
    r, w = os.pipe2(os.O_CLOEXEC)
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    started = start(spec, root, "late", stdio=(devnull, w, w))
    os.close(w)
    os.close(devnull)
    try:
        out = _read_all(r).decode()
        paths = {ln.split(":", 2)[2] for ln in out.splitlines() if ln.count(":") >= 2}
        from tests.conftest import host_is_cgroup2
        if host_is_cgroup2():  # its own cgroup namespace (the init then joins first, as before)
            assert paths == {"/"}, out
        else:
            assert paths == {f"/{cg}/late"}, out
    finally:
        reap(started.pid)
        started.cleanup()
