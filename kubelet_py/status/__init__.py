"""The kubelet's pure status layer: what the pod worker records goes in, the v1 PodStatus,
restart decisions, back-off, events and kubectl's printed forms come out. Nothing here reads the
clock, touches the kernel or does I/O; every function that needs the time takes `now` (POSIX
seconds).

Modules:
  records      the worker's records (PodRecord, ContainerRecord, Instance, Terminated)
  podstatus    pod_status(pod, recorded, now, previous) -> v1 PodStatus dict
  containers   container statuses;  phase  the pod phase;  conditions  the pod conditions
  qos          the QoS class;  podspec  read-only accessors over the pod dict
  backoff      crash-loop and image-pull back-off (Backoff, BackoffPolicy, crashloop_policy)
  decide       should_start, start_decision, init_plan, pod_done, stop_order, past_active_deadline
  reasons      reason constants and the kubelet's message formats
  events       EventRecorder and the kubelet's event constructors
  printers     kubectl get tables and -o name;  describe  kubectl describe pod
  jsonpath     kubectl -o jsonpath;  tabwriter  Go's text/tabwriter
  timefmt      RFC 3339, Go durations, kubectl ages;  quantityfmt  canonical quantities
"""

from .backoff import Backoff, BackoffPolicy, crashloop_policy, image_pull_key, stable_key
from .decide import (InitPlan, StartDecision, app_containers_to_start, init_plan, past_active_deadline,
                     pod_done, should_start, start_decision, stop_order)
from .describe import describe_pod
from .events import Event, EventRecorder, EventSpec
from .jsonpath import JSONPathError, jsonpath
from .podstatus import pod_status
from .printers import name_output, namespaces_table, pod_row, pods_table
from .qos import qos_class
from .records import ContainerRecord, Instance, PodRecord, RecordError, Terminated

__all__ = [
    "Backoff", "BackoffPolicy", "crashloop_policy", "image_pull_key", "stable_key",
    "InitPlan", "StartDecision", "app_containers_to_start", "init_plan", "past_active_deadline",
    "pod_done", "should_start", "start_decision", "stop_order",
    "describe_pod", "Event", "EventRecorder", "EventSpec", "JSONPathError", "jsonpath", "pod_status",
    "name_output", "namespaces_table", "pod_row", "pods_table", "qos_class",
    "ContainerRecord", "Instance", "PodRecord", "RecordError", "Terminated",
]
