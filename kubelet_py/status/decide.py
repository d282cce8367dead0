"""The restart decisions a pod worker takes, as pure functions of the pod and its records.

- `should_start`: would this container be (re)started, ignoring back-off (upstream's
  ShouldContainerBeRestarted, with a sidecar's own `restartPolicy: Always`).
- `start_decision`: the same with the crash-loop back-off applied: start now, or wait N seconds
  in CrashLoopBackOff (upstream's doBackOff, read-only: the worker records the restart with
  `backoff.next(d.backoff_key, now, d.exited_at)` when it starts the container).
- `init_plan`: which init containers to (re)start now, whether initialization is done, or which
  init container failed the pod (upstream's computeInitContainerActions): one regular init
  container at a time, each must exit 0; a sidecar must be `started` before the next one runs.
- `app_containers_to_start`, `pod_done`, `stop_order`, `past_active_deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from . import podspec, reasons
from .backoff import Backoff, stable_key
from .records import CREATED, EXITED, RUNNING, UNKNOWN, ContainerRecord, PodRecord
from .timefmt import parse_rfc3339


class UnknownContainerError(KeyError):
    def __init__(self, name: str):
        super().__init__(f"the pod has no container {name!r}")
        self.name = name


def _spec(pod: Mapping, name: str) -> tuple[Mapping, bool]:
    c, is_init = podspec.find_container(pod, name)
    if c is None:
        raise UnknownContainerError(name)
    return c, is_init


def should_start(pod: Mapping, name: str, record: ContainerRecord | None, *, deleting: bool = False) -> bool:
    """Whether container `name` should be started (again) now, back-off aside.

    Nothing starts while the pod is being deleted. A container that never ran starts; a running
    one does not; one stuck created or in an unknown state is started again. After an exit the
    container's effective policy decides: Always restarts, OnFailure only after a non-zero exit,
    Never never (a sidecar always restarts; a regular init container is retried after a failure
    unless the pod's policy is Never)."""
    container, is_init = _spec(pod, name)
    if deleting:
        return False
    if record is None or record.current is None:
        return True
    state = record.current.state
    if state == RUNNING:
        return False
    if state in (CREATED, UNKNOWN):
        return True
    policy = podspec.effective_restart_policy(pod, container, is_init)
    if policy == podspec.NEVER:
        return False
    if policy == podspec.ON_FAILURE:
        return record.current.exit_code != 0
    return True


@dataclass(frozen=True)
class StartDecision:
    """`start`: start the container now. Otherwise, with `wait` > 0, it is in CrashLoopBackOff
    (`reason`, `message` are its waiting reason and message) for `wait` more seconds.
    `backoff_key` and `exited_at` are what the worker passes to `Backoff.next` when it starts."""

    start: bool
    wait: float = 0.0
    reason: str = ""
    message: str = ""
    backoff_key: str = ""
    exited_at: str | None = None


def _last_exit(record: ContainerRecord | None) -> str | None:
    """When the newest exited instance finished (the current one, else the previous one)."""
    if record is None:
        return None
    if record.current is not None and record.current.state == EXITED:
        return record.current.finished_at
    if record.previous is not None:
        return record.previous.finished_at
    return None


def start_decision(pod: Mapping, name: str, record: ContainerRecord | None, *, backoff: Backoff,
                   now: float, deleting: bool = False) -> StartDecision:
    container, _ = _spec(pod, name)
    if not should_start(pod, name, record, deleting=deleting):
        return StartDecision(False)
    key = stable_key(pod, container)
    exited_at = _last_exit(record)
    if exited_at is not None:
        wait = backoff.should_wait(key, now, exited_at)
        if wait > 0:
            return StartDecision(False, wait, reasons.CRASH_LOOP_BACKOFF,
                                 reasons.crashloop_message(backoff.get(key), name, pod), key, exited_at)
    return StartDecision(True, backoff_key=key, exited_at=exited_at)


@dataclass(frozen=True)
class InitPlan:
    """`start`: init containers to (re)start now, in spec order (back-off still applies to each);
    `initialized`: the app containers may run; `failed`: the regular init container whose failure
    under restartPolicy Never fails the pod ("" when none)."""

    start: tuple[str, ...] = ()
    initialized: bool = False
    failed: str = ""


def _sidecar_started(container: Mapping, record: ContainerRecord) -> bool | None:
    """True when started, None while a startup probe has no result, False when it failed."""
    if not container.get("startupProbe"):
        return True
    return record.started


def init_plan(pod: Mapping, record: PodRecord) -> InitPlan:
    inits = list(podspec.init_containers(pod))
    if not inits:
        return InitPlan(initialized=True)
    initialized = any(
        (r := record.container(c.get("name", ""))) is not None and r.current is not None
        for c in podspec.containers(pod))
    previously = initialized
    restart_on_failure = podspec.restart_policy(pod) != podspec.NEVER
    start: set[int] = set()
    seen_any = False
    for i in range(len(inits) - 1, -1, -1):
        c = inits[i]
        name = c.get("name", "")
        sidecar = podspec.is_sidecar(c)
        rec = record.container(name)
        if rec is None or rec.current is None:
            if previously and sidecar:
                start.add(i)
            continue
        seen_any = True
        if previously and not sidecar:
            continue
        state = rec.current.state
        if state == CREATED:
            start.add(i)
        elif state == RUNNING:
            if sidecar:
                started = _sidecar_started(c, rec)
                if started is False:
                    start.add(i)                     # failed its startup probe: restart it
                elif started:
                    if i == len(inits) - 1:
                        initialized = True
                    elif not previously:
                        start.add(i + 1)
            # a regular init container: wait for it to finish
        elif state == EXITED:
            if sidecar:
                start.add(i)
            elif rec.current.exit_code != 0:
                if not restart_on_failure:
                    return InitPlan(initialized=False, failed=name)
                start.add(i)
            elif i == len(inits) - 1:
                initialized = True
            else:
                start.add(i + 1)
        else:                                         # unknown
            if not sidecar and not restart_on_failure:
                return InitPlan(initialized=False, failed=name)
            start.add(i)
        if not previously:
            break                                     # one init container at a time
    if not seen_any and not initialized:
        start.add(0)
    return InitPlan(tuple(inits[i].get("name", "") for i in sorted(start)), initialized)


def app_containers_to_start(pod: Mapping, record: PodRecord) -> tuple[str, ...]:
    """App containers to (re)start now (back-off aside): none until initialization is done."""
    if not init_plan(pod, record).initialized:
        return ()
    return tuple(c.get("name", "") for c in podspec.containers(pod)
                 if should_start(pod, c.get("name", ""), record.container(c.get("name", "")),
                                 deleting=record.deleting))


def _active(rec: ContainerRecord | None) -> bool:
    return rec is not None and rec.current is not None and rec.current.state in (RUNNING, CREATED)


def pod_done(pod: Mapping, record: PodRecord) -> bool:
    """No container of the pod will run again: a regular init container failed under
    restartPolicy Never, or every app container exited and its policy does not restart it
    (sidecars are then stopped, they do not keep the pod alive), or the pod is being deleted and
    nothing runs any more."""
    if record.deleting:
        return not any(_active(record.container(c.get("name", "")))
                       for c in [*podspec.init_containers(pod), *podspec.containers(pod)])
    plan = init_plan(pod, record)
    if plan.failed:
        return True
    if not plan.initialized:
        return False
    for c in podspec.containers(pod):
        name = c.get("name", "")
        rec = record.container(name)
        if rec is None or rec.current is None or rec.current.state != EXITED:
            return False
        if should_start(pod, name, rec):
            return False
    return True


def stop_order(pod: Mapping) -> list[list[str]]:
    """The order containers are stopped in: app (and regular init) containers together, then the
    sidecars one at a time in reverse spec order."""
    sidecars = [c.get("name", "") for c in podspec.init_containers(pod) if podspec.is_sidecar(c)]
    first = [c.get("name", "") for c in podspec.init_containers(pod) if not podspec.is_sidecar(c)]
    first += [c.get("name", "") for c in podspec.containers(pod)]
    stages = [first] if first else []
    stages += [[name] for name in reversed(sidecars)]
    return stages


def past_active_deadline(pod: Mapping, start_time: str | None, now: float) -> bool:
    """`spec.activeDeadlineSeconds` has run out, counted from the status's startTime: the pod is
    then killed and Failed with reason DeadlineExceeded."""
    deadline = podspec.spec(pod).get("activeDeadlineSeconds")
    if deadline is None or not start_time:
        return False
    return now - parse_rfc3339(start_time) >= deadline
