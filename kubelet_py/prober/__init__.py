"""The kubelet's prober: startup, liveness and readiness probes and lifecycle hooks.

Mechanics (one attempt, edge): handlers.run_probe / run_hook over httpprobe, tcpprobe, grpcprobe,
execprobe. Policy (pure): policy (ticks, thresholds, gates), results (what is current, announced on
change), metrics. worker.ContainerProbes runs one task per probe of a container."""

from .handlers import HookError, run_hook, run_probe
from .metrics import ProberMetrics
from .policy import kill_message
from .results import ResultsManager, Update
from .spec import (KUBE_VERSION, LIFECYCLE_USER_AGENT, MAX_OUTPUT, PROBE_USER_AGENT, Outcome, ProbeSpec, ProbeType,
                   Result, SpecError, container_probes, parse_hook, parse_probe, resolve_port)
from .worker import ContainerProbes, ProbeStatus

__all__ = ["ContainerProbes", "HookError", "KUBE_VERSION", "LIFECYCLE_USER_AGENT", "MAX_OUTPUT", "Outcome",
           "PROBE_USER_AGENT", "ProbeSpec", "ProbeStatus", "ProbeType", "ProberMetrics", "Result", "ResultsManager",
           "SpecError", "Update", "container_probes", "kill_message", "parse_hook", "parse_probe", "resolve_port",
           "run_hook", "run_probe"]
