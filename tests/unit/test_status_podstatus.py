"""pod_status: container states and fields, conditions with their reasons, messages and
transition times, IPs and start time (kubelet-semantics 1.2, 1.3, 2.3)."""

from __future__ import annotations

import pytest

from kubelet_py.status import ContainerRecord, Instance, PodRecord, Terminated, pod_status
from kubelet_py.status.timefmt import parse_rfc3339

T0 = parse_rfc3339("2024-05-01T12:00:00Z")
NOW = T0 + 600


def pod(containers=None, init=None, policy="Always", gates=(), host_network=False):
    spec = {"restartPolicy": policy,
            "containers": containers if containers is not None else [{"name": "app", "image": "nginx"}]}
    if init:
        spec["initContainers"] = init
    if gates:
        spec["readinessGates"] = [{"conditionType": g} for g in gates]
    if host_network:
        spec["hostNetwork"] = True
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}


def running(cid="c1", **kw):
    return ContainerRecord(current=Instance("running", cid, "docker.io/library/nginx:latest", "sha256:aa",
                                            started_at="2024-05-01T12:00:05Z"), **kw)


def exited(code, reason=None, **kw):
    return ContainerRecord(current=Instance("exited", "c2", "nginx", "sha256:aa", started_at="2024-05-01T12:00:05Z",
                                            finished_at="2024-05-01T12:01:00Z", exit_code=code,
                                            reason=reason or ("Completed" if code == 0 else "Error")), **kw)


def status(p, containers, previous=None, now=NOW, **kw):
    kw.setdefault("sandbox_ready", True)
    return pod_status(p, PodRecord(containers=containers, **kw), now, previous)


def cs(st, name="app", init=False):
    return next(s for s in st["initContainerStatuses" if init else "containerStatuses"] if s["name"] == name)


def cond(st, ctype):
    return next(c for c in st["conditions"] if c["type"] == ctype)


def test_running_container_status_shape():
    st = status(pod(), {"app": running(restart_count=2)})
    assert cs(st) == {
        "name": "app", "state": {"running": {"startedAt": "2024-05-01T12:00:05Z"}}, "lastState": {},
        "ready": True, "restartCount": 2, "image": "docker.io/library/nginx:latest", "imageID": "sha256:aa",
        "containerID": "kubelet-py://c1", "started": True}


@pytest.mark.parametrize("probes,rec,started,ready", [
    ({}, running(), True, True),
    ({"readinessProbe": {"exec": {"command": ["true"]}}}, running(), True, False),
    ({"readinessProbe": {"exec": {"command": ["true"]}}}, running(ready=True), True, True),
    ({"startupProbe": {"exec": {"command": ["true"]}}}, running(ready=True), False, False),
    ({"startupProbe": {"exec": {"command": ["true"]}}}, running(started=False), False, False),
    ({"startupProbe": {"exec": {"command": ["true"]}}}, running(started=True), True, True),
    ({"startupProbe": {"tcpSocket": {"port": 1}}, "readinessProbe": {"tcpSocket": {"port": 1}}},
     running(started=True), True, False),
    ({}, exited(0, ready=True, started=True), False, False),                 # not running: never ready
])
def test_started_and_ready_from_probes(probes, rec, started, ready):
    st = status(pod([{"name": "app", "image": "nginx", **probes}]), {"app": rec})
    assert (cs(st)["started"], cs(st)["ready"]) == (started, ready)


def test_default_waiting_reason():
    st = status(pod(), {})
    assert cs(st)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert cs(st)["image"] == "nginx" and cs(st)["imageID"] == "" and "containerID" not in cs(st)
    st = status(pod(init=[{"name": "init", "image": "busybox"}]), {})
    assert cs(st)["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert cs(st, "init", init=True)["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_crashloop_moves_the_exit_to_last_state():
    rec = exited(1, restart_count=3, waiting_reason="CrashLoopBackOff",
                 waiting_message="back-off 40s restarting failed container=app pod=p_ns(u1)")
    s = cs(status(pod(), {"app": rec}))
    assert s["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 40s restarting failed container=app pod=p_ns(u1)"}}
    assert s["lastState"] == {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2024-05-01T12:00:05Z",
                                             "finishedAt": "2024-05-01T12:01:00Z", "containerID": "kubelet-py://c2"}}
    assert s["restartCount"] == 3 and s["ready"] is False and s["started"] is False


@pytest.mark.parametrize("policy,code,shown", [
    ("Always", 0, True), ("OnFailure", 1, True), ("OnFailure", 0, False), ("Never", 1, False),
])
def test_waiting_reason_only_while_the_container_would_restart(policy, code, shown):
    rec = exited(code, waiting_reason="CrashLoopBackOff")
    state = cs(status(pod(policy=policy), {"app": rec}))["state"]
    assert ("waiting" in state) is shown and ("terminated" in state) is not shown


def test_no_waiting_reason_while_deleting():
    rec = exited(1, waiting_reason="CrashLoopBackOff")
    assert "terminated" in cs(status(pod(), {"app": rec}, deleting=True))["state"]


def test_image_pull_errors_on_a_container_that_never_ran():
    rec = ContainerRecord(waiting_reason="ImagePullBackOff", waiting_message='Back-off pulling image "nope"')
    s = cs(status(pod(), {"app": rec}))
    assert s["state"] == {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope"'}}
    assert s["lastState"] == {} and s["restartCount"] == 0


def test_previous_instance_is_last_state():
    prev = Terminated(137, "OOMKilled", signal=9, started_at="2024-05-01T11:59:00.5Z",
                      finished_at="2024-05-01T12:00:01+00:00", container_id="old")
    s = cs(status(pod(), {"app": running(previous=prev, restart_count=1)}))
    assert s["lastState"] == {"terminated": {"exitCode": 137, "signal": 9, "reason": "OOMKilled",
                                             "startedAt": "2024-05-01T11:59:00Z",
                                             "finishedAt": "2024-05-01T12:00:01Z",
                                             "containerID": "kubelet-py://old"}}


def test_created_instance_is_waiting_without_reason():
    rec = ContainerRecord(current=Instance("created", "c9"))
    s = cs(status(pod(), {"app": rec}))
    assert s["state"] == {"waiting": {}} and s["containerID"] == "kubelet-py://c9" and s["image"] == "nginx"


def test_unknown_after_running_is_terminated_status_unknown():
    prev = {"containerStatuses": [{"name": "app", "state": {"running": {"startedAt": "x"}}, "restartCount": 4}]}
    s = cs(status(pod(), {"app": ContainerRecord(current=Instance("unknown", "c1"), restart_count=4)}, prev))
    assert s["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert s["state"]["terminated"]["exitCode"] == 137 and s["restartCount"] == 5
    assert s["state"]["terminated"]["message"] == "The container could not be located when the pod was terminated"
    # without a previous running status, an unknown instance is just waiting
    s = cs(status(pod(), {"app": ContainerRecord(current=Instance("unknown", "c1"))}))
    assert s["state"] == {"waiting": {}}


@pytest.mark.parametrize("deleting,restarts", [(False, 3), (True, 2)])
def test_vanished_running_container(deleting, restarts):
    prev = {"containerStatuses": [{"name": "app", "state": {"running": {}}, "restartCount": 2, "lastState": {}}]}
    s = cs(status(pod(), {}, prev, deleting=deleting))
    assert s["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert s["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert s["lastState"]["terminated"]["message"].startswith("The container could not be located when the pod was deleted.")
    assert s["restartCount"] == restarts


def test_previous_terminated_status_is_kept_without_a_record():
    term = {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}, "restartCount": 1,
            "lastState": {}, "image": "nginx", "imageID": "sha256:bb", "containerID": "kubelet-py://z", "ready": False}
    s = cs(status(pod(), {}, {"containerStatuses": [term]}))
    assert s["state"] == term["state"] and s["containerID"] == "kubelet-py://z" and s["restartCount"] == 1


def test_status_order_init_in_spec_order_apps_by_name():
    p = pod([{"name": n, "image": "x"} for n in ("zeta", "alpha", "mid")],
            init=[{"name": n, "image": "x"} for n in ("second", "first")])
    st = status(p, {})
    assert [s["name"] for s in st["containerStatuses"]] == ["alpha", "mid", "zeta"]
    assert [s["name"] for s in st["initContainerStatuses"]] == ["second", "first"]
    assert "initContainerStatuses" not in status(pod(), {})


def test_regular_init_ready_once_it_exited_zero_and_sidecar_readiness():
    p = pod(init=[{"name": "init", "image": "x"}, {"name": "side", "image": "x", "restartPolicy": "Always",
                                                    "readinessProbe": {"exec": {"command": ["true"]}}}])
    st = status(p, {"init": exited(0), "side": running(), "app": running()})
    assert cs(st, "init", init=True)["ready"] is True and cs(st, "init", init=True)["started"] is False
    assert cs(st, "side", init=True)["started"] is True and cs(st, "side", init=True)["ready"] is False
    assert cond(st, "ContainersReady")["message"] == "containers with unready status: [side]"
    st = status(p, {"init": exited(0), "side": running(ready=True), "app": running()})
    assert cond(st, "ContainersReady")["status"] == "True"


def test_condition_order_and_happy_path():
    st = status(pod(), {"app": running()})
    assert [c["type"] for c in st["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" and c["lastProbeTime"] is None and c["lastTransitionTime"] == "2024-05-01T12:10:00Z"
               for c in st["conditions"])
    assert all("reason" not in c for c in st["conditions"])


def test_sandbox_not_ready():
    st = status(pod(), {}, sandbox_ready=False)
    assert cond(st, "PodReadyToStartContainers")["status"] == "False"
    assert cond(st, "PodScheduled")["status"] == "True"


def test_containers_not_ready_reason_and_message():
    p = pod([{"name": "a", "image": "x"}, {"name": "b", "image": "x"}, {"name": "c", "image": "x"}])
    st = status(p, {"b": running()})
    want = {"status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [a c]"}
    for ctype in ("ContainersReady", "Ready"):
        got = cond(st, ctype)
        assert {k: got[k] for k in want} == want


def test_initialized_condition():
    p = pod(init=[{"name": "one", "image": "x"}, {"name": "two", "image": "x"}])
    st = status(p, {"one": exited(0), "two": ContainerRecord(current=Instance("running", "i2"))})
    c = cond(st, "Initialized")
    assert (c["status"], c["reason"], c["message"]) == ("False", "ContainersNotInitialized",
                                                        "containers with incomplete status: [two]")
    st = status(p, {"one": exited(0), "two": exited(0)})
    assert cond(st, "Initialized")["status"] == "True" and "reason" not in cond(st, "Initialized")
    # a sidecar counts once started
    p = pod(init=[{"name": "side", "image": "x", "restartPolicy": "Always", "startupProbe": {"exec": {"command": ["x"]}}}])
    assert cond(status(p, {"side": running()}), "Initialized")["status"] == "False"
    assert cond(status(p, {"side": running(started=True)}), "Initialized")["status"] == "True"
    # once an app container ran, the pod stays initialized while a sidecar restarts
    assert cond(status(p, {"side": exited(1, waiting_reason="CrashLoopBackOff"), "app": running()}),
                "Initialized")["status"] == "True"


@pytest.mark.parametrize("policy,code,phase,reason", [("Never", 0, "Succeeded", "PodCompleted"),
                                                      ("Never", 1, "Failed", "PodFailed")])
def test_terminal_phase_conditions(policy, code, phase, reason):
    st = status(pod(policy=policy), {"app": exited(code)})
    assert st["phase"] == phase
    for ctype in ("ContainersReady", "Ready"):
        assert (cond(st, ctype)["status"], cond(st, ctype)["reason"]) == ("False", reason)
        assert "message" not in cond(st, ctype)
    if phase == "Succeeded":
        assert (cond(st, "Initialized")["status"], cond(st, "Initialized")["reason"]) == ("True", "PodCompleted")


def test_readiness_gates():
    p = pod(gates=("example.com/lb",))
    st = status(p, {"app": running()})
    c = cond(st, "Ready")
    assert (c["status"], c["reason"]) == ("False", "ReadinessGatesNotReady")
    assert c["message"] == 'corresponding condition of pod readiness gate "example.com/lb" does not exist.'
    assert cond(st, "ContainersReady")["status"] == "True"
    st = status(p, {"app": running()}, conditions={"example.com/lb": "False"})
    assert cond(st, "Ready")["message"] == 'the status of pod readiness gate "example.com/lb" is not "True", but False'
    assert st["conditions"][0]["type"] == "example.com/lb"        # conditions not owned by the kubelet come first
    st = status(p, {"app": running()}, conditions={"example.com/lb": "True"})
    assert cond(st, "Ready")["status"] == "True"
    # kept from the previous status when the record does not set it
    st2 = status(p, {"app": running()}, st)
    assert cond(st2, "example.com/lb")["status"] == "True" and cond(st2, "Ready")["status"] == "True"


def test_last_transition_time_kept_while_unchanged():
    p = pod([{"name": "app", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}])
    first = status(p, {"app": running()}, now=T0)
    second = status(p, {"app": running()}, first, now=T0 + 30)
    assert cond(second, "Ready")["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    third = status(p, {"app": running(ready=True)}, second, now=T0 + 60)
    assert cond(third, "Ready")["lastTransitionTime"] == "2024-05-01T12:01:00Z"
    assert cond(third, "PodScheduled")["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_ips_and_start_time():
    st = status(pod(), {}, pod_ips=("fd00::5", "10.244.0.5", "10.244.0.6"), host_ips=("192.168.1.10", "fd01::1"),
                start_time="2024-05-01T12:00:01.7Z")
    assert st["podIP"] == "10.244.0.5" and st["podIPs"] == [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}]
    assert st["hostIP"] == "192.168.1.10" and st["hostIPs"] == [{"ip": "192.168.1.10"}, {"ip": "fd01::1"}]
    assert st["startTime"] == "2024-05-01T12:00:01Z"
    v6 = status(pod(), {}, pod_ips=("10.244.0.5", "fd00::5"), host_ips=("fd01::1",))
    assert v6["podIP"] == "fd00::5"
    hostnet = status(pod(host_network=True), {}, host_ips=("192.168.1.10",))
    assert hostnet["podIPs"] == [{"ip": "192.168.1.10"}]
    none = status(pod(), {})
    assert "podIP" not in none and "hostIP" not in none and none["startTime"] == "2024-05-01T12:10:00Z"
    kept = status(pod(), {}, {"startTime": "2024-05-01T11:00:00Z"}, start_time="2024-05-01T12:00:01Z")
    assert kept["startTime"] == "2024-05-01T11:00:00Z"


def test_previous_defaults_to_the_pods_own_status():
    p = pod()
    p["status"] = {"phase": "Failed", "reason": "Evicted"}
    st = pod_status(p, PodRecord(containers={"app": running()}), NOW)
    assert (st["phase"], st["reason"]) == ("Failed", "Evicted")


def test_pod_status_does_not_change_its_inputs():
    import copy
    p = pod()
    prev = status(p, {"app": running()})
    p_copy, prev_copy = copy.deepcopy(p), copy.deepcopy(prev)
    status(p, {"app": exited(1, waiting_reason="CrashLoopBackOff")}, prev)
    assert p == p_copy and prev == prev_copy
