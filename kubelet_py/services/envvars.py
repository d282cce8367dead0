"""Service environment variables (pure), as the kubelet makes them (kubelet/envvars/envvars.go
FromServices, kubelet_pods.go getServiceEnvVarMap; semantics 6.4):

    REDIS_PRIMARY_SERVICE_HOST=10.0.0.11
    REDIS_PRIMARY_SERVICE_PORT=6379                 # first port
    REDIS_PRIMARY_SERVICE_PORT_DB=6379              # each named port
    REDIS_PRIMARY_PORT=tcp://10.0.0.11:6379         # first port
    REDIS_PRIMARY_PORT_6379_TCP=tcp://10.0.0.11:6379
    REDIS_PRIMARY_PORT_6379_TCP_PROTO=tcp
    REDIS_PRIMARY_PORT_6379_TCP_PORT=6379
    REDIS_PRIMARY_PORT_6379_TCP_ADDR=10.0.0.11

for the Services with a ClusterIP in the pod's namespace (when `enableServiceLinks`) and for
`default/kubernetes` (always; a Service of the pod's own namespace with that name wins).
The kubelet reads the Services that exist when it builds a container's environment, so a
Service made after a container started shows in it only after a restart of that container:
call `service_env` with the Services stored at container creation."""

from __future__ import annotations

from typing import Iterable, Mapping

MASTER_SERVICES = frozenset({"kubernetes"})


def env_name(name: str) -> str:
    """makeEnvVariableName: upper case, '-' -> '_'. (Service names are DNS-1035 labels, so
    they never start with a digit.)"""
    return name.replace("-", "_").upper()


def _ip_set(svc: Mapping) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP", "")
    return ip not in ("", "None")


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def from_services(services: Iterable[Mapping]) -> list[tuple[str, str]]:
    """FromServices: the variables of each Service with a ClusterIP, in order."""
    out: list[tuple[str, str]] = []
    for svc in services:
        if not _ip_set(svc):
            continue
        spec = svc["spec"]
        ports = spec.get("ports") or []
        prefix = env_name((svc.get("metadata") or {}).get("name", ""))
        ip = spec["clusterIP"]
        out.append((prefix + "_SERVICE_HOST", ip))
        if not ports:
            continue
        out.append((prefix + "_SERVICE_PORT", str(ports[0].get("port"))))
        for p in ports:
            if p.get("name"):
                out.append((f"{prefix}_SERVICE_PORT_{env_name(p['name'])}", str(p.get("port"))))
        for i, p in enumerate(ports):
            proto = (p.get("protocol") or "TCP")
            url = f"{proto.lower()}://{_host_port(ip, p.get('port'))}"
            if i == 0:
                out.append((prefix + "_PORT", url))
            pp = f"{prefix}_PORT_{p.get('port')}_{proto.upper()}"
            out += [(pp, url), (pp + "_PROTO", proto.lower()), (pp + "_PORT", str(p.get("port"))), (pp + "_ADDR", ip)]
    return out


def service_env(namespace: str, enable_service_links: bool, services: Iterable[Mapping]) -> dict[str, str]:
    """getServiceEnvVarMap: the variables a container of a pod in `namespace` gets."""
    chosen: dict[str, Mapping] = {}
    for svc in services:
        if not _ip_set(svc):
            continue
        meta = svc.get("metadata") or {}
        name, ns = meta.get("name", ""), meta.get("namespace") or "default"
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    return dict(from_services(chosen[k] for k in sorted(chosen)))


def merge(env: Mapping[str, str], svc_env: Mapping[str, str]) -> dict[str, str]:
    """makeEnvironmentVariables' last step: service variables only for names not already set."""
    out = dict(env)
    for k, v in svc_env.items():
        out.setdefault(k, v)
    return out
