"""From a (defaulted) v1 Pod dict to what the runtime and the network take: the sandbox's
PodConfig, each container's ContainerRequest, the pod's port mappings and DNS fields. Pure:
what kuberuntime's generateContainerConfig and the CRI's sandbox config do, as plain functions.
The environment is kubelet_py.pods.env's (the caller passes it in); volumes are the
pod-configuration issue's."""

from __future__ import annotations

from kubelet_py.quantity import QuantityError, to_bytes, to_milli
from runtime.oci.generate import ContainerRequest
from runtime.pod import PodConfig
from runtime.sandbox import pod_resources

from .env import expand, literal_env  # noqa: F401 - $(VAR) and the literal-only env: the env builder's

APP, INIT = "containers", "initContainers"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"  # as the kubelet labels CRI containers
POD_UID_LABEL = "io.kubernetes.pod.uid"
RESTART_COUNT_LABEL = "io.kubernetes.container.restartCount"


class TranslateError(ValueError):
    """A field the runtime cannot carry out (the API layer validated the shape already)."""

    def __init__(self, field: str, why: str):
        super().__init__(f"{field}: {why}")
        self.field = field


def all_containers(pod: dict) -> list[tuple[str, int, dict]]:
    """(list name, index, container) for init containers then app containers."""
    spec = pod.get("spec") or {}
    return [(lst, i, c) for lst in (INIT, APP) for i, c in enumerate(spec.get(lst) or [])]


def _resources(c: dict, where: str) -> dict:
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    try:
        return {"cpu_request": to_milli(str(req["cpu"]), f"{where}.resources.requests.cpu") if "cpu" in req else None,
                "cpu_limit": to_milli(str(lim["cpu"]), f"{where}.resources.limits.cpu") if "cpu" in lim else None,
                "memory_request": to_bytes(str(req["memory"]), f"{where}.resources.requests.memory") if "memory" in req else None,
                "memory_limit": to_bytes(str(lim["memory"]), f"{where}.resources.limits.memory") if "memory" in lim else None}
    except QuantityError as e:
        raise TranslateError(where, str(e)) from None


def sandbox_config(pod: dict) -> PodConfig:
    from ..api.resources import qos_class  # the one QoS computation (the status shows the same)
    md, spec = pod["metadata"], pod.get("spec") or {}
    app = [_resources(c, f"spec.containers[{i}]") for i, c in enumerate(spec.get(APP) or [])]
    return PodConfig(uid=md["uid"], name=md["name"], namespace=md.get("namespace", "default"),
                     hostname=spec.get("hostname") or None, qos=qos_class(spec).lower(),
                     resources=pod_resources(app), host_network=bool(spec.get("hostNetwork")),
                     host_ipc=bool(spec.get("hostIPC")), host_pid=bool(spec.get("hostPID")),
                     share_pid=bool(spec.get("shareProcessNamespace")),
                     host_users=spec.get("hostUsers") is not False)  # unset: the host's, as upstream


def port_mappings(pod: dict) -> list[dict]:
    """hostPort mappings of every container (what CNI's portmap takes)."""
    out = []
    for _lst, _i, c in all_containers(pod):
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append({"containerPort": p["containerPort"], "hostPort": p["hostPort"],
                            "protocol": p.get("protocol", "TCP"), "hostIP": p.get("hostIP", "")})
    return out


def container_request(pod: dict, lst: str, i: int, env: dict[str, str] | None = None,
                      node_security=None) -> ContainerRequest:
    """The runtime's request for one container: command/args, env, workingDir, securityContext
    (kubelet_py.pods.security: the container's over the pod's; `node_security`: the node's
    seccomp root and allowed sysctls), resources. `env`: the container's environment as the
    env builder made it (literal values here when None)."""
    from .security import SecurityError, request_fields
    c = pod["spec"][lst][i]
    where = f"spec.{lst}[{i}]"
    r = _resources(c, where)
    try:
        security = request_fields(pod, lst, i, node_security)
    except SecurityError as e:
        err = TranslateError(e.field, e.why)
        err.reason = e.reason  # the container's waiting reason: CreateContainerConfigError
        raise err from None
    if env is None:
        env = literal_env(c)
    command = [expand(a, env) for a in c["command"]] if c.get("command") is not None else None
    args = [expand(a, env) for a in c["args"]] if c.get("args") is not None else None
    return ContainerRequest(
        name=c["name"], command=command, args=args, env=dict(env),
        working_dir=c.get("workingDir", ""), **security,
        memory_limit=r["memory_limit"], memory_request=r["memory_request"],
        cpu_request_milli=r["cpu_request"], cpu_limit_milli=r["cpu_limit"],
        annotations={})


def stop_signal(c: dict) -> str | None:
    """lifecycle.stopSignal (a 1.33 field) when set; else the runtime takes the image's."""
    return (c.get("lifecycle") or {}).get("stopSignal")
