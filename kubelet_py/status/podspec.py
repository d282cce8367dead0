"""Read-only accessors over a v1 Pod dict (pure).

The pod arrives defaulted (kubelet_py.api), but the status layer reads it defensively: a missing
list is empty and a missing restartPolicy is `Always`, as the API server would default it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

ALWAYS = "Always"
ON_FAILURE = "OnFailure"
NEVER = "Never"
POLICIES = (ALWAYS, ON_FAILURE, NEVER)

CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"


def spec(pod: Mapping) -> Mapping:
    return pod.get("spec") or {}


def metadata(pod: Mapping) -> Mapping:
    return pod.get("metadata") or {}


def containers(pod: Mapping) -> Sequence[Mapping]:
    return spec(pod).get("containers") or []


def init_containers(pod: Mapping) -> Sequence[Mapping]:
    return spec(pod).get("initContainers") or []


def restart_policy(pod: Mapping) -> str:
    return spec(pod).get("restartPolicy") or ALWAYS


def is_sidecar(container: Mapping | None) -> bool:
    """A restartable init container (`restartPolicy: Always` on an init container)."""
    return bool(container) and container.get("restartPolicy") == ALWAYS


def find_container(pod: Mapping, name: str) -> tuple[Mapping | None, bool]:
    """(container spec, is_init) for a container name; (None, False) when the pod has none."""
    for c in init_containers(pod):
        if c.get("name") == name:
            return c, True
    for c in containers(pod):
        if c.get("name") == name:
            return c, False
    return None, False


def effective_restart_policy(pod: Mapping, container: Mapping, is_init: bool) -> str:
    """The policy that decides whether this container runs again after it exits.

    App containers follow the pod's restartPolicy. A sidecar always restarts. A regular init
    container runs until it succeeds: it is retried after a failure unless the pod's policy is
    Never (so `Always` acts as `OnFailure` for it)."""
    if not is_init:
        return restart_policy(pod)
    if is_sidecar(container):
        return ALWAYS
    return NEVER if restart_policy(pod) == NEVER else ON_FAILURE


def is_static(pod: Mapping) -> bool:
    """Upstream's IsStaticPod: the config-source annotation is present and is not `api`."""
    source = (metadata(pod).get("annotations") or {}).get(CONFIG_SOURCE_ANNOTATION)
    return source is not None and source != "api"


def is_host_network(pod: Mapping) -> bool:
    return bool(spec(pod).get("hostNetwork"))
