"""The runtime's Python API for the kubelet layer (runtime.pod): a pod's life through it, stats
from the container's cgroup, clear errors, and the gc a daemon runs after a crash."""

from __future__ import annotations

import os
import resource
import signal
import time

import pytest

from runtime.image.testimages import DEFAULT_IMAGE
from tests.integration.runtime_helpers import pod_api_env

# on the host all; in the cgroup v2 VM again those that read or remove cgroups (stats, gc)
pytestmark = [pytest.mark.root]


@pytest.fixture
def env(tmp_path):
    yield from pod_api_env(tmp_path)


def _req(name, script, **kw):
    from runtime.oci.generate import ContainerRequest
    return ContainerRequest(name=name, command=["sh", "-c", script], **kw)


@pytest.mark.cgroups
def test_a_pod_through_the_api(env):
    from runtime import pod as api
    paths, store = env["paths"], env["store"]
    cfg = api.PodConfig(uid="pod-api-1", name="web", namespace="team", etc_files=False)
    sb = api.run_pod_sandbox(paths, cfg)
    assert api.list_pod_sandboxes(paths) == ["pod-api-1"] and sb.hostname == "web"
    log = api.pod_log_path(env["logs"], cfg, "app")
    assert log.endswith("/team_web_pod-api-1/app/0.log")
    cid = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE,
                               _req("app", "trap 'exit 3' TERM; head -c 24m /dev/zero > /dev/shm/fill; echo ready; sleep 60 & wait",
                                    memory_limit=128 << 20), log_path=log, attempt=2, labels={"k": "v"})
    st = api.container_status(paths, cfg.uid, cid)
    assert (st.state, st.name, st.image, st.attempt, st.labels, st.log_path) == ("created", "app", DEFAULT_IMAGE, 2, {"k": "v"}, log)
    assert st.image_id.startswith("sha256:") and st.created_at.endswith("Z") and st.started_at is None
    assert api.pod_containers(paths, cfg.uid) == [cid]
    pid = api.start_container(paths, cfg.uid, cid)
    st = api.container_status(paths, cfg.uid, cid)
    assert (st.state, st.pid) == ("running", pid) and st.started_at.endswith("Z")
    for _ in range(200):
        if "ready" in open(log).read():
            break
        time.sleep(0.02)
    stats = api.container_stats(paths, cfg.uid, cid)
    assert stats.memory_usage >= 24 << 20 and stats.memory_working_set >= 24 << 20, stats  # the tmpfs pages
    assert stats.cpu_usage_ns > 0 and stats.pids >= 1
    code, out, _err = api.exec_sync(paths, cfg.uid, cid, ["sh", "-c", "hostname; exit 4"])
    assert (code, out) == (4, b"web\n")
    code, out, _err = api.exec_sync(paths, cfg.uid, cid, ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start",
                                                          "/proc/sys/net/ipv4/ping_group_range"])
    assert out.split() == [b"0", b"0", b"2147483647"]  # containerd's pod sysctls
    code, out, _err = api.exec_sync(paths, cfg.uid, cid, ["sh", "-c", "cat /proc/1/oom_score_adj; ulimit -n; ulimit -Hn"])
    hard = min(524288, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    assert out.split() == [b"1000", b"1024", str(hard).encode()]  # BestEffort; NOFILE set, not inherited
    states = os.path.join(paths.run_root, "pods", cfg.uid, "containers")
    assert os.listdir(states) == [f"{cid}.json"]
    with pytest.raises(api.RuntimeFailure, match=f"container {cid} is still running") as e:
        api.remove_container(store, paths, cfg.uid, cid)
    assert e.value.kind == "FAILED_PRECONDITION"
    final = api.stop_container(paths, cfg.uid, cid, grace=1)
    assert final.state == "exited" and final.exit_code == 3 and final.reason == "Error" and final.finished_at
    assert final.signal is None  # it exited by itself (its TERM trap)
    with pytest.raises(api.PodError, match="no cgroup"):
        api.container_stats(paths, cfg.uid, cid)
    api.remove_container(store, paths, cfg.uid, cid)
    assert os.listdir(states) == []  # its state file went with it
    with pytest.raises(api.PodError, match="no such container"):
        api.container_status(paths, cfg.uid, cid)
    api.remove_pod_sandbox(store, paths, cfg.uid)
    api.remove_pod_sandbox(store, paths, cfg.uid)  # idempotent
    assert api.list_pod_sandboxes(paths) == []


def test_api_errors_name_the_pod_and_container(env):
    from runtime import pod as api
    from runtime.sandbox import SandboxError
    paths, store = env["paths"], env["store"]
    with pytest.raises(SandboxError, match="pod nope: no such sandbox"):
        api.create_container(store, paths, "nope", DEFAULT_IMAGE, _req("x", "true"), log_path="/tmp/x")
    api.run_pod_sandbox(paths, api.PodConfig(uid="pod-api-2", name="p", etc_files=False))
    with pytest.raises(api.RuntimeFailure, match="no container 'ghost' in this pod") as e:
        api.start_container(paths, "pod-api-2", "ghost")
    assert e.value.obj == "container ghost"
    log = os.path.join(env["logs"], "x.log")
    cid = api.create_container(store, paths, "pod-api-2", DEFAULT_IMAGE, _req("x", "true"), cid="dup", log_path=log)
    with pytest.raises(api.PodError, match="dup: a container with this id exists"):
        api.create_container(store, paths, "pod-api-2", DEFAULT_IMAGE, _req("x", "true"), cid="dup", log_path=log)
    assert api.stop_container(paths, "pod-api-2", cid, grace=0).state == "created"  # nothing to stop
    api.remove_pod_sandbox(store, paths, "pod-api-2")  # takes the created container with it
    assert api.pod_containers(paths, "pod-api-2") == []


def test_work_done_while_the_supervisor_comes_up_sees_the_namespaces_and_its_failure_leaves_nothing(env):
    """run_pod_sandbox(meanwhile=...): the daemon sets up the pod network there. It runs with the
    pod's network namespace pinned and the supervisor on its way; when it raises, the supervisor
    is killed once up, the sandbox removed, and its error raised as it is."""
    from runtime import pod as api
    from runtime.cgroups import Cgroup
    from tests.integration.leaks import processes_naming
    paths = env["paths"]
    seen = []

    def network(sb):
        seen.append((os.path.exists(sb.namespaces["network"]), sb.dir))
        raise OSError(99, "no address for the pod", "kpy-test")
    with pytest.raises(OSError, match="no address for the pod"):
        api.run_pod_sandbox(paths, api.PodConfig(uid="pod-api-mw", name="mw", etc_files=False), meanwhile=network)
    assert seen and seen[0][0], seen
    assert not os.path.exists(seen[0][1]) and api.list_pod_sandboxes(paths) == []
    assert processes_naming(seen[0][1]) == []  # no supervisor left for it
    from runtime.sandbox import pod_cgroup_path
    assert not any(os.path.isdir(d) for d in Cgroup(pod_cgroup_path(paths.cgroup_root, "besteffort", "pod-api-mw")).dirs())
    # and when it succeeds, the pod is whole: the supervisor serves
    ran = []
    sb = api.run_pod_sandbox(paths, api.PodConfig(uid="pod-api-mw2", name="mw", etc_files=False),
                             meanwhile=lambda sb: ran.append(sb.uid))
    assert ran == ["pod-api-mw2"] and api.pod_status(paths, sb.uid).sandbox.state == "ready"
    api.remove_pod_sandbox(env["store"], paths, sb.uid)


@pytest.mark.cgroups
def test_gc_after_a_crash_removes_what_is_not_kept(env):
    """The supervisors die with the node agent (SIGKILL): the containers run on, orphaned. A new
    daemon's gc keeps the pods it wants and removes everything of the others."""
    from runtime import pod as api
    paths, store = env["paths"], env["store"]
    pids = {}
    for uid in ("pod-keep", "pod-lost"):
        api.run_pod_sandbox(paths, api.PodConfig(uid=uid, name=uid, etc_files=False))
        cid = api.create_container(store, paths, uid, DEFAULT_IMAGE, _req("c", "sleep 600"), cid=f"{uid}-c",
                                   log_path=os.path.join(env["logs"], uid, "0.log"))
        pids[uid] = api.start_container(paths, uid, cid)
    lost_shim = int(open(os.path.join(paths.run_root, "pods", "pod-lost", "supervisor.pid")).read().split()[0])
    os.kill(lost_shim, signal.SIGKILL)
    time.sleep(0.1)
    os.kill(pids["pod-lost"], 0)  # still running without its supervisor
    removed = api.gc(store, paths, keep={"pod-keep"})
    assert removed == ["pod pod-lost"], removed
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pids["pod-lost"], 0)
            time.sleep(0.02)
    assert api.list_pod_sandboxes(paths) == ["pod-keep"] and api.pod_containers(paths, "pod-lost") == []
    assert api.container_status(paths, "pod-keep", "pod-keep-c").state == "running"
    # a container whose pod vanished without a trace, and a pod cgroup without a pod
    from runtime.cgroups import Cgroup
    from runtime.sandbox import pod_cgroup_path
    stray = Cgroup(pod_cgroup_path(paths.cgroup_root, "burstable", "pod-stray"))
    stray.create()
    assert "pod cgroup pod-stray" in api.gc(store, paths, keep={"pod-keep"})
    assert not any(os.path.isdir(d) for d in stray.dirs())
    assert api.gc(store, paths) == ["pod pod-keep"]


def test_the_network_layers_etc_files_are_mounted(env):
    """The files netns writes into the sandbox's files dir become the containers' /etc/hosts,
    /etc/hostname and /etc/resolv.conf (read-only under readOnlyRootFilesystem)."""
    from netns import podfiles
    from runtime import pod as api
    paths, store = env["paths"], env["store"]
    sb = api.run_pod_sandbox(paths, api.PodConfig(uid="pod-api-etc", name="etcpod"))
    podfiles.write(sb.files_dir, "127.0.0.1 localhost\n10.88.0.7 etcpod\n", "etcpod\n", "nameserver 10.96.0.10\n")
    script = "cat /etc/hosts /etc/hostname /etc/resolv.conf; echo x >> /etc/hosts && echo writable"
    out = {}
    for cid, ro in (("ro", True), ("rw", False)):  # rw last: its write reaches the pod's shared file
        log = os.path.join(env["logs"], cid, "0.log")
        api.create_container(store, paths, sb.uid, DEFAULT_IMAGE, _req(cid, script, read_only_rootfs=ro), cid=f"etc-{cid}",
                             log_path=log)
        api.start_container(paths, sb.uid, f"etc-{cid}")
        assert api.wait_container(paths, sb.uid, f"etc-{cid}").state == "exited"
        out[cid] = [ln.split(" ", 3)[3] for ln in open(log).read().splitlines()]
    want = ["127.0.0.1 localhost", "10.88.0.7 etcpod", "etcpod", "nameserver 10.96.0.10"]
    assert out["rw"] == want + ["writable"], out["rw"]
    assert out["ro"][:4] == want and "writable" not in out["ro"] and "Read-only file system" in out["ro"][-1], out["ro"]
    api.remove_pod_sandbox(store, paths, sb.uid)
    assert not os.path.exists(sb.files_dir)


def test_host_ipc_gets_the_hosts_dev_shm(env):
    from runtime import pod as api
    paths, store = env["paths"], env["store"]
    sb = api.run_pod_sandbox(paths, api.PodConfig(uid="pod-api-ipc", name="ipc", host_ipc=True, etc_files=False))
    marker = f"/dev/shm/kpytest-{sb.uid}"
    open(marker, "w").write("from the host\n")
    try:
        log = os.path.join(env["logs"], "ipc", "0.log")
        api.create_container(store, paths, sb.uid, DEFAULT_IMAGE, _req("c", f"cat {marker}"), cid="ipc-c", log_path=log)
        api.start_container(paths, sb.uid, "ipc-c")
        assert api.wait_container(paths, sb.uid, "ipc-c").exit_code == 0
        assert open(log).read().endswith(" stdout F from the host\n")
    finally:
        os.unlink(marker)
        api.remove_pod_sandbox(store, paths, sb.uid)


def test_run_as_user_replaces_the_images_user_and_its_groups(env):
    """An image whose User is `app` (1000:1000, in group `staff`): runAsUser takes the gid and the
    supplementary groups of the entry for the new uid (gid 0 without one), as containerd does;
    runAsGroup alone keeps the image's user."""
    from runtime import pod as api
    from runtime.image.archive import import_path
    from runtime.image.build import write_oci_layout
    from runtime.image.testimages import busybox_image
    paths, store = env["paths"], env["store"]
    layout = str(env["tmp"] / "appuser")
    write_oci_layout(layout, {"kubelet-py.local/appuser:1": busybox_image(user="app")})
    import_path(store, layout)
    sb = api.run_pod_sandbox(paths, api.PodConfig(uid="pod-api-user", name="u", etc_files=False))
    seen = {}
    try:
        for cid, kw in (("image", {}), ("root", {"uid": 0}), ("nobody", {"uid": 65534}), ("nouser", {"uid": 4321}),
                        ("group", {"gid": 77}), ("both", {"uid": 1000, "gid": 88})):
            log = os.path.join(env["logs"], cid, "0.log")
            api.create_container(store, paths, sb.uid, "kubelet-py.local/appuser:1", _req(cid, "id -u; id -g; id -G", **kw),
                                 cid=f"user-{cid}", log_path=log)
            api.start_container(paths, sb.uid, f"user-{cid}")
            assert api.wait_container(paths, sb.uid, f"user-{cid}").exit_code == 0
            seen[cid] = [ln.split(" ", 3)[3] for ln in open(log).read().splitlines()]
    finally:
        api.remove_pod_sandbox(store, paths, sb.uid)
    assert seen["image"] == ["1000", "1000", "1000 50"]
    assert seen["root"] == ["0", "0", "0"]  # not the image user's 1000 nor its staff group
    assert seen["nobody"] == ["65534", "65534", "65534"]
    assert seen["nouser"] == ["4321", "0", "0"]
    assert seen["group"] == ["1000", "77", "77 50"]
    assert seen["both"] == ["1000", "88", "88 50"]


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


@pytest.mark.cgroups
def test_a_prepared_container_is_made_at_create_and_only_execs_at_start(env):
    """create_container(prepare=True), as the daemon creates while the pod network comes up:
    the init is there after create (in its cgroup, not yet the command), a missing program is
    an error of the create that leaves nothing, start only lets it exec, and a prepared
    container that never starts is removed whole, alone or with its pod."""
    from runtime import pod as api
    from runtime.cgroups import Cgroup
    from runtime.oci.generate import ContainerRequest
    paths, store = env["paths"], env["store"]
    cfg = api.PodConfig(uid="pod-prep-1", name="prep", etc_files=False)
    sb = api.run_pod_sandbox(paths, cfg)
    log = api.pod_log_path(env["logs"], cfg, "app")
    cid = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE,
                               _req("app", "echo started; trap 'exit 0' TERM; sleep 60 & wait"), log_path=log,
                               prepare=True)
    st = api.container_status(paths, cfg.uid, cid)
    assert st.state == "created" and st.started_at is None and not st.pid
    cg = Cgroup(sb.container_cgroup(cid))
    (init,) = cg.pids()  # prepared: the init is in its cgroup, waiting before its execve
    assert not _exe(init).endswith("busybox") and open(log).read() == ""
    pid = api.start_container(paths, cfg.uid, cid)
    assert pid == init
    for _ in range(200):
        if "started" in open(log).read():
            break
        time.sleep(0.02)
    assert "stdout F started" in open(log).read() and _exe(pid).endswith("busybox")
    st = api.container_status(paths, cfg.uid, cid)
    assert (st.state, st.pid) == ("running", pid) and st.started_at
    with pytest.raises(api.RuntimeFailure, match="starts once"):
        api.start_container(paths, cfg.uid, cid)

    # a program that is not there: the create fails, nothing of the container is left
    with pytest.raises(api.RuntimeFailure, match="'no-such-program' not found"):
        api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE,
                             ContainerRequest(name="bad", command=["no-such-program"]),
                             cid="prep-bad", log_path=api.pod_log_path(env["logs"], cfg, "bad"), prepare=True)
    assert api.pod_containers(paths, cfg.uid) == [cid]
    assert not any(os.path.exists(d) for d in Cgroup(sb.container_cgroup("prep-bad")).dirs())
    assert not os.path.exists(os.path.join(paths.run_root, "containers", "prep-bad"))

    # prepared, never started: remove kills its init, its cgroup and bundle go
    idle = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE, _req("idle", "sleep 60"),
                                log_path=api.pod_log_path(env["logs"], cfg, "idle"), prepare=True)
    (idle_init,) = Cgroup(sb.container_cgroup(idle)).pids()
    api.stop_container(paths, cfg.uid, idle, grace=1)  # nothing runs yet: a no-op, as for any created one
    assert api.container_status(paths, cfg.uid, idle).state == "created"
    api.remove_container(store, paths, cfg.uid, idle)
    assert not os.path.exists(f"/proc/{idle_init}") or open(f"/proc/{idle_init}/stat").read().split()[2] == "Z"
    assert not any(os.path.exists(d) for d in Cgroup(sb.container_cgroup(idle)).dirs())
    assert api.pod_containers(paths, cfg.uid) == [cid]

    # another one left prepared goes with its pod
    last = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE, _req("last", "sleep 60"),
                                log_path=api.pod_log_path(env["logs"], cfg, "last"), prepare=True)
    (last_init,) = Cgroup(sb.container_cgroup(last)).pids()
    api.remove_pod_sandbox(store, paths, cfg.uid, grace=1)
    assert api.list_pod_sandboxes(paths) == []
    assert not os.path.exists(f"/proc/{last_init}") or open(f"/proc/{last_init}/stat").read().split()[2] == "Z"
    assert not os.path.exists(os.path.join(paths.run_root, "containers", last))


@pytest.mark.cgroups
def test_a_prepared_init_that_dies_before_its_start_is_an_exited_container(env):
    from runtime import pod as api
    from runtime.cgroups import Cgroup
    paths, store = env["paths"], env["store"]
    cfg = api.PodConfig(uid="pod-prep-2", name="prep2", etc_files=False)
    sb = api.run_pod_sandbox(paths, cfg)
    cid = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE, _req("app", "sleep 60"),
                               log_path=api.pod_log_path(env["logs"], cfg, "app"), prepare=True)
    (init,) = Cgroup(sb.container_cgroup(cid)).pids()
    os.kill(init, signal.SIGKILL)
    st = api.wait_container(paths, cfg.uid, cid, timeout=10)
    assert (st.state, st.exit_code) == ("exited", 137)
    with pytest.raises(api.RuntimeFailure, match="starts once") as e:
        api.start_container(paths, cfg.uid, cid)
    assert e.value.kind == "FAILED_PRECONDITION"
    api.remove_pod_sandbox(store, paths, cfg.uid)
