"""Kubernetes objects as values (pure): read, decode, default, validate, store.

Objects are plain dicts in the Kubernetes JSON shape. Nothing here changes its arguments.

    load(data, file, strict=False) -> [Document]   read + decode + default + validate a manifest
    create(obj, now, uid_factory) / update(old, new) the stored object, or ApiError
    check_namespaces(obj, existing)                 the one check that needs the store
    load_static(data, path, node_name)              a static pod from the manifest directory
    qos_class, container_resources, pod_requests, container_port, iter_containers
    to_yaml(obj)                                    YAML that go-yaml v2 (kubectl) reads back the same
"""

from kubelet_py.api.defaults import set_defaults
from kubelet_py.api.dump import to_yaml
from kubelet_py.api.errors import ApiError, FieldError, Source
from kubelet_py.api.load import Document, admit, decode, load, read_objects
from kubelet_py.api.resources import (ContainerKind, ContainerResources, container_port, container_resources,
                                      iter_containers, pod_requests, qos_class)
from kubelet_py.api.static import load_static, static_pod, static_uid
from kubelet_py.api.update import create, update
from kubelet_py.api.validation import check_namespaces, validate

__all__ = ["ApiError", "FieldError", "Source", "Document", "load", "read_objects", "decode", "admit", "set_defaults",
           "validate", "check_namespaces", "create", "update", "load_static", "static_pod", "static_uid",
           "qos_class", "container_resources", "ContainerResources", "pod_requests", "container_port",
           "iter_containers", "ContainerKind", "to_yaml"]
