"""`kubectl get` output (pure): the pods and namespaces tables and `-o name`.

The pod row is kubectl's printPod: READY counts ready app containers and started-and-ready
sidecars; STATUS starts from the phase (or status.reason) and is refined by the first init
container still initializing (`Init:N/M`, `Init:<reason>`, `Init:ExitCode:N`, `Init:Signal:N`)
or else by the app containers' waiting/terminated reasons (the first container in status order
that has one wins: CrashLoopBackOff, Completed, Error, ...), `NotReady`/`Running` for a
Completed pod with a container still running, `Terminating` for a pod being deleted that is not
Succeeded/Failed; RESTARTS is the sum of restart counts with `(5m ago)` since the last
termination; AGE is kubectl's human duration since creation.

Tables are laid out with Go's tabwriter as kubectl does (minwidth 6, padding 3).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from . import podspec
from .tabwriter import TabWriter
from .timefmt import human_duration, parse_rfc3339, since

POD_COLUMNS = ("NAME", "READY", "STATUS", "RESTARTS", "AGE")
POD_WIDE_COLUMNS = ("IP", "NODE", "NOMINATED NODE", "READINESS GATES")
NAMESPACE_COLUMNS = ("NAME", "STATUS", "AGE")
NODE_LOST = "NodeLost"


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    w = TabWriter(minwidth=6, tabwidth=4, padding=3)
    for row in ([header] if header else []) + list(rows):
        w.write("\t".join(row) + "\n")
    return w.getvalue()


def _finished_at(state: Mapping | None) -> float | None:
    t = (state or {}).get("terminated")
    if not t or not t.get("finishedAt"):
        return None
    return parse_rfc3339(t["finishedAt"])


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _condition_true(status: Mapping, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def pod_row(pod: Mapping, now: float, *, wide: bool = False) -> list[str]:
    """The cells of one `kubectl get pods` row."""
    meta, spec, status = podspec.metadata(pod), podspec.spec(pod), pod.get("status") or {}
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs.values() if podspec.is_sidecar(c))
    ready = 0
    restarts = sidecar_restarts = 0
    last_restart: float | None = None
    sidecar_last_restart: float | None = None
    phase = status.get("phase", "")
    reason = status.get("reason") or phase
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount", 0))
        last_restart = _later(last_restart, _finished_at(cs.get("lastState")))
        sidecar = podspec.is_sidecar(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount", 0))
            sidecar_last_restart = _later(sidecar_last_restart, _finished_at(cs.get("lastState")))
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if not term.get("reason"):
                reason = (f"Init:Signal:{term['signal']}" if term.get("signal")
                          else f"Init:ExitCode:{term.get('exitCode', 0)}")
            else:
                reason = "Init:" + term["reason"]
        elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, sidecar_last_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount", 0))
            last_restart = _later(last_restart, _finished_at(cs.get("lastState")))
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            elif cs.get("ready") and "running" in state:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == NODE_LOST:
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"
    row = [meta.get("name", ""), f"{ready}/{total}", reason, restarts_cell, since(meta.get("creationTimestamp"), now)]
    if wide:
        ips = status.get("podIPs") or []
        gates = spec.get("readinessGates") or []
        gates_cell = "<none>"
        if gates:
            by_type = {c.get("type"): c for c in status.get("conditions") or []}
            true = sum(1 for g in gates if (by_type.get(g.get("conditionType")) or {}).get("status") == "True")
            gates_cell = f"{true}/{len(gates)}"
        row += [(ips[0].get("ip") if ips else "") or "<none>", spec.get("nodeName") or "<none>",
                status.get("nominatedNodeName") or "<none>", gates_cell]
    return row


def pods_table(pods: Sequence[Mapping], now: float, *, wide: bool = False, all_namespaces: bool = False,
               no_headers: bool = False) -> str:
    """`kubectl get pods [-o wide] [-A]`."""
    header = list(POD_COLUMNS) + (list(POD_WIDE_COLUMNS) if wide else [])
    rows = []
    for pod in pods:
        row = pod_row(pod, now, wide=wide)
        if all_namespaces:
            row = [podspec.metadata(pod).get("namespace", "")] + row
        rows.append(row)
    if all_namespaces:
        header = ["NAMESPACE"] + header
    return _table(None if no_headers else header, rows)


def namespaces_table(namespaces: Sequence[Mapping], now: float, *, no_headers: bool = False) -> str:
    """`kubectl get namespaces`: NAME STATUS AGE (STATUS is the namespace's phase)."""
    rows = [[(ns.get("metadata") or {}).get("name", ""), (ns.get("status") or {}).get("phase", ""),
             since((ns.get("metadata") or {}).get("creationTimestamp"), now)] for ns in namespaces]
    return _table(None if no_headers else list(NAMESPACE_COLUMNS), rows)


def name_output(obj: Mapping) -> str:
    """`-o name`: `pod/x`, `namespace/y`, `deployment.apps/z` (kind lower-cased, the API group
    appended when there is one)."""
    kind = (obj.get("kind") or "").lower()
    api_version = obj.get("apiVersion") or ""
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    resource = f"{kind}.{group}" if group else kind
    return f"{resource}/{(obj.get('metadata') or {}).get('name', '')}"


def no_resources_message(namespace: str | None) -> str:
    """What kubectl writes to stderr for an empty list."""
    if namespace:
        return f"No resources found in {namespace} namespace."
    return "No resources found"


CONFIGMAP_COLUMNS = ("NAME", "DATA", "AGE")
SECRET_COLUMNS = ("NAME", "TYPE", "DATA", "AGE")


def configmaps_table(configmaps: Sequence[Mapping], now: float, *, all_namespaces: bool = False,
                     no_headers: bool = False) -> str:
    """`kubectl get configmaps`: NAME DATA AGE (DATA counts data and binaryData keys)."""
    rows = []
    for cm in configmaps:
        meta = cm.get("metadata") or {}
        row = [meta.get("name", ""), str(len(cm.get("data") or {}) + len(cm.get("binaryData") or {})),
               since(meta.get("creationTimestamp"), now)]
        rows.append(([meta.get("namespace", "")] if all_namespaces else []) + row)
    header = (["NAMESPACE"] if all_namespaces else []) + list(CONFIGMAP_COLUMNS)
    return _table(None if no_headers else header, rows)


def secrets_table(secrets: Sequence[Mapping], now: float, *, all_namespaces: bool = False,
                  no_headers: bool = False) -> str:
    """`kubectl get secrets`: NAME TYPE DATA AGE (never a value)."""
    rows = []
    for s in secrets:
        meta = s.get("metadata") or {}
        row = [meta.get("name", ""), s.get("type", ""), str(len(s.get("data") or {})),
               since(meta.get("creationTimestamp"), now)]
        rows.append(([meta.get("namespace", "")] if all_namespaces else []) + row)
    header = (["NAMESPACE"] if all_namespaces else []) + list(SECRET_COLUMNS)
    return _table(None if no_headers else header, rows)


# --- Services, EndpointSlices, Endpoints (kubectl's printService, printEndpointSlice, printEndpoints) ---

SERVICE_COLUMNS = ("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE")
ENDPOINT_SLICE_COLUMNS = ("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE")
ENDPOINTS_COLUMNS = ("NAME", "ENDPOINTS", "AGE")


def format_labels(labels: Mapping | None) -> str:
    """labels.FormatLabels: sorted `k=v` joined by commas, `<none>` when empty."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels)) if labels else "<none>"


def _join_host_port(host: str, port) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _service_external_ip(svc: Mapping, wide: bool) -> str:
    spec = svc.get("spec") or {}
    external = spec.get("externalIPs") or []
    kind = spec.get("type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        result = ",".join(sorted({i.get("ip") or i.get("hostname", "") for i in ingress} - {""}))
        if not wide and len(result) > 16:  # loadBalancerStatusStringer's cut without -o wide
            result = result[:13] + "..."
        if external:
            return ",".join(([result] if result else []) + external)
        return result or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_ports(ports) -> str:
    """makePortString: `80/TCP`, `80:30080/TCP`, joined by commas."""
    out = []
    for p in ports or []:
        np = p.get("nodePort") or 0
        out.append(f"{p.get('port')}:{np}/{p.get('protocol')}" if np > 0 else f"{p.get('port')}/{p.get('protocol')}")
    return ",".join(out)


def service_row(svc: Mapping, now: float, *, wide: bool = False) -> list[str]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    cips = spec.get("clusterIPs") or []
    row = [meta.get("name", ""), spec.get("type", ""), cips[0] if cips else "<none>",
           _service_external_ip(svc, wide), service_ports(spec.get("ports")) or "<none>",
           since(meta.get("creationTimestamp"), now)]
    if wide:
        row.append(format_labels(spec.get("selector")))
    return row


def _namespaced_table(objs, row_fn, columns, now, wide, all_namespaces, no_headers, wide_columns=()) -> str:
    rows = []
    for o in objs:
        row = row_fn(o, now, wide=wide) if wide_columns else row_fn(o, now)
        rows.append(([(o.get("metadata") or {}).get("namespace", "")] if all_namespaces else []) + row)
    header = (["NAMESPACE"] if all_namespaces else []) + list(columns) + (list(wide_columns) if wide else [])
    return _table(None if no_headers else header, rows)


def services_table(services: Sequence[Mapping], now: float, *, wide: bool = False, all_namespaces: bool = False,
                   no_headers: bool = False) -> str:
    """`kubectl get services [-o wide] [-A]`."""
    return _namespaced_table(services, service_row, SERVICE_COLUMNS, now, wide, all_namespaces, no_headers,
                             ("SELECTOR",))


def _more(items: list[str], count: int, limit: int = 3, empty: str = "<unset>") -> str:
    """listWithMoreString."""
    ret = ",".join(items[:limit])
    if count > limit:
        return f"{ret} + {count - limit} more..."
    return ret or empty


def endpoint_slice_row(eps: Mapping, now: float) -> list[str]:
    ports = [str(p["port"]) if p.get("port") is not None else (p.get("name") or "*") for p in eps.get("ports") or []]
    addrs = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    meta = eps.get("metadata") or {}
    return [meta.get("name", ""), eps.get("addressType", ""), _more(ports, len(ports)), _more(addrs, len(addrs)),
            since(meta.get("creationTimestamp"), now)]


def endpoint_slices_table(slices: Sequence[Mapping], now: float, *, all_namespaces: bool = False,
                          no_headers: bool = False) -> str:
    """`kubectl get endpointslices [-A]`."""
    return _namespaced_table(slices, endpoint_slice_row, ENDPOINT_SLICE_COLUMNS, now, False, all_namespaces,
                             no_headers)


def format_endpoints(ep: Mapping, ports: set | None = None) -> str:
    """formatEndpoints: up to 3 `ip:port` of the ready addresses, then `+ N more...`."""
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    items, count = [], 0
    for ss in subsets:
        addrs = ss.get("addresses") or []
        if not ss.get("ports"):
            count += len(addrs)
            items += [a.get("ip", "") for a in addrs]
            continue
        for p in ss["ports"]:
            if ports is None or p.get("name", "") in ports:
                count += len(addrs)
                items += [_join_host_port(a.get("ip", ""), p.get("port")) for a in addrs]
    return _more(items, count, empty="<none>")


def endpoints_row(ep: Mapping, now: float) -> list[str]:
    meta = ep.get("metadata") or {}
    return [meta.get("name", ""), format_endpoints(ep), since(meta.get("creationTimestamp"), now)]


def endpoints_table(endpoints: Sequence[Mapping], now: float, *, all_namespaces: bool = False,
                    no_headers: bool = False) -> str:
    """`kubectl get endpoints [-A]`."""
    return _namespaced_table(endpoints, endpoints_row, ENDPOINTS_COLUMNS, now, False, all_namespaces, no_headers)
