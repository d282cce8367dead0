"""The pod's QoS class (pure), as `k8s.io/kubernetes/pkg/apis/core/v1/helper/qos` computes it.

Only cpu and memory count. Requests and limits are summed over app and init containers alike
(ephemeral containers have none). A limit without a request counts as that request, as API
defaulting would have set it.

- BestEffort: no positive cpu/memory request or limit anywhere.
- Guaranteed: every container has positive cpu and memory limits, and the summed requests equal
  the summed limits for both resources.
- Burstable: anything else.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from kubelet_py.quantity import parse_quantity

from . import podspec

BEST_EFFORT = "BestEffort"
BURSTABLE = "Burstable"
GUARANTEED = "Guaranteed"
QOS_RESOURCES = ("cpu", "memory")


def _positive(values: Mapping | None, field: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for name, value in (values or {}).items():
        if name not in QOS_RESOURCES:
            continue
        q = parse_quantity(str(value), f"{field}.{name}")
        if q > 0:
            out[name] = q
    return out


def qos_class(pod: Mapping) -> str:
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for i, c in enumerate([*podspec.containers(pod), *podspec.init_containers(pod)]):
        res = c.get("resources") or {}
        field = f"containers[{c.get('name', i)}].resources"
        lim = _positive(res.get("limits"), field + ".limits")
        req = _positive(res.get("requests"), field + ".requests")
        for name, value in lim.items():
            if name not in (res.get("requests") or {}):
                req.setdefault(name, value)      # request defaults to the limit
        for name, value in req.items():
            requests[name] = requests.get(name, Decimal(0)) + value
        for name, value in lim.items():
            limits[name] = limits.get(name, Decimal(0)) + value
        if not all(r in lim for r in QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and all(limits.get(n) == v for n, v in requests.items()) and len(requests) == len(limits):
        return GUARANTEED
    return BURSTABLE
