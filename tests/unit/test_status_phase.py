"""The pod phase (kubelet-semantics 1.1, upstream getPhase), table-tested through pod_status
from worker records, and directly on statuses for the cases records cannot produce."""

from __future__ import annotations

import pytest

from kubelet_py.status import ContainerRecord, Instance, PodRecord, pod_status
from kubelet_py.status.phase import get_phase
from kubelet_py.status.timefmt import parse_rfc3339

NOW = parse_rfc3339("2024-05-01T12:10:00Z")


def pod(containers=("app",), init=(), policy="Always", sidecars=(), startup=(), annotations=None):
    inits = []
    for name in init:
        c = {"name": name, "image": "busybox"}
        if name in sidecars:
            c["restartPolicy"] = "Always"
        if name in startup:
            c["startupProbe"] = {"exec": {"command": ["true"]}}
        inits.append(c)
    meta = {"name": "p", "namespace": "ns", "uid": "u"}
    if annotations:
        meta["annotations"] = annotations
    spec = {"restartPolicy": policy, "containers": [{"name": n, "image": "busybox"} for n in containers]}
    if inits:
        spec["initContainers"] = inits
    return {"metadata": meta, "spec": spec}


def running(**kw):
    return ContainerRecord(current=Instance("running", "id", started_at="2024-05-01T12:00:00Z"), **kw)


def exited(code, **kw):
    return ContainerRecord(current=Instance("exited", "id", exit_code=code, started_at="2024-05-01T12:00:00Z",
                                            finished_at="2024-05-01T12:01:00Z",
                                            reason="Completed" if code == 0 else "Error"), **kw)


def crashloop(code=1):
    """Waiting in CrashLoopBackOff after an exit: the worker's record of a container in back-off."""
    return ContainerRecord(current=Instance("exited", "id", exit_code=code, finished_at="2024-05-01T12:01:00Z",
                                            reason="Error"),
                           restart_count=2, waiting_reason="CrashLoopBackOff", waiting_message="back-off 20s")


def waiting(reason):
    return ContainerRecord(waiting_reason=reason)


def phase_of(p, records, **kw):
    return pod_status(p, PodRecord(containers=records, **kw), NOW)["phase"]


@pytest.mark.parametrize("policy,code,expected", [
    ("Always", 0, "Running"), ("Always", 1, "Running"),
    ("OnFailure", 0, "Succeeded"), ("OnFailure", 1, "Running"),
    ("Never", 0, "Succeeded"), ("Never", 1, "Failed"),
])
def test_single_container_exit_by_policy(policy, code, expected):
    assert phase_of(pod(policy=policy), {"app": exited(code)}) == expected


@pytest.mark.parametrize("policy,code,expected", [
    # the worker has stopped the pod for good: exit codes decide, whatever the policy
    ("Always", 0, "Succeeded"), ("Always", 1, "Failed"), ("OnFailure", 1, "Failed"), ("Never", 0, "Succeeded"),
])
def test_terminal_pod_phase_from_exit_codes(policy, code, expected):
    assert phase_of(pod(policy=policy), {"app": exited(code)}, terminal=True) == expected


def test_terminal_static_pod_keeps_the_restart_policy_rule():
    static = pod(policy="Always", annotations={"kubernetes.io/config.source": "file"})
    assert phase_of(static, {"app": exited(0)}, terminal=True) == "Running"
    api = pod(policy="Always", annotations={"kubernetes.io/config.source": "api"})
    assert phase_of(api, {"app": exited(0)}, terminal=True) == "Succeeded"


@pytest.mark.parametrize("records,policy,expected", [
    ({}, "Always", "Pending"),                                              # nothing created yet
    ({"app": waiting("ErrImagePull")}, "Always", "Pending"),                # never ran
    ({"app": ContainerRecord(current=Instance("created", "id"))}, "Always", "Pending"),
    ({"app": running()}, "Always", "Pending"),                              # side not created yet
    ({"app": running(), "side": running()}, "Always", "Running"),
    ({"app": running(), "side": exited(0)}, "Never", "Running"),
    ({"app": running(), "side": waiting("ContainerCreating")}, "Always", "Pending"),
    ({"app": exited(0), "side": exited(1)}, "Never", "Failed"),
    ({"app": exited(0), "side": exited(0)}, "Never", "Succeeded"),
    ({"app": exited(0), "side": exited(1)}, "OnFailure", "Running"),
    ({"app": crashloop(), "side": running()}, "Always", "Running"),
    ({"app": crashloop(), "side": crashloop()}, "Always", "Running"),       # all restarting
])
def test_app_containers(records, policy, expected):
    assert phase_of(pod(containers=("app", "side"), policy=policy), records) == expected


@pytest.mark.parametrize("init_record,policy,expected", [
    (None, "Always", "Pending"),
    (running(), "Always", "Pending"),
    (waiting("ErrImagePull"), "Never", "Pending"),
    (exited(1), "Never", "Failed"),
    (exited(1), "OnFailure", "Pending"),
    (exited(1), "Always", "Pending"),
    (crashloop(), "Always", "Pending"),
    (exited(0), "Always", "Pending"),                   # done, the app container not created yet
])
def test_regular_init_container(init_record, policy, expected):
    records = {} if init_record is None else {"init": init_record}
    assert phase_of(pod(init=("init",), policy=policy), records) == expected


def test_init_waiting_after_a_failure_fails_a_never_pod():
    rec = ContainerRecord(current=Instance("exited", "id", exit_code=2), waiting_reason="RunContainerError")
    # Never: the waiting reason is not shown (no restart), the terminated state stays: Failed
    assert phase_of(pod(init=("init",), policy="Never"), {"init": rec}) == "Failed"


def test_init_done_then_app_running():
    assert phase_of(pod(init=("init",)), {"init": exited(0), "app": running()}) == "Running"


@pytest.mark.parametrize("records,expected", [
    ({"side": running()}, "Pending"),                       # started (no startup probe), app not yet
    ({"side": running(), "app": running()}, "Running"),
    ({"side": exited(0), "app": exited(0)}, "Succeeded"),   # a stopped sidecar does not count
    ({"side": exited(137), "app": exited(0)}, "Succeeded"),
    ({"side": exited(0), "app": exited(1)}, "Failed"),
    ({"side": crashloop(), "app": running()}, "Running"),    # restarting sidecar after initialization
])
def test_sidecars_with_never(records, expected):
    assert phase_of(pod(init=("side",), sidecars=("side",), policy="Never"), records) == expected


def test_sidecar_not_started_keeps_the_pod_pending_until_an_app_container_ran():
    p = pod(init=("side",), sidecars=("side",), startup=("side",))
    assert phase_of(p, {"side": running()}) == "Pending"                      # startup probe pending
    assert phase_of(p, {"side": running(started=True)}) == "Pending"          # app container not created
    # after initialization a sidecar that restarts does not send the pod back to Pending
    assert phase_of(p, {"side": running(), "app": running()}) == "Running"


def test_pod_level_reason_fails_the_pod():
    st = pod_status(pod(), PodRecord(containers={"app": running()}, reason="DeadlineExceeded",
                                     message="Pod was active on the node longer than the specified deadline"), NOW)
    assert (st["phase"], st["reason"]) == ("Failed", "DeadlineExceeded")
    assert st["message"] == "Pod was active on the node longer than the specified deadline"


def test_terminal_phase_is_never_left():
    p = pod(policy="Always")
    prev = {"phase": "Succeeded", "reason": "", "conditions": []}
    assert pod_status(p, PodRecord(containers={"app": running()}), NOW, prev)["phase"] == "Succeeded"
    prev = {"phase": "Failed", "reason": "DeadlineExceeded", "message": "m"}
    st = pod_status(p, PodRecord(containers={"app": running()}), NOW, prev)
    assert (st["phase"], st["reason"], st["message"]) == ("Failed", "DeadlineExceeded", "m")


def test_reason_dropped_when_the_phase_changes():
    prev = {"phase": "Pending", "reason": "SomethingOld"}
    assert "reason" not in pod_status(pod(), PodRecord(containers={"app": running()}), NOW, prev)
    prev = {"phase": "Running", "reason": "Kept"}
    assert pod_status(pod(), PodRecord(containers={"app": running()}), NOW, prev)["reason"] == "Kept"


# -- statuses the records cannot produce: missing or empty container statuses --

def _s(name, state, **kw):
    return {"name": name, "state": state, **kw}


@pytest.mark.parametrize("statuses,expected", [
    ([], "Pending"),                                                                   # unknown
    ([_s("app", {"running": {}})], "Pending"),                                          # other unknown
    ([_s("app", {"running": {}}), _s("side", {})], "Pending"),                          # empty state: unknown
    ([_s("app", {"terminated": {"exitCode": 0}})], "Pending"),                          # stopped + unknown
    ([_s("app", {"running": {}}), _s("side", {"terminated": {"exitCode": 0}})], "Running"),
])
def test_unknown_app_containers(statuses, expected):
    assert get_phase(pod(containers=("app", "side")), [], statuses) == expected


def test_sidecar_waiting_without_a_run_is_pending_even_after_initialization():
    p = pod(init=("side",), sidecars=("side",))
    init = [_s("side", {"waiting": {"reason": "ErrImagePull"}})]
    apps = [_s("app", {"running": {}})]
    assert get_phase(p, init, apps, has_initialized=True) == "Pending"
    assert get_phase(p, [], apps, has_initialized=True) == "Pending"        # sidecar unknown
