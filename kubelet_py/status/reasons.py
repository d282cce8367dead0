"""The kubelet's reason strings and the messages that go with them (pure).

Reasons and message formats are upstream's (kubelet `kubelet_pods.go`, `images/types.go`,
`kuberuntime`, `lifecycle/handlers.go`, `active_deadline.go`, `container/sync_result.go`), so that
`kubectl` users see the strings they know.
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

from .timefmt import go_duration

# waiting reasons (container state waiting.reason)
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"
CRASH_LOOP_BACKOFF = "CrashLoopBackOff"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"
POST_START_HOOK_ERROR = "PostStartHookError"
RUN_CONTAINER_ERROR = "RunContainerError"
WAITING_REASONS = (CONTAINER_CREATING, POD_INITIALIZING, ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF,
                   ERR_IMAGE_NEVER_PULL, INVALID_IMAGE_NAME, CRASH_LOOP_BACKOFF,
                   CREATE_CONTAINER_CONFIG_ERROR, CREATE_CONTAINER_ERROR, POST_START_HOOK_ERROR,
                   RUN_CONTAINER_ERROR)

# terminated reasons (the runtime's, containerd `internal/cri/server/helpers.go`)
COMPLETED = "Completed"
ERROR = "Error"
OOM_KILLED = "OOMKilled"
CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown"

# pod-level reasons
DEADLINE_EXCEEDED = "DeadlineExceeded"
DEADLINE_EXCEEDED_MESSAGE = "Pod was active on the node longer than the specified deadline"

# condition reasons (kubelet/status/generate.go)
UNKNOWN_CONTAINER_STATUSES = "UnknownContainerStatuses"
POD_COMPLETED = "PodCompleted"
POD_FAILED = "PodFailed"
CONTAINERS_NOT_READY = "ContainersNotReady"
CONTAINERS_NOT_INITIALIZED = "ContainersNotInitialized"
READINESS_GATES_NOT_READY = "ReadinessGatesNotReady"

# the messages convertToAPIContainerStatuses writes for an instance the runtime lost
LOST_WHEN_TERMINATED = "The container could not be located when the pod was terminated"
LOST_WHEN_DELETED = ("The container could not be located when the pod was deleted.  "
                     "The container used to be Running")


def terminated_reason(exit_code: int, oom_killed: bool = False) -> str:
    """The runtime's reason for an exit: OOMKilled, Completed (0) or Error."""
    if oom_killed:
        return OOM_KILLED
    return COMPLETED if exit_code == 0 else ERROR


def pod_ref(pod: Mapping) -> str:
    """Upstream's `format.Pod`: `name_namespace(uid)`."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def go_quote(s: str) -> str:
    """Go's `%q` of a string (strconv.Quote) for the printable text the kubelet quotes."""
    out = []
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def go_list(items: Sequence[str]) -> str:
    """Go's `%v` of a []string: `[a b c]`."""
    return "[" + " ".join(items) + "]"


def crashloop_message(delay: float, container: str, pod: Mapping) -> str:
    """The waiting message of CrashLoopBackOff: `back-off 40s restarting failed container=c pod=p_ns(uid)`."""
    return f"back-off {go_duration(delay)} restarting failed container={container} pod={pod_ref(pod)}"


def image_pull_backoff_message(image: str, previous_error: str = "") -> str:
    """The waiting message of ImagePullBackOff: `Back-off pulling image "x"`, followed by the last
    pull error (`: ErrImagePull: <message>`) when the worker kept one, as recent kubelets do."""
    msg = f"Back-off pulling image {go_quote(image)}"
    return f"{msg}: {previous_error}" if previous_error else msg


def image_never_pull_message(image: str) -> str:
    return f"Container image {go_quote(image)} is not present with pull policy of Never"


def exec_hook_failure_message(command: Sequence[str], container: str, pod: Mapping, error: str, output: str) -> str:
    """PostStartHookError's message when an exec hook fails (lifecycle/handlers.go)."""
    return (f"Exec lifecycle hook ({go_list(command)}) for Container {go_quote(container)} in Pod "
            f"{go_quote(pod_ref(pod))} failed - error: {error}, message: {go_quote(output)}")


def http_hook_failure_message(path: str, container: str, pod: Mapping, error: str) -> str:
    """PostStartHookError's message when an httpGet hook fails (lifecycle/handlers.go)."""
    return (f"HTTP lifecycle hook ({path}) for Container {go_quote(container)} in Pod "
            f"{go_quote(pod_ref(pod))} failed - error: {error}")


def go_json(value: object) -> str:
    """Go's `json.Marshal` of plain data: compact, keys sorted, `<>&` escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
