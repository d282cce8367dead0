"""`kubectl describe pod` text (pure), line for line as kubectl's describePod writes it.

Everything goes through Go's tabwriter with kubectl's describe settings (minwidth 0, tabwidth 8,
padding 2); a line with a single cell (a section title) ends a block of aligned lines, and the
Events table is flushed on its own, as in kubectl. Times are printed in `tz` (kubectl uses the
local zone; the caller chooses, UTC by default) and ages are computed from `now`.

Events are v1 Event dicts or `events.Event` values; None leaves the Events section out
(`--show-events=false`), an empty list prints `Events: <none>`.
"""

from __future__ import annotations

import math
from datetime import timezone, tzinfo
from decimal import ROUND_CEILING, Decimal
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

from kubelet_py.quantity import parse_quantity

from . import podspec
from .printers import format_labels
from .qos import qos_class
from .quantityfmt import canonical
from .reasons import go_list
from .tabwriter import TabWriter
from .timefmt import parse_rfc3339, rfc1123z, since

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION_LEN = 140
GO_ZERO_TIME = "Mon, 01 Jan 0001 00:00:00 +0000"


class _Writer:
    """kubectl's PrefixWriter over a tabwriter: each Write is prefixed by two spaces per level."""

    def __init__(self, tz: tzinfo):
        self.tab = TabWriter(0, 8, 2)
        self.tz = tz

    def write(self, level: int, text: str) -> None:
        self.tab.write("  " * level + text)

    def line(self, text: str) -> None:
        self.tab.write(text + "\n")

    def flush(self) -> None:
        self.tab.flush()

    def time(self, value: str | None) -> str:
        return rfc1123z(value, self.tz) if value else GO_ZERO_TIME


def _labels(w: _Writer, title: str, labels: Mapping | None, initial_indent: str = "") -> None:
    w.write(0, f"{initial_indent}{title}:\t")
    keys = sorted(labels or {})
    if not keys:
        w.line("<none>")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, initial_indent + "\t")
        w.write(0, f"{key}={labels[key]}\n")


def _shorten(s: str, n: int) -> str:
    return s[:n] + "..." if len(s) > n else s


def _annotations(w: _Writer, title: str, annotations: Mapping | None) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in (annotations or {}) if k != LAST_APPLIED)
    if not keys:
        w.line("<none>")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = str(annotations[key])
        if value.endswith("\n"):
            value = value[:-1]
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for s in value.split("\n"):
                w.write(0, f"\t  {_shorten(s, MAX_ANNOTATION_LEN - 2)}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _tolerations(w: _Writer, tolerations: Sequence[Mapping] | None) -> None:
    w.write(0, "Tolerations:\t")
    if not tolerations:
        w.line("<none>")
        return
    for i, t in enumerate(sorted(tolerations, key=lambda t: t.get("key", ""))):
        if i:
            w.write(0, "\t")
        text = t.get("key", "")
        if t.get("value"):
            text += "=" + t["value"]
        if t.get("effect"):
            text += ":" + t["effect"]
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if (t.get("key") or t.get("effect")) else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        w.write(0, text + "\n")


def _resources(w: _Writer, resources: Mapping | None, level: int) -> None:
    for title, key in (("Limits", "limits"), ("Requests", "requests")):
        values = (resources or {}).get(key) or {}
        if values:
            w.write(level, f"{title}:\n")
        for name in sorted(values):
            w.write(level + 1, f"{name}:\t{canonical(str(values[name]))}\n")


def _port_text(port: object) -> str:
    return "" if port is None else str(port)


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_probe(probe: Mapping) -> str:
    """kubectl's DescribeProbe: `http-get http://:8080/healthz delay=3s timeout=1s period=3s
    #success=1 #failure=3` (the API defaults stand in for fields left out)."""
    attrs = (f"delay={probe.get('initialDelaySeconds', 0)}s timeout={probe.get('timeoutSeconds', 1)}s "
             f"period={probe.get('periodSeconds', 10)}s #success={probe.get('successThreshold', 1)} "
             f"#failure={probe.get('failureThreshold', 3)}")
    if probe.get("exec") is not None:
        return f"exec {go_list([str(a) for a in probe['exec'].get('command') or []])} {attrs}"
    if probe.get("httpGet") is not None:
        h = probe["httpGet"]
        port = _port_text(h.get("port"))
        host = _join_host_port(h.get("host", ""), port) if port else h.get("host", "")
        path = h.get("path", "")
        if path and not path.startswith("/") and host:
            path = "/" + path
        url = f"{(h.get('scheme') or 'HTTP').lower()}://{host}{quote(path, safe='/$&+,:;=@-_.~')}"
        return f"http-get {url} {attrs}"
    if probe.get("tcpSocket") is not None:
        t = probe["tcpSocket"]
        return f"tcp-socket {t.get('host', '')}:{_port_text(t.get('port'))} {attrs}"
    if probe.get("grpc") is not None:
        g = probe["grpc"]
        return f"grpc <pod>:{g.get('port')} {g.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


def _ports(ports: Sequence[Mapping], key: str) -> str:
    out = []
    for p in ports:
        text = f"{p.get(key, 0)}/{p.get('protocol', 'TCP')}"
        if p.get("name"):
            text += f" ({p['name']})"
        out.append(text)
    return ", ".join(out)


def _state(w: _Writer, title: str, state: Mapping) -> None:
    if state.get("running") is not None:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{w.time(state['running'].get('startedAt'))}\n")
    elif state.get("waiting") is not None:
        w.write(2, f"{title}:\tWaiting\n")
        if state["waiting"].get("reason"):
            w.write(3, f"Reason:\t{state['waiting']['reason']}\n")
    elif state.get("terminated") is not None:
        t = state["terminated"]
        w.write(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            w.write(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}\n")
        w.write(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        if t.get("signal", 0) > 0:
            w.write(3, f"Signal:\t{t['signal']}\n")
        w.write(3, f"Started:\t{w.time(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{w.time(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")


def _field_value(pod: Mapping, path: str) -> str:
    """kubectl's EnvValueRetriever: only metadata fields resolve; anything else prints empty."""
    meta = podspec.metadata(pod)
    for key in ("labels", "annotations"):
        prefix = f"metadata.{key}['"
        if path.startswith(prefix) and path.endswith("']"):
            return str((meta.get(key) or {}).get(path[len(prefix):-2], ""))
        if path == f"metadata.{key}":
            return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get(key) or {}).items()))
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(path.split(".", 1)[1], ""))
    return ""


def _resource_value(container: Mapping, ref: Mapping) -> str:
    kind, _, name = (ref.get("resource") or "").partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    if divisor == 0:
        divisor = Decimal(1)
    amount = parse_quantity(str(value)) if value is not None else Decimal(0)
    if name == "cpu":
        amount, divisor = (amount * 1000).to_integral_value(rounding=ROUND_CEILING), (divisor * 1000).to_integral_value(rounding=ROUND_CEILING)
    result = str(math.ceil(amount / divisor)) if name in ("cpu", "memory", "ephemeral-storage") else ""
    if result == "0" and ref.get("resource") in ("limits.cpu", "limits.memory"):
        return "node allocatable"
    return result


def _env(w: _Writer, pod: Mapping, c: Mapping) -> None:
    if c.get("envFrom"):
        w.write(2, "Environment Variables from:\n")
        for e in c["envFrom"]:
            ref, source = (e.get("configMapRef"), "ConfigMap") if e.get("configMapRef") else (e.get("secretRef"), "Secret")
            ref = ref or {}
            optional = "true" if ref.get("optional") else "false"
            if e.get("prefix"):
                w.write(3, f"{ref.get('name', '')}\t{source} with prefix '{e['prefix']}'\tOptional: {optional}\n")
            else:
                w.write(3, f"{ref.get('name', '')}\t{source}\tOptional: {optional}\n")
    env = c.get("env") or []
    w.write(2, "Environment:" + ("" if env else "\t<none>") + "\n")
    for e in env:
        name, vf = e.get("name", ""), e.get("valueFrom")
        if vf is None:
            for i, s in enumerate(str(e.get("value", "")).split("\n")):
                w.write(3, f"{name}:\t{s}\n" if i == 0 else f"\t{s}\n")
        elif vf.get("fieldRef") is not None:
            f = vf["fieldRef"]
            w.write(3, f"{name}:\t{_field_value(pod, f.get('fieldPath', ''))} ({f.get('apiVersion', 'v1')}:{f.get('fieldPath', '')})\n")
        elif vf.get("resourceFieldRef") is not None:
            r = vf["resourceFieldRef"]
            w.write(3, f"{name}:\t{_resource_value(c, r)} ({r.get('resource', '')})\n")
        elif vf.get("secretKeyRef") is not None:
            r = vf["secretKeyRef"]
            w.write(3, f"{name}:\t<set to the key '{r.get('key', '')}' in secret '{r.get('name', '')}'>\t"
                       f"Optional: {'true' if r.get('optional') else 'false'}\n")
        elif vf.get("configMapKeyRef") is not None:
            r = vf["configMapKeyRef"]
            w.write(3, f"{name}:\t<set to the key '{r.get('key', '')}' of config map '{r.get('name', '')}'>\t"
                       f"Optional: {'true' if r.get('optional') else 'false'}\n")


def _mounts(w: _Writer, c: Mapping) -> None:
    mounts = c.get("volumeMounts") or []
    w.write(2, "Mounts:" + ("" if mounts else "\t<none>") + "\n")
    for m in sorted(mounts, key=lambda m: m.get("mountPath", "")):
        flags = ["ro" if m.get("readOnly") else "rw"]
        if m.get("subPath"):
            flags.append(f'path="{m["subPath"]}"')
        w.write(3, f"{m.get('mountPath', '')} from {m.get('name', '')} ({','.join(flags)})\n")


def _containers(w: _Writer, pod: Mapping, label: str, specs: Sequence[Mapping], statuses: Sequence[Mapping]) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{label}:{'' if specs else ' <none>'}\n")
    for c in specs:
        status = by_name.get(c.get("name"))
        w.write(1, f"{c.get('name', '')}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.get('containerID', '')}\n")
        w.write(2, f"Image:\t{c.get('image', '')}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = c.get("ports") or []
        for title, key in (("Port", "containerPort"), ("Host Port", "hostPort")):
            text = _ports(ports, key)
            if "," in text:
                w.write(2, f"{title}s:\t{text}\n")
            else:
                w.write(2, f"{title}:\t{text or '<none>'}\n")
        seccomp = (c.get("securityContext") or {}).get("seccompProfile")
        if seccomp:
            w.write(2, f"SeccompProfile:\t{seccomp.get('type', '')}\n")
            if seccomp.get("type") == "Localhost":
                w.write(3, f"LocalhostProfile:\t{seccomp.get('localhostProfile', '')}\n")
        for title, key in (("Command", "command"), ("Args", "args")):
            if c.get(key):
                w.write(2, f"{title}:\n")
                for arg in c[key]:
                    for s in str(arg).split("\n"):
                        w.write(3, f"{s}\n")
        if status is not None:
            _state(w, "State", status.get("state") or {})
            last = status.get("lastState") or {}
            if last.get("terminated") is not None:
                _state(w, "Last State", last)
            w.write(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        _resources(w, c.get("resources"), 2)
        for title, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"), ("Startup", "startupProbe")):
            if c.get(key) is not None:
                w.write(2, f"{title}:\t{describe_probe(c[key])}\n")
        _env(w, pod, c)
        _mounts(w, c)


def _volume(w: _Writer, v: Mapping) -> None:
    if v.get("hostPath") is not None:
        h = v["hostPath"]
        w.write(2, "Type:\tHostPath (bare host directory volume)\n"
                   f"    Path:\t{h.get('path', '')}\n    HostPathType:\t{h.get('type') or '<none>'}\n")
    elif v.get("emptyDir") is not None:
        e = v["emptyDir"]
        size = e.get("sizeLimit")
        size_text = canonical(str(size)) if size is not None and parse_quantity(str(size)) > 0 else "<unset>"
        w.write(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                   f"    Medium:\t{e.get('medium', '')}\n    SizeLimit:\t{size_text}\n")
    elif v.get("secret") is not None:
        s = v["secret"]
        w.write(2, "Type:\tSecret (a volume populated by a Secret)\n"
                   f"    SecretName:\t{s.get('secretName', '')}\n    Optional:\t{'true' if s.get('optional') else 'false'}\n")
    elif v.get("configMap") is not None:
        s = v["configMap"]
        w.write(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n"
                   f"    Name:\t{s.get('name', '')}\n    Optional:\t{'true' if s.get('optional') else 'false'}\n")
    elif v.get("persistentVolumeClaim") is not None:
        s = v["persistentVolumeClaim"]
        w.write(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n"
                   f"    ClaimName:\t{s.get('claimName', '')}\n    ReadOnly:\t{'true' if s.get('readOnly') else 'false'}\n")
    elif v.get("nfs") is not None:
        s = v["nfs"]
        w.write(2, "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n"
                   f"    Server:\t{s.get('server', '')}\n    Path:\t{s.get('path', '')}\n"
                   f"    ReadOnly:\t{'true' if s.get('readOnly') else 'false'}\n")
    elif v.get("downwardAPI") is not None:
        w.write(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n")
        for item in v["downwardAPI"].get("items") or []:
            if item.get("fieldRef") is not None:
                w.write(3, f"{item['fieldRef'].get('fieldPath', '')} -> {item.get('path', '')}\n")
            if item.get("resourceFieldRef") is not None:
                w.write(3, f"{item['resourceFieldRef'].get('resource', '')} -> {item.get('path', '')}\n")
    elif v.get("projected") is not None:
        w.write(2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n")
        for src in v["projected"].get("sources") or []:
            if src.get("secret") is not None:
                w.write(2, f"SecretName:\t{src['secret'].get('name', '')}\n"
                           f"    Optional:\t{'true' if src['secret'].get('optional') else 'false'}\n")
            elif src.get("downwardAPI") is not None:
                w.write(2, "DownwardAPI:\ttrue\n")
            elif src.get("configMap") is not None:
                w.write(2, f"ConfigMapName:\t{src['configMap'].get('name', '')}\n"
                           f"    Optional:\t{'true' if src['configMap'].get('optional') else 'false'}\n")
            elif src.get("serviceAccountToken") is not None:
                w.write(2, f"TokenExpirationSeconds:\t{src['serviceAccountToken'].get('expirationSeconds', 3600)}\n")
    elif v.get("image") is not None:
        s = v["image"]
        w.write(2, "Type:\tImage (a container image or OCI artifact)\n"
                   f"    Reference:\t{s.get('reference', '')}\n    PullPolicy:\t{s.get('pullPolicy', '')}\n")
    else:
        w.write(1, "<unknown>\n")


def _volumes(w: _Writer, volumes: Sequence[Mapping] | None) -> None:
    if not volumes:
        w.write(0, "Volumes:\t<none>\n")
        return
    w.write(0, "Volumes:\n")
    for v in volumes:
        w.write(1, f"{v.get('name', '')}:\n")
        _volume(w, v)


def _event_dicts(events: Iterable) -> list[Mapping]:
    return [e.as_dict() if hasattr(e, "as_dict") else e for e in events]


def _event_time(e: Mapping) -> float:
    """kubectl's sort key: the series' last observation, else lastTimestamp, else eventTime."""
    for value in ((e.get("series") or {}).get("lastObservedTime"), e.get("lastTimestamp"), e.get("eventTime")):
        if value:
            return parse_rfc3339(value)
    return float("-inf")


def _events(w: _Writer, events: Iterable, now: float) -> None:
    items = _event_dicts(events)
    if not items:
        w.write(0, "Events:\t<none>\n")
        return
    w.flush()
    items.sort(key=_event_time)
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in items:
        first = since(e.get("eventTime"), now) if e.get("eventTime") else since(e.get("firstTimestamp"), now)
        series = e.get("series")
        if series:
            interval = f"{since(series.get('lastObservedTime'), now)} (x{series.get('count', 0)} over {first})"
        elif int(e.get("count") or 0) > 1:
            interval = f"{since(e.get('lastTimestamp'), now)} (x{e['count']} over {first})"
        else:
            interval = first
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent", "")
        w.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t{str(e.get('message', '')).strip()}\n")


def describe_pod(pod: Mapping, events: Iterable | None, now: float, tz: tzinfo = timezone.utc) -> str:
    w = _Writer(tz)
    meta, spec, status = podspec.metadata(pod), podspec.spec(pod), pod.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    if not spec.get("nodeName"):
        w.write(0, "Node:\t<none>\n")
    else:
        w.write(0, f"Node:\t{spec['nodeName']}/{status.get('hostIP', '')}\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{w.time(status['startTime'])}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    phase = status.get("phase", "")
    if meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {since(meta['deletionTimestamp'], now)})\n")
        w.write(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if status.get("reason"):
        w.write(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.write(0, f"Message:\t{status['message']}\n")
    seccomp = (spec.get("securityContext") or {}).get("seccompProfile")
    if seccomp:
        w.write(0, f"SeccompProfile:\t{seccomp.get('type', '')}\n")
        if seccomp.get("type") == "Localhost":
            w.write(0, f"LocalhostProfile:\t{seccomp.get('localhostProfile', '')}\n")
    w.write(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = status.get("podIPs") or []
    if not ips:
        w.write(0, "IPs:\t<none>\n")
    else:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner:
        w.write(0, f"Controlled By:\t{owner.get('kind', '')}/{owner.get('name', '')}\n")
    if status.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{status['nominatedNodeName']}\n")
    if spec.get("resources") is not None:
        w.write(0, "Resources:\n")
        _resources(w, spec["resources"], 1)
    if spec.get("initContainers"):
        _containers(w, pod, "Init Containers", spec["initContainers"], status.get("initContainerStatuses"))
    _containers(w, pod, "Containers", spec.get("containers") or [], status.get("containerStatuses"))
    conditions = status.get("conditions") or []
    if spec.get("readinessGates"):
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        by_type = {c.get("type"): c for c in conditions}
        for g in spec["readinessGates"]:
            gate_status = (by_type.get(g.get("conditionType")) or {}).get("status", "<none>")
            w.write(1, f"{g.get('conditionType', '')} \t{gate_status} \n")
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \n")
    _volumes(w, spec.get("volumes"))
    w.write(0, f"QoS Class:\t{status.get('qosClass') or qos_class(pod)}\n")
    _labels(w, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, spec.get("tolerations"))
    if events is not None:
        _events(w, events, now)
    return w.tab.getvalue()


def describe_configmap(cm: Mapping, events: Iterable | None, now: float, tz: tzinfo = timezone.utc) -> str:
    """`kubectl describe configmap`: each data value under its key, binaryData as sizes."""
    import base64
    w = _Writer(tz)
    meta = cm.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, "\nData\n====\n")
    for k, v in sorted((cm.get("data") or {}).items()):
        w.write(0, f"{k}:\n----\n")
        w.write(0, f"{v}\n")
    w.write(0, "\nBinaryData\n====\n")
    for k, v in sorted((cm.get("binaryData") or {}).items()):
        w.write(0, f"{k}: {len(base64.b64decode(v))} bytes\n")
    w.write(0, "\n")
    if events is not None:
        _events(w, events, now)
    return w.tab.getvalue()


def describe_secret(secret: Mapping, tz: tzinfo = timezone.utc) -> str:
    """`kubectl describe secret`: the type and each key's size; a value is never printed (not
    even a service-account token, which kubectl shows)."""
    import base64
    w = _Writer(tz)
    meta = secret.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"\nType:\t{secret.get('type', '')}\n")
    w.write(0, "\nData\n====\n")
    for k, v in sorted((secret.get("data") or {}).items()):
        w.write(0, f"{k}:\t{len(base64.b64decode(v))} bytes\n")
    return w.tab.getvalue()


# --- Services (kubectl's describeService) -----------------------------------------------------

def format_endpoint_slices(slices: Sequence[Mapping], ports: set | None = None) -> str:
    """formatEndpointSlices: up to 3 ready `ip:port` (or ip, for a slice without ports) of the
    ports named in `ports` (None: all), then `+ N more...`; `<none>` without any slice."""
    if not slices:
        return "<none>"
    items: list[str] = []
    more, count, limit = False, 0, 3

    def add(endpoint: Mapping, text: str) -> None:
        nonlocal more, count
        if len(items) == limit:
            more = True
        ready = (endpoint.get("conditions") or {}).get("ready")
        if ready is not None and not ready:
            return
        if not more:
            items.append(text)
        count += 1

    for s in slices:
        endpoints = s.get("endpoints") or []
        if not s.get("ports"):
            for e in endpoints:
                add(e, (e.get("addresses") or [""])[0])
            continue
        for p in s["ports"]:
            if ports is None or p.get("name", "") in ports:
                for e in endpoints:
                    addr = (e.get("addresses") or [""])[0]
                    add(e, f"[{addr}]:{p.get('port')}" if ":" in addr else f"{addr}:{p.get('port')}")
    ret = ",".join(items)
    return f"{ret} + {count - limit} more..." if more else ret


def describe_service(svc: Mapping, slices: Sequence[Mapping], events: Iterable | None, now: float,
                     tz: tzinfo = timezone.utc) -> str:
    """`kubectl describe service`: `slices` are the Service's EndpointSlices (those labelled
    kubernetes.io/service-name=<name> in its namespace)."""
    w = _Writer(tz)
    meta, spec, status = svc.get("metadata") or {}, svc.get("spec") or {}, svc.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec.get('type', '')}\n")
    if spec.get("ipFamilyPolicy") is not None:
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        parts = []
        for i in ingress:
            parts.append(i["ip"] + (f" ({i['ipMode']})" if i.get("ipMode") else "") if i.get("ip")
                         else i.get("hostname", ""))
        w.write(0, f"LoadBalancer Ingress:\t{', '.join(parts)}\n")
    for sp in spec.get("ports") or []:
        name = sp.get("name") or "<unset>"
        proto = sp.get("protocol", "")
        w.write(0, f"Port:\t{name}\t{sp.get('port')}/{proto}\n")
        w.write(0, f"TargetPort:\t{sp.get('targetPort')}/{proto}\n")
        if sp.get("appProtocol"):
            w.write(0, f"AppProtocol:\t{sp['appProtocol']}\n")
        if sp.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{sp['nodePort']}/{proto}\n")
        w.write(0, f"Endpoints:\t{format_endpoint_slices(slices, {sp.get('name', '')})}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', '')}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy") is not None:
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        w.write(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    if spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    if spec.get("trafficDistribution") is not None:
        w.write(0, f"Traffic Distribution:\t{spec['trafficDistribution']}\n")
    if events is not None:
        _events(w, events, now)
    return w.tab.getvalue()
