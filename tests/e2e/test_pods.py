"""The kubelet end to end: a real `kubelet-py serve` (private roots, bridge, CIDR, chains), driven
through the CLI as a user would, on the built-in busybox image."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
import urllib.request

import pytest

from tests.e2e.daemon import Daemon, condition, status_of

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"


def _pod(name: str, containers: list[dict], **spec) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": containers, **spec}})


def _c(name: str, script: str, **kw) -> dict:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], **kw}


def _phase(p):
    return (p.get("status") or {}).get("phase")


def _nothing_left(d: Daemon, uid: str) -> None:
    from runtime import pod as rt
    from runtime.container import Paths
    assert rt.list_objects(Paths(d.root, d.run, d.cg)) == []
    assert not any(uid in n for n in os.listdir(d.logs)) if os.path.isdir(d.logs) else True
    ipam = os.path.join(d.root, "ipam")
    for dirpath, _dirs, files in os.walk(ipam):
        for f in files:
            assert uid not in open(os.path.join(dirpath, f), errors="replace").read(), f
    links = os.popen("ip -o link").read()
    assert f"{d.bridge[:7]}" not in links.replace(d.bridge, ""), links  # no veth of ours
    rules = os.popen("iptables-legacy-save 2>/dev/null; iptables-save 2>/dev/null").read()
    assert uid not in rules and uid[:8] not in rules


def test_a_web_pod_runs_ready_serves_and_leaves_nothing(d):
    d.apply(_pod("web", [_c("web", "echo hello; mkdir -p /www; echo hi-from-web > /www/index.html; "
                                   "exec httpd -f -p 8080 -h /www",
                           ports=[{"containerPort": 8080, "name": "http"}],
                           readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                           livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})]))
    pod = d.wait_for("web", lambda p: condition(p, "Ready") == "True", 30, what="Ready")
    ip = pod["status"]["podIP"]
    assert pod["status"]["qosClass"] == "BestEffort" and pod["spec"]["nodeName"]
    assert urllib.request.urlopen(f"http://{ip}:8080/", timeout=5).read() == b"hi-from-web\n"
    table = d.cli("get", "pods", "-o", "wide").stdout.splitlines()
    assert table[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert table[1].split()[:4] == ["web", "1/1", "Running", "0"] and ip in table[1]
    assert d.cli("logs", "web").stdout == "hello\n"
    assert d.cli("logs", "web", "--timestamps").stdout.split(" ", 1)[1] == "hello\n"
    p = d.cli("exec", "web", "--", "sh", "-c", "hostname; exit 3", check=False)
    assert (p.returncode, p.stdout) == (3, "web\n")
    assert d.cli("get", "pod", "web", "-o", "jsonpath={.status.podIP}").stdout == ip
    assert d.cli("get", "pods", "-l", "app=none").stdout == ""
    d.cli("delete", "pod", "web", "--grace-period", "1")
    assert d.cli("get", "pods", check=False).stderr.strip() == "No resources found in default namespace."
    _nothing_left(d, pod["metadata"]["uid"])


@pytest.mark.parametrize("policy,code,want_phase,restarts", [
    ("Never", 0, "Succeeded", 0), ("Never", 1, "Failed", 0),
    ("OnFailure", 0, "Succeeded", 0), ("OnFailure", 1, "Running", 1),
    ("Always", 0, "Running", 1), ("Always", 1, "Running", 1)])
def test_restart_policies_on_exit_0_and_1(d, policy, code, want_phase, restarts):
    d.apply(_pod("rp", [_c("c", f"echo run; exit {code}")], restartPolicy=policy))
    if restarts:
        pod = d.wait_for("rp", lambda p: status_of(p, "c").get("restartCount", 0) >= restarts, 30, what="a restart")
        assert _phase(pod) == want_phase
        last = status_of(pod, "c")["lastState"]["terminated"]
        assert last["exitCode"] == code and last["reason"] == ("Completed" if code == 0 else "Error")
    else:
        pod = d.wait_for("rp", lambda p: _phase(p) == want_phase, 30, what=want_phase)
        time.sleep(1.5)
        pod = d.pod("rp")
        st = status_of(pod, "c")
        assert st["restartCount"] == 0 and st["state"]["terminated"]["exitCode"] == code, st
        assert _phase(pod) == want_phase
        assert d.cli("get", "pods").stdout.split("\n")[1].split()[2] == ("Completed" if code == 0 else "Error")


def test_exec_liveness_failure_restarts_with_backoff(d):
    """The probe fails once /tmp/healthy is gone: the container is killed and restarted
    (restartCount counts), an Unhealthy event carries the probe's output, and the restarts are
    spaced by the back-off (CrashLoopBackOff seen between them)."""
    d.apply(_pod("live", [_c("c", "touch /tmp/healthy; sleep 1; rm /tmp/healthy; sleep 600",
                             livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1,
                                            "failureThreshold": 1})],
                 terminationGracePeriodSeconds=1))
    pod = d.wait_for("live", lambda p: status_of(p, "c").get("restartCount", 0) >= 1, 40, what="a restart")
    events = d.cli("describe", "pod", "live").stdout
    assert "Unhealthy" in events and "Liveness probe failed" in events and "/tmp/healthy" in events, events
    assert "failed liveness probe, will be restarted" in events
    seen_backoff = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and status_of(pod, "c").get("restartCount", 0) < 3:
        pod = d.pod("live")
        waiting = (status_of(pod, "c").get("state") or {}).get("waiting") or {}
        seen_backoff |= waiting.get("reason") == "CrashLoopBackOff"
        time.sleep(0.1)
    assert status_of(pod, "c")["restartCount"] >= 3
    assert seen_backoff


def test_readiness_flips_ready_both_ways(d):
    d.apply(_pod("rd", [_c("c", "sleep 600", readinessProbe={"exec": {"command": ["test", "-f", "/tmp/ready"]},
                                                               "periodSeconds": 1})]))
    pod = d.wait_for("rd", lambda p: status_of(p, "c").get("state", {}).get("running"), 30, what="running")
    assert condition(pod, "Ready") == "False" and status_of(pod, "c")["ready"] is False
    d.cli("exec", "rd", "--", "touch", "/tmp/ready")
    d.wait_for("rd", lambda p: condition(p, "Ready") == "True" and condition(p, "ContainersReady") == "True", 15,
               what="Ready")
    d.cli("exec", "rd", "--", "rm", "/tmp/ready")
    pod = d.wait_for("rd", lambda p: condition(p, "Ready") == "False", 15, what="not Ready again")
    assert status_of(pod, "c")["restartCount"] == 0  # readiness never restarts


def test_init_containers_run_in_order_then_the_app(d):
    d.apply(_pod("ini", [_c("app", "cat /proc/1/cmdline >/dev/null; echo app; sleep 600")],
                 initContainers=[_c("one", "echo one"), _c("two", "echo two")]))
    pod = d.wait_for("ini", lambda p: status_of(p, "app").get("state", {}).get("running"), 30, what="app running")
    ones = status_of(pod, "one")["state"]["terminated"]
    twos = status_of(pod, "two")["state"]["terminated"]
    assert ones["exitCode"] == 0 and twos["exitCode"] == 0
    assert ones["finishedAt"] <= twos["startedAt"]
    assert twos["finishedAt"] <= status_of(pod, "app")["state"]["running"]["startedAt"]
    assert condition(pod, "Initialized") == "True"


def test_a_failing_init_container_with_never_fails_the_pod(d):
    d.apply(_pod("inif", [_c("app", "echo never-here")], initContainers=[_c("bad", "exit 2")], restartPolicy="Never"))
    pod = d.wait_for("inif", lambda p: _phase(p) == "Failed", 30, what="Failed")
    assert status_of(pod, "app").get("state", {}).get("waiting", {}).get("reason") == "PodInitializing"
    assert d.cli("get", "pods").stdout.split("\n")[1].split()[2] == "Init:Error"


def test_a_sidecar_starts_before_the_app_and_keeps_running(d):
    d.apply(_pod("side", [_c("app", "sleep 600")],
                 initContainers=[_c("log", "sleep 600", restartPolicy="Always"), _c("after", "echo after")]))
    pod = d.wait_for("side", lambda p: status_of(p, "app").get("state", {}).get("running"), 30, what="app running")
    side = status_of(pod, "log")
    assert "running" in side["state"] and side["started"] is True
    assert side["state"]["running"]["startedAt"] <= status_of(pod, "after")["state"]["terminated"]["startedAt"]
    assert d.cli("get", "pods").stdout.split("\n")[1].split()[1] == "2/2"


def test_prestop_runs_before_the_stop_signal(d):
    d.apply(_pod("stop", [_c("c", "trap 'echo got-term >> /dev/shm/order; exit 0' TERM; sleep 600 & wait",
                             lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /dev/shm/order"]}}})],
                 terminationGracePeriodSeconds=10))
    d.wait_for("stop", lambda p: status_of(p, "c").get("state", {}).get("running"), 30, what="running")
    time.sleep(0.3)
    watcher = d.cli("exec", "stop", "--", "sh", "-c", "sleep 0.1; cat /dev/shm/order 2>/dev/null; true").stdout
    assert watcher == ""
    events_before = time.monotonic()
    # read the file from a second container's view is impossible after deletion: the pod's
    # shm is gone; so the order is read through the container's own log
    d.apply(_pod("stop2", [_c("c", "trap 'echo got-term; exit 0' TERM; echo up; sleep 600 & wait",
                              lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop > /proc/1/fd/1"]}}})],
                 terminationGracePeriodSeconds=10))
    d.wait_for("stop2", lambda p: status_of(p, "c").get("state", {}).get("running"), 30, what="running")
    time.sleep(0.3)
    log_dir = [n for n in os.listdir(d.logs) if n.startswith("default_stop2_")][0]
    log = open(os.path.join(d.logs, log_dir, "c", "0.log"))  # held: the pod's logs go with it
    d.cli("delete", "pod", "stop2", "--no-wait")
    deadline = time.monotonic() + 15
    lines, text = [], ""
    while time.monotonic() < deadline:
        text += log.read()
        lines = [ln.split(" ", 3)[3] for ln in text.splitlines()]
        if "got-term" in lines:
            break
        time.sleep(0.05)
    assert lines[:3] == ["up", "prestop", "got-term"], lines
    assert time.monotonic() - events_before < 15
    d.cli("delete", "pod", "stop", "--grace-period", "1")


def test_active_deadline_fails_the_pod(d):
    d.apply(_pod("dl", [_c("c", "sleep 600")], activeDeadlineSeconds=2, terminationGracePeriodSeconds=1))
    pod = d.wait_for("dl", lambda p: _phase(p) == "Failed", 30, what="Failed")
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert "terminated" in status_of(pod, "c")["state"]


def test_an_oom_kill_is_reported(d):
    d.apply(_pod("oom", [_c("c", "head -c 64m /dev/zero | tail >/dev/null",
                            resources={"limits": {"memory": "16Mi"}})], restartPolicy="Never"))
    pod = d.wait_for("oom", lambda p: _phase(p) == "Failed", 30, what="Failed")
    term = status_of(pod, "c")["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)


def test_a_daemon_sigkill_and_restart_keeps_containers_pids_and_counts(d):
    d.apply(_pod("keep", [_c("a", "echo a; sleep 600"), _c("b", "exit 1")], restartPolicy="OnFailure"))
    pod = d.wait_for("keep", lambda p: status_of(p, "b").get("restartCount", 0) >= 1
                     and status_of(p, "a").get("state", {}).get("running"), 40, what="b restarted")
    a_id = status_of(pod, "a")["containerID"]
    from runtime import pod as rt
    from runtime.container import Paths
    a_pid = rt.container_status(Paths(d.root, d.run, d.cg), pod["metadata"]["uid"], a_id.split("//")[1]).pid
    d.kill9()
    b_restarts = status_of(pod, "b")["restartCount"]
    time.sleep(3)  # b exits again while the daemon is down
    d.start()
    pod = d.wait_for("keep", lambda p: status_of(p, "b").get("restartCount", 0) > b_restarts, 40,
                     what="b's exit while down learned")
    assert status_of(pod, "a")["containerID"] == a_id and status_of(pod, "a")["restartCount"] == 0
    assert "running" in status_of(pod, "a")["state"]
    assert a_pid and os.path.exists(f"/proc/{a_pid}")
    assert d.cli("logs", "keep", "-c", "a").stdout == "a\n"
    d.cli("delete", "pod", "keep", "--grace-period", "1")


def test_a_daemon_killed_between_a_containers_create_and_its_start(d):
    """The containers are created while the pod network is set up, started once it is done: a
    daemon killed in between (the test holds the xtables lock, so the network waits) leaves a
    created, never started container and a half-made network. The restarted daemon removes that
    container, repairs the network, and the pod runs."""
    import fcntl

    from runtime import pod as rt
    from runtime.container import Paths
    lock = os.open("/run/xtables.lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        d.apply(_pod("halfway", [_c("c", "echo up; sleep 600")], terminationGracePeriodSeconds=0))
        pod = d.wait_for("halfway", lambda p: "Created container: c" in d.cli("describe", "pod", "halfway").stdout,
                         20, what="created while the network waits")
        d.kill9()
    finally:
        os.close(lock)
    uid = pod["metadata"]["uid"]
    paths = Paths(d.root, d.run, d.cg)
    (made,) = rt.pod_status(paths, uid).containers
    assert made.state == "created"
    d.start()
    pod = d.wait_for("halfway", lambda p: status_of(p, "c").get("state", {}).get("running"), 30,
                     what="running after the restart")
    assert status_of(pod, "c")["restartCount"] == 0 and pod["status"]["podIP"]
    assert [c.id for c in rt.pod_status(paths, uid).containers] != [made.id]  # made again
    for _ in range(100):
        if d.cli("logs", "halfway").stdout == "up\n":
            break
        time.sleep(0.05)
    assert d.cli("logs", "halfway").stdout == "up\n"
    d.cli("delete", "pod", "halfway", "--grace-period", "0")
    _nothing_left(d, uid)


def test_a_bad_manifest_names_file_field_and_creates_nothing(d, tmp_path):
    bad = tmp_path / "web.yaml"
    bad.write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: web}}
        spec:
          containers:
          - {{name: a, image: {IMAGE}}}
          - name: b
            image: {IMAGE}
            livenessProbe: {{httpGet: {{port: 0}}}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: Bad_Name}}
        spec: {{containers: [{{name: c, image: {IMAGE}}}]}}
        """))
    p = d.cli("apply", "-f", str(bad), check=False)
    assert p.returncode != 0
    assert "web.yaml" in p.stderr and "spec.containers[1].livenessProbe.httpGet.port" in p.stderr
    assert "Bad_Name" in p.stderr
    assert "Traceback" not in p.stderr
    assert d.cli("get", "pods", check=False).stderr.strip() == "No resources found in default namespace."


def test_static_pods_beside_a_bad_file(tmp_path):
    man = tmp_path / "manifests"
    man.mkdir()
    (man / "good.yaml").write_text(_pod("stat", [_c("c", "sleep 600")], terminationGracePeriodSeconds=1))
    (man / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: 7}\n")
    (man / ".hidden.yaml").write_text("garbage: [")
    d = Daemon(tmp_path, manifests=str(man)).start()
    try:
        node = d.cli("get", "pods", "-o", "json").stdout
        name = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not name:
            items = json.loads(d.cli("get", "pods", "-o", "json").stdout)["items"]
            name = next((p["metadata"]["name"] for p in items if p["metadata"]["name"].startswith("stat-")), None)
            time.sleep(0.2)
        assert name, node
        pod = d.wait_for(name, lambda p: status_of(p, "c").get("state", {}).get("running"), 30, what="running")
        uid = pod["metadata"]["uid"]
        assert "bad.yaml" in d.daemon_log()
        # an edit makes a new pod (new uid); removing the file deletes it
        (man / "good.yaml").write_text(_pod("stat", [_c("c", "sleep 601")], terminationGracePeriodSeconds=1))
        pod = d.wait_for(name, lambda p: p["metadata"]["uid"] != uid
                         and status_of(p, "c").get("state", {}).get("running"), 60, what="the new pod")
        (man / "good.yaml").unlink()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and d.cli("get", "pod", name, check=False).returncode == 0:
            time.sleep(0.2)
        assert d.cli("get", "pod", name, check=False).returncode != 0
    finally:
        leaks = d.cleanup()
    assert leaks == []


def test_apply_changes_labels_in_place_and_an_image_change_restarts_that_container(d):
    d.apply(_pod("upd", [_c("a", "sleep 600"), _c("b", "sleep 600")], terminationGracePeriodSeconds=1))
    pod = d.wait_for("upd", lambda p: all("running" in status_of(p, n).get("state", {}) for n in ("a", "b")), 30,
                     what="both running")
    a_id, b_id = status_of(pod, "a")["containerID"], status_of(pod, "b")["containerID"]
    doc = json.loads(_pod("upd", [_c("a", "sleep 600"), {**_c("b", "sleep 600"), "image": "busybox:1.28"}],
                          terminationGracePeriodSeconds=1))
    doc["metadata"]["labels"] = {"tier": "x"}
    out = d.apply(json.dumps(doc))
    assert out.strip() == "pod/upd configured"
    pod = d.wait_for("upd", lambda p: status_of(p, "b").get("containerID") not in (None, b_id)
                     and "running" in status_of(p, "b").get("state", {}), 30, what="b restarted")
    assert pod["metadata"]["labels"] == {"tier": "x"} and pod["metadata"]["generation"] == 2
    assert status_of(pod, "a")["containerID"] == a_id  # untouched
    assert status_of(pod, "b")["image"] == "busybox:1.28"
    assert d.apply(json.dumps(doc)).strip() == "pod/upd unchanged"
    doc["spec"]["containers"][0]["command"] = ["sh", "-c", "sleep 700"]
    p = d.cli("apply", "-f", "-", input=json.dumps(doc), check=False)
    assert p.returncode != 0 and "spec.containers[0].command" in p.stderr and "Forbidden" in p.stderr, p.stderr


def test_image_pull_failures_back_off_and_never_pull(d):
    d.apply(_pod("pull", [{"name": "c", "image": "127.0.0.1:1/nope:1"}]))
    seen = set()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not {"ErrImagePull", "ImagePullBackOff"} <= seen:
        pod = d.pod("pull")
        seen.add(((status_of(pod, "c").get("state") or {}).get("waiting") or {}).get("reason"))
        time.sleep(0.1)
    assert {"ErrImagePull", "ImagePullBackOff"} <= seen, seen
    d.apply(_pod("never", [{"name": "c", "image": "kubelet-py.local/absent:1", "imagePullPolicy": "Never"}]))
    pod = d.wait_for("never", lambda p: ((status_of(p, "c").get("state") or {}).get("waiting") or {}).get("reason")
                     == "ErrImageNeverPull", 30, what="ErrImageNeverPull")
    assert "is not present with pull policy of Never" in status_of(pod, "c")["state"]["waiting"]["message"]


def test_logs_of_the_previous_instance_exec_with_stdin_and_watch(d):
    d.apply(_pod("prev", [_c("c", "echo run-$(cat /proc/sys/kernel/random/uuid | cut -c1-4); sleep 1; exit 1")],
                 restartPolicy="OnFailure"))
    d.wait_for("prev", lambda p: status_of(p, "c").get("restartCount", 0) >= 1
               and "running" in status_of(p, "c").get("state", {}), 30, what="restarted")
    prev, cur = d.cli("logs", "prev", "-p").stdout, d.cli("logs", "prev").stdout
    assert prev.startswith("run-") and cur.startswith("run-") and prev != cur
    d.apply(_pod("cat", [_c("c", "sleep 600")], terminationGracePeriodSeconds=1))
    d.wait_for("cat", lambda p: "running" in status_of(p, "c").get("state", {}), 30, what="running")
    p = d.cli("exec", "-i", "cat", "--", "sh", "-c", "tr a-z A-Z; exit 5", input="hello\n", check=False)
    assert (p.returncode, p.stdout) == (5, "HELLO\n")
    import subprocess
    w = subprocess.Popen(d.base() + ["get", "pods", "-w"], stdout=subprocess.PIPE, text=True)
    try:
        d.apply(_pod("late", [_c("c", "sleep 600")], terminationGracePeriodSeconds=1))
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            lines.append(w.stdout.readline())
            if any(ln.split()[:3] == ["late", "1/1", "Running"] for ln in lines if ln.strip()):
                break
        assert any(ln.split()[:1] == ["late"] for ln in lines), lines
    finally:
        w.terminate()
        w.wait()


def test_run_f_through_the_daemon_exits_with_the_containers_code(d, tmp_path):
    f = tmp_path / "job.yaml"
    f.write_text(_pod("job", [_c("c", "echo working; exit 7")], restartPolicy="Never"))
    import subprocess
    p = subprocess.run(d.base() + ["run", "-f", str(f)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 7, (p.stdout, p.stderr)
    assert "working" in p.stdout
    assert d.cli("get", "pod", "job", check=False).returncode != 0  # torn down


def test_run_f_embedded_streams_logs_and_ctrl_c_tears_down(tmp_path):
    """No daemon: `run -f` is the agent itself; SIGINT deletes the pod and leaves nothing."""
    import signal as sig
    import subprocess
    d = Daemon(tmp_path)  # its roots and network names, not started
    f = tmp_path / "svc.yaml"
    f.write_text(_pod("svc", [_c("c", "trap 'echo bye; exit 0' TERM; echo up; sleep 600 & wait")]))
    cmd = d.base() + ["run", "-f", str(f), "--bridge", d.bridge, "--pod-cidr", str(d.subnet)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "up\n"
        pods = json.loads(d.cli("get", "pods", "-o", "json").stdout)["items"]  # it serves the API meanwhile
        assert [x["metadata"]["name"] for x in pods] == ["svc"]
        p.send_signal(sig.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 130 and "bye" in out, (out, err)
    finally:
        if p.poll() is None:
            p.kill()
        leaks = d.cleanup()
    assert leaks == []


def test_exec_with_a_tty(d):
    """-it: a pty of the container's own devpts (never this terminal), stdin relayed to it, the
    exit code passed through."""
    import subprocess
    d.apply(_pod("tty", [_c("c", "sleep 600")], terminationGracePeriodSeconds=1))
    d.wait_for("tty", lambda p: "running" in status_of(p, "c").get("state", {}), 30, what="running")
    cmd = " ".join(d.base() + ["exec", "-it", "tty", "--", "sh", "-c", "'tty; read x; echo got=$x; exit 4'"])
    p = subprocess.run(["script", "-qec", f"(sleep 1; echo hello) | {cmd}", "/dev/null"], capture_output=True,
                       text=True, timeout=60)
    out = p.stdout.replace("\r", "")
    assert p.returncode == 4, (p.stdout, p.stderr)
    assert "/dev/pts/0\n" in out and "got=hello\n" in out, out


def test_namespaces_must_exist_and_take_their_pods_with_them(d):
    doc = json.loads(_pod("inns", [_c("c", "sleep 600")], terminationGracePeriodSeconds=1))
    doc["metadata"]["namespace"] = "team-a"
    p = d.cli("apply", "-f", "-", input=json.dumps(doc), check=False)
    assert p.returncode != 0 and 'namespaces "team-a" not found' in p.stderr, p.stderr
    assert d.cli("create", "namespace", "team-a").stdout.strip() == "namespace/team-a created"
    assert "team-a" in d.cli("get", "ns").stdout
    d.apply(json.dumps(doc))
    d.wait_for("inns", lambda p: "running" in status_of(p, "c").get("state", {}), 30, ns="team-a", what="running")
    assert "inns" in d.cli("get", "pods", "-A").stdout
    d.cli("delete", "namespace", "team-a")
    assert d.cli("get", "pods", "-n", "team-a", check=False).stderr.strip() == "No resources found in team-a namespace."


def test_post_start_blocks_the_next_container_and_its_failure_kills(d):
    d.apply(_pod("post", [_c("a", "sleep 600", lifecycle={"postStart": {"exec": {"command": [
        "sh", "-c", "sleep 1; echo hook-done > /dev/shm/post"]}}}),
        _c("b", "cat /dev/shm/post; sleep 600")], terminationGracePeriodSeconds=1))
    d.wait_for("post", lambda p: "running" in status_of(p, "b").get("state", {}), 30, what="b running")
    time.sleep(0.5)
    assert d.cli("logs", "post", "-c", "b").stdout == "hook-done\n"  # b started after a's hook returned
    d.apply(_pod("postfail", [_c("a", "sleep 600", lifecycle={"postStart": {"exec": {"command": ["false"]}}})],
                 restartPolicy="Never", terminationGracePeriodSeconds=1))
    pod = d.wait_for("postfail", lambda p: "terminated" in status_of(p, "a").get("state", {}), 30, what="killed")
    events = d.cli("describe", "pod", "postfail").stdout
    assert "FailedPostStartHook" in events, events
    assert (pod.get("status") or {}).get("phase") == "Failed"


def test_a_sandbox_whose_network_fails_leaves_nothing_and_is_retried(d):
    """The pod network is set up while the supervisor comes up: a hostPort another pod holds
    fails it, and the pod's namespaces, cgroup, supervisor, veth and IP all go
    (FailedCreatePodSandBox, retried); once the port is free the pod starts."""
    from runtime import pod as rt
    from runtime.container import Paths
    port = {"containerPort": 8080, "hostPort": 31000 + os.getpid() % 1000}
    d.apply(_pod("holder", [_c("c", "sleep 600", ports=[port])], terminationGracePeriodSeconds=0))
    holder = d.wait_for("holder", lambda p: _phase(p) == "Running", 30, what="Running")
    d.apply(_pod("second", [_c("c", "sleep 600", ports=[port])], terminationGracePeriodSeconds=0))
    second = d.wait_for("second", lambda p: "FailedCreatePodSandBox" in d.cli("describe", "pod", "second").stdout,
                        30, what="FailedCreatePodSandBox")
    uid = second["metadata"]["uid"]
    assert "is already allocated" in d.cli("describe", "pod", "second").stdout
    objs = rt.list_objects(Paths(d.root, d.run, d.cg))
    assert {o.pod or o.id for o in objs} == {holder["metadata"]["uid"]}, objs  # nothing of `second`
    assert _phase(d.pod("second")) == "Pending"
    for dirpath, _dirs, files in os.walk(os.path.join(d.root, "ipam")):
        for f in files:
            assert uid not in open(os.path.join(dirpath, f), errors="replace").read(), f
    d.cli("delete", "pod", "holder", "--grace-period", "0")
    d.wait_for("second", lambda p: _phase(p) == "Running", 30, what="Running once the port is free")
    d.cli("delete", "pod", "second", "--grace-period", "0")
    _nothing_left(d, uid)


def test_apply_without_click_answers_as_the_click_command(d, tmp_path):
    """The plain `apply -f` runs without click (kubelet_py/applycmd.py, entry.py); any other
    global option sends it through click. Both print the same: objects, warnings, errors."""
    import subprocess
    import sys
    good = tmp_path / "good.yaml"
    good.write_text(_pod("quick", [_c("c", "sleep 600", bogusField=1)], terminationGracePeriodSeconds=0))
    bad = tmp_path / "bad.yaml"
    bad.write_text(_pod("quickbad", [_c("c", "true", ports=[{"containerPort": 0}])]))
    slow_flag = ("--max-layer-size", "1Gi")  # a typed global option: click's path
    seen = {}
    for what, path in (("good", good), ("bad", bad), ("missing", tmp_path / "nope.yaml"), ("dir", tmp_path)):
        quick = d.cli("apply", "-f", str(path), check=False)
        slow = d.cli(*slow_flag, "apply", "-f", str(path), check=False)
        assert (quick.returncode, quick.stderr) == (slow.returncode, slow.stderr), (what, quick, slow)
        assert quick.stdout.replace(" created", " unchanged") == slow.stdout, (what, quick, slow)
        seen[what] = quick
    assert seen["good"].returncode == 0 and seen["good"].stdout == "pod/quick created\n"
    assert "bogusField" in seen["good"].stderr
    assert seen["bad"].returncode == 1 and "containerPort: Required value" in seen["bad"].stderr
    assert seen["missing"].returncode == 1 and 'the path "' in seen["missing"].stderr
    assert seen["dir"].returncode == 1 and "quickbad" in seen["dir"].stderr  # nothing of the dir applied
    # the quick path really runs without click, and without json and socket (lightclient)
    p = subprocess.run(d.base() + ["apply", "-f", str(good)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert p.returncode == 0 and "pod/quick unchanged" in p.stdout
    imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    assert "kubelet_py.lightclient" in imported and not {"click", "json", "socket"} & imported, sorted(imported)
    d.cli("delete", "pod", "quick", "--grace-period", "0")


def test_app_containers_start_in_their_order(d):
    """Without postStart hooks the containers' creates overlap (worker.start_in_order), but each
    starts only after the one before it, as the kubelet starts them: the runtime's start times
    follow the spec's order."""
    from runtime import pod as rt
    from runtime.container import Paths
    names = ["a", "b", "c", "d"]
    d.apply(_pod("order", [_c(n, "sleep 600") for n in names], terminationGracePeriodSeconds=0))
    pod = d.wait_for("order", lambda p: _phase(p) == "Running"
                     and all(s.get("state", {}).get("running") for s in (p["status"].get("containerStatuses") or [])),
                     30, what="all running")
    st = rt.pod_status(Paths(d.root, d.run, d.cg), pod["metadata"]["uid"])
    started = {c.labels.get("io.kubernetes.container.name"): c.started_at for c in st.containers}
    assert sorted(started, key=started.get) == names, started  # RFC 3339 with nanoseconds: sortable
    d.cli("delete", "pod", "order", "--grace-period", "0")


def test_a_network_that_fails_after_the_containers_were_created_takes_them_down(tmp_path):
    """The containers are created (their inits made) while the pod network is set up. A failure
    of the network after that (here its iptables commit: the pod's NAT chain, which the setup
    replaces, is held by a rule of someone else's chain) is the sandbox's: FailedCreatePodSandBox,
    the created containers, the sandbox and the network all go, and the pod starts once the
    hold is gone. A static pod, so that its uid (and so its chain) is known beforehand; the
    xtables lock, held by the test, keeps the network waiting until the container is created."""
    import fcntl
    import socket
    import subprocess

    from kubelet_py.api.static import load_static
    from netns import NetworkConfig
    from netns.plan import host_veth_name, masq_chain
    from runtime import pod as rt
    from runtime.container import Paths
    man = tmp_path / "manifests"
    man.mkdir()
    text = _pod("netfail", [_c("c", "sleep 600")], terminationGracePeriodSeconds=0)
    path = str(man / "netfail.yaml")
    pod, _ = load_static(text, path, socket.gethostname().lower())
    uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
    d = Daemon(tmp_path, manifests=str(man))
    net = NetworkConfig(state_root=d.root, bridge=d.bridge, gateway=f"{d.gateway_ip()}/{d.subnet.prefixlen}",
                       chain_prefix=d.chain)
    chain, veth = masq_chain(net, uid), host_veth_name(net, uid)
    hold = f"{d.chain}-HOLD"

    def ipt(*args, check=True):
        return subprocess.run(["iptables-legacy", "-w", "-t", "nat", *args], capture_output=True, text=True,
                              check=check)
    d.start()  # first: its start removes the chains of the pods it does not know
    try:
        ipt("-N", chain)
        ipt("-N", hold)
        ipt("-A", hold, "-j", chain)
        lock = os.open("/run/xtables.lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the pod's rules wait for it (iptables -w's lock)
            (man / "netfail.yaml").write_text(text)
            got = d.wait_for(name, lambda p: "Created container: c" in d.cli("describe", "pod", name).stdout,
                             20, what="its container created while the network waits")
            assert got["metadata"]["uid"] == uid
            time.sleep(0.3)
            assert "Started container" not in d.cli("describe", "pod", name).stdout  # no start before the network
        finally:
            os.close(lock)
        d.wait_for(name, lambda p: "FailedCreatePodSandBox" in d.cli("describe", "pod", name).stdout,
                   30, what="FailedCreatePodSandBox")
        assert "Started container" not in d.cli("describe", "pod", name).stdout
        paths = Paths(d.root, d.run, d.cg)
        deadline = time.monotonic() + 4  # the retry comes 5 s after the failure
        while time.monotonic() < deadline and rt.list_objects(paths):
            time.sleep(0.05)
        assert rt.list_objects(paths) == []  # its containers, sandbox, supervisor and cgroups went
        assert f" {veth}@" not in os.popen("ip -o link").read()
        assert _phase(d.pod(name)) == "Pending"
        ipt("-F", hold)
        ipt("-X", hold)
        pod = d.wait_for(name, lambda p: status_of(p, "c").get("state", {}).get("running"), 30,
                         what="running once the hold is gone")
        assert pod["status"]["podIP"]
        (man / "netfail.yaml").unlink()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and d.cli("get", "pod", name, check=False).returncode == 0:
            time.sleep(0.2)
        _nothing_left(d, uid)
    finally:
        ipt("-F", hold, check=False)
        ipt("-X", hold, check=False)
        leaks = d.cleanup()
        ipt("-F", chain, check=False)
        ipt("-X", chain, check=False)
    assert leaks == []
