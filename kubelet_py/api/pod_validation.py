"""A Pod's spec, checked as upstream's ValidatePodCreate does (pkg/apis/core/validation):
containers, init containers and sidecars, ports, env, mounts, resources, probes and hooks,
security contexts, DNS, tolerations (volumes: volume_validation.py). Each function returns a list of FieldErrors;
none stops at the first. Paths and wording are upstream's."""

from __future__ import annotations

import re

from kubelet_py.api import names, quantity
from kubelet_py.api.errors import FieldError, Path, duplicate, forbidden, invalid, not_found, not_supported, required
from kubelet_py.api.meta_validation import messages_as_errors, validate_labels
from kubelet_py.api.volume_validation import (ENV_FIELD_PATHS, PULL_POLICIES, enum_errors, field_ref_errors,
                                              local_descending_path, resource_field_ref_errors, validate_volumes)

SPEC = Path("spec")
NONNEGATIVE = "must be greater than or equal to 0"
INIT_ONLY_ALWAYS = "may not be set for init containers without restartPolicy=Always"
MAX_INT32 = 2**31 - 1

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
SECCOMP_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")
APPARMOR_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")
PROC_MOUNTS = ("Default", "Unmasked")
PROPAGATIONS = ("Bidirectional", "HostToContainer", "None")
RECURSIVE_READ_ONLY = ("Disabled", "Enabled", "IfPossible")
URI_SCHEMES = ("HTTP", "HTTPS")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")
FS_GROUP_CHANGE_POLICIES = ("Always", "OnRootMismatch")
SUPPLEMENTAL_GROUPS_POLICIES = ("Merge", "Strict")
OS_NAMES = ("linux", "windows")
RESIZE_RESTART_POLICIES = ("NotRequired", "RestartContainer")
CAPABILITIES = frozenset("""CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO
SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
CHECKPOINT_RESTORE""".split())
STOP_SIGNALS_LINUX = tuple(sorted(
    [f"SIG{s}" for s in "ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV "
     "STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ".split()]
    + [f"SIGRTMIN+{i}" for i in range(1, 16)] + [f"SIGRTMAX-{i}" for i in range(1, 15)] + ["SIGRTMIN", "SIGRTMAX"]))
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
SYSCTL_FMT = r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_CHARS = 2048


def validate_pod(pod: dict) -> list[FieldError]:
    """ValidatePodCreate minus the metadata (meta_validation does that for every kind)."""
    spec = pod.get("spec", {})
    errs = validate_pod_spec(spec, SPEC)
    if not spec.get("serviceAccountName"):
        for vi, vol in enumerate(spec.get("volumes", [])):
            for si, src in enumerate(vol.get("projected", {}).get("sources", [])):
                if "serviceAccountToken" in src:
                    errs.append(forbidden(SPEC.child("volumes").index(vi).child("projected", "sources").index(si)
                                          .child("serviceAccountToken"),
                                          "must not be specified when serviceAccountName is not set"))
    if spec.get("ephemeralContainers"):
        errs.append(forbidden(SPEC.child("ephemeralContainers"), "cannot be set on create"))
    if spec.get("nodeName") and spec.get("schedulingGates"):
        errs.append(forbidden(SPEC.child("nodeName"), "cannot be set until all schedulingGates have been cleared"))
    return errs


def validate_pod_spec(spec: dict, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    volumes, verrs = validate_volumes(spec.get("volumes", []), path.child("volumes"))
    errs += verrs
    grace = spec.get("terminationGracePeriodSeconds")
    errs += _containers(spec, volumes, grace, path)
    errs += _init_containers(spec, volumes, grace, path)
    if spec.get("hostNetwork"):
        for ci, c in enumerate(spec.get("containers", [])):
            for pi, p in enumerate(c.get("ports", [])):
                if p.get("hostPort", 0) != p.get("containerPort", 0):
                    errs.append(invalid(path.child("containers").index(ci).child("ports").index(pi)
                                        .child("containerPort"), p.get("containerPort", 0),
                                        "must match `hostPort` when `hostNetwork` is true"))
    errs += enum_errors(spec.get("restartPolicy", ""), path.child("restartPolicy"), RESTART_POLICIES)
    errs += enum_errors(spec.get("dnsPolicy", ""), path.child("dnsPolicy"), DNS_POLICIES)
    errs += validate_labels(spec.get("nodeSelector"), path.child("nodeSelector"))
    errs += _pod_security_context(spec, path)
    for i, s in enumerate(spec.get("imagePullSecrets", [])):
        if not s.get("name"):
            errs.append(required(path.child("imagePullSecrets").index(i).child("name")))
    errs += _dns_config(spec.get("dnsConfig"), spec.get("dnsPolicy", ""), path.child("dnsConfig"))
    for i, g in enumerate(spec.get("readinessGates", [])):
        errs += messages_as_errors(path.child("readinessGates").index(i).child("conditionType"),
                                   g.get("conditionType", ""), names.is_qualified_name(g.get("conditionType", "")))
    seen = set()
    for i, g in enumerate(spec.get("schedulingGates", [])):
        p = path.child("schedulingGates").index(i).child("name")
        errs += messages_as_errors(p, g.get("name", ""), names.is_qualified_name(g.get("name", "")))
        if g.get("name") in seen:
            errs.append(duplicate(p, g.get("name")))
        seen.add(g.get("name"))
    for key, fn in (("serviceAccountName", names.name_is_dns_subdomain), ("nodeName", names.name_is_dns_subdomain),
                    ("priorityClassName", names.name_is_dns_subdomain),
                    ("runtimeClassName", names.name_is_dns_subdomain)):
        if spec.get(key):
            errs += messages_as_errors(path.child(key), spec[key], fn(spec[key]))
    if "activeDeadlineSeconds" in spec:
        v = spec["activeDeadlineSeconds"]
        if not 1 <= v <= MAX_INT32:
            errs.append(invalid(path.child("activeDeadlineSeconds"), v, names.inclusive_range_error(1, MAX_INT32)))
    if grace is not None and grace < 0:
        errs.append(invalid(path.child("terminationGracePeriodSeconds"), grace, NONNEGATIVE))
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            errs += messages_as_errors(path.child(key), spec[key], names.is_dns1123_label(spec[key]))
    errs += _tolerations(spec.get("tolerations", []), path.child("tolerations"))
    errs += _host_aliases(spec.get("hostAliases", []), path.child("hostAliases"))
    if "preemptionPolicy" in spec:
        errs += enum_errors(spec["preemptionPolicy"], path.child("preemptionPolicy"), PREEMPTION_POLICIES)
    if "overhead" in spec:
        errs += _resource_list(spec["overhead"], path.child("overhead"))
    if "os" in spec:
        os_name = spec["os"].get("name", "")
        if not os_name:
            errs.append(required(path.child("os", "name")))
        elif os_name not in OS_NAMES:
            errs.append(not_supported(path.child("os", "name"), os_name, OS_NAMES))
    if spec.get("shareProcessNamespace") and spec.get("hostPID"):
        errs.append(invalid(path.child("shareProcessNamespace"), True,
                            "ShareProcessNamespace and HostPID cannot both be enabled"))
    if spec.get("hostUsers") is False:
        # upstream's validateHostUsers: a user namespace with a host namespace is refused (its
        # field names capitalised as upstream writes them)
        for key, child in (("hostNetwork", "hostNetwork"), ("hostPID", "HostPID"), ("hostIPC", "HostIPC")):
            if spec.get(key):
                errs.append(forbidden(path.child(child), "when `pod.Spec.HostUsers` is false"))
    if "resources" in spec:
        errs += validate_resources(spec["resources"], path.child("resources"))
    return errs


# --- containers --------------------------------------------------------------------------

def _containers(spec: dict, volumes: dict, grace, path: Path) -> list[FieldError]:
    containers = spec.get("containers", [])
    cpath = path.child("containers")
    if not containers:
        return [required(cpath)]
    errs, seen = [], set()
    for i, c in enumerate(containers):
        p = cpath.index(i)
        errs += _container_common(c, volumes, spec, p)
        if c.get("name", "") in seen:
            errs.append(duplicate(p.child("name"), c.get("name", "")))
        seen.add(c.get("name", ""))
        errs += _lifecycle(c.get("lifecycle"), grace, spec, p.child("lifecycle"))
        errs += _liveness_or_startup(c.get("livenessProbe"), p.child("livenessProbe"))
        errs += _readiness(c.get("readinessProbe"), p.child("readinessProbe"))
        errs += _liveness_or_startup(c.get("startupProbe"), p.child("startupProbe"))
        if "restartPolicy" in c:
            errs.append(forbidden(p.child("restartPolicy"), "may not be set for non-init containers"))
    errs += _host_port_conflicts(containers, cpath)
    return errs


def _init_containers(spec: dict, volumes: dict, grace, path: Path) -> list[FieldError]:
    errs = []
    seen = {c.get("name", "") for c in spec.get("containers", [])}
    ipath = path.child("initContainers")
    for i, c in enumerate(spec.get("initContainers", [])):
        p = ipath.index(i)
        errs += _container_common(c, volumes, spec, p)
        sidecar = False
        if "restartPolicy" in c:
            if c["restartPolicy"] != "Always":
                errs.append(not_supported(p.child("restartPolicy"), c["restartPolicy"], ["Always"]))
            sidecar = c["restartPolicy"] == "Always"
        name = c.get("name", "")
        if name in seen:
            errs.append(duplicate(p.child("name"), name))
        elif name:
            seen.add(name)
        errs += _host_port_conflicts([c], ipath, first=i)  # init containers run one at a time
        if sidecar:
            errs += _lifecycle(c.get("lifecycle"), grace, spec, p.child("lifecycle"))
            errs += _liveness_or_startup(c.get("livenessProbe"), p.child("livenessProbe"))
            errs += _readiness(c.get("readinessProbe"), p.child("readinessProbe"))
            errs += _liveness_or_startup(c.get("startupProbe"), p.child("startupProbe"))
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if key in c:
                    errs.append(forbidden(p.child(key), INIT_ONLY_ALWAYS))
        if c.get("resizePolicy"):
            errs.append(invalid(p.child("resizePolicy"), c["resizePolicy"], "must not be set for init containers"))
    return errs


def _container_common(c: dict, volumes: dict, spec: dict, p: Path) -> list[FieldError]:
    errs = []
    name = c.get("name", "")
    if not name:
        errs.append(required(p.child("name")))
    else:
        errs += messages_as_errors(p.child("name"), name, names.is_dns1123_label(name))
    if not c.get("image"):
        errs.append(required(p.child("image")))
    policy = c.get("terminationMessagePolicy", "")
    if policy == "":
        errs.append(required(p.child("terminationMessagePolicy"), "must be 'File' or 'FallbackToLogsOnError'"))
    elif policy not in TERMINATION_MESSAGE_POLICIES:
        errs.append(not_supported(p.child("terminationMessagePolicy"), policy, TERMINATION_MESSAGE_POLICIES))
    errs += _ports(c.get("ports", []), p.child("ports"))
    errs += _env(c.get("env", []), p.child("env"))
    errs += _env_from(c.get("envFrom", []), p.child("envFrom"))
    errs += _volume_mounts(c, volumes, p.child("volumeMounts"))
    errs += enum_errors(c.get("imagePullPolicy", ""), p.child("imagePullPolicy"), PULL_POLICIES)
    errs += validate_resources(c.get("resources", {}), p.child("resources"))
    for i, rp in enumerate(c.get("resizePolicy", [])):
        rpath = p.child("resizePolicy").index(i)
        errs += enum_errors(rp.get("resourceName", ""), rpath.child("resourceName"), ("cpu", "memory"))
        errs += enum_errors(rp.get("restartPolicy", ""), rpath.child("restartPolicy"), RESIZE_RESTART_POLICIES)
    errs += _security_context(c.get("securityContext"), p.child("securityContext"))
    return errs


def _ports(ports: list, path: Path) -> list[FieldError]:
    errs, seen = [], set()
    for i, port in enumerate(ports):
        p = path.index(i)
        name = port.get("name", "")
        if name:
            msgs = names.is_valid_port_name(name)
            if msgs:
                errs += messages_as_errors(p.child("name"), name, msgs)
            elif name in seen:
                errs.append(duplicate(p.child("name"), name))
            else:
                seen.add(name)
        cport = port.get("containerPort", 0)
        if cport == 0:
            errs.append(required(p.child("containerPort")))
        else:
            errs += messages_as_errors(p.child("containerPort"), cport, names.is_valid_port_num(cport))
        hport = port.get("hostPort", 0)
        if hport:
            errs += messages_as_errors(p.child("hostPort"), hport, names.is_valid_port_num(hport))
        errs += enum_errors(port.get("protocol", ""), p.child("protocol"), PROTOCOLS)
        if port.get("hostIP"):
            errs += messages_as_errors(p.child("hostIP"), port["hostIP"], names.is_valid_ip(port["hostIP"]))
    return errs


def _host_port_conflicts(containers: list, path: Path, first: int = 0) -> list[FieldError]:
    """checkHostPortConflicts: one hostIP/protocol/hostPort per pod (init containers each alone)."""
    errs, seen = [], set()
    for ci, c in enumerate(containers, first):
        for pi, port in enumerate(c.get("ports", [])):
            if not port.get("hostPort"):
                continue
            key = f"{port.get('hostIP', '')}/{port.get('protocol', '')}/{port['hostPort']}"
            if key in seen:
                errs.append(duplicate(path.index(ci).child("ports").index(pi).child("hostPort"), key))
            seen.add(key)
    return errs


def _env(env: list, path: Path) -> list[FieldError]:
    errs = []
    for i, e in enumerate(env):
        p = path.index(i)
        name = e.get("name", "")
        if not name:
            errs.append(required(p.child("name")))
        else:
            errs += messages_as_errors(p.child("name"), name, names.is_relaxed_env_var_name(name))
        if "valueFrom" in e:
            errs += _env_value_from(e, p.child("valueFrom"))
    return errs


def _env_value_from(e: dict, path: Path) -> list[FieldError]:
    src = e["valueFrom"]
    errs, n = [], 0
    if "fieldRef" in src:
        n += 1
        errs += field_ref_errors(src["fieldRef"], ENV_FIELD_PATHS, path.child("fieldRef"))
    if "resourceFieldRef" in src:
        n += 1
        errs += resource_field_ref_errors(src["resourceFieldRef"], path.child("resourceFieldRef"), volume=False)
    for key in ("configMapKeyRef", "secretKeyRef"):
        if key in src:
            n += 1
            ref = src[key]
            errs += messages_as_errors(path.child(key, "name"), ref.get("name", ""),
                                       names.name_is_dns_subdomain(ref.get("name", "")))
            if not ref.get("key"):
                errs.append(required(path.child(key, "key")))
            else:
                errs += messages_as_errors(path.child(key, "key"), ref["key"], names.is_config_map_key(ref["key"]))
    if "fileKeyRef" in src:
        n += 1
    if n == 0:
        errs.append(invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                                      "`secretKeyRef`"))
    elif e.get("value"):
        errs.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif n > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def _env_from(env_from: list, path: Path) -> list[FieldError]:
    errs = []
    for i, ef in enumerate(env_from):
        p = path.index(i)
        if ef.get("prefix"):
            errs += messages_as_errors(p.child("prefix"), ef["prefix"], names.is_relaxed_env_var_name(ef["prefix"]))
        refs = [k for k in ("configMapRef", "secretRef") if k in ef]
        for k in refs:
            errs += messages_as_errors(p.child(k, "name"), ef[k].get("name", ""),
                                       names.name_is_dns_subdomain(ef[k].get("name", "")))
        if not refs:
            errs.append(invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif len(refs) > 1:
            errs.append(invalid(p, "", "may not have more than one field specified at a time"))
    return errs


def _volume_mounts(c: dict, volumes: dict, path: Path) -> list[FieldError]:
    errs, mount_points = [], set()
    privileged = bool(c.get("securityContext", {}).get("privileged"))
    devices = c.get("volumeDevices", [])
    for i, m in enumerate(c.get("volumeMounts", [])):
        p = path.index(i)
        name, mount_path = m.get("name", ""), m.get("mountPath", "")
        if not name:
            errs.append(required(p.child("name")))
        if name not in volumes:
            errs.append(not_found(p.child("name"), name))
        if not mount_path:
            errs.append(required(p.child("mountPath")))
        if mount_path in mount_points:
            errs.append(invalid(p.child("mountPath"), mount_path, "must be unique"))
        mount_points.add(mount_path)
        if any(d.get("name") == name for d in devices):
            errs.append(invalid(p.child("name"), name, "must not already exist in volumeDevices"))
        if any(d.get("devicePath") == mount_path for d in devices):
            errs.append(invalid(p.child("mountPath"), mount_path, "must not already exist as a path in volumeDevices"))
        if m.get("subPath"):
            errs += local_descending_path(m["subPath"], p.child("subPath"))
        if m.get("subPathExpr"):
            if m.get("subPath"):
                errs.append(invalid(p.child("subPathExpr"), m["subPathExpr"],
                                    "subPathExpr and subPath are mutually exclusive"))
            errs += local_descending_path(m["subPathExpr"], p.child("subPathExpr"))
        if "mountPropagation" in m:
            prop = m["mountPropagation"]
            if prop not in PROPAGATIONS:
                errs.append(not_supported(p.child("mountPropagation"), prop, PROPAGATIONS))
            elif prop == "Bidirectional" and not privileged:
                errs.append(forbidden(p.child("mountPropagation"),
                                      "Bidirectional mount propagation is available only to privileged containers"))
        if "recursiveReadOnly" in m:
            rro = m["recursiveReadOnly"]
            rpath = p.child("recursiveReadOnly")
            if rro not in RECURSIVE_READ_ONLY:
                errs.append(not_supported(rpath, rro, RECURSIVE_READ_ONLY))
            elif rro != "Disabled":
                if not m.get("readOnly"):
                    errs.append(forbidden(rpath, "may only be specified when readOnly is true"))
                if m.get("mountPropagation", "None") != "None":
                    errs.append(forbidden(rpath, "may only be specified when mountPropagation is None or not "
                                                 "specified"))
    return errs


# --- resources ---------------------------------------------------------------------------

def _resource_name_errors(name: str, path: Path) -> list[FieldError]:
    if "/" not in name:
        if name in STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-"):
            return []
        return [invalid(path, name, "must be a standard resource for containers")]
    errs = messages_as_errors(path, name, names.is_qualified_name(name))
    if "kubernetes.io/" not in name and names.is_qualified_name("requests." + name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def _overcommit_allowed(name: str) -> bool:
    return name in STANDARD_CONTAINER_RESOURCES


def _resource_list(rl: dict, path: Path) -> list[FieldError]:
    errs = []
    for name, q in rl.items():
        p = path.key(name)
        errs += _resource_name_errors(name, p)
        errs += _quantity_value(name, q, p)
    return errs


def _quantity_value(name: str, q: str, p: Path) -> list[FieldError]:
    errs = []
    try:
        v = quantity.value(q)
    except quantity.QuantityError:
        return []  # decoding reported it
    if v < 0:
        errs.append(invalid(p, q, NONNEGATIVE))
    if "/" in name and "kubernetes.io/" not in name and v != v.to_integral_value():
        errs.append(invalid(p, q, "must be an integer"))
    return errs


def validate_resources(res: dict, path: Path) -> list[FieldError]:
    errs = []
    lpath, rpath = path.child("limits"), path.child("requests")
    limits, requests = res.get("limits", {}), res.get("requests", {})
    errs += _resource_list(limits, lpath)
    for name, q in requests.items():
        p = rpath.key(name)
        errs += _resource_name_errors(name, p)
        errs += _quantity_value(name, q, p)
        try:
            req = quantity.value(q)
            lim = quantity.value(limits[name]) if name in limits else None
        except quantity.QuantityError:
            continue
        if lim is not None:
            if req != lim and not _overcommit_allowed(name):
                errs.append(invalid(rpath, q, f"must be equal to {name} limit of {limits[name]}"))
            elif req > lim:
                errs.append(invalid(rpath, q, f"must be less than or equal to {name} limit of {limits[name]}"))
        elif not _overcommit_allowed(name):
            errs.append(required(lpath, "Limit must be set for non overcommitable resources"))
    return errs


# --- probes and hooks --------------------------------------------------------------------

def _handler(h: dict, grace, path: Path, kinds: tuple) -> list[FieldError]:
    errs, n = [], 0
    for kind in kinds:
        if kind not in h:
            continue
        if n:
            errs.append(forbidden(path.child(kind), "may not specify more than 1 handler type"))
            continue
        n += 1
        a, p = h[kind], path.child(kind)
        if kind == "exec":
            if not a.get("command"):
                errs.append(required(p.child("command")))
        elif kind == "httpGet":
            if not a.get("path"):
                errs.append(required(p.child("path")))
            errs += _port_num_or_name(a.get("port", 0), p.child("port"))
            if a.get("scheme", "") not in URI_SCHEMES:
                errs.append(not_supported(p.child("scheme"), a.get("scheme", ""), URI_SCHEMES))
            for hdr in a.get("httpHeaders", []):
                errs += messages_as_errors(p.child("httpHeaders"), hdr.get("name", ""),
                                           names.is_http_header_name(hdr.get("name", "")))
        elif kind == "tcpSocket":
            errs += _port_num_or_name(a.get("port", 0), p.child("port"))
        elif kind == "grpc":
            errs += messages_as_errors(p.child("port"), a.get("port", 0), names.is_valid_port_num(a.get("port", 0)))
        elif kind == "sleep":
            secs = a.get("seconds", 0)
            if secs < 0 or (grace is not None and secs > grace):
                errs.append(invalid(p, secs, "must be non-negative and less than terminationGracePeriodSeconds "
                                             f"({grace})"))
    if n == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def _port_num_or_name(port, path: Path) -> list[FieldError]:
    if isinstance(port, int):
        return messages_as_errors(path, port, names.is_valid_port_num(port))
    return messages_as_errors(path, port, names.is_valid_port_name(port))


def _probe(probe: dict, path: Path) -> list[FieldError]:
    errs = _handler(probe, None, path, ("exec", "httpGet", "tcpSocket", "grpc"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        if probe.get(key, 0) < 0:
            errs.append(invalid(path.child(key), probe[key], NONNEGATIVE))
    tgps = probe.get("terminationGracePeriodSeconds")
    if tgps is not None and tgps <= 0:
        errs.append(invalid(path.child("terminationGracePeriodSeconds"), tgps, "must be greater than 0"))
    return errs


def _liveness_or_startup(probe, path: Path) -> list[FieldError]:
    if probe is None:
        return []
    errs = _probe(probe, path)
    if probe.get("successThreshold", 0) != 1:
        errs.append(invalid(path.child("successThreshold"), probe.get("successThreshold", 0), "must be 1"))
    return errs


def _readiness(probe, path: Path) -> list[FieldError]:
    if probe is None:
        return []
    errs = _probe(probe, path)
    if "terminationGracePeriodSeconds" in probe:
        errs.append(invalid(path.child("terminationGracePeriodSeconds"), probe["terminationGracePeriodSeconds"],
                            "must not be set for readinessProbes"))
    return errs


def _lifecycle(lc, grace, spec: dict, path: Path) -> list[FieldError]:
    if lc is None:
        return []
    errs = []
    for hook in ("postStart", "preStop"):
        if hook in lc:
            errs += _handler(lc[hook], grace, path.child(hook), ("exec", "httpGet", "tcpSocket", "sleep"))
    if "stopSignal" in lc:
        os_name = spec.get("os", {}).get("name", "")
        if not os_name:
            errs.append(forbidden(path.child("stopSignal"), "may not be set for containers with empty `spec.os.name`"))
        elif os_name == "linux" and lc["stopSignal"] not in STOP_SIGNALS_LINUX:
            errs.append(not_supported(path.child("stopSignal"), lc["stopSignal"], STOP_SIGNALS_LINUX))
    return errs


# --- security contexts -------------------------------------------------------------------

def _ids(sc: dict, path: Path) -> list[FieldError]:
    errs = []
    for key in ("runAsUser", "runAsGroup"):
        if key in sc:
            errs += messages_as_errors(path.child(key), sc[key], names.is_valid_user_id(sc[key]))
    return errs


def _profile(profile, path: Path, kind: str, types: tuple) -> list[FieldError]:
    if profile is None:
        return []
    errs = []
    t = profile.get("type", "")
    if t == "":
        errs.append(required(path.child("type"), f"type is required when {kind}Profile is set"))
    elif t not in types:
        errs.append(not_supported(path.child("type"), t, types))
    if t == "Localhost":
        if "localhostProfile" not in profile:
            errs.append(required(path.child("localhostProfile"), f"must be set when {kind} type is Localhost"))
        else:
            errs += local_descending_path(profile["localhostProfile"], path.child("localhostProfile"))
    elif "localhostProfile" in profile:
        errs.append(invalid(path.child("localhostProfile"), profile,
                            f"can only be set when {kind} type is Localhost"))
    return errs


def capability_name(cap: str) -> str:
    """`net_admin`, `CAP_NET_ADMIN` -> "NET_ADMIN" (containerd upper-cases and adds CAP_)."""
    cap = cap.upper()
    return cap[4:] if cap.startswith("CAP_") else cap


def _security_context(sc, path: Path) -> list[FieldError]:
    if sc is None:
        return []
    errs = _ids(sc, path)
    if "procMount" in sc:
        if sc["procMount"] not in PROC_MOUNTS:
            errs.append(not_supported(path.child("procMount"), sc["procMount"], PROC_MOUNTS))
    errs += _profile(sc.get("seccompProfile"), path.child("seccompProfile"), "seccomp", SECCOMP_TYPES)
    errs += _profile(sc.get("appArmorProfile"), path.child("appArmorProfile"), "apparmor", APPARMOR_TYPES)
    caps = sc.get("capabilities", {})
    for which in ("add", "drop"):
        for i, cap in enumerate(caps.get(which, [])):
            if cap.upper() != "ALL" and capability_name(cap) not in CAPABILITIES:
                errs.append(invalid(path.child("capabilities", which).index(i), cap,
                                    "must be a Linux capability such as NET_ADMIN (the CAP_ prefix is optional), "
                                    "or ALL"))
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged"):
            errs.append(invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
        if any(capability_name(c) == "SYS_ADMIN" for c in caps.get("add", [])):
            errs.append(invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` "
                                          "CAP_SYS_ADMIN"))
    return errs


def _pod_security_context(spec: dict, spec_path: Path) -> list[FieldError]:
    sc = spec.get("securityContext")
    if sc is None:
        return []
    path = spec_path.child("securityContext")
    errs = _ids(sc, path)
    if "fsGroup" in sc:
        errs += messages_as_errors(path.child("fsGroup"), sc["fsGroup"], names.is_valid_group_id(sc["fsGroup"]))
    for i, gid in enumerate(sc.get("supplementalGroups", [])):
        errs += messages_as_errors(path.child("supplementalGroups").index(i), gid, names.is_valid_group_id(gid))
    if "fsGroupChangePolicy" in sc:
        errs += enum_errors(sc["fsGroupChangePolicy"], path.child("fsGroupChangePolicy"), FS_GROUP_CHANGE_POLICIES)
    if "supplementalGroupsPolicy" in sc:
        errs += enum_errors(sc["supplementalGroupsPolicy"], path.child("supplementalGroupsPolicy"),
                      SUPPLEMENTAL_GROUPS_POLICIES)
    errs += _profile(sc.get("seccompProfile"), path.child("seccompProfile"), "seccomp", SECCOMP_TYPES)
    errs += _profile(sc.get("appArmorProfile"), path.child("appArmorProfile"), "apparmor", APPARMOR_TYPES)
    seen = set()
    for i, s in enumerate(sc.get("sysctls", [])):
        p = path.child("sysctls").index(i).child("name")
        name = s.get("name", "")
        if not name:
            errs.append(required(p))
        elif len(name) > 253 or not re.fullmatch(SYSCTL_FMT, name):
            errs.append(invalid(p, name, f"must have at most 253 characters and match regex {SYSCTL_FMT}"))
        elif name in seen:
            errs.append(duplicate(p, name))
        seen.add(name)
    return errs


# --- DNS, tolerations, host aliases ------------------------------------------------------

def _dns_config(cfg, policy: str, path: Path) -> list[FieldError]:
    errs = []
    if policy == "None" and cfg is None:
        return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
    if cfg is None:
        return []
    servers = cfg.get("nameservers", [])
    if policy == "None" and not servers:
        errs.append(required(path.child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` "
                                                        "is None"))
    if len(servers) > MAX_DNS_NAMESERVERS:
        errs.append(invalid(path.child("nameservers"), servers,
                            f"must not have more than {MAX_DNS_NAMESERVERS} nameservers"))
    for i, ns in enumerate(servers):
        errs += messages_as_errors(path.child("nameservers").index(i), ns, names.is_valid_ip(ns))
    searches = cfg.get("searches", [])
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        errs.append(invalid(path.child("searches"), searches,
                            f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths"))
    if len(" ".join(searches)) > MAX_DNS_SEARCH_CHARS:
        errs.append(invalid(path.child("searches"), searches, f"must not have more than {MAX_DNS_SEARCH_CHARS} "
                                                              "characters (including spaces) in the search list"))
    for i, s in enumerate(searches):
        name = s[:-1] if s.endswith(".") else s
        if name != ".":
            errs += messages_as_errors(path.child("searches").index(i), s, names.is_dns1123_subdomain(name))
    for i, opt in enumerate(cfg.get("options", [])):
        if not opt.get("name"):
            errs.append(required(path.child("options").index(i), "Option.Name must not be empty"))
    return errs


def _tolerations(tolerations: list, path: Path) -> list[FieldError]:
    errs = []
    for i, t in enumerate(tolerations):
        p = path.index(i)
        key, op, value, effect = t.get("key", ""), t.get("operator", ""), t.get("value", ""), t.get("effect", "")
        if key:
            errs += messages_as_errors(p.child("key"), key, names.is_qualified_name(key))
        if not key and op != "Exists":
            errs.append(invalid(p.child("operator"), op, "operator must be Exists when `key` is empty, which means "
                                                         "\"match all values and all keys\""))
        if "tolerationSeconds" in t and effect != "NoExecute":
            errs.append(invalid(p.child("effect"), effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            errs += messages_as_errors(p.child("operator"), value, names.is_valid_label_value(value))
        elif op == "Exists":
            if value:
                errs.append(invalid(p.child("operator"), t, "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(p.child("operator"), op, TOLERATION_OPERATORS))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(not_supported(p.child("effect"), effect, TAINT_EFFECTS))
    return errs


def _host_aliases(aliases: list, path: Path) -> list[FieldError]:
    errs = []
    for i, a in enumerate(aliases):
        p = path.index(i)
        errs += messages_as_errors(p.child("ip"), a.get("ip", ""), names.is_valid_ip(a.get("ip", "")))
        for j, h in enumerate(a.get("hostnames", [])):
            errs += messages_as_errors(p.child("hostnames").index(j), h, names.is_dns1123_subdomain(h))
    return errs
