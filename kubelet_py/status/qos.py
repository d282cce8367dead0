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

from typing import Mapping

from kubelet_py.api.resources import BEST_EFFORT, BURSTABLE, GUARANTEED  # noqa: F401 - re-exported names


def qos_class(pod: Mapping) -> str:
    """The pod's QoS class (semantics 3.3): the API layer's one computation, on the defaulted
    spec (a limit without a request has become its request there; done here too for a pod
    that was not defaulted)."""
    from kubelet_py.api.defaults import set_defaults
    from kubelet_py.api.resources import qos_class as of_spec
    return of_spec(set_defaults({"apiVersion": "v1", "kind": "Pod", "metadata": {}, **dict(pod)})["spec"])
