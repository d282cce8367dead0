"""The worker's record values (validation, immutability) and the kubelet's message formats."""

from __future__ import annotations

import dataclasses

import pytest

from kubelet_py.status import ContainerRecord, Instance, PodRecord, RecordError, Terminated
from kubelet_py.status import reasons


@pytest.mark.parametrize("make,field", [
    (lambda: Instance("paused"), "state"),
    (lambda: Instance("exited"), "exit_code"),
    (lambda: Instance("running", started_at="yesterday"), "started_at"),
    (lambda: Terminated("1"), "exit_code"),
    (lambda: Terminated(0, finished_at="2024-13-01T00:00:00Z"), "finished_at"),
    (lambda: ContainerRecord(restart_count=-1), "restart_count"),
    (lambda: PodRecord(containers={"c": "running"}), "containers[c]"),
    (lambda: PodRecord(conditions={"gate": "yes"}), "conditions[gate]"),
    (lambda: PodRecord(start_time="soon"), "start_time"),
])
def test_invalid_records_name_the_field(make, field):
    with pytest.raises(RecordError) as e:
        make()
    assert e.value.field == field


def test_records_are_immutable():
    source = {"c": ContainerRecord()}
    rec = PodRecord(containers=source, pod_ips=["10.0.0.1"])
    source["d"] = ContainerRecord()
    assert list(rec.containers) == ["c"] and rec.pod_ips == ("10.0.0.1",)
    with pytest.raises(TypeError):
        rec.containers["x"] = ContainerRecord()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.deleting = True
    updated = dataclasses.replace(rec, deleting=True)
    assert updated.deleting and not rec.deleting and rec.container("c") is not None and rec.container("x") is None


def test_instance_terminated_and_state():
    inst = Instance("exited", "id", exit_code=137, signal=9, reason="OOMKilled", finished_at="2024-05-01T12:00:00Z")
    assert inst.terminated() == Terminated(137, "OOMKilled", signal=9, finished_at="2024-05-01T12:00:00Z", container_id="id")
    assert ContainerRecord(current=inst).state == "exited" and ContainerRecord().state is None


@pytest.mark.parametrize("code,oom,reason", [(0, False, "Completed"), (1, False, "Error"), (137, True, "OOMKilled"),
                                             (143, False, "Error")])
def test_terminated_reason(code, oom, reason):
    assert reasons.terminated_reason(code, oom) == reason


POD = {"metadata": {"name": "web", "namespace": "prod", "uid": "u-1"}}


def test_hook_failure_messages():
    assert reasons.exec_hook_failure_message(["sh", "-c", "exit 3"], "c", POD, "command terminated with exit code 3",
                                             "bad\n") == (
        'Exec lifecycle hook ([sh -c exit 3]) for Container "c" in Pod "web_prod(u-1)" failed - error: '
        'command terminated with exit code 3, message: "bad\\n"')
    assert reasons.http_hook_failure_message("/start", "c", POD, "connection refused") == (
        'HTTP lifecycle hook (/start) for Container "c" in Pod "web_prod(u-1)" failed - error: connection refused')


def test_image_never_pull_and_quoting():
    assert reasons.image_never_pull_message("app:v1") == 'Container image "app:v1" is not present with pull policy of Never'
    assert reasons.go_quote('a"b\\c\td\x01') == '"a\\"b\\\\c\\td\\x01"'
    assert reasons.pod_ref(POD) == "web_prod(u-1)"
    assert reasons.go_json({"b": [1, "<"], "a": None}) == '{"a":null,"b":[1,"\\u003c"]}'
