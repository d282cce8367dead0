"""Probe counters for the metrics endpoint to come (pure): upstream's prober_probe_total and
prober_probe_duration_seconds, as plain dicts keyed by (probe_type, result) with result one of
successful, failed, unknown (a prober error that was thrown away counts as unknown)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .policy import metric_label
from .spec import ProbeType, Result


@dataclass
class ProberMetrics:
    probe_total: Counter = field(default_factory=Counter)  # (type, result) -> attempts
    duration_count: Counter = field(default_factory=Counter)  # (type, result) -> attempts timed
    duration_sum: dict = field(default_factory=dict)  # (type, result) -> seconds, summed

    def observe(self, kind: ProbeType, result: Result, seconds: float) -> None:
        key = (kind.value, metric_label(result))
        self.probe_total[key] += 1
        self.duration_count[key] += 1
        self.duration_sum[key] = self.duration_sum.get(key, 0.0) + seconds
