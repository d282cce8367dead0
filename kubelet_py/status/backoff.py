"""Restart and image-pull back-off, as the kubelet computes it (pure: every call takes `now`).

The arithmetic is client-go's `flowcontrol.Backoff` with no jitter, which the kubelet uses for
both crash loops and image pulls (initial 10 s, cap 300 s):

- an entry holds a delay and the time of its last update;
- `next` creates the entry at the initial delay, or doubles it up to the cap; an entry whose
  last update is more than 2 x cap before the new event starts over at the initial delay;
- a container that exited at `finished_at` waits while `now - finished_at < delay`.

Crash loop (kuberuntime `doBackOff`): when a container has exited and would be restarted, the
worker asks `should_wait(key, now, finished_at)`; zero means restart now, and the worker then
calls `next(key, now, finished_at)`; otherwise the container is in CrashLoopBackOff with
`crashloop_message(...)` for that many more seconds. The first exit therefore restarts at once
and creates the entry at 10 s; each later exit doubles it (10, 20, 40, 80, 160, 300); an exit
more than 600 s after the last restart starts over at 10 s. The key is the pod's name,
namespace, uid, the container's name and its spec hash, so a changed container starts afresh.

Image pulls (`images/image_manager.go`): the key is the pod uid and the image; after a failed
pull the worker calls `next(key, now)`; before a pull it asks `pull_wait(key, now)` (measured
from the last failure): non-zero means ImagePullBackOff with `Back-off pulling image "x"`.

The cap is configurable (`--crashloop-max`, upstream's KubeletCrashLoopBackOffMax,
1 s to 300 s); the initial delay never exceeds the cap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

from .timefmt import parse_rfc3339

DEFAULT_INITIAL = 10.0
DEFAULT_CAP = 300.0
CRASHLOOP_MAX_RANGE = (1.0, 300.0)


class BackoffConfigError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class BackoffPolicy:
    """Initial delay and cap, in seconds. An initial delay above the cap is lowered to it."""

    initial: float = DEFAULT_INITIAL
    cap: float = DEFAULT_CAP

    def __post_init__(self) -> None:
        if not self.cap > 0:
            raise BackoffConfigError("cap", f"{self.cap!r} must be a positive number of seconds")
        if not self.initial > 0:
            raise BackoffConfigError("initial", f"{self.initial!r} must be a positive number of seconds")
        if self.initial > self.cap:
            object.__setattr__(self, "initial", self.cap)


def crashloop_policy(max_seconds: float | None = None) -> BackoffPolicy:
    """The crash-loop policy for a `--crashloop-max` value (None: upstream's 10 s / 300 s)."""
    if max_seconds is None:
        return BackoffPolicy()
    lo, hi = CRASHLOOP_MAX_RANGE
    if not lo <= max_seconds <= hi:
        raise BackoffConfigError("crashloop-max", f"{max_seconds!r} must be between {lo:g} and {hi:g} seconds")
    return BackoffPolicy(initial=min(DEFAULT_INITIAL, max_seconds), cap=float(max_seconds))


@dataclass(frozen=True)
class BackoffEntry:
    delay: float
    last_update: float


def _seconds(value: float | str | None) -> float | None:
    if value is None or value == "":
        return None
    return parse_rfc3339(value) if isinstance(value, str) else float(value)


def expired(policy: BackoffPolicy, entry: BackoffEntry, event_time: float) -> bool:
    """Stable long enough: the event is more than 2 x cap after the entry's last update."""
    return event_time - entry.last_update > 2 * policy.cap


def next_entry(policy: BackoffPolicy, entry: BackoffEntry | None, now: float,
               event_time: float | None = None) -> BackoffEntry:
    """The entry after one more failure at `event_time` (default `now`), recorded at `now`."""
    event = now if event_time is None else event_time
    if entry is None or expired(policy, entry, event):
        return BackoffEntry(policy.initial, now)
    return BackoffEntry(min(entry.delay * 2, policy.cap), now)


def wait_since(policy: BackoffPolicy, entry: BackoffEntry | None, now: float, event_time: float | None) -> float:
    """Seconds left before a restart after an exit at `event_time` (IsInBackOffSince); 0: go."""
    if entry is None or event_time is None or expired(policy, entry, event_time):
        return 0.0
    return max(0.0, entry.delay - (now - event_time))


class Backoff:
    """A table of back-off entries by key under one policy. The only state is the table; every
    method takes the time it acts at."""

    def __init__(self, policy: BackoffPolicy | None = None):
        self.policy = policy or BackoffPolicy()
        self._entries: dict[str, BackoffEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, key: str) -> BackoffEntry | None:
        return self._entries.get(key)

    def get(self, key: str) -> float:
        """The current delay for `key` (0 when there is no entry)."""
        e = self._entries.get(key)
        return e.delay if e else 0.0

    def should_wait(self, key: str, now: float, finished_at: float | str | None) -> float:
        """Seconds the container that exited at `finished_at` must still wait; 0: restart now."""
        return wait_since(self.policy, self._entries.get(key), now, _seconds(finished_at))

    def next(self, key: str, now: float, event_time: float | str | None = None) -> float:
        """Record a restart (or a failed pull) for the event at `event_time` (default `now`);
        returns the new delay."""
        e = next_entry(self.policy, self._entries.get(key), now, _seconds(event_time))
        self._entries[key] = e
        return e.delay

    def pull_wait(self, key: str, now: float) -> float:
        """Seconds left before the next pull may start, counted from the last recorded failure
        (IsInBackOffSinceUpdate); 0: pull now."""
        e = self._entries.get(key)
        if e is None or expired(self.policy, e, now):
            return 0.0
        return max(0.0, e.delay - (now - e.last_update))

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def gc(self, now: float) -> None:
        """Drop entries not updated for more than 2 x cap."""
        for key in [k for k, e in self._entries.items() if now - e.last_update > 2 * self.policy.cap]:
            del self._entries[key]


def container_hash(container: Mapping) -> str:
    """A hex FNV-1a-32 hash of the container's spec (resources left out: an in-place resize is
    not a new container)."""
    picked = {k: v for k, v in container.items() if k != "resources"}
    data = json.dumps(picked, sort_keys=True, separators=(",", ":")).encode()
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"{h:x}"


def stable_key(pod: Mapping, container: Mapping) -> str:
    """The crash-loop key: `name_namespace_uid_container_hash`, as upstream's getStableKey."""
    meta = pod.get("metadata") or {}
    return "_".join([meta.get("name", ""), meta.get("namespace", ""), meta.get("uid", ""),
                     container.get("name", ""), container_hash(container)])


def image_pull_key(pod: Mapping, image: str) -> str:
    """The image-pull key: `uid_image`."""
    return f"{(pod.get('metadata') or {}).get('uid', '')}_{image}"
