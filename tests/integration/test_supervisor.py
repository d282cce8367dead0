"""The per-pod supervisor through runtime.pod: detached from the daemon, CRI logs, exit codes kept
across a daemon SIGKILL and restart and across the supervisor's own death, events with sequence
numbers, stop and exec as a kubelet needs them, a loop no client can stall, nothing left."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from runtime.image.testimages import DEFAULT_IMAGE
from tests.integration.leaks import processes_naming
from tests.integration.runtime_helpers import pod_api_env

# every test runs on the host; those that touch cgroups (kills, OOM, removal of what a dead
# supervisor left) run again in the cgroup v2 VM (`cgroups`), the others need no second run
pytestmark = [pytest.mark.root]
CG = pytest.mark.cgroups
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] ")
LOOP = "trap 'echo bye; exit 0' TERM; echo one; echo two >&2; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"


@pytest.fixture
def env(tmp_path):
    yield from pod_api_env(tmp_path)


def _req(name, script, **kw):
    from runtime.oci.generate import ContainerRequest
    return ContainerRequest(name=name, command=["sh", "-c", script], **kw)


def _pod(env, uid, **kw):
    from runtime import pod as api
    api.run_pod_sandbox(env["paths"], api.PodConfig(uid=uid, name=uid, etc_files=False, **kw))
    return uid


def _container(env, uid, name, script, start=True, **kw):
    from runtime import pod as api
    log = os.path.join(env["logs"], uid, name, "0.log")
    extra = {k: kw.pop(k) for k in ("log_max_size", "log_max_files", "stop_signal") if k in kw}
    cid = api.create_container(env["store"], env["paths"], uid, DEFAULT_IMAGE, _req(name, script, **kw),
                               cid=f"{uid}-{name}", log_path=log, **extra)
    if start:
        api.start_container(env["paths"], uid, cid)
    return cid, log


DAEMON = textwrap.dedent("""
    import sys
    from runtime import pod as api
    from runtime.container import Paths
    from runtime.image.store import ImageStore
    from runtime.oci.generate import ContainerRequest
    root, run, cg, script, logs = sys.argv[1:6]
    paths, store = Paths(root, run, cg), ImageStore(root)
    api.run_pod_sandbox(paths, api.PodConfig(uid="pod-sup", name="suppod", etc_files=False))
    for cid in ("loop", "quick"):
        s = script if cid == "loop" else "echo quick-out; echo quick-err >&2; exit 7"
        api.create_container(store, paths, "pod-sup", "%s", ContainerRequest(name=cid, command=["sh", "-c", s]),
                             cid=cid, log_path=logs + "/" + cid + "/0.log")
        print(api.start_container(paths, "pod-sup", cid), flush=True)
    import time; time.sleep(600)
""" % DEFAULT_IMAGE)


def test_supervisors_come_from_one_zygote_that_is_replaced_when_it_dies(env):
    """The zygote forks every supervisor of this process (none is its child, or this process's);
    a bad request is an error on that start only; a zygote that died is replaced at the next
    start; one whose launcher closed it exits, and its supervisors live on."""
    from runtime import pod as api
    from runtime.supervisor import launch
    from runtime.supervisor.client import SupervisorClient

    def parent(pid):
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])

    launch.warm_up()  # starts it, does not wait for it
    zygote = launch.ZYGOTE.pid()
    assert zygote and parent(zygote) == os.getpid()
    for _ in range(500):
        if open(f"/proc/{zygote}/comm").read() == "kpy-zygote\n":
            break
        time.sleep(0.01)
    assert open(f"/proc/{zygote}/comm").read() == "kpy-zygote\n"
    assert os.readlink(f"/proc/{zygote}/exe").startswith("/memfd:kpy-python")
    sups = []
    for uid in ("zy-a", "zy-b"):
        _pod(env, uid)
        sups.append(api.pod_status(env["paths"], uid).sandbox.supervisor_pid)
    assert len(set(sups)) == 2 and all(parent(p) not in (os.getpid(), zygote) for p in sups)
    assert launch.ZYGOTE.pid() == zygote  # one zygote for both
    bad = os.path.join(env["run"], "bad-pod")
    os.makedirs(bad)
    open(os.path.join(bad, "containers"), "w").close()  # where its records dir must be
    with pytest.raises(Exception, match="did not come up: FileExistsError"):
        launch.start_supervisor(bad, env["cg"])
    assert "FileExistsError" in open(os.path.join(bad, "supervisor.log")).read()  # its trace
    shutil.rmtree(bad)
    assert launch.ZYGOTE.pid() == zygote
    os.kill(zygote, signal.SIGKILL)
    os.waitpid(zygote, 0)
    _pod(env, "zy-c")  # a new zygote
    assert launch.ZYGOTE.pid() not in (None, zygote)
    cid, log = _container(env, "zy-c", "app", "echo from-c")
    assert api.wait_container(env["paths"], "zy-c", cid).exit_code == 0
    second = launch.ZYGOTE.pid()
    launch.ZYGOTE.close()  # EOF: it exits, the supervisors do not
    assert not os.path.exists(f"/proc/{second}")
    for uid, pid in zip(("zy-a", "zy-b"), sups):
        with SupervisorClient(os.path.join(env["run"], "pods", uid)) as client:
            assert client.call("ping")["pid"] == pid
    _pod(env, "zy-d")  # and the next start makes one again
    for uid in ("zy-a", "zy-b", "zy-c", "zy-d"):
        api.remove_pod_sandbox(env["store"], env["paths"], uid)


@CG
def test_containers_survive_a_daemon_sigkill_and_nothing_is_lost(env):
    from runtime import pod as api
    from runtime.supervisor.client import SupervisorClient
    paths = env["paths"]
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, env["root"], env["run"], env["cg"], LOOP, env["logs"]],
                              stdout=subprocess.PIPE, text=True)
    loop_pid = int(daemon.stdout.readline())
    int(daemon.stdout.readline())
    pod_dir = os.path.join(env["run"], "pods", "pod-sup")
    sup_pid = int(open(os.path.join(pod_dir, "supervisor.pid")).read().split()[0])
    # while the daemon lives: the supervisor is neither its child (nor its zygote's) nor in its
    # session, runs the sealed interpreter, and holds its pod dir open (how it is found)
    stat = open(f"/proc/{sup_pid}/stat").read().rsplit(")", 1)[1].split()
    assert int(stat[1]) != daemon.pid and os.getsid(sup_pid) != os.getsid(daemon.pid)
    assert os.readlink(f"/proc/{sup_pid}/exe").startswith("/memfd:kpy-python")
    assert open(f"/proc/{sup_pid}/comm").read() == "kpy-supervisor\n"
    assert sup_pid in processes_naming(pod_dir)
    time.sleep(0.5)
    daemon.send_signal(signal.SIGKILL)  # the daemon dies; the supervisor and containers do not
    daemon.wait()
    os.kill(loop_pid, 0)  # still running
    time.sleep(0.3)
    st = api.pod_status(paths, "pod-sup")  # "a restarted daemon" asks
    assert st.sandbox.state == "ready" and st.sandbox.supervisor_pid == sup_pid
    assert (st.container("loop").state, st.container("loop").pid, st.container("loop").name) == ("running", loop_pid, "loop")
    quick = api.wait_container(paths, "pod-sup", "quick")
    assert (quick.exit_code, quick.reason, quick.state) == (7, "Error", "exited")
    # exec joins the running container: its namespaces, rootfs, user and cgroup
    code, out, err = api.exec_sync(paths, "pod-sup", "loop", ["sh", "-c", "hostname; readlink /proc/1/ns/pid; "
                                   "readlink /proc/self/ns/pid; [ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ]"
                                   " && echo same-cgroup; ls /proc/self/fd; exit 3"])
    lines = out.decode().split()
    assert code == 3 and lines[0] == "suppod" and lines[1] == lines[2] and lines[3] == "same-cgroup", (out, err)
    assert sorted(lines[4:]) == ["0", "1", "2", "3"]  # no fd of the supervisor leaks in
    code, out, _err = api.exec_sync(paths, "pod-sup", "loop", ["ls", "/proc/1/fd"])  # the supervised PID 1: its stdio
    assert code == 0 and sorted(out.split()) == [b"0", b"1", b"2"], out
    with pytest.raises(Exception, match="No such file"):
        api.exec_sync(paths, "pod-sup", "loop", ["/no/such/binary"])
    final = api.stop_container(paths, "pod-sup", "loop", grace=5)
    assert (final.exit_code, final.state, final.signal) == (0, "exited", None)
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
    with SupervisorClient(pod_dir) as client:
        assert client.call("ping")["pid"] == sup_pid
    api.remove_pod_sandbox(env["store"], paths, "pod-sup")
    assert not os.path.exists(f"/proc/{sup_pid}") or open(f"/proc/{sup_pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


def test_events_arrive_in_order_and_a_reconnect_resumes_from_its_sequence_number(env):
    from runtime import pod as api
    paths = env["paths"]
    uid = _pod(env, "pod-events")
    stream = api.events(paths, uid)
    a, _ = _container(env, uid, "a", "exit 3")
    seen = []
    deadline = time.monotonic() + 10
    while not any(e["type"] == "exited" for e in seen) and time.monotonic() < deadline:
        seen += stream.poll(1)
    assert [(e["type"], e["id"]) for e in seen] == [("created", a), ("started", a), ("exited", a)], seen
    assert [e["seq"] for e in seen] == [1, 2, 3] and seen[2]["exit_code"] == 3 and seen[2]["reason"] == "Error"
    assert seen[1]["pid"] > 0 and seen[2]["oom_killed"] is False
    last, epoch = stream.seq, stream.epoch
    stream.close()
    # while nobody listens: another container lives and dies, and an exec runs
    b, _ = _container(env, uid, "b", "sleep 30")
    assert api.exec_sync(paths, uid, b, ["sh", "-c", "exit 5"])[0] == 5
    api.stop_container(paths, uid, b, grace=0)
    again = api.events(paths, uid, since=last, epoch=epoch)
    missed = []
    while len(missed) < 4:
        got = again.poll(5)
        assert got, missed
        missed += got
    assert [(e["type"], e["id"]) for e in missed] == [("created", b), ("started", b), ("exec_exited", b), ("exited", b)]
    assert [e["seq"] for e in missed] == [4, 5, 6, 7] and missed[2]["exit_code"] == 5
    assert missed[3]["signal"] == 9 and missed[3]["exit_code"] == 137
    api.remove_container(env["store"], paths, uid, a)
    assert [e["type"] for e in again.poll(5)] == ["removed"]
    again.close()
    # a stream that asks with another supervisor's epoch is told to list the pod again
    other = api.events(paths, uid, since=3, epoch="1")
    assert [e["type"] for e in other.poll(5)] == ["resync"]
    other.close()
    api.remove_pod_sandbox(env["store"], paths, uid)


@CG
def test_status_survives_the_supervisor_and_a_new_one_takes_over(env):
    """The supervisor is SIGKILLed: pod_status reads its records (exits it saw stay known; what
    ran becomes unknown); a new supervisor stops what is left and the pod is removed cleanly."""
    from runtime import pod as api
    from runtime.errors import UNAVAILABLE
    paths = env["paths"]
    uid = _pod(env, "pod-phoenix")
    done, _ = _container(env, uid, "done", "exit 4")
    api.wait_container(paths, uid, done)
    runs, _ = _container(env, uid, "runs", "sleep 600")
    fresh, _ = _container(env, uid, "fresh", "echo late", start=False)
    run_pid = api.container_status(paths, uid, runs).pid
    os.kill(api.pod_status(paths, uid).sandbox.supervisor_pid, signal.SIGKILL)
    time.sleep(0.2)
    st = api.pod_status(paths, uid)
    assert st.sandbox.state == "notready" and st.epoch is None
    got = {c.name: (c.state, c.exit_code, c.reason) for c in st.containers}
    assert got == {"done": ("exited", 4, "Error"), "runs": ("unknown", None, None), "fresh": ("created", None, None)}
    assert st.container(runs).pid == run_pid and "supervisor died" in st.container(runs).message
    os.kill(run_pid, 0)  # it runs on, orphaned
    with pytest.raises(api.RuntimeFailure) as e:
        api.start_container(paths, uid, fresh)
    assert e.value.kind == UNAVAILABLE
    api.recover_supervisor(paths, uid)
    final = api.stop_container(paths, uid, runs, grace=1)
    assert (final.state, final.exit_code, final.reason) == ("exited", 255, "Unknown")
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(run_pid, 0)
            time.sleep(0.02)
    api.start_container(paths, uid, fresh)  # created before the death: the new supervisor starts it
    assert api.wait_container(paths, uid, fresh).exit_code == 0
    assert api.container_status(paths, uid, done).exit_code == 4
    api.remove_pod_sandbox(env["store"], paths, uid)


def test_every_entry_point_raises_its_kind(env):
    from runtime import pod as api
    from runtime.errors import (ALREADY_EXISTS, DEADLINE_EXCEEDED, FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND,
                                UNAVAILABLE, RuntimeFailure)
    paths, store = env["paths"], env["store"]

    def kind(fn, *a, **kw):
        with pytest.raises(RuntimeFailure) as e:
            fn(*a, **kw)
        return e.value.kind, e.value.field

    assert kind(api.run_pod_sandbox, paths, api.PodConfig(uid="Bad_Uid", name="x")) == (INVALID_ARGUMENT, "uid")
    assert kind(api.pod_status, paths, "ghost")[0] == NOT_FOUND
    assert kind(api.create_container, store, paths, "ghost", DEFAULT_IMAGE, _req("c", "true"), log_path="/tmp/x")[0] == NOT_FOUND
    assert kind(api.start_container, paths, "ghost", "c")[0] == NOT_FOUND
    assert kind(api.exec_sync, paths, "ghost", "c", ["true"])[0] == NOT_FOUND
    uid = _pod(env, "pod-kinds")
    assert kind(api.run_pod_sandbox, paths, api.PodConfig(uid=uid, name="x"))[0] == ALREADY_EXISTS
    assert kind(api.start_container, paths, uid, "nope")[0] == NOT_FOUND
    assert kind(api.stop_container, paths, uid, "nope")[0] == NOT_FOUND
    assert kind(api.wait_container, paths, uid, "nope")[0] == NOT_FOUND
    assert kind(api.container_status, paths, uid, "nope")[0] == NOT_FOUND
    assert kind(api.create_container, store, paths, uid, "no.such/image:1", _req("c", "true"), log_path="/tmp/x")[0] == NOT_FOUND
    assert kind(api.create_container, store, paths, uid, DEFAULT_IMAGE, _req("c", "true"), log_path="/tmp/x",
                cid="UPPER") == (INVALID_ARGUMENT, "id")
    c, _ = _container(env, uid, "c", "sleep 60")
    assert kind(api.create_container, store, paths, uid, DEFAULT_IMAGE, _req("c", "true"), log_path="/tmp/x",
                cid=c)[0] == ALREADY_EXISTS
    assert kind(api.start_container, paths, uid, c)[0] == FAILED_PRECONDITION  # running
    assert kind(api.remove_container, store, paths, uid, c)[0] == FAILED_PRECONDITION
    assert kind(api.wait_container, paths, uid, c, timeout=0.2)[0] == DEADLINE_EXCEEDED
    assert kind(api.stop_container, paths, uid, c, grace=1, signal="SIGNOPE") == (INVALID_ARGUMENT, "stop_signal")
    assert kind(api.exec_sync, paths, uid, c, [])[0] == INVALID_ARGUMENT
    api.stop_container(paths, uid, c, grace=0)
    assert kind(api.start_container, paths, uid, c)[0] == FAILED_PRECONDITION  # exited: never again
    assert kind(api.exec_sync, paths, uid, c, ["true"])[0] == FAILED_PRECONDITION
    assert kind(api.container_stats, paths, uid, c)[0] == FAILED_PRECONDITION
    # the pod's /etc files are a precondition when the sandbox expects them
    api.run_pod_sandbox(paths, api.PodConfig(uid="pod-kinds-etc", name="e"))
    assert kind(api.create_container, store, paths, "pod-kinds-etc", DEFAULT_IMAGE, _req("c", "true"),
                log_path="/tmp/x")[0] == FAILED_PRECONDITION
    os.kill(api.pod_status(paths, uid).sandbox.supervisor_pid, signal.SIGKILL)
    time.sleep(0.1)
    assert kind(api.create_container, store, paths, uid, DEFAULT_IMAGE, _req("d", "true"), log_path="/tmp/x")[0] == UNAVAILABLE
    assert api.pod_containers(paths, uid) == [c]  # the refused create left no bundle
    for u in (uid, "pod-kinds-etc"):
        api.remove_pod_sandbox(store, paths, u)


def test_a_reused_request_gives_identical_bundles(env):
    from runtime import pod as api
    paths = env["paths"]
    uid = _pod(env, "pod-reuse")
    req = _req("c", "true", read_only_rootfs=True, extra_mounts=[
        {"destination": "/mnt/x", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}])
    before = repr(req)
    docs = []
    for i in range(2):
        cid = api.create_container(env["store"], paths, uid, DEFAULT_IMAGE, req, cid=f"reuse-{i}",
                                   log_path=os.path.join(env["logs"], f"{i}.log"))
        doc = json.load(open(os.path.join(paths.run_root, "containers", cid, "config.json")))
        docs.append(json.dumps(doc, sort_keys=True).replace(cid, "CID"))
    assert repr(req) == before  # nothing of the sandbox was written into the caller's request
    assert docs[0] == docs[1]
    assert docs[0].count('"/mnt/x"') == 1
    api.remove_pod_sandbox(env["store"], paths, uid)


@CG
def test_three_containers_stop_in_parallel(env):
    """Each ignores SIGTERM; with a 3 s grace, removing the pod takes about 3 s, not 9."""
    from runtime import pod as api
    paths = env["paths"]
    uid = _pod(env, "pod-par")
    pids = [api.container_status(paths, uid, _container(env, uid, n, "trap '' TERM; sleep 600 & wait")[0]).pid
            for n in ("a", "b", "c")]
    time.sleep(0.3)  # the traps are set
    t0 = time.monotonic()
    api.remove_pod_sandbox(env["store"], paths, uid, grace=3)
    took = time.monotonic() - t0
    assert 2.9 <= took < 6, took
    for p in pids:
        assert not os.path.exists(f"/proc/{p}")


def test_a_stop_signal_of_the_containers_own_else_the_images(env):
    """lifecycle.stopSignal (create_container's stop_signal) first, else the image's StopSignal,
    else SIGTERM."""
    from runtime import pod as api
    from runtime.image.archive import import_path
    from runtime.image.build import write_oci_layout
    from runtime.image.testimages import busybox_image
    paths = env["paths"]
    layout = str(env["tmp"] / "quitimage")
    write_oci_layout(layout, {"kubelet-py.local/quit:1": busybox_image(stop_signal="SIGUSR1")})
    import_path(env["store"], layout)
    uid = _pod(env, "pod-stopsig")
    script = ("trap 'echo got-quit; exit 0' QUIT; trap 'echo got-usr1; exit 0' USR1; trap 'echo got-term; exit 1' TERM; "
              "echo up; sleep 600 & wait")
    logs = {}
    for name, image, sig in (("own", DEFAULT_IMAGE, "SIGQUIT"), ("image", "kubelet-py.local/quit:1", None),
                             ("plain", DEFAULT_IMAGE, None)):
        log = os.path.join(env["logs"], name, "0.log")
        cid = api.create_container(env["store"], paths, uid, image, _req(name, script), cid=f"sig-{name}",
                                   log_path=log, **({"stop_signal": sig} if sig else {}))
        api.start_container(paths, uid, cid)
        logs[cid] = log
    for cid, log in logs.items():
        for _ in range(200):
            if os.path.exists(log) and "up" in open(log).read():
                break
            time.sleep(0.02)
        api.stop_container(paths, uid, cid, grace=5)
    got = {cid: [ln.split(" ", 3)[3] for ln in open(log).read().splitlines()][-1] for cid, log in logs.items()}
    assert got == {"sig-own": "got-quit", "sig-image": "got-usr1", "sig-plain": "got-term"}, got
    api.remove_pod_sandbox(env["store"], paths, uid)


@CG
def test_a_hung_exec_is_killed_at_its_timeout_and_leaves_no_process(env):
    from runtime import pod as api
    from runtime.errors import DEADLINE_EXCEEDED
    paths = env["paths"]
    uid = _pod(env, "pod-hung")
    c, _ = _container(env, uid, "c", "sleep 600")
    t0 = time.monotonic()
    with pytest.raises(api.PodError) as e:
        api.exec_sync(paths, uid, c, ["sh", "-c", "echo started; sleep 600 & sleep 700; echo never"], timeout=1)
    assert e.value.kind == DEADLINE_EXCEEDED and e.value.stdout == b"started\n"
    assert time.monotonic() - t0 < 5
    time.sleep(0.2)
    code, out, _ = api.exec_sync(paths, uid, c, ["ps", "-o", "args"])
    assert code == 0 and b"sleep 600" in out and b"sleep 700" not in out and out.count(b"sleep 600") == 1, out
    # output past the bound is read and dropped: the exec finishes, its result keeps the head
    code, out, _ = api.exec_sync(paths, uid, c, ["sh", "-c", "head -c 20000000 /dev/zero"])
    assert code == 0 and len(out) == 16 << 20
    api.remove_pod_sandbox(env["store"], paths, uid)


def test_a_client_that_stops_reading_stalls_nothing(env):
    """A subscriber that never reads, while a chatty container logs: the other container's log
    keeps growing, and the stuck client is dropped once its queue passes the bound."""
    from runtime import pod as api
    from runtime.supervisor.wire import line, via_dir_fd
    paths = env["paths"]
    uid = _pod(env, "pod-stuck")
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    via_dir_fd(os.path.join(paths.run_root, "pods", uid), stuck.connect)
    stuck.sendall(line({"op": "subscribe", "since": 0}))
    # exec events flood the stuck subscriber; a log line per exec shows the loop still turns
    c, log = _container(env, uid, "c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done")
    for _ in range(300):
        api.exec_sync(paths, uid, c, ["true"])
    before = open(log).read().count("tick")
    time.sleep(0.5)
    assert open(log).read().count("tick") > before + 3
    assert api.pod_status(paths, uid).sandbox.state == "ready"
    stuck.close()
    api.remove_pod_sandbox(env["store"], paths, uid)


def test_logs_rotate_by_size_and_keep_the_newest_files(env):
    """A chatty container under a 16 KiB limit and 3 files: the current log and two rotated ones
    remain, each whole CRI records, and together they end with the container's last lines."""
    from runtime import pod as api
    uid = _pod(env, "pod-rotate")
    c, log = _container(env, uid, "quick", "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done",
                        log_max_size=16 << 10, log_max_files=3)
    assert api.wait_container(env["paths"], uid, c).exit_code == 0
    names = sorted(os.listdir(os.path.dirname(log)))
    rotated = [n for n in names if n != "0.log"]
    assert "0.log" in names and len(rotated) == 2 and all(re.fullmatch(r"0\.log\.\d{8}-\d{6}(\.\d+)?", n) for n in rotated), names
    lines = []
    for n in sorted(rotated, key=lambda n: (n[6:21], len(n), n)) + ["0.log"]:
        data = open(os.path.join(os.path.dirname(log), n)).read()
        assert data.endswith("\n") and len(data) <= 16 << 10, (n, len(data))
        lines += data.splitlines()
    assert all(CRI_LINE.match(ln) for ln in lines)
    nums = [int(ln.rsplit("-", 1)[1]) for ln in lines]
    assert nums[-1] == 2999 and nums == list(range(nums[0], 3000)) and nums[0] > 0  # the oldest went
    api.remove_pod_sandbox(env["store"], env["paths"], uid)


@CG
def test_an_oom_kill_is_reported_by_the_supervisor(env):
    from runtime import pod as api
    uid = _pod(env, "pod-oom")
    c, _ = _container(env, uid, "quick", "head -c 64m /dev/zero | tail > /dev/null", memory_limit=16 << 20)
    final = api.wait_container(env["paths"], uid, c, 30)
    assert (final.exit_code, final.reason) == (137, "OOMKilled"), final
    api.remove_pod_sandbox(env["store"], env["paths"], uid)


def test_pods_from_many_threads_at_once_never_move_the_callers_cwd(env):
    """A daemon's threads run pods side by side: namespaces and overlay mounts are made in
    private threads, so the process's cwd never moves and every pod gets its own namespaces."""
    import threading
    from runtime import pod as api
    paths = env["paths"]
    here = os.getcwd()
    seen_cwds, stop, results, errors = set(), threading.Event(), {}, []

    def watch():
        while not stop.is_set():
            seen_cwds.add(os.getcwd())

    def one(i):
        try:
            uid = _pod(env, f"pod-thr-{i}")
            c, _ = _container(env, uid, "c", "sleep 60")
            results[i] = api.exec_sync(paths, uid, c, ["sh", "-c", "hostname; readlink /proc/self/ns/net"])[1].split()
            api.remove_pod_sandbox(env["store"], paths, uid)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    w = threading.Thread(target=watch)
    w.start()
    workers = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    w.join()
    assert not errors, errors
    assert seen_cwds == {here} and os.getcwd() == here
    assert sorted(r[0] for r in results.values()) == [f"pod-thr-{i}".encode() for i in range(4)]
    assert len({r[1] for r in results.values()}) == 4  # four network namespaces
    assert os.readlink("/proc/self/ns/net") not in {r[1].decode() for r in results.values()}
