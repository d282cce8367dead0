"""kubelet_py.api validation: one case per rule, each asserting the exact error lines (field
path, upstream's reason, value and words) of a pod that breaks only that rule."""

from __future__ import annotations

import copy

import pytest

from kubelet_py.api import ApiError, admit, check_namespaces
from kubelet_py.api.errors import Source

LABEL_RE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
            "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_RE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
QNAME_RE = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
PORT_RANGE = "must be between 1 and 65535, inclusive"


def base() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}],
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                                    {"name": "d", "image": "busybox"}],
                     "volumes": [{"name": "data", "emptyDir": {}}]}}


def problems(obj: dict) -> list[str]:
    try:
        admit(obj, Source("web.yaml"))
    except ApiError as e:
        prefix = f"web.yaml: {e.errors[0].obj}: "
        return [str(x)[len(prefix):] if str(x).startswith(prefix) else str(x) for x in e.errors]
    return []


def with_(path: str, value):
    """A copy of the base pod with one value set (path like 'spec.containers[1].image')."""
    obj = base()
    parts = path.replace("]", "").replace("[", ".").split(".")
    cur = obj
    for p in parts[:-1]:
        cur = cur[int(p)] if p.isdigit() else cur.setdefault(p, {})
    last = parts[-1]
    if value is DELETE:
        if last.isdigit():
            del cur[int(last)]
        else:
            del cur[last]
    elif last.isdigit() and int(last) == len(cur):
        cur.append(value)
    elif last.isdigit():
        cur[int(last)] = value
    else:
        cur[last] = value
    return obj


DELETE = object()

CASES = [
    # names
    ("metadata.name", DELETE, ["metadata.name: Required value: name or generateName is required"]),
    ("metadata.name", "Web", [f'metadata.name: Invalid value: "Web": {SUBDOMAIN_RE}']),
    ("metadata.name", "a" * 254, ["metadata.name: Invalid value: \"" + "a" * 254 + "\": must be no more than 253 "
                                  "characters"]),
    ("metadata.namespace", "Prod", [f'metadata.namespace: Invalid value: "Prod": {LABEL_RE}']),
    ("spec.containers[1].name", "", ["spec.containers[1].name: Required value"]),
    ("spec.containers[1].name", "d" * 64, ['spec.containers[1].name: Invalid value: "' + "d" * 64 + '": must be no '
                                           "more than 63 characters"]),
    ("spec.containers[1].name", "c", ['spec.containers[1].name: Duplicate value: "c"']),
    ("spec.initContainers", [{"name": "d", "image": "i"}], ['spec.initContainers[0].name: Duplicate value: "d"']),
    ("spec.containers", [], ["spec.containers: Required value"]),
    ("spec.containers[1].image", "", ["spec.containers[1].image: Required value"]),
    ("spec.volumes[0].name", "Data", [f'spec.volumes[0].name: Invalid value: "Data": {LABEL_RE}',
                                      'spec.containers[0].volumeMounts[0].name: Not found: "data"']),
    # ports
    ("spec.containers[0].ports[0].name", "HTTP", [
        'spec.containers[0].ports[0].name: Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, '
        "0-9), and hyphens (-)",
        'spec.containers[0].ports[0].name: Invalid value: "HTTP": must contain at least one letter (a-z)']),
    ("spec.containers[0].ports[0].name", "a-very-long-port-name", [
        'spec.containers[0].ports[0].name: Invalid value: "a-very-long-port-name": must be no more than 15 characters']),
    ("spec.containers[0].ports[0].name", "-a--b", [
        'spec.containers[0].ports[0].name: Invalid value: "-a--b": must not contain consecutive hyphens',
        'spec.containers[0].ports[0].name: Invalid value: "-a--b": must not begin or end with a hyphen']),
    ("spec.containers[0].ports[1]", {"name": "http", "containerPort": 81},
     ['spec.containers[0].ports[1].name: Duplicate value: "http"']),
    ("spec.containers[0].ports[0].containerPort", 0, ["spec.containers[0].ports[0].containerPort: Required value"]),
    ("spec.containers[0].ports[0].containerPort", 70000,
     [f"spec.containers[0].ports[0].containerPort: Invalid value: 70000: {PORT_RANGE}"]),
    ("spec.containers[0].ports[0].hostPort", -1, [f"spec.containers[0].ports[0].hostPort: Invalid value: -1: {PORT_RANGE}"]),
    ("spec.containers[0].ports[0].protocol", "ICMP", [
        'spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"']),
    ("spec.containers[0].ports[0].hostIP", "localhost", [
        'spec.containers[0].ports[0].hostIP: Invalid value: "localhost": must be a valid IP address, (e.g. 10.9.8.7 or '
        "2001:db8::ffff)"]),
    ("spec.containers[1].ports", [{"containerPort": 8080, "hostPort": 8080}, {"containerPort": 8081, "hostPort": 8080}],
     ['spec.containers[1].ports[1].hostPort: Duplicate value: "/TCP/8080"']),
    # env
    ("spec.initContainers", [{"name": "i", "image": "x", "ports": [{"containerPort": 1, "hostPort": 9}]},
                             {"name": "j", "image": "x", "ports": [{"containerPort": 1, "hostPort": 9},
                                                                    {"containerPort": 2, "hostPort": 9}]}],
     ['spec.initContainers[1].ports[1].hostPort: Duplicate value: "/TCP/9"']),
    ("spec.containers[1].env", [{"name": ""}], ["spec.containers[1].env[0].name: Required value"]),
    ("spec.containers[1].env", [{"name": "A=B"}], [
        'spec.containers[1].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only of '
        "printable ASCII characters other than '='"]),
    ("spec.containers[1].env", [{"name": "..x"}], ['spec.containers[1].env[0].name: Invalid value: "..x": must not '
                                                   "start with '..'"]),
    ("spec.containers[1].env", [{"name": "1-my.var"}], []),
    ("spec.containers[1].env", [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
     ['spec.containers[1].env[0].valueFrom: Invalid value: "": may not be specified when `value` is not empty']),
    ("spec.containers[1].env", [{"name": "A", "valueFrom": {}}], [
        'spec.containers[1].env[0].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
        "`configMapKeyRef` or `secretKeyRef`"]),
    ("spec.containers[1].env", [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}], [
        'spec.containers[1].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": supported values: '
        '"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", '
        '"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"']),
    ("spec.containers[1].env", [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": ""}}}],
     ["spec.containers[1].env[0].valueFrom.configMapKeyRef.key: Required value"]),
    ("spec.containers[1].env", [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}], [
        'spec.containers[1].env[0].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu": supported '
        'values: "limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu", '
        '"requests.ephemeral-storage", "requests.memory"']),
    ("spec.containers[1].env", [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                                 "divisor": "2"}}}],
     ['spec.containers[1].env[0].valueFrom.resourceFieldRef.divisor: Invalid value: "2": only divisor\'s values 1m '
      "and 1 are supported with the cpu resource"]),
    ("spec.containers[1].envFrom", [{}], ['spec.containers[1].envFrom[0]: Invalid value: "": must specify one of: '
                                          "`configMapRef` or `secretRef`"]),
    # quantities and resources
    ("spec.containers[1].resources", {"limits": {"cpu": "500m", "memory": "1G"}, "requests": {"cpu": "0.5",
                                                                                              "memory": "1e3"}}, []),
    ("spec.containers[1].resources", {"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}}, [
        'spec.containers[1].resources.requests: Invalid value: "1500m": must be less than or equal to cpu limit of 1']),
    ("spec.containers[1].resources", {"requests": {"memory": "-1Mi"}}, [
        'spec.containers[1].resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to 0']),
    ("spec.containers[1].resources", {"limits": {"gpu": "1"}}, [
        'spec.containers[1].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        'spec.containers[1].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers']),
    ("spec.containers[1].resources", {"requests": {"example.com/dongle": "1"}}, [
        "spec.containers[1].resources.limits: Required value: Limit must be set for non overcommitable resources"]),
    ("spec.containers[1].resources", {"limits": {"example.com/dongle": "2"}, "requests": {"example.com/dongle": "1"}},
     ['spec.containers[1].resources.requests: Invalid value: "1": must be equal to example.com/dongle limit of 2']),
    ("spec.containers[1].resources", {"limits": {"example.com/dongle": "500m"}}, [
        'spec.containers[1].resources.limits[example.com/dongle]: Invalid value: "500m": must be an integer',
        'spec.containers[1].resources.requests[example.com/dongle]: Invalid value: "500m": must be an integer']),
    # probes
    ("spec.containers[1].livenessProbe", {"httpGet": {"port": 0}}, [
        f"spec.containers[1].livenessProbe.httpGet.port: Invalid value: 0: {PORT_RANGE}"]),
    ("spec.containers[1].livenessProbe", {"httpGet": {"port": "web_"}}, [
        'spec.containers[1].livenessProbe.httpGet.port: Invalid value: "web_": must contain only alpha-numeric '
        "characters (a-z, 0-9), and hyphens (-)"]),
    ("spec.containers[1].livenessProbe", {"httpGet": {"port": 80, "scheme": "FTP"}}, [
        'spec.containers[1].livenessProbe.httpGet.scheme: Unsupported value: "FTP": supported values: "HTTP", "HTTPS"']),
    ("spec.containers[1].livenessProbe", {"httpGet": {"port": 80, "httpHeaders": [{"name": "a b", "value": "x"}]}}, [
        'spec.containers[1].livenessProbe.httpGet.httpHeaders: Invalid value: "a b": a valid HTTP header must consist '
        "of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"]),
    ("spec.containers[1].livenessProbe", {}, ["spec.containers[1].livenessProbe: Required value: must specify a "
                                              "handler type"]),
    ("spec.containers[1].readinessProbe", {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}, [
        "spec.containers[1].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"]),
    ("spec.containers[1].readinessProbe", {"exec": {}}, ["spec.containers[1].readinessProbe.exec.command: Required "
                                                         "value"]),
    ("spec.containers[1].livenessProbe", {"exec": {"command": ["x"]}, "successThreshold": 2}, [
        "spec.containers[1].livenessProbe.successThreshold: Invalid value: 2: must be 1"]),
    ("spec.containers[1].startupProbe", {"exec": {"command": ["x"]}, "successThreshold": 3}, [
        "spec.containers[1].startupProbe.successThreshold: Invalid value: 3: must be 1"]),
    ("spec.containers[1].readinessProbe", {"exec": {"command": ["x"]}, "successThreshold": 3}, []),
    ("spec.containers[1].readinessProbe", {"exec": {"command": ["x"]}, "initialDelaySeconds": -1}, [
        "spec.containers[1].readinessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0"]),
    ("spec.containers[1].readinessProbe", {"exec": {"command": ["x"]}, "terminationGracePeriodSeconds": 5}, [
        "spec.containers[1].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for "
        "readinessProbes"]),
    ("spec.containers[1].livenessProbe", {"exec": {"command": ["x"]}, "terminationGracePeriodSeconds": 0}, [
        "spec.containers[1].livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0"]),
    ("spec.containers[1].livenessProbe", {"grpc": {"port": 0}}, [
        f"spec.containers[1].livenessProbe.grpc.port: Invalid value: 0: {PORT_RANGE}"]),
    ("spec.containers[1].lifecycle", {"preStop": {"sleep": {"seconds": 31}}}, [
        "spec.containers[1].lifecycle.preStop.sleep: Invalid value: 31: must be non-negative and less than "
        "terminationGracePeriodSeconds (30)"]),
    ("spec.containers[1].lifecycle", {"postStart": {}}, ["spec.containers[1].lifecycle.postStart: Required value: "
                                                         "must specify a handler type"]),
    ("spec.containers[1].lifecycle", {"stopSignal": "SIGUSR1"}, [
        "spec.containers[1].lifecycle.stopSignal: Forbidden: may not be set for containers with empty `spec.os.name`"]),
    # init containers and sidecars
    ("spec.initContainers", [{"name": "i", "image": "x", "livenessProbe": {"exec": {"command": ["x"]}}}], [
        "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without "
        "restartPolicy=Always"]),
    ("spec.initContainers", [{"name": "i", "image": "x", "restartPolicy": "Always",
                              "startupProbe": {"exec": {"command": ["x"]}}}], []),
    ("spec.initContainers", [{"name": "i", "image": "x", "restartPolicy": "OnFailure"}], [
        'spec.initContainers[0].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"']),
    ("spec.containers[1].restartPolicy", "Always", [
        "spec.containers[1].restartPolicy: Forbidden: may not be set for non-init containers"]),
    # enums
    ("spec.restartPolicy", "Sometimes", [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']),
    ("spec.dnsPolicy", "Cluster", ['spec.dnsPolicy: Unsupported value: "Cluster": supported values: '
                                   '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"']),
    ("spec.dnsPolicy", "None", ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]),
    ("spec.dnsConfig", {"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"], "options": [{}]}, [
        'spec.dnsConfig.nameservers: Invalid value: ["1.1.1.1","8.8.8.8","9.9.9.9","1.0.0.1"]: must not have more than '
        "3 nameservers",
        "spec.dnsConfig.options[0]: Required value: Option.Name must not be empty"]),
    ("spec.containers[1].imagePullPolicy", "Sometimes", [
        'spec.containers[1].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"IfNotPresent", "Never"']),
    ("spec.containers[1].terminationMessagePolicy", "Log", [
        'spec.containers[1].terminationMessagePolicy: Unsupported value: "Log": supported values: "File", '
        '"FallbackToLogsOnError"']),
    # security contexts
    ("spec.securityContext", {"runAsUser": -1, "fsGroup": 2**31, "supplementalGroups": [5, -2]}, [
        "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        "spec.securityContext.fsGroup: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
        "spec.securityContext.supplementalGroups[1]: Invalid value: -2: must be between 0 and 2147483647, inclusive"]),
    ("spec.containers[1].securityContext", {"runAsGroup": -5}, [
        "spec.containers[1].securityContext.runAsGroup: Invalid value: -5: must be between 0 and 2147483647, "
        "inclusive"]),
    ("spec.containers[1].securityContext", {"capabilities": {"add": ["NET_ADMIN", "cap_sys_time", "ALL", "FLY"]}}, [
        'spec.containers[1].securityContext.capabilities.add[3]: Invalid value: "FLY": must be a Linux capability such '
        "as NET_ADMIN (the CAP_ prefix is optional), or ALL"]),
    ("spec.containers[1].securityContext", {"seccompProfile": {"type": "Localhost"}}, [
        "spec.containers[1].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp "
        "type is Localhost"]),
    ("spec.securityContext", {"seccompProfile": {"type": "Localhost", "localhostProfile": "/etc/p.json"}}, [
        'spec.securityContext.seccompProfile.localhostProfile: Invalid value: "/etc/p.json": must be a relative path']),
    ("spec.securityContext", {"seccompProfile": {"type": "Default"}}, [
        'spec.securityContext.seccompProfile.type: Unsupported value: "Default": supported values: "Localhost", '
        '"RuntimeDefault", "Unconfined"']),
    ("spec.securityContext", {"seccompProfile": {}}, [
        "spec.securityContext.seccompProfile.type: Required value: type is required when seccompProfile is set"]),
    ("spec.containers[1].securityContext", {"allowPrivilegeEscalation": False, "privileged": True}, [
        "spec.containers[1].securityContext: Invalid value: {\"allowPrivilegeEscalation\":false,\"privileged\":true}: "
        "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"]),
    ("spec.containers[1].securityContext", {"procMount": "Masked"}, [
        'spec.containers[1].securityContext.procMount: Unsupported value: "Masked": supported values: "Default", '
        '"Unmasked"']),
    ("spec.securityContext", {"sysctls": [{"name": "net.core.somaxconn", "value": "1"}, {"name": "Bad Name"}]}, [
        'spec.securityContext.sysctls[1].name: Invalid value: "Bad Name": must have at most 253 characters and match '
        "regex ([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?"]),
    # pod-level numbers
    ("spec.activeDeadlineSeconds", 0, ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and "
                                       "2147483647, inclusive"]),
    ("spec.terminationGracePeriodSeconds", -1, ["spec.terminationGracePeriodSeconds: Invalid value: -1: must be "
                                                "greater than or equal to 0"]),
    ("spec.terminationGracePeriodSeconds", 0, []),
    ("spec.hostname", "Web", [f'spec.hostname: Invalid value: "Web": {LABEL_RE}']),
    ("spec.nodeName", "Node_1", [f'spec.nodeName: Invalid value: "Node_1": {SUBDOMAIN_RE}']),
    # labels and annotations
    ("metadata.labels", {"app": "x" * 64}, ['metadata.labels: Invalid value: "' + "x" * 64 + '": must be no more '
                                            "than 63 characters"]),
    ("metadata.labels", {"-app": "ok"}, [f'metadata.labels: Invalid value: "-app": {QNAME_RE}']),
    ("metadata.labels", {"Example.com/app": "v"}, [
        f'metadata.labels: Invalid value: "Example.com/app": prefix part {SUBDOMAIN_RE}']),
    ("metadata.labels", {"a/b/c": "v"}, [
        'metadata.labels: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, \'-\', '
        "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
        "subdomain prefix and '/' (e.g. 'example.com/MyName')"]),
    ("metadata.labels", {"app": "a b"}, [
        'metadata.labels: Invalid value: "a b": a valid label must be an empty string or consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
        "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    ("metadata.annotations", {"Example.COM/Note": "anything at all"}, []),
    ("metadata.annotations", {"big": "x" * (256 * 1024)}, ["metadata.annotations: Too long: may not be more than "
                                                           "262144 bytes"]),
    # volumes and mounts
    ("spec.volumes[1]", {"name": "data", "emptyDir": {}}, ['spec.volumes[1].name: Duplicate value: "data"']),
    ("spec.volumes[1]", {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}}, [
        "spec.volumes[1].emptyDir: Forbidden: may not specify more than 1 volume type"]),  # hostPath counts first
    ("spec.volumes[1]", {"name": "h", "hostPath": {"path": "/x/../etc", "type": "Dir"}}, [
        'spec.volumes[1].hostPath.path: Invalid value: "/x/../etc": must not contain \'..\'',
        'spec.volumes[1].hostPath.type: Unsupported value: "Dir": supported values: "", "BlockDevice", "CharDevice", '
        '"Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"']),
    ("spec.volumes[1]", {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o1777,
                                                 "items": [{"key": "k", "path": "../x"}]}}, [
        "spec.volumes[1].secret.defaultMode: Invalid value: 1023: must be a number between 0 and 0777 (octal), both "
        "inclusive",
        'spec.volumes[1].secret.items[0].path: Invalid value: "../x": must not contain \'..\'']),
    ("spec.volumes[1]", {"name": "c", "configMap": {}}, ["spec.volumes[1].configMap.name: Required value"]),
    ("spec.volumes[1]", {"name": "d", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath":
                                                                                           "spec.nodeName"}}]}}, [
        'spec.volumes[1].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: "spec.nodeName": supported '
        'values: "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"']),
    ("spec.volumes[1]", {"name": "d", "downwardAPI": {"items": [{"path": "l", "fieldRef": {
        "fieldPath": "metadata.labels['app']"}}]}}, []),
    ("spec.volumes[1]", {"name": "p", "projected": {"sources": [{"configMap": {"name": "a", "items": [
        {"key": "k", "path": "x"}]}}, {"secret": {"name": "b", "items": [{"key": "k", "path": "x"}]}}]}}, [
        'spec.volumes[1].projected.sources: Invalid value: "x": conflicting duplicate paths']),
    ("spec.containers[1].volumeMounts", [{"name": "nope", "mountPath": "/x"}], [
        'spec.containers[1].volumeMounts[0].name: Not found: "nope"']),
    ("spec.containers[1].volumeMounts", [{"name": "data", "mountPath": "/x"}, {"name": "data", "mountPath": "/x"}], [
        'spec.containers[1].volumeMounts[1].mountPath: Invalid value: "/x": must be unique']),
    ("spec.containers[1].volumeMounts", [{"name": "data", "mountPath": ""}], [
        "spec.containers[1].volumeMounts[0].mountPath: Required value"]),
    ("spec.containers[1].volumeMounts", [{"name": "data", "mountPath": "/x", "subPath": "/abs"}], [
        'spec.containers[1].volumeMounts[0].subPath: Invalid value: "/abs": must be a relative path']),
    ("spec.containers[1].volumeMounts", [{"name": "data", "mountPath": "/x", "mountPropagation": "Bidirectional"}], [
        "spec.containers[1].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount propagation is available "
        "only to privileged containers"]),
    ("spec.containers[1].volumeMounts", [{"name": "data", "mountPath": "/x", "recursiveReadOnly": "Enabled"}], [
        "spec.containers[1].volumeMounts[0].recursiveReadOnly: Forbidden: may only be specified when readOnly is true"]),
    # tolerations, host aliases, misc
    ("spec.tolerations", [{"operator": "Equal", "value": "x"}], [
        'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means '
        '"match all values and all keys"']),
    ("spec.tolerations", [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}], [
        'spec.tolerations[0].effect: Invalid value: "NoSchedule": effect must be \'NoExecute\' when '
        "`tolerationSeconds` is set"]),
    ("spec.tolerations", [{"key": "k", "operator": "Is"}], [
        'spec.tolerations[0].operator: Unsupported value: "Is": supported values: "Equal", "Exists"']),
    ("spec.hostAliases", [{"ip": "10.0.0.300", "hostnames": ["ok.local"]}], [
        'spec.hostAliases[0].ip: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or '
        "2001:db8::ffff)"]),
    ("spec.ephemeralContainers", [{"name": "e", "image": "i"}], ["spec.ephemeralContainers: Forbidden: cannot be set "
                                                                 "on create"]),
    ("spec.shareProcessNamespace", True, []),
    ("spec.os", {"name": "plan9"}, ['spec.os.name: Unsupported value: "plan9": supported values: "linux", "windows"']),
]


@pytest.mark.parametrize("path,value,expected", CASES, ids=[f"{c[0]}={str(c[1])[:30]}" for c in CASES])
def test_rule(path, value, expected):
    assert problems(with_(path, value)) == expected


def test_base_pod_is_valid():
    assert problems(base()) == []


def test_host_network_ports_must_match():
    obj = with_("spec.hostNetwork", True)
    obj["spec"]["containers"][0]["ports"][0]["hostPort"] = 8080
    assert problems(obj) == ["spec.containers[0].ports[0].containerPort: Invalid value: 80: must match `hostPort` "
                             "when `hostNetwork` is true"]


def test_a_user_namespace_excludes_the_host_namespaces():
    obj = with_("spec.hostUsers", False)
    assert problems(obj) == []
    for key in ("hostPID", "hostIPC"):
        obj["spec"][key] = True
    assert problems(obj) == ["spec.HostPID: Forbidden: when `pod.Spec.HostUsers` is false",
                             "spec.HostIPC: Forbidden: when `pod.Spec.HostUsers` is false"]
    obj = with_("spec.hostUsers", False)
    obj["spec"]["hostNetwork"] = True
    assert "spec.hostNetwork: Forbidden: when `pod.Spec.HostUsers` is false" in problems(obj)
    assert problems(with_("spec.hostUsers", True)) == []


def test_stop_signal_with_linux_os():
    obj = with_("spec.os", {"name": "linux"})
    obj["spec"]["containers"][1]["lifecycle"] = {"stopSignal": "SIGUSR1"}
    assert problems(obj) == []
    obj["spec"]["containers"][1]["lifecycle"] = {"stopSignal": "SIGFOO"}
    assert problems(obj)[0].startswith('spec.containers[1].lifecycle.stopSignal: Unsupported value: "SIGFOO": '
                                       'supported values: "SIGABRT", "SIGALRM"')


def test_projected_service_account_token_needs_a_service_account():
    obj = with_("spec.volumes[1]", {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}})
    assert problems(obj) == []  # defaulting gives serviceAccountName "default"
    from kubelet_py.api.pod_validation import validate_pod
    from kubelet_py.api.defaults import set_defaults
    defaulted = set_defaults(obj, service_account=False)
    assert [str(e) for e in validate_pod(defaulted)] == [
        "spec.volumes[1].projected.sources[0].serviceAccountToken: Forbidden: must not be specified when "
        "serviceAccountName is not set"]


def test_generate_name_without_name_is_valid_and_checked():
    obj = with_("metadata.name", DELETE)
    obj["metadata"]["generateName"] = "web-"
    assert problems(obj) == []
    obj["metadata"]["generateName"] = "Web-"
    assert problems(obj)[0].startswith('metadata.generateName: Invalid value: "Web-": a lowercase RFC 1123 subdomain')


def test_errors_name_file_and_object():
    obj = with_("spec.containers[1].livenessProbe", {"httpGet": {"port": 0}})
    with pytest.raises(ApiError) as e:
        admit(obj, Source("web.yaml"))
    assert str(e.value) == ("web.yaml: pod default/web: spec.containers[1].livenessProbe.httpGet.port: Invalid value: "
                            "0: must be between 1 and 65535, inclusive")
    err = e.value.errors[0]
    assert (err.reason, err.field, err.value, err.source, err.obj) == (
        "Invalid value", "spec.containers[1].livenessProbe.httpGet.port", 0, Source("web.yaml"), "pod default/web")


def test_many_errors_one_line_each():
    obj = base()
    obj["spec"]["restartPolicy"] = "Sometimes"
    obj["spec"]["containers"][1]["name"] = "c"
    obj["spec"]["containers"][1]["image"] = ""
    with pytest.raises(ApiError) as e:
        admit(obj, Source("web.yaml"))
    assert len(str(e.value).splitlines()) == 3 == len(e.value.errors)
    assert e.value.fields() == ["spec.containers[1].image", "spec.containers[1].name", "spec.restartPolicy"]


def test_validation_does_not_change_input():
    obj = with_("spec.containers[1].resources", {"limits": {"cpu": "1"}})
    before = copy.deepcopy(obj)
    admit(obj)
    assert obj == before


def test_namespace_object_rules():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Prod"}}
    assert problems(ns) == [f'metadata.name: Invalid value: "Prod": {LABEL_RE}']
    assert problems({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}) == []
    bad_finalizer = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"},
                     "spec": {"finalizers": ["a/b/c"]}}
    assert problems(bad_finalizer)[0].startswith('spec.finalizers[0]: Invalid value: "a/b/c": a qualified name')


def test_config_map_and_secret_keys_and_types():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a b": "x", "k": "v"},
          "binaryData": {"k": "eA=="}}
    assert problems(cm) == [
        'data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, \'-\', \'_\' or '
        "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        'data[k]: Invalid value: "k": duplicate of key present in binaryData']
    tls = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls",
           "data": {"tls.crt": "eA=="}}
    assert problems(tls) == ["data[tls.key]: Required value"]
    basic = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth"}
    assert problems(basic) == ["data[username]: Required value", "data[password]: Required value"]


def test_check_namespaces():
    pod = admit(base()).obj
    assert check_namespaces(pod, {"default"}) == []
    pod["metadata"]["namespace"] = "qos-example"
    errs = check_namespaces(pod, {"default"}, Source("qos.yaml"))
    assert [str(e) for e in errs] == ['qos.yaml: pod qos-example/web: metadata.namespace: Not found: "qos-example"']
    ns = admit({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}).obj
    assert check_namespaces(ns, set()) == []
