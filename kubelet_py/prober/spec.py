"""Probes and lifecycle hooks as values (pure): parsing with the API's defaults, named ports, the
`$(VAR)` expansion of exec commands, and the outcome of one attempt.

The container is the pod manifest's container object (camelCase keys, as in YAML/JSON). Defaults
are upstream's (`pkg/apis/core/v1/defaults.go`): a zero or missing value takes the default, as the
API server's defaulting does (semantics 2.1)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The Kubernetes release these probes speak as: `kube-probe/1.34`, `kube-lifecycle/1.34`.
KUBE_VERSION = (1, 34)
PROBE_USER_AGENT = "kube-probe/%d.%d" % KUBE_VERSION
LIFECYCLE_USER_AGENT = "kube-lifecycle/%d.%d" % KUBE_VERSION

MAX_OUTPUT = 10 * 1024  # bytes of output (exec) or body (http) kept, as upstream keeps for events

DEFAULT_PERIOD = 10
DEFAULT_TIMEOUT = 1
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_FAILURE_THRESHOLD = 3


class ProbeType(enum.Enum):
    LIVENESS = "liveness"
    READINESS = "readiness"
    STARTUP = "startup"

    @property
    def field(self) -> str:
        """The container field that holds it: livenessProbe, readinessProbe, startupProbe."""
        return self.value + "Probe"

    @property
    def title(self) -> str:
        """As upstream's events write it: "Liveness probe failed: ..."."""
        return self.value.capitalize()


class Result(enum.Enum):
    """One attempt's result. WARNING is a pass with something to report (an unfollowed redirect);
    UNKNOWN is a prober error (bad port, runtime error): retried, then thrown away."""
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    result: Result
    output: str = ""  # at most MAX_OUTPUT bytes of text: body, command output or a failure message
    error: str | None = None  # why, when result is UNKNOWN

    @property
    def passed(self) -> bool:
        return self.result in (Result.SUCCESS, Result.WARNING)


def bounded(data: bytes | str, limit: int = MAX_OUTPUT) -> str:
    """At most `limit` bytes of `data` as text (invalid UTF-8 replaced)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return data[:limit].decode("utf-8", "replace")


class SpecError(ValueError):
    """A probe or hook that cannot be run as written; `field` is its path in the container."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


# ---- handlers ----

@dataclass(frozen=True)
class ExecAction:
    command: tuple[str, ...]


@dataclass(frozen=True)
class HTTPGetAction:
    port: int | str
    path: str = "/"
    host: str = ""  # "" = the pod IP
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TCPSocketAction:
    port: int | str
    host: str = ""


@dataclass(frozen=True)
class GRPCAction:
    port: int
    service: str = ""


@dataclass(frozen=True)
class SleepAction:
    seconds: int


ProbeHandler = ExecAction | HTTPGetAction | TCPSocketAction | GRPCAction
HookHandler = ExecAction | HTTPGetAction | SleepAction


@dataclass(frozen=True)
class ProbeSpec:
    """One probe with its defaults applied. The seconds are floats so that tests can run a probe
    every few milliseconds; from a manifest they are whole numbers (>= 1, as the API requires)."""
    handler: ProbeHandler
    initial_delay_seconds: float = 0
    timeout_seconds: float = DEFAULT_TIMEOUT
    period_seconds: float = DEFAULT_PERIOD
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    termination_grace_period_seconds: int | None = None  # liveness and startup only


def _port(v, path: str) -> int | str:
    if isinstance(v, bool) or not isinstance(v, (int, str)) or v == "":
        raise SpecError(path, f"a port number or name is required, not {v!r}")
    return v


def _str(d: dict, key: str, path: str, default: str = "") -> str:
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise SpecError(f"{path}.{key}", f"must be a string, not {v!r}")
    return v


def _number(d: dict, key: str, path: str, default: float) -> float:
    v = d.get(key)
    if v is None or v == 0:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise SpecError(f"{path}.{key}", f"must be a non-negative number, not {v!r}")
    return v


def _exec(d, path: str) -> ExecAction:
    cmd = d.get("command") if isinstance(d, dict) else None
    if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
        raise SpecError(f"{path}.command", "a non-empty list of strings is required")
    return ExecAction(tuple(cmd))


def _http_get(d, path: str) -> HTTPGetAction:
    if not isinstance(d, dict):
        raise SpecError(path, "must be an object")
    headers = []
    for i, h in enumerate(d.get("httpHeaders") or []):
        if not isinstance(h, dict) or not isinstance(h.get("name"), str) or not isinstance(h.get("value", ""), str):
            raise SpecError(f"{path}.httpHeaders[{i}]", "needs a string name and value")
        headers.append((h["name"], h.get("value", "")))
    scheme = _str(d, "scheme", path, "HTTP") or "HTTP"
    if scheme.upper() not in ("HTTP", "HTTPS"):
        raise SpecError(f"{path}.scheme", f"must be HTTP or HTTPS, not {scheme!r}")
    return HTTPGetAction(port=_port(d.get("port"), f"{path}.port"), path=_str(d, "path", path, "/") or "/",
                         host=_str(d, "host", path), scheme=scheme.upper(), headers=tuple(headers))


def _tcp(d, path: str) -> TCPSocketAction:
    if not isinstance(d, dict):
        raise SpecError(path, "must be an object")
    return TCPSocketAction(port=_port(d.get("port"), f"{path}.port"), host=_str(d, "host", path))


def _grpc(d, path: str) -> GRPCAction:
    if not isinstance(d, dict):
        raise SpecError(path, "must be an object")
    port = d.get("port")
    if isinstance(port, bool) or not isinstance(port, int):
        raise SpecError(f"{path}.port", f"a port number is required, not {port!r}")
    return GRPCAction(port=port, service=_str(d, "service", path))


def _sleep(d, path: str) -> SleepAction:
    secs = d.get("seconds") if isinstance(d, dict) else None
    if isinstance(secs, bool) or not isinstance(secs, int) or secs < 0:
        raise SpecError(f"{path}.seconds", f"a non-negative integer is required, not {secs!r}")
    return SleepAction(secs)


_PROBE_HANDLERS = {"exec": _exec, "httpGet": _http_get, "tcpSocket": _tcp, "grpc": _grpc}
_HOOK_HANDLERS = {"exec": _exec, "httpGet": _http_get, "sleep": _sleep}


def _one_handler(d: dict, table: dict, path: str):
    found = [k for k in table if d.get(k) is not None]
    if len(found) != 1:
        names = ", ".join(table)
        raise SpecError(path, f"exactly one handler of {names} is required, found {len(found) or 'none'}")
    return table[found[0]](d[found[0]], f"{path}.{found[0]}")


def parse_probe(d: dict, path: str = "probe") -> ProbeSpec:
    """A probe object (`livenessProbe: {...}`) with upstream's defaults applied."""
    if not isinstance(d, dict):
        raise SpecError(path, "must be an object")
    grace = d.get("terminationGracePeriodSeconds")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int) or grace < 0):
        raise SpecError(f"{path}.terminationGracePeriodSeconds", f"must be a non-negative integer, not {grace!r}")
    return ProbeSpec(
        handler=_one_handler(d, _PROBE_HANDLERS, path),
        initial_delay_seconds=_number(d, "initialDelaySeconds", path, 0),
        timeout_seconds=_number(d, "timeoutSeconds", path, DEFAULT_TIMEOUT),
        period_seconds=_number(d, "periodSeconds", path, DEFAULT_PERIOD),
        success_threshold=int(_number(d, "successThreshold", path, DEFAULT_SUCCESS_THRESHOLD)),
        failure_threshold=int(_number(d, "failureThreshold", path, DEFAULT_FAILURE_THRESHOLD)),
        termination_grace_period_seconds=grace)


def container_probes(container: dict, path: str = "container") -> dict[ProbeType, ProbeSpec]:
    """The probes a container defines, by type."""
    out = {}
    for t in ProbeType:
        d = container.get(t.field)
        if d is not None:
            out[t] = parse_probe(d, f"{path}.{t.field}")
    return out


def parse_hook(d: dict, path: str = "lifecycle.hook") -> HookHandler:
    """A lifecycle handler (`postStart: {...}` or `preStop: {...}`)."""
    if not isinstance(d, dict):
        raise SpecError(path, "must be an object")
    return _one_handler(d, _HOOK_HANDLERS, path)


# ---- ports and commands ----

def resolve_port(port: int | str, container: dict) -> int:
    """A probe's port as a number: a number as is, else the containerPort of the container's port
    with that name, else a number written as a string; 1..65535 (upstream's ResolveContainerPort).
    Raises SpecError naming the port."""
    if isinstance(port, bool):
        raise SpecError("port", f"invalid port number: {port!r}")
    if isinstance(port, str):
        named = next((p.get("containerPort") for p in container.get("ports") or []
                      if isinstance(p, dict) and p.get("name") == port), None)
        if named is not None:
            port = named
        else:
            try:
                port = int(port, 10)
            except ValueError:
                raise SpecError("port", f"port {port} not found") from None
    if not isinstance(port, int) or not 0 < port < 65536:
        raise SpecError("port", f"invalid port number: {port}")
    return port


def expand_command(command, container: dict) -> list[str]:
    """`$(VAR)` in an exec probe's command, from the container's literal `env` values only (no
    valueFrom, no shell): upstream's ExpandContainerCommandOnlyStatic. `$$` is a literal `$`; an
    unknown or unclosed reference stays as written."""
    env = {}
    for e in container.get("env") or []:
        if isinstance(e, dict) and isinstance(e.get("name"), str) and e.get("value"):
            env[e["name"]] = str(e["value"])
    return [_expand(arg, env) for arg in command]


def _expand(s: str, env: dict[str, str]) -> str:
    out, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = s.find(")", i + 2)
            if end < 0:
                out.append(s[i:])
                break
            name = s[i + 2:end]
            out.append(env[name] if name in env else s[i:end + 1])
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def join_host_port(host: str, port: int) -> str:
    """host:port, with brackets around an IPv6 address (Go's net.JoinHostPort)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
