"""The pod phase (pure): upstream's `getPhase` (kubelet_pods.go) over the container statuses.

Regular init containers are *pending* (no status, running, or waiting without a previous run) or
*failed* (terminated non-zero, or waiting after a non-zero exit); any failure under
`restartPolicy: Never` makes the pod Failed. Sidecars (restartable init containers) and app
containers are counted as running, waiting (never ran), stopped (terminated, or waiting after a
previous run), succeeded (stopped with exit 0) or unknown (no status); a running sidecar that has
not `started` yet, or one waiting that never ran, keeps initialization pending; a stopped sidecar
does not count at all. Then, first match wins:

1. a pending regular init container, or a pending sidecar before any app container has started,
   or any waiting container -> Pending;
2. running > 0 and unknown == 0 -> Running;
3. running == 0, stopped > 0, unknown == 0: a terminal pod (the worker stopped everything for
   good; static pods excepted) -> Succeeded if every stop was exit 0, else Failed; otherwise
   Always -> Running, all exit 0 -> Succeeded, Never -> Failed, OnFailure -> Running;
4. anything else -> Pending.

The kubelet never reports Unknown.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from . import podspec

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
TERMINAL = (SUCCEEDED, FAILED)


def _last_terminated(status: Mapping) -> Mapping | None:
    return (status.get("lastState") or {}).get("terminated")


def get_phase(pod: Mapping, init_statuses: Sequence[Mapping], statuses: Sequence[Mapping], *,
              terminal: bool = False, has_initialized: bool = False) -> str:
    """`terminal`: the worker has stopped the pod for good (upstream's podIsTerminal).
    `has_initialized`: some app container has an instance in the current sandbox (upstream's
    HasAnyActiveRegularContainerStarted)."""
    by_name = {s.get("name"): s for s in [*init_statuses, *statuses]}
    pending_regular_init = 0
    pending_sidecars = 0
    failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0

    for c in podspec.init_containers(pod):
        if podspec.is_sidecar(c):
            continue
        s = by_name.get(c.get("name"))
        state = (s or {}).get("state") or {}
        if s is None:
            pending_regular_init += 1
        elif "running" in state:
            pending_regular_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in state:
            last = _last_terminated(s)
            if last is not None:
                if last.get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_regular_init += 1
        else:
            pending_regular_init += 1

    for c in podspec.init_containers(pod):
        if not podspec.is_sidecar(c):
            continue
        s = by_name.get(c.get("name"))
        if s is None:
            unknown += 1
            continue
        state = s.get("state") or {}
        if "running" in state:
            if not s.get("started"):
                pending_sidecars += 1
            running += 1
        elif "terminated" in state:
            pass                                  # a stopped sidecar does not count
        elif "waiting" in state:
            if _last_terminated(s) is None:
                pending_sidecars += 1
                waiting += 1
        else:
            pending_sidecars += 1
            unknown += 1

    for c in podspec.containers(pod):
        s = by_name.get(c.get("name"))
        if s is None:
            unknown += 1
            continue
        state = s.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if _last_terminated(s) is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    policy = podspec.restart_policy(pod)
    if failed_init > 0 and policy == podspec.NEVER:
        return FAILED
    if pending_regular_init > 0 or (pending_sidecars > 0 and not has_initialized) or waiting > 0:
        return PENDING
    if running > 0 and unknown == 0:
        return RUNNING
    if running == 0 and stopped > 0 and unknown == 0:
        if terminal and not podspec.is_static(pod):
            return SUCCEEDED if stopped == succeeded else FAILED
        if policy == podspec.ALWAYS:
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        if policy == podspec.NEVER:
            return FAILED
        return RUNNING
    return PENDING
