"""Events as `kubectl describe` shows them: an in-memory recorder with client-go's correlator
(pure data structure: every call takes `now`), and constructors for the kubelet's events.

The correlator does what client-go's EventCorrelator does before an event reaches the API:
1. spam filter: per source and object (the pod, whatever container), a token bucket of 25
   events refilled by one every 5 minutes; an event without a token is dropped;
2. aggregation: when 10 events that differ only by message (same source, object, type, reason)
   arrive within 10 minutes of each other, the next ones become one event with the message
   `(combined from similar events): <message>`;
3. dedup: an event identical to one already recorded (same source, object and field path, type,
   reason, message) is not added again: that event's `count` goes up and its `lastTimestamp`
   moves to now, its `firstTimestamp` stays.

Events older than `ttl` (the API server's default event TTL, 1 h) are no longer listed, and at
most `max_per_pod` events are kept per pod (the least recently updated ones go first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Mapping

from . import podspec
from .reasons import DEADLINE_EXCEEDED_MESSAGE, go_quote, pod_ref
from .timefmt import go_duration, rfc3339, truncate_ms

NORMAL = "Normal"
WARNING = "Warning"
KUBELET = "kubelet"
SCHEDULER = "default-scheduler"

# reasons (kubelet/events/event.go)
SCHEDULED = "Scheduled"
PULLING = "Pulling"
PULLED = "Pulled"
FAILED = "Failed"
BACK_OFF = "BackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
CREATED = "Created"
STARTED = "Started"
KILLING = "Killing"
UNHEALTHY = "Unhealthy"
PROBE_WARNING = "ProbeWarning"
FAILED_POST_START_HOOK = "FailedPostStartHook"
FAILED_PRE_STOP_HOOK = "FailedPreStopHook"
DEADLINE_EXCEEDED = "DeadlineExceeded"

AGGREGATE_PREFIX = "(combined from similar events): "


@dataclass(frozen=True)
class ObjectRef:
    """The event's involvedObject: the pod, and for a container event its field path
    (`spec.containers{web}`, `spec.initContainers{init}`)."""

    kind: str
    namespace: str
    name: str
    uid: str
    api_version: str = "v1"
    field_path: str = ""

    def as_dict(self) -> dict:
        out = {"kind": self.kind, "namespace": self.namespace, "name": self.name, "uid": self.uid,
               "apiVersion": self.api_version}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def pod_object(pod: Mapping, field_path: str = "") -> ObjectRef:
    meta = podspec.metadata(pod)
    return ObjectRef("Pod", meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""),
                     "v1", field_path)


def container_field_path(pod: Mapping, container: str) -> str:
    """`spec.containers{c}`, `spec.initContainers{c}` or `spec.ephemeralContainers{c}`."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        if any(c.get("name") == container for c in podspec.spec(pod).get(key) or []):
            return f"spec.{key}{{{container}}}"
    return f"spec.containers{{{container}}}"


@dataclass(frozen=True)
class EventSpec:
    """What happened, before the recorder stamps and correlates it."""

    type: str
    reason: str
    message: str
    field_path: str = ""
    component: str = KUBELET


@dataclass(frozen=True)
class Event:
    name: str
    involved: ObjectRef
    type: str
    reason: str
    message: str
    component: str
    host: str
    first_timestamp: float
    last_timestamp: float
    count: int = 1

    def as_dict(self) -> dict:
        """The v1 Event (`kubectl get events -o json`)."""
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self.name, "namespace": self.involved.namespace},
            "involvedObject": self.involved.as_dict(),
            "reason": self.reason,
            "message": self.message,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": rfc3339(self.first_timestamp),
            "lastTimestamp": rfc3339(self.last_timestamp),
            "count": self.count,
            "type": self.type,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }


def _pod_key(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.namespace, ref.name, ref.uid)


class EventRecorder:
    """Events by pod. `record` returns the event as it now stands (None when spam-filtered)."""

    def __init__(self, *, host: str = "", max_per_pod: int = 100, spam_burst: int | None = 25,
                 spam_refill_seconds: float = 300.0, aggregate_max: int = 10,
                 aggregate_window: float = 600.0, ttl: float = 3600.0):
        self.host = host
        self.max_per_pod = max_per_pod
        self.spam_burst = spam_burst
        self.spam_refill_seconds = spam_refill_seconds
        self.aggregate_max = aggregate_max
        self.aggregate_window = aggregate_window
        self.ttl = ttl
        self._events: dict[tuple, OrderedDict[tuple, Event]] = {}
        self._tokens: dict[tuple, tuple[float, float]] = {}
        self._similar: dict[tuple, tuple[set[str], float]] = {}

    # -- the correlator's three steps --
    def _spam_filtered(self, key: tuple, now: float) -> bool:
        if self.spam_burst is None:
            return False
        tokens, at = self._tokens.get(key, (float(self.spam_burst), now))
        tokens = min(float(self.spam_burst), tokens + max(0.0, now - at) / self.spam_refill_seconds)
        if tokens < 1.0:
            self._tokens[key] = (tokens, now)
            return True
        self._tokens[key] = (tokens - 1.0, now)
        return False

    def _aggregate(self, ev: EventSpec, ref: ObjectRef, now: float) -> tuple[EventSpec, tuple | None]:
        key = (ev.component, self.host, ref.kind, ref.namespace, ref.name, ref.uid, ref.api_version,
               ev.type, ev.reason)
        messages, last = self._similar.get(key, (set(), float("-inf")))
        if now - last > self.aggregate_window:
            messages = set()
        messages = messages | {ev.message}
        if len(messages) < self.aggregate_max:
            self._similar[key] = (messages, now)
            return ev, None
        messages = set(sorted(messages)[1:])      # keep the set below the threshold, as PopAny does
        self._similar[key] = (messages, now)
        return replace(ev, message=AGGREGATE_PREFIX + ev.message), ("aggregate",) + key

    def record(self, pod: Mapping, ev: EventSpec, now: float) -> Event | None:
        ref = pod_object(pod, ev.field_path)
        spam_key = (ev.component, self.host, ref.kind, ref.namespace, ref.name, ref.uid, ref.api_version)
        if self._spam_filtered(spam_key, now):
            return None
        ev, dedup_key = self._aggregate(ev, ref, now)
        if dedup_key is None:
            dedup_key = (ev.component, self.host, ref.kind, ref.namespace, ref.name, ref.field_path,
                         ref.uid, ref.api_version, ev.type, ev.reason, ev.message)
        events = self._events.setdefault(_pod_key(ref), OrderedDict())
        old = events.pop(dedup_key, None)
        if old is not None:
            new = replace(old, involved=ref, message=ev.message, last_timestamp=now, count=old.count + 1)
        else:
            new = Event(name=f"{ref.name}.{round(now * 1e6) * 1000:x}", involved=ref, type=ev.type,
                        reason=ev.reason, message=ev.message, component=ev.component, host=self.host,
                        first_timestamp=now, last_timestamp=now)
        events[dedup_key] = new                   # most recently updated last
        while len(events) > self.max_per_pod:
            events.popitem(last=False)
        return new

    def events(self, pod: Mapping, now: float) -> list[Event]:
        """The pod's events still within the TTL, oldest `lastTimestamp` first."""
        ref = pod_object(pod)
        found = [e for e in self._events.get(_pod_key(ref), {}).values() if now - e.last_timestamp <= self.ttl]
        return sorted(found, key=lambda e: e.last_timestamp)

    def forget(self, pod: Mapping) -> None:
        """Drop everything kept for a pod (after it is gone)."""
        ref = pod_object(pod)
        self._events.pop(_pod_key(ref), None)
        pod_id = (ref.kind, ref.namespace, ref.name, ref.uid)
        for table in (self._tokens, self._similar):
            for key in [k for k in table if tuple(k[2:6]) == pod_id]:
                del table[key]


# -- the kubelet's events (reasons and messages as upstream writes them) --

def _c(pod: Mapping, container: str) -> str:
    return container_field_path(pod, container)


def scheduled(pod: Mapping, node: str) -> EventSpec:
    meta = podspec.metadata(pod)
    return EventSpec(NORMAL, SCHEDULED, f"Successfully assigned {meta.get('namespace', '')}/{meta.get('name', '')} to {node}",
                     component=SCHEDULER)


def pulling(pod: Mapping, container: str, image: str) -> EventSpec:
    return EventSpec(NORMAL, PULLING, f"Pulling image {go_quote(image)}", _c(pod, container))


def pulled(pod: Mapping, container: str, image: str, pull_seconds: float, total_seconds: float, size: int) -> EventSpec:
    """`Successfully pulled image "x" in 1.2s (1.5s including waiting). Image size: N bytes.`
    (both durations truncated to milliseconds, as Go prints them)."""
    return EventSpec(NORMAL, PULLED,
                     f"Successfully pulled image {go_quote(image)} in {go_duration(truncate_ms(pull_seconds))} "
                     f"({go_duration(truncate_ms(total_seconds))} including waiting). Image size: {size} bytes.",
                     _c(pod, container))


def already_present(pod: Mapping, container: str, image: str) -> EventSpec:
    return EventSpec(NORMAL, PULLED, f"Container image {go_quote(image)} already present on machine", _c(pod, container))


def pull_failed(pod: Mapping, container: str, image: str, error: str) -> EventSpec:
    return EventSpec(WARNING, FAILED, f"Failed to pull image {go_quote(image)}: {error}", _c(pod, container))


def pull_backoff(pod: Mapping, container: str, image: str) -> EventSpec:
    return EventSpec(NORMAL, BACK_OFF, f"Back-off pulling image {go_quote(image)}", _c(pod, container))


def image_never_pull(pod: Mapping, container: str, image: str) -> EventSpec:
    return EventSpec(WARNING, ERR_IMAGE_NEVER_PULL,
                     f"Container image {go_quote(image)} is not present with pull policy of Never", _c(pod, container))


def failed(pod: Mapping, container: str, error: str) -> EventSpec:
    """`Error: <error>` (e.g. `Error: ErrImagePull`, `Error: ImagePullBackOff`, a create error)."""
    return EventSpec(WARNING, FAILED, f"Error: {error}", _c(pod, container))


def created(pod: Mapping, container: str) -> EventSpec:
    return EventSpec(NORMAL, CREATED, f"Created container: {container}", _c(pod, container))


def started(pod: Mapping, container: str) -> EventSpec:
    return EventSpec(NORMAL, STARTED, f"Started container {container}", _c(pod, container))


def killing(pod: Mapping, container: str, message: str = "") -> EventSpec:
    """`Stopping container c`, or the kill's own message (see `probe_kill_message`)."""
    return EventSpec(NORMAL, KILLING, message or f"Stopping container {container}", _c(pod, container))


def probe_kill_message(container: str, probe: str, restart: bool = True) -> str:
    """`Container c failed liveness probe, will be restarted` (probe: liveness or startup)."""
    msg = f"Container {container} failed {probe} probe"
    return f"{msg}, will be restarted" if restart else msg


_PROBE_NAMES = {"liveness": "Liveness", "readiness": "Readiness", "startup": "Startup"}


def unhealthy(pod: Mapping, container: str, probe: str, output: str) -> EventSpec:
    """`Liveness probe failed: <output>` (probe: liveness, readiness or startup)."""
    return EventSpec(WARNING, UNHEALTHY, f"{_PROBE_NAMES.get(probe, probe)} probe failed: {output}", _c(pod, container))


def probe_errored(pod: Mapping, container: str, probe: str, result: str, error: str) -> EventSpec:
    return EventSpec(WARNING, UNHEALTHY,
                     f"{_PROBE_NAMES.get(probe, probe)} probe errored and resulted in {result} state: {error}",
                     _c(pod, container))


def probe_warning(pod: Mapping, container: str, probe: str, output: str) -> EventSpec:
    return EventSpec(WARNING, PROBE_WARNING, f"{_PROBE_NAMES.get(probe, probe)} probe warning: {output}", _c(pod, container))


def backoff_restart(pod: Mapping, container: str) -> EventSpec:
    return EventSpec(WARNING, BACK_OFF, f"Back-off restarting failed container {container} in pod {pod_ref(pod)}",
                     _c(pod, container))


def failed_post_start_hook(pod: Mapping, container: str) -> EventSpec:
    """The hook's output is left out of the event, as upstream does, so secrets do not leak."""
    return EventSpec(WARNING, FAILED_POST_START_HOOK, "PostStartHook failed", _c(pod, container))


def failed_pre_stop_hook(pod: Mapping, container: str) -> EventSpec:
    return EventSpec(WARNING, FAILED_PRE_STOP_HOOK, "PreStopHook failed", _c(pod, container))


def deadline_exceeded(pod: Mapping) -> EventSpec:
    return EventSpec(NORMAL, DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE)
