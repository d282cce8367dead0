"""What a probe worker does at each tick and with each result (pure): upstream's worker.doProbe
(`prober/worker.go`) as data, so that it can be tested without time or sockets (semantics 2.3).

- Starting values: readiness FAILURE, liveness SUCCESS, startup UNKNOWN (set for each new
  container instance).
- A result is recorded only after failureThreshold (successThreshold) identical results in a row.
- Startup gates the others: liveness and readiness skip their ticks until the container has
  started; startup skips its ticks once it has (and runs again for a new container instance).
- Liveness or startup recording FAILURE kills the container; the worker is then on hold until a
  new container instance appears.
- A container that is not running records FAILURE; a pod being deleted records SUCCESS for
  liveness and startup, which then stop."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .spec import ProbeType, Result

INITIAL = {ProbeType.READINESS: Result.FAILURE, ProbeType.LIVENESS: Result.SUCCESS,
           ProbeType.STARTUP: Result.UNKNOWN}
KILLS = (ProbeType.LIVENESS, ProbeType.STARTUP)
MAX_RETRIES = 3  # attempts of one probe that ended in a prober error (upstream's maxProbeRetries)


class Action(enum.Enum):
    IDLE = "idle"  # no container yet, or on hold after a kill: wait for a new container instance
    NOT_RUNNING = "not-running"  # record FAILURE, then idle
    FINISH = "finish"  # the pod is being deleted: record SUCCESS and stop (liveness, startup)
    DELAY = "delay"  # initialDelaySeconds since the container started has not passed
    SKIP = "skip"  # the tick passes without a probe (gated by startup, or startup is done)
    PROBE = "probe"


def decide(kind: ProbeType, *, has_container: bool, on_hold: bool, running: bool, deleting: bool,
           started: bool, delay_over: bool) -> Action:
    """What the worker of `kind` does now; `started` is the container's startup state (True when
    it has no startup probe)."""
    if not has_container or on_hold:
        return Action.IDLE
    if not running:
        return Action.NOT_RUNNING
    if deleting and kind in KILLS:
        return Action.FINISH
    if not delay_over:
        return Action.DELAY
    if kind is ProbeType.STARTUP:
        return Action.SKIP if started else Action.PROBE
    return Action.PROBE if started else Action.SKIP


@dataclass(frozen=True)
class Decision:
    record: Result | None  # the result to record now (None: below its threshold)
    kill: bool = False  # liveness/startup reached its failure threshold: kill the container


_BELOW = Decision(None)  # decisions are values: one of each, not one per probe
_KILL = Decision(Result.FAILURE, kill=True)
_RECORD = {r: Decision(r) for r in (Result.SUCCESS, Result.FAILURE)}


class ThresholdState:
    """The run of identical results of one worker, for one container instance."""

    def __init__(self, kind: ProbeType, success_threshold: int, failure_threshold: int):
        self.kind = kind
        self.success_threshold = max(1, int(success_threshold))
        self.failure_threshold = max(1, int(failure_threshold))
        self.last: Result | None = None
        self.run = 0
        self.on_hold = False

    def reset(self) -> None:
        """A new container instance: a fresh run, not on hold."""
        self.last, self.run, self.on_hold = None, 0, False

    def observe(self, result: Result) -> Decision:
        """One probe's result (WARNING counts as SUCCESS; UNKNOWN must not come here: a prober
        error is thrown away before)."""
        if result is Result.WARNING:
            result = Result.SUCCESS
        if result not in (Result.SUCCESS, Result.FAILURE):
            raise ValueError(f"only SUCCESS or FAILURE are counted, not {result}")
        if result is self.last:
            self.run += 1
        else:
            self.last, self.run = result, 1
        threshold = self.failure_threshold if result is Result.FAILURE else self.success_threshold
        if self.run < threshold:
            return _BELOW
        if result is Result.FAILURE and self.kind in KILLS:
            self.on_hold, self.run = True, 0
            return _KILL
        return _RECORD[result]


def kill_message(kind: ProbeType, container_name: str) -> str:
    """The Killing event's message for a probe kill (semantics 2.3)."""
    return f"Container {container_name} failed {kind.value} probe, will be restarted"


def event_for(kind: ProbeType, result: Result, output: str, error: str | None = None) -> tuple[str, str, str] | None:
    """(type, reason, message) of the event one attempt makes, as upstream's prober words it:
    Unhealthy for a failure or an error, ProbeWarning for a warning, none for a success."""
    if result is Result.FAILURE:
        return "Warning", "Unhealthy", f"{kind.title} probe failed: {output}"
    if result is Result.WARNING:
        return "Warning", "ProbeWarning", f"{kind.title} probe warning: {output}"
    if result is Result.UNKNOWN:
        return "Warning", "Unhealthy", f"{kind.title} probe errored and resulted in unknown state: {error}"
    return None


_LABELS = {Result.SUCCESS: "successful", Result.WARNING: "successful", Result.FAILURE: "failed"}


def metric_label(result: Result) -> str:
    """The `result` label of prober_probe_total: successful, failed or unknown."""
    return _LABELS.get(result, "unknown")
