"""Container statuses (`status.containerStatuses`, `status.initContainerStatuses`) from the
worker's records (pure), following upstream's convertToAPIContainerStatuses and the probe
manager's UpdatePodStatus.

For each container of the spec:
- no instance yet: `waiting` with the default reason (PodInitializing when the pod has init
  containers, else ContainerCreating), restartCount and lastState carried over from the
  previous status; a container whose previous status was terminated keeps it;
- running -> `running{startedAt}`; created -> `waiting{}`; exited -> `terminated{...}`;
  unknown after running -> `terminated` ContainerStatusUnknown (exit 137, restartCount + 1);
- the worker's waiting reason replaces the state while the container would be (re)started
  (the terminated state then moves to lastState);
- `lastState.terminated` is the previous instance's end;
- `started`: running, and the startup probe passed or there is none;
- `ready`: started, running, and the readiness probe passed or there is none; a regular init
  container is ready once it exited 0.

Init container statuses keep spec order; app container statuses are sorted by name, as upstream
sorts them.
"""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

from . import podspec, reasons
from .decide import should_start
from .records import CREATED, EXITED, RUNNING, UNKNOWN, ContainerRecord, Terminated
from .timefmt import normalize

CONTAINER_ID_SCHEME = "kubelet-py://"


def container_id(runtime_id: str) -> str:
    """The status's containerID for a runtime id (`kubelet-py://<id>`; empty stays empty)."""
    if not runtime_id:
        return ""
    return runtime_id if "://" in runtime_id else CONTAINER_ID_SCHEME + runtime_id


def terminated_dict(t: Terminated) -> dict:
    """A `Terminated` in the API's shape (`exitCode` always, the rest when set; times are null
    when unknown, as a zero metav1.Time marshals)."""
    out: dict = {"exitCode": t.exit_code}
    if t.signal:
        out["signal"] = t.signal
    if t.reason:
        out["reason"] = t.reason
    if t.message:
        out["message"] = t.message
    out["startedAt"] = normalize(t.started_at)
    out["finishedAt"] = normalize(t.finished_at)
    if t.container_id:
        out["containerID"] = container_id(t.container_id)
    return out


def _waiting(reason: str = "", message: str = "") -> dict:
    w: dict = {}
    if reason:
        w["reason"] = reason
    if message:
        w["message"] = message
    return {"waiting": w}


def _from_record(rec: ContainerRecord, old: Mapping | None, spec_image: str) -> dict:
    """upstream's convertContainerStatus for the current instance."""
    cur = rec.current
    assert cur is not None
    status: dict = {
        "name": "",
        "state": {},
        "lastState": {},
        "ready": False,
        "restartCount": rec.restart_count,
        "image": cur.image or spec_image,
        "imageID": cur.image_id,
    }
    cid = container_id(cur.container_id)
    if cid:
        status["containerID"] = cid
    old_state = (old or {}).get("state") or {}
    if cur.state == RUNNING:
        status["state"] = {"running": {"startedAt": normalize(cur.started_at)}}
    elif cur.state == CREATED:
        status["state"] = _waiting()
    elif cur.state == EXITED:
        status["state"] = {"terminated": terminated_dict(cur.terminated())}
    elif cur.state == UNKNOWN and "running" in old_state:
        status["state"] = {"terminated": {"exitCode": 137, "reason": reasons.CONTAINER_STATUS_UNKNOWN,
                                          "message": reasons.LOST_WHEN_TERMINATED,
                                          "startedAt": None, "finishedAt": None}}
        status["restartCount"] = int((old or {}).get("restartCount", 0)) + 1
    else:
        status["state"] = _waiting()
    if rec.previous is not None:
        status["lastState"] = {"terminated": terminated_dict(rec.previous)}
    return status


def _one(pod: Mapping, c: Mapping, rec: ContainerRecord | None, old: Mapping | None, has_init: bool,
         deleting: bool) -> dict:
    name = c.get("name", "")
    default_reason = reasons.POD_INITIALIZING if has_init else reasons.CONTAINER_CREATING
    if rec is not None and rec.current is not None:
        status = _from_record(rec, old, c.get("image", ""))
    else:
        status = {"name": name, "state": _waiting(default_reason), "lastState": {}, "ready": False,
                  "restartCount": 0, "image": c.get("image", ""), "imageID": ""}
        if old:
            if "terminated" in (old.get("state") or {}):
                status = copy.deepcopy(dict(old))
            else:
                status["restartCount"] = int(old.get("restartCount", 0))
                status["lastState"] = copy.deepcopy(old.get("lastState") or {})
                was_running = "running" in (old.get("state") or {})
                if was_running and "terminated" not in status["lastState"]:
                    # it ran and vanished: it stopped, it is not a container that never started
                    status["lastState"] = {"terminated": {
                        "exitCode": 137, "reason": reasons.CONTAINER_STATUS_UNKNOWN,
                        "message": reasons.LOST_WHEN_DELETED, "startedAt": None, "finishedAt": None}}
                    if not deleting:
                        status["restartCount"] += 1
        if rec is not None:
            status["restartCount"] = max(status["restartCount"], rec.restart_count)
            if rec.previous is not None and "terminated" not in status["lastState"]:
                status["lastState"] = {"terminated": terminated_dict(rec.previous)}
    status["name"] = name
    if rec is not None and rec.waiting_reason and should_start(pod, name, rec, deleting=deleting):
        if "terminated" in status["state"]:
            status["lastState"] = status["state"]
        status["state"] = _waiting(rec.waiting_reason, rec.waiting_message)
    return status


def _set_probe_fields(status: dict, c: Mapping, rec: ContainerRecord | None, is_init: bool) -> None:
    running = "running" in status["state"]
    started = running and (not c.get("startupProbe") or bool(rec is not None and rec.started))
    status["started"] = started
    if is_init and not podspec.is_sidecar(c):
        term = status["state"].get("terminated")
        status["ready"] = bool(term is not None and term.get("exitCode") == 0)
        return
    status["ready"] = bool(started and running and
                           (not c.get("readinessProbe") or (rec is not None and rec.ready)))


def container_statuses(pod: Mapping, records: Mapping[str, ContainerRecord], previous: Sequence[Mapping] | None,
                       *, init: bool, deleting: bool = False) -> list[dict]:
    """The statuses of the pod's init containers (`init=True`, spec order) or app containers
    (sorted by name). `previous` is the same list from the previous status."""
    specs = podspec.init_containers(pod) if init else podspec.containers(pod)
    has_init = bool(podspec.init_containers(pod))
    old_by_name = {s.get("name"): s for s in (previous or [])}
    out = []
    for c in specs:
        rec = records.get(c.get("name", ""))
        status = _one(pod, c, rec, old_by_name.get(c.get("name")), has_init, deleting)
        _set_probe_fields(status, c, rec, init)
        out.append(status)
    if not init:
        out.sort(key=lambda s: s["name"])
    return out
