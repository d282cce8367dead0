"""Pod conditions (pure), as kubelet/status/generate.go computes them.

- PodReadyToStartContainers: True once the sandbox and its network exist.
- Initialized: True when every regular init container is ready (exited 0) and every sidecar has
  started, or once any app container has started (running or terminated); in the Succeeded phase
  with every init status known, True with reason PodCompleted. Otherwise False,
  ContainersNotInitialized, `containers with incomplete status: [a b]`.
- ContainersReady: True when every sidecar and app container is ready. Otherwise False,
  ContainersNotReady, `containers with unready status: [a b]` (unknown ones:
  `containers with unknown status: [..]`); in a terminal phase False with PodCompleted/PodFailed.
- Ready: ContainersReady's status, reason and message when not True; else every readiness gate's
  condition must be True (ReadinessGatesNotReady otherwise).
- PodScheduled: always True.

`lastTransitionTime` is kept from the previous condition of the same type when its status did
not change (the status manager's updateLastTransitionTime), else it is `now`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from . import podspec, reasons
from .phase import FAILED, SUCCEEDED
from .timefmt import rfc3339

POD_SCHEDULED = "PodScheduled"
READY_TO_START = "PodReadyToStartContainers"
INITIALIZED = "Initialized"
CONTAINERS_READY = "ContainersReady"
READY = "Ready"
KUBELET_OWNED = (POD_SCHEDULED, READY_TO_START, INITIALIZED, CONTAINERS_READY, READY,
                 "PodResizePending", "PodResizeInProgress")


def _cond(ctype: str, status: bool | str, reason: str = "", message: str = "") -> dict:
    c: dict = {"type": ctype, "status": status if isinstance(status, str) else ("True" if status else "False")}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _go_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"


def _any_app_started(pod: Mapping, by_name: Mapping[str, Mapping]) -> bool:
    for c in podspec.containers(pod):
        state = (by_name.get(c.get("name")) or {}).get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


def initialized(pod: Mapping, statuses: Sequence[Mapping], phase: str) -> dict:
    by_name = {s.get("name"): s for s in statuses}
    unknown: list[str] = []
    incomplete: list[str] = []
    for c in podspec.init_containers(pod):
        s = by_name.get(c.get("name"))
        if s is None:
            unknown.append(c.get("name", ""))
            continue
        done = bool(s.get("started")) if podspec.is_sidecar(c) else bool(s.get("ready"))
        if not done:
            incomplete.append(c.get("name", ""))
    if phase == SUCCEEDED and not unknown:
        return _cond(INITIALIZED, True, reasons.POD_COMPLETED)
    if _any_app_started(pod, by_name):
        return _cond(INITIALIZED, True)
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if incomplete:
        messages.append(f"containers with incomplete status: {_go_list(incomplete)}")
    if messages:
        return _cond(INITIALIZED, False, reasons.CONTAINERS_NOT_INITIALIZED, ", ".join(messages))
    return _cond(INITIALIZED, True)


def containers_ready(pod: Mapping, statuses: Sequence[Mapping], phase: str) -> dict:
    by_name = {s.get("name"): s for s in statuses}
    unknown: list[str] = []
    unready: list[str] = []
    members = [c for c in podspec.init_containers(pod) if podspec.is_sidecar(c)] + list(podspec.containers(pod))
    for c in members:
        s = by_name.get(c.get("name"))
        if s is None:
            unknown.append(c.get("name", ""))
        elif not s.get("ready"):
            unready.append(c.get("name", ""))
    if (phase == SUCCEEDED and not unknown) or phase == FAILED:
        return _cond(CONTAINERS_READY, False, reasons.POD_COMPLETED if phase == SUCCEEDED else reasons.POD_FAILED)
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_go_list(unready)}")
    if messages:
        return _cond(CONTAINERS_READY, False, reasons.CONTAINERS_NOT_READY, ", ".join(messages))
    return _cond(CONTAINERS_READY, True)


def ready(pod: Mapping, containers_ready_cond: Mapping, other_conditions: Sequence[Mapping]) -> dict:
    if containers_ready_cond["status"] != "True":
        return _cond(READY, containers_ready_cond["status"], containers_ready_cond.get("reason", ""),
                     containers_ready_cond.get("message", ""))
    by_type = {c.get("type"): c for c in other_conditions}
    messages = []
    for gate in podspec.spec(pod).get("readinessGates") or []:
        ctype = gate.get("conditionType", "")
        c = by_type.get(ctype)
        if c is None:
            messages.append(f'corresponding condition of pod readiness gate "{ctype}" does not exist.')
        elif c.get("status") != "True":
            messages.append(f'the status of pod readiness gate "{ctype}" is not "True", but {c.get("status")}')
    if messages:
        return _cond(READY, False, reasons.READINESS_GATES_NOT_READY, ", ".join(messages))
    return _cond(READY, True)


def with_transition_times(conditions: Sequence[dict], previous: Sequence[Mapping] | None, now: float) -> list[dict]:
    """Each condition with `lastProbeTime: null` and its `lastTransitionTime`: the previous one's
    when the status is unchanged, else `now`."""
    old = {c.get("type"): c for c in previous or []}
    stamp = rfc3339(now)
    out = []
    for c in conditions:
        prev = old.get(c["type"])
        keep = prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime")
        out.append({**c, "lastProbeTime": None,
                    "lastTransitionTime": prev["lastTransitionTime"] if keep else stamp})
    return out


def pod_conditions(pod: Mapping, *, sandbox_ready: bool, init_statuses: Sequence[Mapping],
                   statuses: Sequence[Mapping], phase: str, others: Sequence[Mapping] = (),
                   previous: Sequence[Mapping] | None = None, now: float) -> list[dict]:
    """All conditions in upstream's order: the conditions the kubelet does not own (`others`,
    e.g. readiness gates) first, then PodReadyToStartContainers, Initialized, Ready,
    ContainersReady, PodScheduled."""
    everything = [*init_statuses, *statuses]
    cr = containers_ready(pod, everything, phase)
    conds = [dict(c) for c in others]
    conds.append(_cond(READY_TO_START, sandbox_ready))
    conds.append(initialized(pod, everything, phase))
    conds.append(ready(pod, cr, others))
    conds.append(cr)
    conds.append(_cond(POD_SCHEDULED, True))
    return with_transition_times(conds, previous, now)
