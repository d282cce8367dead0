"""A container's environment as the kubelet makes it (pure): `kubelet_pods.go`
makeEnvironmentVariables, the downward API's field and resource values (`fieldpath`,
`resource.ExtractContainerResourceValue`) and `$(VAR)` expansion
(`third_party/forked/golang/expansion`).

Order, as upstream:
  1. `envFrom` in list order (with `prefix`), later sources over earlier ones;
  2. `env` in order, over envFrom: a literal `value` is expanded against what is set so far
     (envFrom and earlier env), then the service variables; a `valueFrom` is never expanded;
  3. service variables for the names not set yet.

A reference that cannot be resolved and is not `optional` raises EnvError with upstream's words
(`configmap "x" not found`, `couldn't find key k in ConfigMap ns/x`); the worker shows it as
CreateContainerConfigError and tries again. ConfigMaps and Secrets come from `lookup(kind,
name)` (the pod's namespace), so this module never touches the store."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

from kubelet_py.api import names, quantity

CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
INVALID_ENV_NAMES = "InvalidEnvironmentVariableNames"  # the event's reason
_SUBSCRIPTED = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")
_ALLOCATABLE_DEFAULTS = ("cpu", "memory", "ephemeral-storage")  # MergeContainerResourceLimits (no hugepages)

Lookup = Callable[[str, str], "dict | None"]  # (kind, name) -> the object in the pod's namespace, or None


class EnvError(Exception):
    """The environment cannot be made (a missing ConfigMap, Secret or key that is not optional,
    an unsupported field): the message is upstream's; `reason` is the container's waiting reason."""

    reason = CREATE_CONTAINER_CONFIG_ERROR

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SkippedKeys:
    """envFrom keys that are not environment variable names, skipped (upstream records an event)."""
    kind: str  # "configMap" or "secret", as upstream's message words it
    namespace: str
    name: str
    keys: tuple[str, ...]

    def message(self) -> str:
        return (f"Keys [{', '.join(self.keys)}] from the EnvFrom {self.kind} {self.namespace}/{self.name} were "
                "skipped since they are considered invalid environment variable names.")


@dataclass(frozen=True)
class Environment:
    env: dict[str, str]
    skipped: tuple[SkippedKeys, ...] = ()


@dataclass(frozen=True)
class PodFacts:
    """What the node knows beyond the pod object: its IPs, the node's IPs and allocatable
    resources (quantity strings, the default of an unset limit) and the service variables."""
    pod_ips: tuple[str, ...] = ()
    host_ips: tuple[str, ...] = ()
    allocatable: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, str] = field(default_factory=dict)


# ---- $(VAR) ----------------------------------------------------------------------------------

def expand(text: str, *mappings: Mapping[str, str]) -> str:
    """`$(VAR)` as the kubelet expands it: the first mapping holding VAR gives its value, an
    unknown name stays `$(VAR)`, `$$` is `$`, an unclosed `$(` and any other `$` stay as written."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end >= 0:
                    name = text[i + 2:end]
                    out.append(next((m[name] for m in mappings if name in m), f"$({name})"))
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


def literal_env(c: dict) -> dict[str, str]:
    """Only the literal values, each expanded against those before it (no ConfigMap, Secret or
    downward API): what a container gets when nothing else is known."""
    env: dict[str, str] = {}
    for e in c.get("env") or []:
        if not e.get("valueFrom"):
            value = e.get("value", "")
            env[e["name"]] = expand(value, env) if value else ""
    return env


# ---- the downward API ----------------------------------------------------------------------------

def _format_map(m: Mapping[str, str]) -> str:
    """fieldpath.FormatMap: sorted `k="v"` lines (Go's %q quoting), no final newline."""
    return "\n".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted((m or {}).items()))


def field_ref_value(pod: dict, field_path: str, api_version: str = "v1", pod_ips=(), host_ips=()) -> str:
    """podFieldSelectorRuntimeValue: a pod field as a string (IP lists comma-joined)."""
    if api_version not in ("", "v1"):
        raise EnvError(f"unsupported pod version: {api_version}", field_path)
    md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    m = _SUBSCRIPTED.fullmatch(field_path)
    if m:
        which, key = m.groups()
        return str(((md.get("labels") if which == "metadata.labels" else md.get("annotations")) or {}).get(key, ""))
    simple = {"metadata.name": lambda: md.get("name", ""), "metadata.namespace": lambda: md.get("namespace", ""),
              "metadata.uid": lambda: md.get("uid", ""),
              "metadata.labels": lambda: _format_map(md.get("labels") or {}),
              "metadata.annotations": lambda: _format_map(md.get("annotations") or {}),
              "spec.nodeName": lambda: spec.get("nodeName", ""),
              "spec.serviceAccountName": lambda: spec.get("serviceAccountName", ""),
              "status.podIP": lambda: pod_ips[0] if pod_ips else "",
              "status.podIPs": lambda: ",".join(pod_ips),
              "status.hostIP": lambda: host_ips[0] if host_ips else "",
              "status.hostIPs": lambda: ",".join(host_ips)}
    if field_path in simple:
        if field_path.startswith("status.host") and not host_ips:
            raise EnvError("failed to get host IPs: the node has no IP", field_path)
        return simple[field_path]()
    if field_path in ("spec.restartPolicy", "spec.schedulerName", "status.phase"):
        raise EnvError(f"unsupported fieldPath: {field_path}", field_path)  # converted, then not extracted
    raise EnvError(f"field label not supported: {field_path}", field_path)


def _find_container(pod: dict, name: str) -> tuple[dict, bool]:
    """(container, is an app container) by name: app containers first, as findContainerInPod."""
    spec = pod.get("spec") or {}
    for lst, app in (("containers", True), ("initContainers", False)):
        for c in spec.get(lst) or []:
            if c.get("name") == name:
                return c, app
    raise EnvError(f"container {name} not found", "resourceFieldRef.containerName")


def _with_allocatable(c: dict, allocatable: Mapping[str, str]) -> dict:
    """MergeContainerResourceLimits: an unset or zero cpu/memory/ephemeral-storage limit is the
    node's allocatable amount."""
    limits = dict((c.get("resources") or {}).get("limits") or {})
    for r in _ALLOCATABLE_DEFAULTS:
        if r in allocatable and (r not in limits or quantity.value(str(limits[r])) == 0):
            limits[r] = allocatable[r]
    return {**c, "resources": {**(c.get("resources") or {}), "limits": limits}}


def resource_field_value(ref: dict, pod: dict, container: dict, allocatable: Mapping[str, str] | None = None) -> str:
    """containerResourceRuntimeValue: `ceil(value / divisor)` in millicores for cpu (divisor `1`
    gives whole cores, rounded up) and in units for the others; a limit that is not set is the
    node's allocatable amount (app containers and the container itself, as upstream defaults)."""
    allocatable = allocatable or {}
    name = ref.get("containerName") or ""
    if name:
        c, app = _find_container(pod, name)
        if app:
            c = _with_allocatable(c, allocatable)
    else:
        c = _with_allocatable(container, allocatable)
    which, _, res = (ref.get("resource") or "").partition(".")
    if which not in ("limits", "requests") or not (res in _ALLOCATABLE_DEFAULTS or res.startswith("hugepages-")):
        raise EnvError(f"unsupported container resource : {ref.get('resource', '')}", "resourceFieldRef.resource")
    amount = str(((c.get("resources") or {}).get(which) or {}).get(res, "0"))
    divisor = str(ref.get("divisor") or "0")
    if quantity.value(divisor) == 0:
        divisor = "1"
    if res == "cpu":
        num, den = quantity.milli(amount), quantity.milli(divisor)
    else:
        num, den = quantity.whole(amount), quantity.whole(divisor)
    return str(-(-num // den))  # exact; upstream divides float64s, the same for any real amount


# ---- ConfigMaps and Secrets -------------------------------------------------------------------------

def _data(kind: str, obj: dict) -> dict[str, str]:
    """A ConfigMap's `data` (never binaryData, as upstream) or a Secret's decoded `data`."""
    if kind == "ConfigMap":
        return dict(obj.get("data") or {})
    return {k: base64.b64decode(v).decode("utf-8", "surrogateescape") for k, v in (obj.get("data") or {}).items()}


class _Sources:
    """Each ConfigMap and Secret read once per environment (upstream's per-call maps)."""

    def __init__(self, lookup: Lookup | None, namespace: str):
        self.lookup, self.namespace = lookup, namespace
        self.cache: dict[tuple[str, str], dict[str, str] | None] = {}

    def get(self, kind: str, name: str, optional: bool, where: str) -> dict[str, str] | None:
        """The object's data; None when it is missing and optional; EnvError when it is missing."""
        key = (kind, name)
        if key not in self.cache:
            obj = self.lookup(kind, name) if self.lookup is not None else None
            self.cache[key] = _data(kind, obj) if obj is not None else None
        data = self.cache[key]
        if data is None:
            if optional:
                return None
            raise EnvError(f'{kind.lower()} "{name}" not found', where)
        return data


def make_environment(pod: dict, container: dict, lookup: Lookup | None, facts: PodFacts = PodFacts(),
                     env_name_errors: Callable[[str], list[str]] = names.is_relaxed_env_var_name) -> Environment:
    """The container's environment, in upstream's order (see the module doc). `lookup(kind,
    name)`: a ConfigMap or Secret of the pod's namespace, or None. `env_name_errors`: the check
    an envFrom key must pass (names that fail it are skipped and listed in `skipped`)."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    sources = _Sources(lookup, ns)
    env: dict[str, str] = {}
    skipped: list[SkippedKeys] = []
    for i, ef in enumerate(container.get("envFrom") or []):
        for key, kind, word in (("configMapRef", "ConfigMap", "configMap"), ("secretRef", "Secret", "secret")):
            ref = ef.get(key)
            if ref is None:
                continue
            data = sources.get(kind, ref.get("name", ""), bool(ref.get("optional")), f"envFrom[{i}].{key}")
            if data is None:
                continue
            bad = []
            for k, v in data.items():
                k = (ef.get("prefix") or "") + k
                if env_name_errors(k):
                    bad.append(k)
                    continue
                env[k] = v
            if bad:
                skipped.append(SkippedKeys(word, ns, ref.get("name", ""), tuple(sorted(bad))))
    service_env = facts.service_env or {}
    for i, e in enumerate(container.get("env") or []):
        name, value, src = e["name"], e.get("value") or "", e.get("valueFrom")
        where = f"env[{i}].valueFrom"
        if value:
            value = expand(value, env, service_env)
        elif src:
            if src.get("fieldRef") is not None:
                f = src["fieldRef"]
                value = field_ref_value(pod, f.get("fieldPath", ""), f.get("apiVersion", "v1"), facts.pod_ips,
                                        facts.host_ips)
            elif src.get("resourceFieldRef") is not None:
                value = resource_field_value(src["resourceFieldRef"], pod, container, facts.allocatable)
            elif src.get("configMapKeyRef") is not None or src.get("secretKeyRef") is not None:
                kind, ref = (("ConfigMap", src["configMapKeyRef"]) if src.get("configMapKeyRef") is not None
                             else ("Secret", src["secretKeyRef"]))
                optional = bool(ref.get("optional"))
                data = sources.get(kind, ref.get("name", ""), optional, where)
                if data is None:
                    continue
                if ref.get("key") not in data:
                    if optional:
                        continue
                    raise EnvError(f"couldn't find key {ref.get('key', '')} in {kind} {ns}/{ref.get('name', '')}",
                                   where)
                value = data[ref["key"]]
            elif src.get("fileKeyRef") is not None:
                raise EnvError("fileKeyRef is not supported on this node (the EnvFiles feature)", where)
        env[name] = value
    for k, v in service_env.items():
        env.setdefault(k, v)
    return Environment(env, tuple(skipped))
