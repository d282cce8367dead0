"""`kubelet-py expose pod NAME --port P [--target-port T] [--type NodePort] [--name N]
[--protocol PROTO]` (pure): the Service manifest kubectl's expose generator (ServiceGeneratorV2)
makes from a pod, before it goes through apply like any other manifest.

- selector: the pod's labels (a pod without labels cannot be exposed);
- name: --name, else the pod's name; namespace: the pod's;
- ports: --port, or else the pod's container ports (several are named `port-1`, `port-2`...);
  targetPort: --target-port (a number or a container port name), else the port;
  protocol: --protocol, else the exposed container port's, else TCP;
- type: --type (ClusterIP when not given)."""

from __future__ import annotations

from typing import Mapping


class ExposeError(ValueError):
    """What kubectl expose says when it cannot make a Service of the pod."""


def expose_pod(pod: Mapping, *, port: int | None = None, target_port: int | str | None = None,
               type_: str | None = None, name: str | None = None, protocol: str | None = None) -> dict:
    meta = pod.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    if not labels:
        raise ExposeError(f"couldn't retrieve selectors via --selector flag or introspection: the pod "
                          f"{meta.get('name', '')!r} has no labels and cannot be exposed")
    container_ports = [p for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []]
    if isinstance(target_port, str) and target_port.isdigit():
        target_port = int(target_port)
    if port is not None:
        proto = protocol or next((p.get("protocol") or "TCP" for p in container_ports
                                  if p.get("containerPort") == (target_port if isinstance(target_port, int) else port)
                                  or (isinstance(target_port, str) and p.get("name") == target_port)), "TCP")
        ports = [{"port": port, "protocol": proto, "targetPort": target_port if target_port is not None else port}]
    elif container_ports:
        ports = []
        for i, cp in enumerate(container_ports):
            entry = {"port": cp["containerPort"], "protocol": protocol or cp.get("protocol") or "TCP",
                     "targetPort": target_port if target_port is not None else cp["containerPort"]}
            if len(container_ports) > 1:
                entry = {"name": f"port-{i + 1}", **entry}
            ports.append(entry)
    else:
        raise ExposeError("couldn't find port via --port flag or introspection")
    spec: dict = {"ports": ports, "selector": labels}
    if type_:
        spec["type"] = type_
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name or meta.get("name", ""), "namespace": meta.get("namespace") or "default",
                         "labels": labels},
            "spec": spec}
