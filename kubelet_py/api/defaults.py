"""Defaults as the API server fills them in before validation.

Most come from `pkg/apis/core/v1/defaults.go` and its generated companion (`SetDefaults_Pod`,
`_PodSpec`, `_Container`, `_Probe`, `_HTTPGetAction`, `_Volume`, `_ResourceList`...). A few come
from what else runs on a create and shows in `kubectl get -o yaml`: the namespace from the
request (`default`), the ServiceAccount admission plugin (`serviceAccountName: default`, and
its deprecated twin `serviceAccount`), the Priority plugin (`priority`, `preemptionPolicy`),
and the v1 Secret conversion (`stringData` folded into `data`).

`set_defaults(obj)` returns a new dict and never changes its argument; applying it again
changes nothing. It expects a decoded object (see schema.decode)."""

from __future__ import annotations

import base64
import copy

from kubelet_py.api import quantity, service_defaults

DEFAULT_NAMESPACE = "default"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# the Priority admission plugin's built-in classes; any other name would need a PriorityClass
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
CLUSTER_SCOPED = frozenset({"Namespace"})


def image_tag(image: str) -> str:
    """The tag of an image reference as `parsers.ParseImageName` gives it: "latest" when there is
    neither a tag nor a digest, "" when there is only a digest."""
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if at else "latest"


def pull_policy_for(image: str) -> str:
    return "Always" if image_tag(image) == "latest" else "IfNotPresent"


def set_defaults(obj: dict, *, service_account: bool = True) -> dict:
    """The object with the API server's defaults. `service_account=False` leaves
    serviceAccountName alone (static pods: the ServiceAccount plugin skips mirror pods)."""
    out = copy.deepcopy(obj)
    kind = out.get("kind")
    meta = out.setdefault("metadata", {})
    if kind in CLUSTER_SCOPED:
        meta.pop("namespace", None)  # the API server drops it for a cluster-scoped kind
    elif not meta.get("namespace"):
        meta["namespace"] = DEFAULT_NAMESPACE
    if kind == "Pod":
        _pod(out, service_account)
    elif kind == "Namespace":
        if meta.get("name"):
            meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = meta["name"]
        spec = out.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
        status = out.setdefault("status", {})
        if not status.get("phase"):
            status["phase"] = "Active"
    elif kind == "Secret":
        if not out.get("type"):
            out["type"] = "Opaque"
        string_data = out.pop("stringData", None)
        if string_data:
            data = out.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(v.encode()).decode()
    elif kind == "Service":
        service_defaults.service(out)
    elif kind == "EndpointSlice":
        service_defaults.endpoint_slice(out)
    elif kind == "Endpoints":
        service_defaults.endpoints(out)
    return out


def _pod(pod: dict, service_account: bool) -> None:
    spec = pod.setdefault("spec", {})
    containers = spec.get("containers", [])
    inits = spec.get("initContainers", [])
    for c in containers + inits:
        _container(c)
    if spec.get("hostNetwork"):
        for c in containers + inits:
            for p in c.get("ports", []):
                if not p.get("hostPort"):
                    p["hostPort"] = p.get("containerPort", 0)
    for vol in spec.get("volumes", []):
        _volume(vol)
    if "overhead" in spec:
        spec["overhead"] = _resource_list(spec["overhead"])
    # SetDefaults_PodSpec
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    spec.setdefault("enableServiceLinks", True)
    # admission plugins and conversion
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if service_account and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = "default"
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    if "priority" not in spec:
        spec["priority"] = SYSTEM_PRIORITIES.get(spec.get("priorityClassName", ""), 0)
    if not spec.get("preemptionPolicy"):
        spec["preemptionPolicy"] = "PreemptLowerPriority"


def _container(c: dict) -> None:
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = pull_policy_for(c.get("image", ""))
    if not c.get("terminationMessagePath"):
        c["terminationMessagePath"] = TERMINATION_MESSAGE_PATH
    if not c.get("terminationMessagePolicy"):
        c["terminationMessagePolicy"] = "File"
    for p in c.get("ports", []):
        if not p.get("protocol"):
            p["protocol"] = "TCP"
    for e in c.get("env", []):
        _field_ref(e.get("valueFrom", {}).get("fieldRef"))
    res = c.get("resources")
    if res is not None:
        for which in ("limits", "requests"):
            if which in res:
                res[which] = _resource_list(res[which])
        if "limits" in res:  # SetDefaults_Pod: a limit without a request makes the request
            req = res.setdefault("requests", {})
            for k, v in res["limits"].items():
                req.setdefault(k, v)
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(name)
        if probe is not None:
            for key, default in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                                 ("failureThreshold", 3)):
                if not probe.get(key):
                    probe[key] = default
            _handler(probe)
    for hook in ("postStart", "preStop"):
        handler = c.get("lifecycle", {}).get(hook)
        if handler is not None:
            _handler(handler)


def _handler(h: dict) -> None:
    get = h.get("httpGet")
    if get is not None:
        if not get.get("path"):
            get["path"] = "/"
        if not get.get("scheme"):
            get["scheme"] = "HTTP"
    grpc = h.get("grpc")
    if grpc is not None:
        grpc.setdefault("service", "")


def _field_ref(ref: dict | None) -> None:
    if ref is not None and not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def _resource_list(rl: dict) -> dict:
    """SetDefaults_ResourceList: every value rounded up to milli precision."""
    out = {}
    for k, v in rl.items():
        try:
            out[k] = quantity.round_up_milli(v)
        except quantity.QuantityError:
            out[k] = v  # decoding reported it
    return out


_VOLUME_SOURCES = ("hostPath", "emptyDir", "secret", "configMap", "downwardAPI", "projected", "persistentVolumeClaim",
                   "image", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
                   "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte",
                   "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral")


def _volume(vol: dict) -> None:
    if not any(s in vol for s in _VOLUME_SOURCES):
        vol["emptyDir"] = {}
    if "hostPath" in vol:
        vol["hostPath"].setdefault("type", "")
    for s in ("secret", "configMap", "downwardAPI", "projected"):
        if s in vol:
            vol[s].setdefault("defaultMode", 0o644)
    for item in vol.get("downwardAPI", {}).get("items", []):
        _field_ref(item.get("fieldRef"))
    for src in vol.get("projected", {}).get("sources", []):
        for item in src.get("downwardAPI", {}).get("items", []):
            _field_ref(item.get("fieldRef"))
        if "serviceAccountToken" in src:
            src["serviceAccountToken"].setdefault("expirationSeconds", 3600)
    image = vol.get("image")
    if image is not None and not image.get("pullPolicy"):
        image["pullPolicy"] = pull_policy_for(image.get("reference", ""))
