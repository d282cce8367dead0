"""The event recorder (client-go's correlator: spam filter, aggregation, dedup) and the
kubelet's event reasons and messages."""

from __future__ import annotations

import pytest

from kubelet_py.status import EventRecorder, EventSpec
from kubelet_py.status import events as ev

POD = {"metadata": {"name": "web", "namespace": "prod", "uid": "u-1"},
       "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "c"}]}}
OTHER = {"metadata": {"name": "db", "namespace": "prod", "uid": "u-2"}, "spec": {"containers": [{"name": "c"}]}}


def test_repeats_count_up_on_one_event():
    r = EventRecorder(host="node1")
    first = r.record(POD, ev.backoff_restart(POD, "c"), 100.0)
    again = r.record(POD, ev.backoff_restart(POD, "c"), 130.0)
    third = r.record(POD, ev.backoff_restart(POD, "c"), 190.0)
    assert first.count == 1 and again.count == 2 and third.count == 3
    assert third.first_timestamp == 100.0 and third.last_timestamp == 190.0 and third.name == first.name
    assert len(r.events(POD, 200.0)) == 1


def test_different_field_path_message_or_object_is_a_different_event():
    r = EventRecorder()
    r.record(POD, ev.started(POD, "c"), 1.0)
    r.record(POD, ev.started(POD, "init"), 2.0)
    r.record(POD, ev.killing(POD, "c"), 3.0)
    r.record(OTHER, ev.started(OTHER, "c"), 4.0)
    assert [e.reason for e in r.events(POD, 5.0)] == ["Started", "Started", "Killing"]
    assert [e.involved.field_path for e in r.events(POD, 5.0)][:2] == ["spec.containers{c}", "spec.initContainers{init}"]
    assert len(r.events(OTHER, 5.0)) == 1


def test_events_sorted_by_last_timestamp_and_ttl():
    r = EventRecorder(ttl=3600)
    r.record(POD, ev.pulling(POD, "c", "x"), 10.0)
    r.record(POD, ev.created(POD, "c"), 20.0)
    r.record(POD, ev.pulling(POD, "c", "x"), 30.0)          # updated: now the newest
    assert [e.reason for e in r.events(POD, 40.0)] == ["Created", "Pulling"]
    assert [e.reason for e in r.events(POD, 3620.5)] == ["Pulling"]
    again = r.record(POD, ev.created(POD, "c"), 4000.0)      # a repeat after the TTL shows up again
    assert again.count == 2 and again.first_timestamp == 20.0


def test_similar_events_aggregate_after_ten_within_ten_minutes():
    r = EventRecorder(spam_burst=None)
    for i in range(9):
        e = r.record(POD, ev.unhealthy(POD, "c", "liveness", f"output {i}"), float(i))
        assert e.message == f"Liveness probe failed: output {i}"
    tenth = r.record(POD, ev.unhealthy(POD, "c", "liveness", "output 9"), 9.0)
    assert tenth.message == "(combined from similar events): Liveness probe failed: output 9"
    eleventh = r.record(POD, ev.unhealthy(POD, "c", "liveness", "output 10"), 10.0)
    assert eleventh.count == 2 and eleventh.message.endswith("output 10") and eleventh.name == tenth.name
    # a gap of more than 10 minutes starts a fresh window
    fresh = r.record(POD, ev.unhealthy(POD, "c", "liveness", "output 11"), 10.0 + 601)
    assert fresh.message == "Liveness probe failed: output 11" and fresh.count == 1


def test_spam_filter_burst_and_refill():
    r = EventRecorder(spam_burst=25, spam_refill_seconds=300)
    results = [r.record(POD, ev.backoff_restart(POD, "c"), float(i)) for i in range(30)]
    assert all(e is not None for e in results[:25]) and all(e is None for e in results[25:])
    assert r.events(POD, 30.0)[0].count == 25
    assert r.record(POD, ev.backoff_restart(POD, "c"), 30.0 + 300).count == 26     # one token back
    assert r.record(POD, ev.backoff_restart(POD, "c"), 30.0 + 300) is None
    # the scheduler is another source, another bucket
    assert r.record(POD, ev.scheduled(POD, "node1"), 331.0) is not None


def test_bounded_per_pod():
    r = EventRecorder(max_per_pod=3, spam_burst=None)
    for i in range(5):
        r.record(POD, EventSpec("Normal", f"R{i}", "m"), float(i))
    assert [e.reason for e in r.events(POD, 5.0)] == ["R2", "R3", "R4"]


def test_forget():
    r = EventRecorder(spam_burst=1)
    r.record(POD, ev.started(POD, "c"), 1.0)
    assert r.record(POD, ev.started(POD, "c"), 2.0) is None
    r.forget(POD)
    assert r.events(POD, 3.0) == [] and r.record(POD, ev.started(POD, "c"), 3.0) is not None


def test_event_as_v1_dict():
    r = EventRecorder(host="node1")
    e = r.record(POD, ev.created(POD, "c"), 1714564800.5)
    d = e.as_dict()
    assert d["metadata"] == {"name": "web.17cb5b9a1630e500", "namespace": "prod"}
    assert d["involvedObject"] == {"kind": "Pod", "namespace": "prod", "name": "web", "uid": "u-1",
                                   "apiVersion": "v1", "fieldPath": "spec.containers{c}"}
    assert d["source"] == {"component": "kubelet", "host": "node1"}
    assert (d["firstTimestamp"], d["lastTimestamp"], d["count"], d["type"]) == \
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z", 1, "Normal")


@pytest.mark.parametrize("spec,type_,reason,message", [
    (ev.scheduled(POD, "node1"), "Normal", "Scheduled", "Successfully assigned prod/web to node1"),
    (ev.pulling(POD, "c", "nginx:1.25"), "Normal", "Pulling", 'Pulling image "nginx:1.25"'),
    (ev.pulled(POD, "c", "nginx", 1.2345678, 1.5, 187534), "Normal", "Pulled",
     'Successfully pulled image "nginx" in 1.234s (1.5s including waiting). Image size: 187534 bytes.'),
    (ev.pulled(POD, "c", "nginx", 0.5234, 65.0, 1), "Normal", "Pulled",
     'Successfully pulled image "nginx" in 523ms (1m5s including waiting). Image size: 1 bytes.'),
    (ev.already_present(POD, "c", "nginx"), "Normal", "Pulled", 'Container image "nginx" already present on machine'),
    (ev.pull_failed(POD, "c", "nope", "not found"), "Warning", "Failed", 'Failed to pull image "nope": not found'),
    (ev.failed(POD, "c", "ErrImagePull"), "Warning", "Failed", "Error: ErrImagePull"),
    (ev.pull_backoff(POD, "c", "nope"), "Normal", "BackOff", 'Back-off pulling image "nope"'),
    (ev.image_never_pull(POD, "c", "x"), "Warning", "ErrImageNeverPull",
     'Container image "x" is not present with pull policy of Never'),
    (ev.created(POD, "c"), "Normal", "Created", "Created container: c"),
    (ev.started(POD, "c"), "Normal", "Started", "Started container c"),
    (ev.killing(POD, "c"), "Normal", "Killing", "Stopping container c"),
    (ev.killing(POD, "c", ev.probe_kill_message("c", "liveness")), "Normal", "Killing",
     "Container c failed liveness probe, will be restarted"),
    (ev.unhealthy(POD, "c", "liveness", "HTTP probe failed with statuscode: 500"), "Warning", "Unhealthy",
     "Liveness probe failed: HTTP probe failed with statuscode: 500"),
    (ev.unhealthy(POD, "c", "readiness", "x"), "Warning", "Unhealthy", "Readiness probe failed: x"),
    (ev.probe_warning(POD, "c", "readiness", "Probe terminated redirects"), "Warning", "ProbeWarning",
     "Readiness probe warning: Probe terminated redirects"),
    (ev.backoff_restart(POD, "c"), "Warning", "BackOff", "Back-off restarting failed container c in pod web_prod(u-1)"),
    (ev.failed_post_start_hook(POD, "c"), "Warning", "FailedPostStartHook", "PostStartHook failed"),
    (ev.failed_pre_stop_hook(POD, "c"), "Warning", "FailedPreStopHook", "PreStopHook failed"),
    (ev.deadline_exceeded(POD), "Normal", "DeadlineExceeded",
     "Pod was active on the node longer than the specified deadline"),
])
def test_kubelet_events(spec, type_, reason, message):
    assert (spec.type, spec.reason, spec.message) == (type_, reason, message)


def test_event_sources_and_field_paths():
    assert ev.scheduled(POD, "n").component == "default-scheduler" and ev.scheduled(POD, "n").field_path == ""
    assert ev.started(POD, "init").field_path == "spec.initContainers{init}"
    assert ev.deadline_exceeded(POD).field_path == "" and ev.started(POD, "c").component == "kubelet"
    assert ev.pulling(POD, "c", 'we"ird').message == 'Pulling image "we\\"ird"'
