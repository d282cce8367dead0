"""Small typed answers about a pod spec that the rest of the kubelet asks for: the QoS class
(semantics 3.3), a container's cpu and memory in milli-cpu and bytes, the pod's effective
requests, a container port by name or number (for probes), and the containers in start order.

They read admitted (defaulted, valid) specs: requests already default to limits."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterator

from kubelet_py.api import quantity

GUARANTEED, BURSTABLE, BEST_EFFORT = "Guaranteed", "Burstable", "BestEffort"
QOS_RESOURCES = ("cpu", "memory")


class ContainerKind(enum.Enum):
    INIT = "init"  # a regular init container: runs to completion, in order
    SIDECAR = "sidecar"  # an init container with restartPolicy Always
    APP = "app"


def is_sidecar(container: dict) -> bool:
    return container.get("restartPolicy") == "Always"


def iter_containers(spec: dict) -> Iterator[tuple[ContainerKind, dict]]:
    """Init containers (sidecars among them, in spec order), then app containers."""
    for c in spec.get("initContainers", []):
        yield (ContainerKind.SIDECAR if is_sidecar(c) else ContainerKind.INIT), c
    for c in spec.get("containers", []):
        yield ContainerKind.APP, c


@dataclass(frozen=True)
class ContainerResources:
    cpu_request_milli: int  # 0 when none
    cpu_limit_milli: int | None  # None: no limit
    memory_request_bytes: int
    memory_limit_bytes: int | None


def container_resources(container: dict) -> ContainerResources:
    res = container.get("resources", {})
    req, lim = res.get("requests", {}), res.get("limits", {})
    cpu_lim = quantity.milli(lim["cpu"]) if "cpu" in lim else None
    mem_lim = quantity.whole(lim["memory"]) if "memory" in lim else None
    cpu_req = quantity.milli(req["cpu"]) if "cpu" in req else (cpu_lim or 0)
    mem_req = quantity.whole(req["memory"]) if "memory" in req else (mem_lim or 0)
    return ContainerResources(cpu_req, cpu_lim, mem_req, mem_lim)


def qos_class(spec: dict) -> str:
    """GetPodQOS (`pkg/apis/core/v1/helper/qos`): BestEffort when no container, init included,
    has a cpu or memory request or limit; Guaranteed when every container has both limits and
    the summed requests equal the summed limits; Burstable otherwise."""
    requests: dict = {}
    limits: dict = {}
    guaranteed = True
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        res = c.get("resources", {})
        for name, q in res.get("requests", {}).items():
            v = quantity.value(q)
            if name in QOS_RESOURCES and v > 0:
                requests[name] = requests.get(name, 0) + v
        found = set()
        for name, q in res.get("limits", {}).items():
            v = quantity.value(q)
            if name in QOS_RESOURCES and v > 0:
                found.add(name)
                limits[name] = limits.get(name, 0) + v
        if not found >= set(QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and all(limits.get(n) == v for n, v in requests.items()) and len(requests) == len(limits):
        return GUARANTEED
    return BURSTABLE


def pod_requests(spec: dict) -> tuple[int, int]:
    """The pod's effective (cpu milli, memory bytes) request, as resourcehelper.PodRequests:
    the larger of the app containers' sum (plus running sidecars) and what each init container
    needs while it runs next to the sidecars started before it; plus the pod overhead."""
    def pair(c: dict) -> tuple[int, int]:
        r = container_resources(c)
        return r.cpu_request_milli, r.memory_request_bytes

    total = [0, 0]
    for c in spec.get("containers", []):
        cpu, mem = pair(c)
        total[0] += cpu
        total[1] += mem
    sidecars = [0, 0]
    init_max = [0, 0]
    for c in spec.get("initContainers", []):
        cpu, mem = pair(c)
        if is_sidecar(c):
            total[0] += cpu
            total[1] += mem
            sidecars = [sidecars[0] + cpu, sidecars[1] + mem]
            need = sidecars
        else:
            need = [cpu + sidecars[0], mem + sidecars[1]]
        init_max = [max(init_max[0], need[0]), max(init_max[1], need[1])]
    result = [max(total[0], init_max[0]), max(total[1], init_max[1])]
    overhead = spec.get("overhead", {})
    if "cpu" in overhead:
        result[0] += quantity.milli(overhead["cpu"])
    if "memory" in overhead:
        result[1] += quantity.whole(overhead["memory"])
    return result[0], result[1]


def container_port(container: dict, port) -> int | None:
    """A probe's or hook's port (an int, a port name, or a number written as a string) as a
    number, as the kubelet's prober resolves it; None when a name matches no port."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    if isinstance(port, str) and port.isdigit():
        return int(port)
    return None
