"""Pod pid namespace modes: one per container (the default), shared by the pod
(shareProcessNamespace, with the pod's own PID 1 that reaps orphans), and the host's (hostPID)."""

from __future__ import annotations

import os
import time

import pytest

from runtime.image.testimages import DEFAULT_IMAGE
from tests.integration.leaks import own_children
from tests.integration.runtime_helpers import runtime_env

pytestmark = [pytest.mark.root, pytest.mark.cgroups]


@pytest.fixture
def env(tmp_path):
    yield from runtime_env(tmp_path)


class Pod:
    """A pod (sandbox and supervisor, through runtime.pod) with containers started from the
    busybox image."""

    def __init__(self, env, uid, **pod_kw):
        from runtime import pod as api
        from runtime.container import Paths
        from runtime.image.store import ImageStore
        self.env, self.uid, self.ids = env, uid, []
        self.paths, self.store = Paths(env["root"], env["run"], env["cg"]), ImageStore(env["root"])
        self.sb = api.run_pod_sandbox(self.paths, api.PodConfig(uid=uid, name=uid, etc_files=False, **pod_kw))

    def supervisor(self) -> dict:
        """The supervisor's own status: its pid and the pod init's (`pod_init`)."""
        from runtime.supervisor.client import SupervisorClient
        with SupervisorClient(self.sb.dir) as client:
            return client.status()

    def start(self, cid, script):
        from runtime import pod as api
        from runtime.oci.generate import ContainerRequest
        api.create_container(self.store, self.paths, self.uid, DEFAULT_IMAGE,
                             ContainerRequest(name=cid, command=["sh", "-c", script]), cid=cid,
                             log_path=os.path.join(str(self.env["tmp"]), "logs", cid, "0.log"))
        self.ids.append(cid)
        return api.start_container(self.paths, self.uid, cid)

    def sh(self, cid, script):
        from runtime import pod as api
        code, out, err = api.exec_sync(self.paths, self.uid, cid, ["sh", "-c", script])
        assert code == 0, (out, err)
        return out.decode()

    def close(self):
        from runtime import pod as api
        api.remove_pod_sandbox(self.store, self.paths, self.uid, grace=2)


def test_containers_get_their_own_pid_namespace_by_default(env):
    pod = Pod(env, "pod-pidsep")
    try:
        pod.start("a", "sleep 60")
        pod.start("b", "sleep 60")
        assert pod.sh("a", "cat /proc/1/cmdline | tr '\\0' ' '").strip() == "sleep 60"
        assert pod.sh("a", "readlink /proc/self/ns/pid") != pod.sh("b", "readlink /proc/self/ns/pid")
        assert pod.sh("a", "readlink /proc/self/ns/net") == pod.sh("b", "readlink /proc/self/ns/net")
    finally:
        pod.close()


def test_share_process_namespace_gives_the_pod_one_reaping_pid_1(env):
    pod = Pod(env, "pod-pidshare", share_pid=True)
    try:
        init = pod.supervisor()["pod_init"]
        assert init and open(f"/proc/{init}/status").read().count("\t65535") >= 4  # uid and gid 65535
        status = dict(ln.split(":\t", 1) for ln in open(f"/proc/{init}/status").read().splitlines() if ":\t" in ln)
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
        assert os.listdir(f"/proc/{init}/fd") == []
        caps = int(next(ln for ln in open("/proc/self/status") if ln.startswith("CapEff")).split()[1], 16)
        want = "-998" if caps >> 24 & 1 else open(f"/proc/{pod.supervisor()['pid']}/oom_score_adj").read().strip()
        assert open(f"/proc/{init}/oom_score_adj").read().strip() == want  # -998 needs CAP_SYS_RESOURCE
        a_pid = pod.start("a", "exec sleep 60")
        pod.start("b", "sleep 60")
        # b sees a's process and the one pod init as PID 1, not its own command
        seen = pod.sh("b", "for p in /proc/[0-9]*; do echo \"$(basename $p) $(tr '\\0' ' ' < $p/cmdline)\"; done")
        procs = dict(ln.split(" ", 1) for ln in seen.strip().splitlines() if " " in ln)
        assert "sleep 60 " in procs.values() and list(procs.values()).count("sleep 60 ") == 2, procs
        assert procs["1"].strip() == "kpy-pod-init", procs  # no host path in its cmdline
        assert pod.sh("a", "readlink /proc/self/ns/pid") == pod.sh("b", "readlink /proc/self/ns/pid")
        for ns in ("net", "ipc", "uts"):  # the pod init lives in the pod's namespaces, as pause
            assert os.readlink(f"/proc/{init}/ns/{ns}") == pod.sh("b", f"readlink /proc/self/ns/{ns}").strip()
        # PID 1's root is nothing a container can use, and it cannot be signalled from inside
        out = pod.sh("b", "ls /proc/1/root/ 2>&1; cat /proc/1/environ 2>&1; kill -9 1; kill -TERM 1; echo done")
        assert out.count("Permission denied") == 2 and out.endswith("done\n"), out  # non-dumpable
        assert os.path.exists(f"/proc/{init}")  # signals from inside do not reach it
        # an orphan of a container is reaped by the pod init: no zombie stays behind
        pod.sh("b", "sh -c 'sleep 0.2 &' ; true")
        time.sleep(0.6)
        zombies = pod.sh("b", "for p in /proc/[0-9]*; do grep -l '^State:.*Z' $p/status 2>/dev/null; done; true")
        assert zombies.strip() == "", zombies
        # a's main process is still the supervisor's child: its exit code is recorded
        os.kill(a_pid, 9)
        from runtime import pod as api
        a_final = api.wait_container(pod.paths, pod.uid, "a", 5)
        assert (a_final.exit_code, a_final.signal) == (137, 9)
        assert api.container_status(pod.paths, pod.uid, "b").state == "running"
    finally:
        pod.close()
    assert not os.path.exists(f"/proc/{init}")


def test_host_pid_uses_the_host_namespace(env):
    pod = Pod(env, "pod-hostpid", host_pid=True)
    try:
        pid = pod.start("a", "sleep 60")
        assert pod.sh("a", "readlink /proc/self/ns/pid").strip() == os.readlink("/proc/self/ns/pid")
        assert pod.sh("a", f"cat /proc/{pid}/cmdline | tr '\\0' ' '").strip() == "sleep 60"
    finally:
        pod.close()


def test_share_and_host_pid_together_are_refused(env):
    from runtime.sandbox import SandboxError, create_sandbox
    with pytest.raises(SandboxError, match="exclude each other"):
        create_sandbox(env["run"], "pod-both", "both", cgroup_root=env["cg"], host_pid=True, share_pid=True)
    assert not os.path.exists(os.path.join(env["run"], "pods", "pod-both"))


def test_a_pod_init_that_cannot_start_is_a_typed_error_and_leaves_no_process(env):
    """The pod's PID 1 comes through linux/forkreport.py: a failure of its intermediate (here:
    a pinned "namespace" that is a plain file) comes back as PodInitError with the kernel's
    words, and nothing of it stays running or unreaped."""
    from runtime.cgroups import Cgroup
    from runtime.linux import sys as ksys
    from runtime.podinit import INIT_CGROUP, PodInitError, spawn_pod_init
    pod_dir = env["tmp"] / "pod"
    (pod_dir / "ns").mkdir(parents=True)
    (pod_dir / "ns" / "net").write_text("not a namespace")
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
    cg = Cgroup(f"{env['cg']}/podx/{INIT_CGROUP}")
    try:
        with pytest.raises(PodInitError, match=r"the pod's init failed: \[Errno 22\] setns") as e:
            spawn_pod_init(str(pod_dir), f"{env['cg']}/podx")
        assert e.value.kind == "INTERNAL"
        assert cg.pids() == [] and not os.path.exists(pod_dir / "ns" / "pid")
        # the intermediate was reaped and no final process was made: no child of ours is left
        # (but the supervisors' zygote, if an earlier test of this process started it)
        from runtime.supervisor.launch import ZYGOTE
        assert own_children(but=(ZYGOTE.pid(),)) == []
    finally:
        ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 0)
        cg.destroy()
        Cgroup(f"{env['cg']}/podx").destroy()
