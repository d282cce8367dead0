"""The per-pod supervisor: detached from the daemon, CRI logs, exit codes kept across a daemon
SIGKILL and restart, stop with a grace period, nothing left afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from runtime.image.archive import import_path
from runtime.image.build import write_oci_layout
from runtime.image.store import ImageStore
from runtime.image.testimages import DEFAULT_IMAGE, busybox_image
from tests.integration.leaks import assert_no_leaks, remove_cgroup_tree

pytestmark = [pytest.mark.root, pytest.mark.cgroups]
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] ")

DAEMON = textwrap.dedent("""
    import sys
    from runtime.container import Paths, bundle_for
    from runtime.image.store import ImageStore
    from runtime.oci.generate import ContainerRequest
    from runtime.sandbox import create_sandbox
    from runtime.shim import start_supervisor
    root, run, cg, script, log = sys.argv[1:6]
    paths = Paths(root, run, cg)
    sb = create_sandbox(run, "pod-shim", "shimpod", cgroup_root=cg)
    client = start_supervisor(sb.dir, cg)
    for cid in ("loop", "quick"):
        s = script if cid == "loop" else "echo quick-out; echo quick-err >&2; exit 7"
        b = bundle_for(ImageStore(root), "%s", ContainerRequest(name=cid, command=["sh", "-c", s]), paths, cid, None, sb)
        print(client.call("start", id=cid, bundle=b, log_path=log + "/" + cid + "/0.log")["pid"], flush=True)
    import time; time.sleep(600)
""" % DEFAULT_IMAGE)

LOOP = "trap 'echo bye; exit 0' TERM; echo one; echo two >&2; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"


@pytest.fixture
def env(tmp_path):
    root, run, logs = str(tmp_path / "root"), str(tmp_path / "run"), str(tmp_path / "logs")
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, {DEFAULT_IMAGE: busybox_image()})
    import_path(ImageStore(root), layout)
    cg = f"kpytest-{uuid.uuid4().hex[:8]}"
    yield {"root": root, "run": run, "cg": cg, "logs": logs}
    from runtime.container import Paths, remove_container
    from runtime.sandbox import remove_sandbox
    remove_sandbox(run, "pod-shim", cg)  # also kills a supervisor a failed test left running
    for cid in ("loop", "quick"):
        remove_container(ImageStore(root), Paths(root, run, cg), cid)
    assert_no_leaks(root, run, cg)
    remove_cgroup_tree(cg)


def test_containers_survive_a_daemon_sigkill_and_nothing_is_lost(env):
    from runtime.container import Paths, remove_container
    from runtime.shim import ShimClient
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, env["root"], env["run"], env["cg"], LOOP, env["logs"]],
                              stdout=subprocess.PIPE, text=True)
    loop_pid = int(daemon.stdout.readline())
    int(daemon.stdout.readline())
    pod_dir = os.path.join(env["run"], "pods", "pod-shim")
    shim_pid = int(open(os.path.join(pod_dir, "shim.pid")).read())
    # while the daemon lives: the supervisor is neither its child nor in its session, and is a
    # fresh process (the sealed interpreter), not a fork of it
    stat = open(f"/proc/{shim_pid}/stat").read().rsplit(")", 1)[1].split()
    assert int(stat[1]) != daemon.pid and os.getsid(shim_pid) == shim_pid != os.getsid(daemon.pid)
    assert os.readlink(f"/proc/{shim_pid}/exe").startswith("/memfd:kpy-python")
    time.sleep(0.5)
    daemon.send_signal(signal.SIGKILL)  # the daemon dies; the supervisor and containers do not
    daemon.wait()
    os.kill(loop_pid, 0)  # still running
    time.sleep(0.3)
    client = ShimClient(pod_dir)  # "a restarted daemon reconnects"
    st = client.call("status")["containers"]
    assert st["loop"]["status"] == "running" and st["loop"]["pid"] == loop_pid
    quick = client.wait("quick")
    assert (quick["exit_code"], quick["reason"]) == (7, "Error")
    # exec joins the running container: its namespaces, rootfs, user and cgroup
    code, out, err = client.exec("loop", ["sh", "-c", "hostname; readlink /proc/1/ns/pid; readlink /proc/self/ns/pid; "
                                          "[ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo same-cgroup; "
                                          "ls /proc/self/fd; exit 3"])
    lines = out.decode().split()
    assert code == 3 and lines[0] == "shimpod" and lines[1] == lines[2] and lines[3] == "same-cgroup", (out, err)
    assert sorted(lines[4:]) == ["0", "1", "2", "3"]  # no fd of the supervisor leaks in
    assert client.exec("loop", ["true"])[0] == 0
    code, out, _err = client.exec("loop", ["ls", "/proc/1/fd"])  # the supervised PID 1: only its stdio
    assert code == 0 and sorted(out.split()) == [b"0", b"1", b"2"], out
    with pytest.raises(Exception, match="No such file"):
        client.exec("loop", ["/no/such/binary"])
    final = client.stop("loop", grace=5)
    assert (final["exit_code"], final["status"]) == (0, "exited")
    with pytest.raises(ProcessLookupError):
        os.kill(loop_pid, 0)
    loop_log = open(os.path.join(env["logs"], "loop", "0.log")).read().splitlines()
    assert all(CRI_LINE.match(ln) for ln in loop_log), loop_log[:3]
    texts = [ln.split(" ", 3)[1:] for ln in loop_log]
    assert ["stdout", "F", "one"] in texts and ["stderr", "F", "two"] in texts and texts[-1] == ["stdout", "F", "bye"]
    ticks = [int(t[2].split()[1]) for t in texts if t[2].startswith("tick")]
    assert ticks == list(range(len(ticks))) and len(ticks) >= 5  # no line lost while the daemon was gone
    quick_log = open(os.path.join(env["logs"], "quick", "0.log")).read()
    assert " stdout F quick-out\n" in quick_log and " stderr F quick-err\n" in quick_log
    assert json.load(open(os.path.join(pod_dir, "containers", "quick.json")))["exit_code"] == 7
    paths = Paths(env["root"], env["run"], env["cg"])
    for cid in ("loop", "quick"):
        client.call("forget", id=cid)
        remove_container(ImageStore(env["root"]), paths, cid)
    client.call("shutdown")
    client.close()
    for _ in range(100):
        if not os.path.exists(f"/proc/{shim_pid}"):
            break
        time.sleep(0.02)
    assert not os.path.exists(os.path.join(pod_dir, "shim.sock"))  # the supervisor exited cleanly


def test_logs_rotate_by_size_and_keep_the_newest_files(env):
    """A chatty container under a 16 KiB limit and 3 files: the current log and two rotated ones
    remain, each whole CRI records, and together they end with the container's last lines."""
    from runtime.container import Paths, bundle_for, remove_container
    from runtime.oci.generate import ContainerRequest
    from runtime.sandbox import create_sandbox, remove_sandbox
    from runtime.shim import start_supervisor
    paths = Paths(env["root"], env["run"], env["cg"])
    sb = create_sandbox(env["run"], "pod-shim", "shimpod", cgroup_root=env["cg"])
    client = start_supervisor(sb.dir, env["cg"])
    try:
        script = "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done"
        b = bundle_for(ImageStore(env["root"]), DEFAULT_IMAGE, ContainerRequest(name="quick", command=["sh", "-c", script]),
                       paths, "quick", None, sb)
        log = os.path.join(env["logs"], "quick", "0.log")
        client.call("start", id="quick", bundle=b, log_path=log, log_max_size=16 << 10, log_max_files=3)
        assert client.wait("quick")["exit_code"] == 0
        names = sorted(os.listdir(os.path.dirname(log)))
        rotated = [n for n in names if n != "0.log"]
        assert "0.log" in names and len(rotated) == 2 and all(re.fullmatch(r"0\.log\.\d{8}-\d{6}(\.\d+)?", n) for n in rotated), names
        # oldest first, then the current file: the lines run on without a gap to the very last
        lines = []
        for n in sorted(rotated, key=lambda n: (n[6:21], len(n), n)) + ["0.log"]:
            data = open(os.path.join(os.path.dirname(log), n)).read()
            assert data.endswith("\n") and len(data) <= 16 << 10, (n, len(data))
            lines += data.splitlines()
        assert all(CRI_LINE.match(ln) for ln in lines)
        nums = [int(ln.rsplit("-", 1)[1]) for ln in lines]
        assert nums[-1] == 2999 and nums == list(range(nums[0], 3000)) and nums[0] > 0  # the oldest went
        client.call("forget", id="quick")
        client.call("shutdown")
    finally:
        client.close()
        remove_container(ImageStore(env["root"]), paths, "quick")
        remove_sandbox(env["run"], "pod-shim", env["cg"])


def test_an_oom_kill_is_reported_by_the_supervisor(env):
    from runtime.container import Paths, bundle_for, remove_container
    from runtime.oci.generate import ContainerRequest
    from runtime.sandbox import create_sandbox, remove_sandbox
    from runtime.shim import start_supervisor
    paths = Paths(env["root"], env["run"], env["cg"])
    sb = create_sandbox(env["run"], "pod-shim", "shimpod", cgroup_root=env["cg"])
    client = start_supervisor(sb.dir, env["cg"])
    try:
        req = ContainerRequest(name="quick", command=["sh", "-c", "head -c 64m /dev/zero | tail > /dev/null"],
                               memory_limit=16 << 20)
        b = bundle_for(ImageStore(env["root"]), DEFAULT_IMAGE, req, paths, "quick", None, sb)
        client.call("start", id="quick", bundle=b, log_path=os.path.join(env["logs"], "quick", "0.log"))
        final = client.wait("quick", 30)
        assert (final["exit_code"], final["reason"]) == (137, "OOMKilled"), final
        client.call("forget", id="quick")
        client.call("shutdown")
    finally:
        client.close()
        remove_container(ImageStore(env["root"]), paths, "quick")
        remove_sandbox(env["run"], "pod-shim", env["cg"])
