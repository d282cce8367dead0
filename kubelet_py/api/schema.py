"""The fields of each kind, and decoding as the API server's JSON decoding does it.

`decode(obj, kind)` returns the object as upstream would store it before defaulting: known
fields checked for their JSON type (a string where a string goes, an int32 in range...),
`null` dropped as Go leaves a nil pointer, quantities in their canonical string (`0.5` ->
"500m"), and every field the kind does not have reported as `unknown field "spec.foo"` (a
warning, or an error in strict mode, as kubectl's server-side field validation).

Subtrees a node agent does not act on (affinity, topologySpreadConstraints, a Service's status)
are typed ANY: kept as given, not checked."""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass

from kubelet_py.api import quantity
from kubelet_py.api.errors import INVALID, OMIT, UNKNOWN_FIELD, FieldError, Path


@dataclass(frozen=True)
class Scalar:
    name: str  # string, int32, int64, boolean, quantity, int-or-string, base64
    words: str


STR = Scalar("string", "must be a string")
INT32 = Scalar("int32", "must be a 32-bit integer")
INT64 = Scalar("int64", "must be an integer")
BOOL = Scalar("boolean", "must be a boolean (true or false)")
QTY = Scalar("quantity", quantity.FORMAT_ERROR)
INTSTR = Scalar("int-or-string", "must be an integer or a string")
B64 = Scalar("base64", "must be a base64-encoded string")
ANY = Scalar("any", "")


@dataclass(frozen=True)
class ListOf:
    elem: object


@dataclass(frozen=True)
class MapOf:
    elem: object


class Obj:
    """A struct: its JSON field names and their types (filled in below, as types refer to each other)."""

    def __init__(self, _type_name: str, **fields):
        self.type_name, self.fields = _type_name, dict(fields)

    def add(self, **fields) -> Obj:
        self.fields.update(fields)
        return self


# --- core/v1 --------------------------------------------------------------------------------

OWNER_REF = Obj("OwnerReference", apiVersion=STR, kind=STR, name=STR, uid=STR, controller=BOOL,
                blockOwnerDeletion=BOOL)
OBJECT_META = Obj("ObjectMeta", name=STR, generateName=STR, namespace=STR, selfLink=STR, uid=STR,
                  resourceVersion=STR, generation=INT64, creationTimestamp=STR, deletionTimestamp=STR,
                  deletionGracePeriodSeconds=INT64, labels=MapOf(STR), annotations=MapOf(STR),
                  ownerReferences=ListOf(OWNER_REF), finalizers=ListOf(STR), managedFields=ListOf(ANY))
NAMED = Obj("LocalObjectReference", name=STR)
KEY_TO_PATH = Obj("KeyToPath", key=STR, path=STR, mode=INT32)
FIELD_SELECTOR = Obj("ObjectFieldSelector", apiVersion=STR, fieldPath=STR)
RESOURCE_SELECTOR = Obj("ResourceFieldSelector", containerName=STR, resource=STR, divisor=QTY)
KEY_SELECTOR = Obj("KeySelector", name=STR, key=STR, optional=BOOL)
ENV_VAR_SOURCE = Obj("EnvVarSource", fieldRef=FIELD_SELECTOR, resourceFieldRef=RESOURCE_SELECTOR,
                     configMapKeyRef=KEY_SELECTOR, secretKeyRef=KEY_SELECTOR,
                     fileKeyRef=Obj("FileKeySelector", volumeName=STR, path=STR, key=STR, optional=BOOL))
ENV_VAR = Obj("EnvVar", name=STR, value=STR, valueFrom=ENV_VAR_SOURCE)
SOURCE_REF = Obj("EnvFromSourceRef", name=STR, optional=BOOL)
ENV_FROM = Obj("EnvFromSource", prefix=STR, configMapRef=SOURCE_REF, secretRef=SOURCE_REF)
PORT = Obj("ContainerPort", name=STR, hostPort=INT32, containerPort=INT32, protocol=STR, hostIP=STR)
RESOURCES = Obj("ResourceRequirements", limits=MapOf(QTY), requests=MapOf(QTY),
                claims=ListOf(Obj("ResourceClaim", name=STR, request=STR)))
HTTP_GET = Obj("HTTPGetAction", path=STR, port=INTSTR, host=STR, scheme=STR,
               httpHeaders=ListOf(Obj("HTTPHeader", name=STR, value=STR)))
EXEC = Obj("ExecAction", command=ListOf(STR))
TCP = Obj("TCPSocketAction", port=INTSTR, host=STR)
GRPC = Obj("GRPCAction", port=INT32, service=STR)
PROBE = Obj("Probe", exec=EXEC, httpGet=HTTP_GET, tcpSocket=TCP, grpc=GRPC, initialDelaySeconds=INT32,
            timeoutSeconds=INT32, periodSeconds=INT32, successThreshold=INT32, failureThreshold=INT32,
            terminationGracePeriodSeconds=INT64)
HANDLER = Obj("LifecycleHandler", exec=EXEC, httpGet=HTTP_GET, tcpSocket=TCP, sleep=Obj("SleepAction", seconds=INT64))
LIFECYCLE = Obj("Lifecycle", postStart=HANDLER, preStop=HANDLER, stopSignal=STR)
SECCOMP = Obj("SeccompProfile", type=STR, localhostProfile=STR)
APPARMOR = Obj("AppArmorProfile", type=STR, localhostProfile=STR)
SELINUX = Obj("SELinuxOptions", user=STR, role=STR, type=STR, level=STR)
WINDOWS = Obj("WindowsSecurityContextOptions", gmsaCredentialSpecName=STR, gmsaCredentialSpec=STR,
              runAsUserName=STR, hostProcess=BOOL)
SECURITY_CONTEXT = Obj("SecurityContext", capabilities=Obj("Capabilities", add=ListOf(STR), drop=ListOf(STR)),
                       privileged=BOOL, seLinuxOptions=SELINUX, windowsOptions=WINDOWS, runAsUser=INT64,
                       runAsGroup=INT64, runAsNonRoot=BOOL, readOnlyRootFilesystem=BOOL,
                       allowPrivilegeEscalation=BOOL, procMount=STR, seccompProfile=SECCOMP,
                       appArmorProfile=APPARMOR)
POD_SECURITY_CONTEXT = Obj("PodSecurityContext", seLinuxOptions=SELINUX, windowsOptions=WINDOWS, runAsUser=INT64,
                           runAsGroup=INT64, runAsNonRoot=BOOL, supplementalGroups=ListOf(INT64),
                           supplementalGroupsPolicy=STR, fsGroup=INT64,
                           sysctls=ListOf(Obj("Sysctl", name=STR, value=STR)), fsGroupChangePolicy=STR,
                           seccompProfile=SECCOMP, appArmorProfile=APPARMOR, seLinuxChangePolicy=STR)
VOLUME_MOUNT = Obj("VolumeMount", name=STR, readOnly=BOOL, recursiveReadOnly=STR, mountPath=STR, subPath=STR,
                   mountPropagation=STR, subPathExpr=STR)
CONTAINER = Obj("Container", name=STR, image=STR, command=ListOf(STR), args=ListOf(STR), workingDir=STR,
                ports=ListOf(PORT), envFrom=ListOf(ENV_FROM), env=ListOf(ENV_VAR), resources=RESOURCES,
                resizePolicy=ListOf(Obj("ContainerResizePolicy", resourceName=STR, restartPolicy=STR)),
                restartPolicy=STR, restartPolicyRules=ListOf(ANY), volumeMounts=ListOf(VOLUME_MOUNT),
                volumeDevices=ListOf(Obj("VolumeDevice", name=STR, devicePath=STR)), livenessProbe=PROBE,
                readinessProbe=PROBE, startupProbe=PROBE, lifecycle=LIFECYCLE, terminationMessagePath=STR,
                terminationMessagePolicy=STR, imagePullPolicy=STR, securityContext=SECURITY_CONTEXT, stdin=BOOL,
                stdinOnce=BOOL, tty=BOOL)
DOWNWARD_FILE = Obj("DownwardAPIVolumeFile", path=STR, fieldRef=FIELD_SELECTOR, resourceFieldRef=RESOURCE_SELECTOR,
                    mode=INT32)
PROJECTION = Obj("VolumeProjection",
                 secret=Obj("SecretProjection", name=STR, items=ListOf(KEY_TO_PATH), optional=BOOL),
                 configMap=Obj("ConfigMapProjection", name=STR, items=ListOf(KEY_TO_PATH), optional=BOOL),
                 downwardAPI=Obj("DownwardAPIProjection", items=ListOf(DOWNWARD_FILE)),
                 serviceAccountToken=Obj("ServiceAccountTokenProjection", audience=STR, expirationSeconds=INT64,
                                         path=STR),
                 clusterTrustBundle=ANY, podCertificate=ANY)
VOLUME_SOURCES = {
    "hostPath": Obj("HostPathVolumeSource", path=STR, type=STR),
    "emptyDir": Obj("EmptyDirVolumeSource", medium=STR, sizeLimit=QTY),
    "secret": Obj("SecretVolumeSource", secretName=STR, items=ListOf(KEY_TO_PATH), defaultMode=INT32,
                  optional=BOOL),
    "configMap": Obj("ConfigMapVolumeSource", name=STR, items=ListOf(KEY_TO_PATH), defaultMode=INT32,
                     optional=BOOL),
    "downwardAPI": Obj("DownwardAPIVolumeSource", items=ListOf(DOWNWARD_FILE), defaultMode=INT32),
    "projected": Obj("ProjectedVolumeSource", sources=ListOf(PROJECTION), defaultMode=INT32),
    "persistentVolumeClaim": Obj("PersistentVolumeClaimVolumeSource", claimName=STR, readOnly=BOOL),
    "image": Obj("ImageVolumeSource", reference=STR, pullPolicy=STR),
    **{name: ANY for name in ("gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs",
                              "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume",
                              "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO",
                              "storageos", "csi", "ephemeral")},
}
VOLUME = Obj("Volume", name=STR, **VOLUME_SOURCES)
TOLERATION = Obj("Toleration", key=STR, operator=STR, value=STR, effect=STR, tolerationSeconds=INT64)
POD_SPEC = Obj("PodSpec", volumes=ListOf(VOLUME), initContainers=ListOf(CONTAINER), containers=ListOf(CONTAINER),
               ephemeralContainers=ListOf(ANY), restartPolicy=STR, terminationGracePeriodSeconds=INT64,
               activeDeadlineSeconds=INT64, dnsPolicy=STR, nodeSelector=MapOf(STR), serviceAccountName=STR,
               serviceAccount=STR, automountServiceAccountToken=BOOL, nodeName=STR, hostNetwork=BOOL,
               hostPID=BOOL, hostIPC=BOOL, shareProcessNamespace=BOOL, securityContext=POD_SECURITY_CONTEXT,
               imagePullSecrets=ListOf(NAMED), hostname=STR, subdomain=STR, affinity=ANY, schedulerName=STR,
               tolerations=ListOf(TOLERATION),
               hostAliases=ListOf(Obj("HostAlias", ip=STR, hostnames=ListOf(STR))), priorityClassName=STR,
               priority=INT32,
               dnsConfig=Obj("PodDNSConfig", nameservers=ListOf(STR), searches=ListOf(STR),
                             options=ListOf(Obj("PodDNSConfigOption", name=STR, value=STR))),
               readinessGates=ListOf(Obj("PodReadinessGate", conditionType=STR)), runtimeClassName=STR,
               enableServiceLinks=BOOL, preemptionPolicy=STR, overhead=MapOf(QTY),
               topologySpreadConstraints=ListOf(ANY), setHostnameAsFQDN=BOOL, os=Obj("PodOS", name=STR),
               hostUsers=BOOL, schedulingGates=ListOf(Obj("PodSchedulingGate", name=STR)),
               resourceClaims=ListOf(ANY), resources=RESOURCES, hostnameOverride=STR)


# --- Services and endpoints (core/v1 Service, Endpoints; discovery.k8s.io/v1 EndpointSlice) ----

OBJECT_REFERENCE = Obj("ObjectReference", kind=STR, namespace=STR, name=STR, uid=STR, apiVersion=STR,
                       resourceVersion=STR, fieldPath=STR)
SERVICE_SPEC = Obj("ServiceSpec",
                   ports=ListOf(Obj("ServicePort", name=STR, protocol=STR, appProtocol=STR, port=INT32,
                                    targetPort=INTSTR, nodePort=INT32)),
                   selector=MapOf(STR), clusterIP=STR, clusterIPs=ListOf(STR), type=STR, externalIPs=ListOf(STR),
                   sessionAffinity=STR, loadBalancerIP=STR, loadBalancerSourceRanges=ListOf(STR), externalName=STR,
                   externalTrafficPolicy=STR, healthCheckNodePort=INT32, publishNotReadyAddresses=BOOL,
                   sessionAffinityConfig=Obj("SessionAffinityConfig",
                                             clientIP=Obj("ClientIPConfig", timeoutSeconds=INT32)),
                   ipFamilies=ListOf(STR), ipFamilyPolicy=STR, allocateLoadBalancerNodePorts=BOOL,
                   loadBalancerClass=STR, internalTrafficPolicy=STR, trafficDistribution=STR)
ENDPOINT = Obj("Endpoint", addresses=ListOf(STR),
               conditions=Obj("EndpointConditions", ready=BOOL, serving=BOOL, terminating=BOOL),
               hostname=STR, targetRef=OBJECT_REFERENCE, deprecatedTopology=MapOf(STR), nodeName=STR, zone=STR,
               hints=ANY)
ENDPOINT_PORT = Obj("EndpointPort", name=STR, protocol=STR, port=INT32, appProtocol=STR)
ENDPOINT_ADDRESS = Obj("EndpointAddress", ip=STR, hostname=STR, nodeName=STR, targetRef=OBJECT_REFERENCE)
ENDPOINT_SUBSET = Obj("EndpointSubset", addresses=ListOf(ENDPOINT_ADDRESS), notReadyAddresses=ListOf(ENDPOINT_ADDRESS),
                      ports=ListOf(Obj("CoreEndpointPort", name=STR, port=INT32, protocol=STR, appProtocol=STR)))


def _top(name: str, **fields) -> Obj:
    return Obj(name, apiVersion=STR, kind=STR, metadata=OBJECT_META, **fields)


KINDS = {
    "Pod": _top("Pod", spec=POD_SPEC, status=ANY),
    "Namespace": _top("Namespace", spec=Obj("NamespaceSpec", finalizers=ListOf(STR)), status=ANY),
    "ConfigMap": _top("ConfigMap", data=MapOf(STR), binaryData=MapOf(B64), immutable=BOOL),
    "Secret": _top("Secret", data=MapOf(B64), stringData=MapOf(STR), type=STR, immutable=BOOL),
    "Service": _top("Service", spec=SERVICE_SPEC, status=ANY),
    "EndpointSlice": _top("EndpointSlice", addressType=STR, endpoints=ListOf(ENDPOINT), ports=ListOf(ENDPOINT_PORT)),
    "Endpoints": _top("Endpoints", subsets=ListOf(ENDPOINT_SUBSET)),
}


# --- decoding ------------------------------------------------------------------------------

_DROP = object()


def _zero(t):
    if isinstance(t, Obj):
        return {}
    return {STR: "", INT32: 0, INT64: 0, BOOL: False, B64: "", QTY: "0", INTSTR: 0}.get(t, None)


def _type_error(path: str, value, t) -> FieldError:
    detail = t.words if isinstance(t, Scalar) else ("must be a list" if isinstance(t, ListOf) else "must be an object")
    if t is STR and isinstance(value, bool):
        detail += " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"
    elif t is STR and isinstance(value, (int, float)):
        detail += " (quote it)"
    return FieldError(INVALID, path, value, detail)


def _scalar(value, t: Scalar, path: str, errors: list):
    if t is ANY:
        return copy.deepcopy(value)
    if t is STR:
        if isinstance(value, str):
            return value
    elif t in (INT32, INT64):
        if isinstance(value, int) and not isinstance(value, bool):
            bits = 31 if t is INT32 else 63
            if -(2**bits) <= value < 2**bits:
                return value
    elif t is BOOL:
        if isinstance(value, bool):
            return value
    elif t is INTSTR:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
            return value
    elif t is QTY:
        try:
            return quantity.canonical(quantity.from_json(value))
        except quantity.QuantityError as e:
            errors.append(FieldError(INVALID, path, value, str(e)))
            return _DROP
    elif t is B64:
        if isinstance(value, str):
            try:  # Go's decoder skips line breaks; the stored form is re-encoded without them
                raw = base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
                return base64.b64encode(raw).decode()
            except (binascii.Error, ValueError):
                errors.append(FieldError(INVALID, path, OMIT, "illegal base64 data"))
                return _DROP
    errors.append(_type_error(path, value, t))
    return _DROP


def decode_value(value, t, path: Path, errors: list, unknown: list):
    """The value as decoding into type `t` leaves it, or _DROP."""
    if value is None:
        return _DROP
    if isinstance(t, Scalar):
        return _scalar(value, t, path, errors)
    if isinstance(t, ListOf):
        if not isinstance(value, list):
            errors.append(_type_error(path, value, t))
            return _DROP
        out = []
        for i, v in enumerate(value):
            d = decode_value(v, t.elem, path.index(i), errors, unknown)
            out.append(_zero(t.elem) if d is _DROP else d)
        return out
    if isinstance(t, MapOf):
        if not isinstance(value, dict):
            errors.append(_type_error(path, value, t))
            return _DROP
        out = {}
        for k, v in value.items():
            d = decode_value(v, t.elem, path.key(k), errors, unknown)
            out[k] = _zero(t.elem) if d is _DROP else d
        return out
    if not isinstance(value, dict):
        errors.append(_type_error(path, value, t))
        return _DROP
    out = {}
    for k, v in value.items():
        ft = t.fields.get(k)
        if ft is None:
            unknown.append(FieldError(UNKNOWN_FIELD, path.child(k)))
            continue
        d = decode_value(v, ft, path.child(k), errors, unknown)
        if d is not _DROP:
            out[k] = d
    return out


def decode(obj: dict, kind: str, strict: bool = False) -> tuple[dict, list[FieldError], list[FieldError]]:
    """(decoded object, errors, warnings) for an object of a known kind. Unknown fields are
    warnings, or errors when `strict`."""
    errors: list[FieldError] = []
    unknown: list[FieldError] = []
    out = decode_value(obj, KINDS[kind], Path(""), errors, unknown)
    if strict:
        return out, errors + unknown, []
    return out, errors, unknown
