"""Probe counters (pure): upstream's prober_probe_total and prober_probe_duration_seconds, as
plain dicts keyed by (probe_type, result) with result one of successful, failed, unknown (a
prober error that was thrown away counts as unknown).

The metrics endpoint (kubelet_py/metrics.py) adds upstream's per-container labels: a pod's probes
observe through `for_container(ProbeTarget(...))`, and every observation with a target also goes
to `sink(probe_type, result, seconds, target)` when one is set."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from .policy import metric_label
from .spec import ProbeType, Result


class ProbeTarget(NamedTuple):
    """The labels upstream puts on a probe's series besides probe_type and result."""
    container: str
    pod: str
    namespace: str
    pod_uid: str


@dataclass
class ProberMetrics:
    probe_total: Counter = field(default_factory=Counter)  # (type, result) -> attempts
    duration_count: Counter = field(default_factory=Counter)  # (type, result) -> attempts timed
    duration_sum: dict = field(default_factory=dict)  # (type, result) -> seconds, summed
    sink: Callable[[str, str, float, ProbeTarget], None] | None = None  # the /metrics exporter

    def observe(self, kind: ProbeType, result: Result, seconds: float, target: ProbeTarget | None = None) -> None:
        key = (kind.value, metric_label(result))
        self.probe_total[key] += 1
        self.duration_count[key] += 1
        self.duration_sum[key] = self.duration_sum.get(key, 0.0) + seconds
        if self.sink is not None and target is not None:
            self.sink(key[0], key[1], seconds, target)

    def for_container(self, target: ProbeTarget) -> "ContainerProberMetrics":
        """What one container's probes observe through (ContainerProbes' `metrics`)."""
        return ContainerProberMetrics(self, target)


@dataclass(frozen=True)
class ContainerProberMetrics:
    parent: ProberMetrics
    target: ProbeTarget

    def observe(self, kind: ProbeType, result: Result, seconds: float) -> None:
        self.parent.observe(kind, result, seconds, self.target)
