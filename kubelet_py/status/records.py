"""What the pod worker records, the only input of the status layer (pure values).

The worker keeps one `PodRecord` per pod: per container name a `ContainerRecord` (the current
instance as the runtime reports it, the previous instance's end, the restart count, the waiting
reason the worker set, the probe results), plus the pod-level facts (sandbox, IPs, start time,
deletion, a terminal reason). `pod_status` turns a record and the pod into a v1 PodStatus.

Times are RFC 3339 strings, as the runtime's records hold them. Records are immutable: the worker
replaces a record (`dataclasses.replace`) when something changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .timefmt import parse_rfc3339

# runtime states of one container instance (the CRI's CONTAINER_CREATED/RUNNING/EXITED/UNKNOWN)
CREATED = "created"
RUNNING = "running"
EXITED = "exited"
UNKNOWN = "unknown"
STATES = (CREATED, RUNNING, EXITED, UNKNOWN)


class RecordError(ValueError):
    """A record that cannot describe a container; `field` names the offending field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _check_time(name: str, value: str | None) -> None:
    if value is None:
        return
    try:
        parse_rfc3339(value)
    except ValueError as e:
        raise RecordError(name, str(e)) from None


@dataclass(frozen=True)
class Terminated:
    """The end of one container instance: the API's `ContainerStateTerminated`.

    `reason` is the runtime's: Completed (exit 0), Error (non-zero), OOMKilled, or
    ContainerStatusUnknown when the instance vanished."""

    exit_code: int
    reason: str = ""
    message: str = ""
    signal: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    container_id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.exit_code, int) or isinstance(self.exit_code, bool):
            raise RecordError("exit_code", f"{self.exit_code!r} is not an integer")
        _check_time("started_at", self.started_at)
        _check_time("finished_at", self.finished_at)


@dataclass(frozen=True)
class Instance:
    """The current instance of a container as the runtime reports it.

    `state` is one of created/running/exited/unknown; `exit_code`, `finished_at`, `reason`,
    `signal` and `message` matter once it exited. `container_id` is the runtime's id (the status
    shows it as `kubelet-py://<id>`); `image` the image reference, `image_id` its digest
    reference."""

    state: str
    container_id: str = ""
    image: str = ""
    image_id: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    signal: int = 0
    reason: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise RecordError("state", f"{self.state!r} is not one of {', '.join(STATES)}")
        if self.state == EXITED and self.exit_code is None:
            raise RecordError("exit_code", "an exited instance needs its exit code")
        _check_time("started_at", self.started_at)
        _check_time("finished_at", self.finished_at)

    def terminated(self) -> Terminated:
        """This instance's end as a `Terminated` (only meaningful when it exited)."""
        return Terminated(exit_code=self.exit_code or 0, reason=self.reason, message=self.message,
                          signal=self.signal, started_at=self.started_at,
                          finished_at=self.finished_at, container_id=self.container_id)


@dataclass(frozen=True)
class ContainerRecord:
    """Everything the worker knows of one container (by name) of the pod.

    - `current`: the newest instance, None before the first one was created.
    - `previous`: how the instance before it ended (the API's `lastState.terminated`).
    - `restart_count`: instances created before the current one (the API's restartCount).
    - `waiting_reason`/`waiting_message`: why the worker is not running it right now
      (ContainerCreating, PodInitializing, ErrImagePull, ImagePullBackOff, ErrImageNeverPull,
      InvalidImageName, CrashLoopBackOff, CreateContainerConfigError, CreateContainerError,
      PostStartHookError, RunContainerError, ...); shown only while the container is not running
      and would be (re)started.
    - `started`: the startup probe's result, None while it has none (a container without a
      startup probe counts as started once running).
    - `ready`: the readiness probe's result (ignored without a readiness probe: running and
      started means ready)."""

    current: Instance | None = None
    previous: Terminated | None = None
    restart_count: int = 0
    waiting_reason: str = ""
    waiting_message: str = ""
    started: bool | None = None
    ready: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.restart_count, int) or self.restart_count < 0:
            raise RecordError("restart_count", f"{self.restart_count!r} is not a count")

    @property
    def state(self) -> str | None:
        return self.current.state if self.current else None


def _frozen_map(value: Mapping | None) -> Mapping:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class PodRecord:
    """The pod-level facts next to the container records.

    - `containers`: container name -> ContainerRecord (init and app containers share the map,
      as names are unique in a pod); a container without a record has not been seen yet.
    - `sandbox_ready`: the sandbox and its network exist (PodReadyToStartContainers).
    - `pod_ips`, `host_ips`: in the runtime's order; `start_time`: when the kubelet first took
      the pod (kept by the status once set).
    - `deleting`: the pod is being deleted (nothing restarts any more).
    - `terminal`: the worker has stopped every container for good (upstream's podIsTerminal):
      the phase becomes Succeeded or Failed from the exit codes, whatever the restart policy.
    - `reason`/`message`: a pod-level failure the worker decided (DeadlineExceeded, Evicted...):
      the phase is Failed with them.
    - `conditions`: condition type -> "True"/"False"/"Unknown" for conditions the kubelet does
      not own (readiness gates), set by whoever owns them."""

    containers: Mapping[str, ContainerRecord] = field(default_factory=dict)
    sandbox_ready: bool = False
    pod_ips: tuple[str, ...] = ()
    host_ips: tuple[str, ...] = ()
    start_time: str | None = None
    deleting: bool = False
    terminal: bool = False
    reason: str = ""
    message: str = ""
    conditions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, rec in dict(self.containers).items():
            if not isinstance(rec, ContainerRecord):
                raise RecordError(f"containers[{name}]", f"{type(rec).__name__} is not a ContainerRecord")
        for name, status in dict(self.conditions).items():
            if status not in ("True", "False", "Unknown"):
                raise RecordError(f"conditions[{name}]", f"{status!r} is not True, False or Unknown")
        _check_time("start_time", self.start_time)
        object.__setattr__(self, "containers", _frozen_map(self.containers))
        object.__setattr__(self, "conditions", _frozen_map(self.conditions))
        object.__setattr__(self, "pod_ips", tuple(self.pod_ips))
        object.__setattr__(self, "host_ips", tuple(self.host_ips))

    def container(self, name: str) -> ContainerRecord | None:
        return self.containers.get(name)
