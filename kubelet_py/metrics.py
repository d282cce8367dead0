"""The daemon's Prometheus metrics (`/metrics`), through prometheus-client, in a registry of the
daemon's own (never the library's global one, so several agents in one process do not clash).

Upstream's names where upstream has the metric:

    kubelet_pod_start_duration_seconds       histogram: from the agent first seeing a pod to every
                                             app container running, once per pod
    kubelet_running_pods                     gauge: pods whose sandbox is ready
    kubelet_running_containers{container_state}   gauge: created, running, exited, unknown
    prober_probe_total{probe_type,result,container,pod,namespace,pod_uid}   counter
    prober_probe_duration_seconds{probe_type,container,pod,namespace}       histogram
    kubelet_image_pull_duration_seconds{image_size_in_bytes}                histogram (upstream's size buckets)
    kubeproxy_sync_proxy_rules_duration_seconds                             histogram: one iptables sync

and kubelet-py's own where it has none:

    kubelet_py_container_restarts_total{namespace,pod,container}   counter: restarts seen by this daemon
    kubelet_py_image_pull_bytes_total                              counter: bytes of the images pulled
    kubelet_py_errors_total{kind}                                  counter: Warning events by reason
                                                                   (Failed, BackOff, Unhealthy, FailedMount,
                                                                   ...) and ServicesSyncFailed

The gauges are read from the pod workers' records at scrape time; everything else is observed
where it happens (the node agent calls the methods below). `PodTracker` is the pure part: when
a pod counts as started, and restart counts turned into increments."""

from __future__ import annotations

import time
from collections import Counter as _Counter
from typing import Callable, Iterable, Mapping

POD_START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200,
                     1800, 2700, 3600)  # upstream's podStartupDurationBuckets
IMAGE_PULL_BUCKETS = (1, 5, 10, 20, 30, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600)
PROXY_SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))  # kube-proxy's ExponentialBuckets(0.001, 2, 15)
_MB, _GB = 1024 * 1024, 1024 * 1024 * 1024
IMAGE_SIZE_BUCKETS = ((0, "0-10MB"), (10 * _MB, "10MB-100MB"), (100 * _MB, "100MB-500MB"), (500 * _MB, "500MB-1GB"),
                      (1 * _GB, "1GB-5GB"), (5 * _GB, "5GB-10GB"), (10 * _GB, "10GB-20GB"), (20 * _GB, "20GB-30GB"),
                      (30 * _GB, "30GB-40GB"), (40 * _GB, "40GB-60GB"), (60 * _GB, "60GB-100GB"),
                      (100 * _GB, "GT100GB"))
CONTAINER_STATES = ("created", "running", "exited", "unknown")


def image_size_label(size: int) -> str:
    """The image_size_in_bytes label of a pull: the bucket whose lower bound the size reaches."""
    label = IMAGE_SIZE_BUCKETS[0][1]
    for low, name in IMAGE_SIZE_BUCKETS:
        if size >= low:
            label = name
    return label


def all_running(pod: Mapping, status: Mapping) -> bool:
    """Every app container of the pod is running (the moment a pod has started)."""
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    states = {s.get("name"): s.get("state") or {} for s in status.get("containerStatuses") or []}
    return bool(names) and all("running" in states.get(n, {}) for n in names)


def running_counts(records: Iterable) -> tuple[int, dict[str, int]]:
    """(pods with a ready sandbox, container instances per state) from PodRecords."""
    pods, states = 0, _Counter({s: 0 for s in CONTAINER_STATES})
    for r in records:
        pods += bool(r.sandbox_ready)
        for c in r.containers.values():
            if c.current is not None:
                states[c.current.state if c.current.state in CONTAINER_STATES else "unknown"] += 1
    return pods, dict(states)


class PodTracker:
    """Per pod: when the agent first saw it, whether its start was observed, and the restart
    counts seen so far (pure; times are the caller's monotonic seconds)."""

    def __init__(self):
        self.seen: dict[str, float] = {}
        self.started: set[str] = set()
        self.restarts: dict[str, dict[str, int]] = {}

    def pod_seen(self, uid: str, now: float) -> None:
        self.seen.setdefault(uid, now)
        self.restarts.setdefault(uid, {})  # a new pod: its restarts count from zero

    def status(self, pod: Mapping, status: Mapping, now: float) -> tuple[float | None, dict[str, int]]:
        """(seconds from first seen to started, once; None otherwise) and the restarts since the
        last status per container. A pod adopted after a daemon restart was not seen: no start
        duration, and its restart counts are taken as they are (no increment)."""
        uid = pod["metadata"]["uid"]
        started = None
        if uid in self.seen and uid not in self.started and all_running(pod, status):
            self.started.add(uid)
            started = max(0.0, now - self.seen[uid])
        fresh = uid not in self.restarts
        known = self.restarts.setdefault(uid, {})
        deltas = {}
        for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            n, count = s.get("name"), int(s.get("restartCount") or 0)
            before = known.get(n, count if fresh else 0)
            if count > before:
                deltas[n] = count - before
            known[n] = max(before, count)
        return started, deltas

    def forget(self, uid: str) -> None:
        self.seen.pop(uid, None)
        self.started.discard(uid)
        self.restarts.pop(uid, None)


class _Running:
    """The gauges, read from the workers when scraped."""

    def __init__(self, records: Callable[[], Iterable]):
        self.records = records

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        pods, states = running_counts(self.records())
        yield GaugeMetricFamily("kubelet_running_pods", "Number of pods that have a running pod sandbox", value=pods)
        g = GaugeMetricFamily("kubelet_running_containers", "Number of containers currently running",
                              labels=["container_state"])
        for s in CONTAINER_STATES:
            g.add_metric([s], states.get(s, 0))
        yield g


class NodeMetrics:
    def __init__(self, records: Callable[[], Iterable] = lambda: (), clock: Callable[[], float] = time.monotonic):
        from prometheus_client import CollectorRegistry, Counter, Histogram
        from prometheus_client import disable_created_metrics
        disable_created_metrics()  # no *_created series (the kubelet has none)
        self.clock = clock
        self.registry = r = CollectorRegistry()
        self.pod_start = Histogram("kubelet_pod_start_duration_seconds", "Duration in seconds from kubelet-py seeing "
                                   "a pod for the first time to the pod starting to run", buckets=POD_START_BUCKETS,
                                   registry=r)
        self.probe_total = Counter("prober_probe_total", "Cumulative number of a liveness, readiness or startup "
                                   "probe for a container by result.",
                                   ["probe_type", "result", "container", "pod", "namespace", "pod_uid"], registry=r)
        self.probe_duration = Histogram("prober_probe_duration_seconds", "Duration in seconds for a probe response.",
                                        ["probe_type", "container", "pod", "namespace"], registry=r)
        self.restarts = Counter("kubelet_py_container_restarts_total", "Container restarts seen by this daemon",
                                ["namespace", "pod", "container"], registry=r)
        self.image_pull = Histogram("kubelet_image_pull_duration_seconds", "Duration in seconds to pull an image.",
                                    ["image_size_in_bytes"], buckets=IMAGE_PULL_BUCKETS, registry=r)
        self.image_bytes = Counter("kubelet_py_image_pull_bytes_total", "Bytes of the images pulled", registry=r)
        self.proxy_sync = Histogram("kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in "
                                    "seconds", buckets=PROXY_SYNC_BUCKETS, registry=r)
        self.errors = Counter("kubelet_py_errors_total", "Errors by kind: Warning events by reason, and failed "
                              "Services syncs", ["kind"], registry=r)
        r.register(_Running(records))
        self.tracker = PodTracker()
        self._series: dict[str, set] = {}  # pod uid -> (metric, label values) to remove when it goes

    # ---- what the agent calls where things happen ----------------------------------------------
    def pod_seen(self, uid: str) -> None:
        self.tracker.pod_seen(uid, self.clock())

    def pod_status(self, pod: Mapping, status: Mapping) -> None:
        started, deltas = self.tracker.status(pod, status, self.clock())
        if started is not None:
            self.pod_start.observe(started)
        md = pod["metadata"]
        for name, n in deltas.items():
            labels = (md.get("namespace") or "default", md["name"], name)
            self.restarts.labels(*labels).inc(n)
            self._series.setdefault(md["uid"], set()).add((self.restarts, labels))

    def pod_gone(self, uid: str) -> None:
        """The pod's own series go with it (as upstream removes a probe worker's)."""
        self.tracker.forget(uid)
        for metric, labels in self._series.pop(uid, ()):
            try:
                metric.remove(*labels)
            except KeyError:
                pass

    def observe_probe(self, probe_type: str, result: str, seconds: float, target) -> None:
        """ProberMetrics' sink (kubelet_py/prober/metrics.py)."""
        total = (probe_type, result, target.container, target.pod, target.namespace, target.pod_uid)
        dur = (probe_type, target.container, target.pod, target.namespace)
        self.probe_total.labels(*total).inc()
        self.probe_duration.labels(*dur).observe(seconds)
        s = self._series.setdefault(target.pod_uid, set())
        s.add((self.probe_total, total))
        s.add((self.probe_duration, dur))

    def image_pulled(self, seconds: float, size: int) -> None:
        self.image_pull.labels(image_size_label(size)).observe(seconds)
        self.image_bytes.inc(max(0, size))

    def proxy_synced(self, result) -> None:
        """netns.ServiceProxy's SyncResult (its wall time)."""
        self.proxy_sync.observe(result.seconds)

    def event(self, type_: str, reason: str) -> None:
        if type_ == "Warning":
            self.errors.labels(reason).inc()

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def exposition(self) -> bytes:
        """The text format (call on the event loop: the gauges read the workers)."""
        from prometheus_client import generate_latest
        return generate_latest(self.registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
