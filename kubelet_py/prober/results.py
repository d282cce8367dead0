"""The current probe results of every container (pure): upstream's prober/results managers, the
three types in one. A result is kept per container instance (its id) and type; `set` tells the
`on_change` callback only when a result changes, so that the pod worker wakes only when something
happened (its status: ready, started, a liveness failure). A container with no probe of a type has
no entry: "ready" then means "running", "started" means "running" (see ContainerProbes.status)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from .spec import ProbeType, Result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Update:
    container_id: str
    kind: ProbeType
    result: Result
    pod: str = ""  # the caller's key of the pod (e.g. its uid), to route the update
    container: str = ""  # the container's name


class ResultsManager:
    def __init__(self, on_change: Callable[[Update], None] | None = None):
        self._results: dict[tuple[str, ProbeType], Result] = {}
        self.on_change = on_change

    def get(self, container_id: str, kind: ProbeType) -> Result | None:
        return self._results.get((container_id, kind))

    def results(self, container_id: str) -> dict[ProbeType, Result]:
        """Every result kept for one container instance."""
        return {k: r for (cid, k), r in self._results.items() if cid == container_id}

    def set(self, container_id: str, kind: ProbeType, result: Result, *, pod: str = "", container: str = "") -> bool:
        """Record `result`; True (and the callback told) when it differs from what was kept."""
        key = (container_id, kind)
        if self._results.get(key) is result:
            return False
        self._results[key] = result
        if self.on_change is not None:
            try:
                self.on_change(Update(container_id, kind, result, pod, container))
            except Exception:  # a broken listener must not stop the probes
                log.exception("probe result listener failed on %s %s %s", container_id, kind.value, result.value)
        return True

    def remove(self, container_id: str, kind: ProbeType | None = None) -> None:
        """Forget one type's result (or all of them) of a container instance; nobody is told, as
        upstream: the instance is gone."""
        for k in ([kind] if kind is not None else list(ProbeType)):
            self._results.pop((container_id, k), None)

    def __len__(self) -> int:
        return len(self._results)
