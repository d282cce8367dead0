"""Restart decisions (kubelet-semantics 1.4, 1.5): should a container start now, which init
container runs next, is the pod done."""

from __future__ import annotations

import pytest

from kubelet_py.status import (Backoff, ContainerRecord, Instance, PodRecord, app_containers_to_start, init_plan,
                               past_active_deadline, pod_done, should_start, start_decision, stop_order)
from kubelet_py.status.decide import UnknownContainerError


def pod(policy="Always", init=(), sidecars=(), startup=(), apps=("app",), deadline=None):
    inits = []
    for name in init:
        c = {"name": name, "image": "x"}
        if name in sidecars:
            c["restartPolicy"] = "Always"
        if name in startup:
            c["startupProbe"] = {"exec": {"command": ["true"]}}
        inits.append(c)
    spec = {"restartPolicy": policy, "containers": [{"name": n, "image": "x"} for n in apps], "initContainers": inits}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec}


def rec(state, code=None, **kw):
    return ContainerRecord(current=Instance(state, "id", exit_code=code,
                                            finished_at="1970-01-01T00:01:40Z" if state == "exited" else None), **kw)


NEVER_RAN = ContainerRecord(waiting_reason="ErrImagePull")


@pytest.mark.parametrize("policy,record,expected", [
    ("Always", None, True), ("Never", None, True), ("Never", NEVER_RAN, True),   # never started: start
    ("Always", rec("running"), False), ("Never", rec("running"), False),
    ("Never", rec("created"), True), ("Never", rec("unknown"), True),
    ("Always", rec("exited", 0), True), ("Always", rec("exited", 1), True),
    ("OnFailure", rec("exited", 0), False), ("OnFailure", rec("exited", 1), True),
    ("Never", rec("exited", 0), False), ("Never", rec("exited", 1), False),
])
def test_should_start_app_container(policy, record, expected):
    assert should_start(pod(policy), "app", record) is expected


@pytest.mark.parametrize("record", [None, rec("exited", 1), rec("created")])
def test_nothing_starts_while_deleting(record):
    assert should_start(pod(), "app", record, deleting=True) is False


@pytest.mark.parametrize("policy,code,expected", [
    ("Never", 0, True), ("Never", 1, True), ("OnFailure", 0, True),     # sidecar: always restarts
])
def test_should_start_sidecar(policy, code, expected):
    assert should_start(pod(policy, init=("side",), sidecars=("side",)), "side", rec("exited", code)) is expected


@pytest.mark.parametrize("policy,code,expected", [
    ("Always", 0, False), ("Always", 1, True), ("OnFailure", 1, True), ("Never", 1, False), ("Never", 0, False),
])
def test_should_start_regular_init(policy, code, expected):
    assert should_start(pod(policy, init=("init",)), "init", rec("exited", code)) is expected


def test_unknown_container_name():
    with pytest.raises(UnknownContainerError):
        should_start(pod(), "nope", None)


def test_start_decision_applies_the_crash_loop_backoff():
    p, b = pod(), Backoff()
    first = start_decision(p, "app", rec("exited", 1), backoff=b, now=100.0)
    assert first.start and first.exited_at == "1970-01-01T00:01:40Z" and first.backoff_key.startswith("p_ns_u_app_")
    b.next(first.backoff_key, 100.0, first.exited_at)             # the worker restarts it
    second = start_decision(p, "app", rec("exited", 1, restart_count=1), backoff=b, now=103.0)
    assert not second.start and second.wait == pytest.approx(7.0) and second.reason == "CrashLoopBackOff"
    assert second.message == "back-off 10s restarting failed container=app pod=p_ns(u)"
    assert start_decision(p, "app", rec("exited", 1), backoff=b, now=110.0).start


def test_start_decision_without_restart_or_exit():
    b = Backoff()
    assert not start_decision(pod("Never"), "app", rec("exited", 1), backoff=b, now=0.0).start
    assert start_decision(pod("Never"), "app", rec("exited", 1), backoff=b, now=0.0).wait == 0
    fresh = start_decision(pod(), "app", None, backoff=b, now=0.0)
    assert fresh.start and fresh.exited_at is None


def test_backoff_uses_the_previous_exit_when_the_current_instance_never_ran():
    from kubelet_py.status import Terminated
    p, b = pod(), Backoff()
    key = start_decision(p, "app", None, backoff=b, now=0.0).backoff_key
    b.next(key, 100.0, 100.0)
    stuck = ContainerRecord(current=Instance("created", "id2"),
                            previous=Terminated(1, finished_at="1970-01-01T00:01:45Z"))
    d = start_decision(p, "app", stuck, backoff=b, now=106.0)
    assert not d.start and d.wait == pytest.approx(9.0)


def recs(**kw):
    return PodRecord(containers=kw)


@pytest.mark.parametrize("records,start,initialized,failed", [
    ({}, ("one",), False, ""),
    ({"one": rec("running")}, (), False, ""),
    ({"one": rec("created")}, ("one",), False, ""),
    ({"one": rec("exited", 0)}, ("two",), False, ""),
    ({"one": rec("exited", 1)}, ("one",), False, ""),                 # retried (Always acts as OnFailure)
    ({"one": rec("exited", 0), "two": rec("running")}, (), False, ""),
    ({"one": rec("exited", 0), "two": rec("exited", 0)}, (), True, ""),
    ({"one": rec("exited", 0), "two": rec("unknown")}, ("two",), False, ""),
    ({"one": rec("exited", 0), "two": rec("exited", 0), "app": rec("running")}, (), True, ""),
    ({"app": rec("running")}, (), True, ""),                          # init records gone: not re-run
])
def test_init_plan_one_at_a_time(records, start, initialized, failed):
    plan = init_plan(pod(init=("one", "two")), recs(**records))
    assert (plan.start, plan.initialized, plan.failed) == (start, initialized, failed)


@pytest.mark.parametrize("state,code", [("exited", 2), ("unknown", None)])
def test_init_failure_with_never_fails_the_pod(state, code):
    plan = init_plan(pod("Never", init=("one", "two")), recs(one=rec("exited", 0), two=rec(state, code)))
    assert (plan.start, plan.initialized, plan.failed) == ((), False, "two")
    assert pod_done(pod("Never", init=("one", "two")), recs(one=rec("exited", 0), two=rec(state, code)))


@pytest.mark.parametrize("side,start,initialized", [
    (rec("running"), ("after",), False),                      # started (no startup probe): next one
    (rec("running", started=None), ("after",), False),
    (rec("exited", 0), ("side",), False),                      # a sidecar restarts whatever its exit
])
def test_init_plan_sidecar_without_startup_probe(side, start, initialized):
    plan = init_plan(pod(init=("side", "after"), sidecars=("side",)), recs(side=side))
    assert (plan.start, plan.initialized) == (start, initialized)


@pytest.mark.parametrize("started,start", [(None, ()), (False, ("side",)), (True, ("after",))])
def test_init_plan_sidecar_waits_for_its_startup_probe(started, start):
    p = pod(init=("side", "after"), sidecars=("side",), startup=("side",))
    assert init_plan(p, recs(side=rec("running", started=started))).start == start


def test_init_plan_last_sidecar_started_initializes():
    p = pod(init=("one", "side"), sidecars=("side",))
    plan = init_plan(p, recs(one=rec("exited", 0), side=rec("running")))
    assert plan.initialized and plan.start == ()


def test_init_plan_restarts_sidecars_after_initialization():
    p = pod(init=("one", "side"), sidecars=("side",))
    plan = init_plan(p, recs(one=rec("exited", 0), side=rec("exited", 137), app=rec("running")))
    assert plan.initialized and plan.start == ("side",)
    # a vanished sidecar is started again, a vanished regular init container is not
    plan = init_plan(p, recs(app=rec("running")))
    assert plan.start == ("side",)


def test_app_containers_wait_for_initialization():
    p = pod(init=("one",), apps=("a", "b"))
    assert app_containers_to_start(p, recs(one=rec("running"))) == ()
    assert app_containers_to_start(p, recs(one=rec("exited", 0))) == ("a", "b")
    assert app_containers_to_start(p, recs(one=rec("exited", 0), a=rec("running"))) == ("b",)
    deleting = PodRecord(containers={"one": rec("exited", 0)}, deleting=True)
    assert app_containers_to_start(p, deleting) == ()


@pytest.mark.parametrize("policy,a,b,done", [
    ("Never", rec("exited", 0), rec("exited", 1), True),
    ("OnFailure", rec("exited", 0), rec("exited", 0), True),
    ("OnFailure", rec("exited", 0), rec("exited", 1), False),
    ("Always", rec("exited", 0), rec("exited", 0), False),
    ("Never", rec("exited", 0), rec("running"), False),
    ("Never", rec("exited", 0), None, False),
])
def test_pod_done(policy, a, b, done):
    records = {"a": a} | ({"b": b} if b else {})
    assert pod_done(pod(policy, apps=("a", "b")), PodRecord(containers=records)) is done


def test_pod_done_ignores_running_sidecars_and_waits_for_init():
    p = pod("Never", init=("side",), sidecars=("side",))
    assert pod_done(p, recs(side=rec("running"), app=rec("exited", 0)))
    assert not pod_done(pod("Never", init=("one",)), recs(one=rec("running")))


def test_pod_done_while_deleting_once_nothing_runs():
    p = pod(init=("side",), sidecars=("side",))
    assert not pod_done(p, PodRecord(containers={"side": rec("running"), "app": rec("exited", 0)}, deleting=True))
    assert pod_done(p, PodRecord(containers={"side": rec("exited", 0), "app": rec("exited", 143)}, deleting=True))


def test_stop_order():
    p = pod(init=("init", "s1", "s2"), sidecars=("s1", "s2"), apps=("a", "b"))
    assert stop_order(p) == [["init", "a", "b"], ["s2"], ["s1"]]
    assert stop_order(pod()) == [["app"]]


@pytest.mark.parametrize("deadline,start,now,past", [
    (None, "1970-01-01T00:00:00Z", 10**9, False),
    (30, None, 10**9, False),
    (30, "1970-01-01T00:00:00Z", 29.9, False),
    (30, "1970-01-01T00:00:00Z", 30.0, True),
])
def test_past_active_deadline(deadline, start, now, past):
    assert past_active_deadline(pod(deadline=deadline), start, now) is past
