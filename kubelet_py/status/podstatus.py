"""`pod_status`: the v1 PodStatus of a pod, computed from the worker's records (pure).

It follows upstream's generateAPIPodStatus and the status manager's normalisation:
1. container statuses from the records (containers.py), with started/ready from the probes;
2. the phase (phase.py); a previous Succeeded/Failed phase is never left;
3. reason/message kept while the phase is unchanged; a pod-level reason in the record (e.g.
   DeadlineExceeded) makes the pod Failed with it;
4. conditions (conditions.py), keeping lastTransitionTime while a status is unchanged;
5. podIP(s) (one per family, the node's family first; a hostNetwork pod takes the host's),
   hostIP(s), startTime (the first one ever set is kept), qosClass.

`previous` is the status this function returned last time (default: the pod's own `status`).
"""

from __future__ import annotations

import ipaddress
from typing import Mapping, Sequence

from . import conditions, podspec
from .containers import container_statuses
from .phase import FAILED, TERMINAL, get_phase
from .qos import qos_class
from .records import PodRecord
from .timefmt import normalize, rfc3339


def _family(ip: str) -> int | None:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).version
    except ValueError:
        return None


def sort_pod_ips(pod_ips: Sequence[str], host_ips: Sequence[str]) -> list[str]:
    """At most one IP per family, the node's primary family first (upstream's sortPodIPs)."""
    primary = _family(host_ips[0]) if host_ips else None
    primary = primary or 4
    secondary = 6 if primary == 4 else 4
    out = []
    for fam in (primary, secondary):
        for ip in pod_ips:
            if _family(ip) == fam:
                out.append(str(ipaddress.ip_address(ip)))
                break
    return out


def _other_conditions(previous: Mapping, record: PodRecord) -> list[dict]:
    """Conditions the kubelet does not own: kept from the previous status, then set from the
    record (readiness gates)."""
    out: dict[str, dict] = {}
    for c in previous.get("conditions") or []:
        if c.get("type") not in conditions.KUBELET_OWNED:
            out[c["type"]] = {k: v for k, v in c.items() if k not in ("lastProbeTime", "lastTransitionTime")}
    for ctype, status in record.conditions.items():
        out[ctype] = {**out.get(ctype, {}), "type": ctype, "status": status}
    return list(out.values())


def pod_status(pod: Mapping, recorded: PodRecord, now: float, previous: Mapping | None = None) -> dict:
    prev = previous if previous is not None else (pod.get("status") or {})
    records = recorded.containers
    init = container_statuses(pod, records, prev.get("initContainerStatuses"), init=True,
                              deleting=recorded.deleting)
    apps = container_statuses(pod, records, prev.get("containerStatuses"), init=False,
                              deleting=recorded.deleting)
    has_initialized = any((r := records.get(c.get("name", ""))) is not None and r.current is not None
                          for c in podspec.containers(pod))
    phase = get_phase(pod, init, apps, terminal=recorded.terminal, has_initialized=has_initialized)
    if phase not in TERMINAL and prev.get("phase") in TERMINAL:
        phase = prev["phase"]

    status: dict = {"phase": phase}
    reason = message = ""
    if phase == prev.get("phase"):
        reason, message = prev.get("reason", ""), prev.get("message", "")
    if recorded.reason:
        status["phase"] = phase = FAILED
        reason, message = recorded.reason, recorded.message
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message

    status["conditions"] = conditions.pod_conditions(
        pod, sandbox_ready=recorded.sandbox_ready, init_statuses=init, statuses=apps, phase=phase,
        others=_other_conditions(prev, recorded), previous=prev.get("conditions"), now=now)

    host_ips = list(recorded.host_ips)
    if host_ips:
        status["hostIP"] = host_ips[0]
        status["hostIPs"] = [{"ip": ip} for ip in host_ips[:2]]
    pod_ips = sort_pod_ips(recorded.pod_ips, host_ips)
    if not pod_ips and podspec.is_host_network(pod) and host_ips:
        pod_ips = host_ips[:2]
    if pod_ips:
        status["podIP"] = pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in pod_ips]

    start = normalize(prev.get("startTime")) or normalize(recorded.start_time) or rfc3339(now)
    status["startTime"] = start
    if podspec.init_containers(pod):
        status["initContainerStatuses"] = init
    status["containerStatuses"] = apps
    status["qosClass"] = qos_class(pod)
    return status
