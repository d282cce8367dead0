"""Probe policy (pure): what a worker does at a tick, thresholds, events, the results cache, counters."""

from __future__ import annotations

import pytest

from kubelet_py.prober import ProberMetrics, ProbeType, Result, ResultsManager, Update, kill_message
from kubelet_py.prober.policy import INITIAL, Action, ThresholdState, decide, event_for, metric_label

L, R, S = ProbeType.LIVENESS, ProbeType.READINESS, ProbeType.STARTUP
OK, FAIL = Result.SUCCESS, Result.FAILURE


def test_initial_values():
    assert INITIAL == {R: FAIL, L: OK, S: Result.UNKNOWN}


def _decide(kind, **kw):
    args = dict(has_container=True, on_hold=False, running=True, deleting=False, started=True, delay_over=True)
    args.update(kw)
    return decide(kind, **args)


@pytest.mark.parametrize("kind", list(ProbeType))
def test_no_container_or_on_hold_idles(kind):
    assert _decide(kind, has_container=False) is Action.IDLE
    assert _decide(kind, on_hold=True, running=False, deleting=True) is Action.IDLE


@pytest.mark.parametrize("kind", list(ProbeType))
def test_not_running_records_failure(kind):
    assert _decide(kind, running=False) is Action.NOT_RUNNING


def test_deletion_finishes_liveness_and_startup_only():
    assert _decide(L, deleting=True) is Action.FINISH
    assert _decide(S, deleting=True, started=False) is Action.FINISH
    assert _decide(R, deleting=True) is Action.PROBE


@pytest.mark.parametrize("kind", list(ProbeType))
def test_initial_delay(kind):
    assert _decide(kind, delay_over=False, started=kind is not S) is Action.DELAY


def test_startup_gates_the_others_and_stops_after_success():
    assert _decide(S, started=False) is Action.PROBE
    assert _decide(S, started=True) is Action.SKIP
    for kind in (L, R):
        assert _decide(kind, started=False) is Action.SKIP
        assert _decide(kind, started=True) is Action.PROBE


def test_failure_threshold_needs_that_many_in_a_row():
    st = ThresholdState(R, 1, 3)
    assert [st.observe(FAIL).record for _ in range(2)] == [None, None]
    assert st.observe(OK).record is OK  # success threshold 1: at once, and the failure run is broken
    assert [st.observe(FAIL).record for _ in range(3)] == [None, None, FAIL]
    assert st.observe(FAIL).record is FAIL  # still over the threshold: recorded again (the cache dedups)


def test_success_threshold():
    st = ThresholdState(R, 3, 1)
    assert st.observe(FAIL).record is FAIL
    assert [st.observe(OK).record for _ in range(3)] == [None, None, OK]


def test_warning_counts_as_success_and_unknown_is_not_counted():
    st = ThresholdState(R, 2, 1)
    assert st.observe(Result.WARNING).record is None
    assert st.observe(OK).record is OK
    with pytest.raises(ValueError):
        st.observe(Result.UNKNOWN)


@pytest.mark.parametrize("kind", [L, S])
def test_liveness_and_startup_kill_at_the_threshold_and_hold(kind):
    st = ThresholdState(kind, 1, 2)
    assert st.observe(FAIL).kill is False
    d = st.observe(FAIL)
    assert d.record is FAIL and d.kill and st.on_hold and st.run == 0
    st.reset()
    assert not st.on_hold and st.last is None


def test_readiness_never_kills():
    st = ThresholdState(R, 1, 1)
    d = st.observe(FAIL)
    assert d.record is FAIL and not d.kill and not st.on_hold


def test_events_and_messages():
    assert event_for(L, FAIL, "boom") == ("Warning", "Unhealthy", "Liveness probe failed: boom")
    assert event_for(R, Result.WARNING, "Probe terminated redirects, Response body: ") == \
        ("Warning", "ProbeWarning", "Readiness probe warning: Probe terminated redirects, Response body: ")
    assert event_for(S, Result.UNKNOWN, "", "port x not found") == \
        ("Warning", "Unhealthy", "Startup probe errored and resulted in unknown state: port x not found")
    assert event_for(L, OK, "fine") is None
    assert kill_message(L, "web") == "Container web failed liveness probe, will be restarted"
    assert kill_message(S, "web") == "Container web failed startup probe, will be restarted"


def test_results_manager_announces_changes_only():
    seen: list[Update] = []
    m = ResultsManager(seen.append)
    assert m.set("c1", R, FAIL, pod="uid", container="web") is True
    assert m.set("c1", R, FAIL) is False
    assert m.set("c1", R, OK, pod="uid", container="web") is True
    assert m.set("c1", L, OK) is True
    assert [(u.container_id, u.kind, u.result, u.pod, u.container) for u in seen] == [
        ("c1", R, FAIL, "uid", "web"), ("c1", R, OK, "uid", "web"), ("c1", L, OK, "", "")]
    assert m.get("c1", R) is OK and m.get("c2", R) is None
    assert m.results("c1") == {R: OK, L: OK}
    m.remove("c1", R)
    assert m.get("c1", R) is None and m.get("c1", L) is OK
    m.remove("c1")
    assert len(m) == 0 and len(seen) == 3  # removal tells nobody


def test_results_manager_survives_a_broken_listener():
    def broken(update):
        raise RuntimeError("listener bug")

    m = ResultsManager(broken)
    assert m.set("c", R, OK) is True and m.get("c", R) is OK


def test_metrics_count_per_type_and_result():
    m = ProberMetrics()
    m.observe(L, OK, 0.5)
    m.observe(L, Result.WARNING, 0.25)
    m.observe(L, FAIL, 1.0)
    m.observe(R, Result.UNKNOWN, 2.0)
    assert m.probe_total == {("liveness", "successful"): 2, ("liveness", "failed"): 1, ("readiness", "unknown"): 1}
    assert m.duration_sum[("liveness", "successful")] == 0.75
    assert metric_label(FAIL) == "failed"
