"""The security context of one container (pure), as kuberuntime's
determineEffectiveSecurityContext and the CRI map it (semantics 4.6):

    effective(pod, container)      the container's fields over the pod's; fsGroup joins the
                                   supplementalGroups
    request_fields(...)            the ContainerRequest fields they become (uid/gid, groups,
                                   caps, privileged, no_new_privs, read-only root, seccomp,
                                   procMount, sysctls), or a SecurityError naming the field
    verify_run_as_non_root(...)    the check against the image's user at create, with the
                                   kubelet's messages

What this node cannot carry out (appArmorProfile, seLinuxOptions) is refused unless empty."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

DEFAULT_SECCOMP_ROOT = "/var/lib/kubelet-py/seccomp"

# upstream's safe sysctls (pkg/kubelet/sysctl/safe_sysctls.go, 1.32): namespaced and harmless
SAFE_SYSCTLS = ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem",
                "net.ipv4.tcp_wmem")
# fields the container's securityContext overrides; the rest are the pod's only or the container's only
OVERRIDABLE = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "appArmorProfile", "seLinuxOptions",
               "windowsOptions")
CONTAINER_ONLY = ("privileged", "capabilities", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "procMount")


class SecurityError(ValueError):
    """A securityContext this node refuses; `field` is the pod's field path. `reason`: the
    container's waiting reason (CreateContainerConfigError, as upstream's config errors)."""

    reason = "CreateContainerConfigError"

    def __init__(self, field: str, why: str):
        super().__init__(f"{field}: {why}" if field else why)
        self.field = field
        self.why = why


@dataclass(frozen=True)
class NodeSecurity:
    """The node's settings: `serve --seccomp-profile-root` and `--allowed-unsafe-sysctls`
    (names or `prefix*` patterns, as the kubelet's)."""
    seccomp_profile_root: str = DEFAULT_SECCOMP_ROOT
    allowed_unsafe_sysctls: tuple[str, ...] = ()


def effective(pod_sc: dict | None, sc: dict | None) -> dict:
    """The merged securityContext of one container (upstream's synthesized one)."""
    pod_sc, sc = pod_sc or {}, sc or {}
    out: dict = {}
    for k in OVERRIDABLE:
        if sc.get(k) is not None:
            out[k] = sc[k]
        elif pod_sc.get(k) is not None:
            out[k] = pod_sc[k]
    for k in CONTAINER_ONLY:
        if sc.get(k) is not None:
            out[k] = sc[k]
    groups = list(pod_sc.get("supplementalGroups") or [])
    if pod_sc.get("fsGroup") is not None:
        groups.append(pod_sc["fsGroup"])
    if groups:
        out["supplementalGroups"] = list(dict.fromkeys(groups))  # in order, once each
    return out


def caps(names) -> list[str]:
    """Capability names with the optional `CAP_` prefix added (`ALL` stays `CAP_ALL`)."""
    return [n.upper() if n.upper().startswith("CAP_") else f"CAP_{n.upper()}" for n in names or []]


def seccomp(profile: dict | None, field: str, root: str) -> str:
    """The runtime's seccomp request: Unconfined (the default), RuntimeDefault or
    Localhost/<absolute path below the node's profile root>."""
    profile = profile or {}
    t = profile.get("type", "Unconfined")
    if t != "Localhost":
        return t
    rel = profile.get("localhostProfile") or ""
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        raise SecurityError(f"{field}.localhostProfile", f"{rel!r} must be a relative path below the node's "
                            "seccomp profile root, without '..'")
    return f"Localhost/{os.path.join(root, rel)}"


def sysctls(pod_sc: dict | None, field: str, node: NodeSecurity, host_network: bool, host_ipc: bool) -> dict[str, str]:
    """The pod's sysctls as name -> value: the safe set, and others only where the node allows
    them (the kubelet's sysctl admission, its message)."""
    out = {}
    for i, s in enumerate((pod_sc or {}).get("sysctls") or []):
        name, value = s.get("name", ""), str(s.get("value", ""))
        where = f"{field}.sysctls[{i}]"
        if name not in SAFE_SYSCTLS and not any(fnmatch.fnmatchcase(name, p) for p in node.allowed_unsafe_sysctls):
            raise SecurityError(where, f'forbidden sysctl: "{name}" not allowlisted')
        if name.startswith("net.") and host_network:
            raise SecurityError(where, f'forbidden sysctl: "{name}" not allowed with host net enabled')
        if (name.startswith("kernel.shm") or name.startswith("kernel.msg") or name.startswith("kernel.sem")
                or name.startswith("fs.mqueue.")) and host_ipc:
            raise SecurityError(where, f'forbidden sysctl: "{name}" not allowed with host ipc enabled')
        out[name] = value
    return out


def _unsupported(sc: dict, pod_sc: dict, where: str) -> None:
    for k in ("appArmorProfile", "seLinuxOptions"):
        for scope, d in ((where, sc), ("spec", pod_sc)):
            if d.get(k):
                raise SecurityError(f"{scope}.securityContext.{k}", "not supported on this node")


def request_fields(pod: dict, lst: str, i: int, node: NodeSecurity | None = None) -> dict:
    """The ContainerRequest fields of container `lst[i]`'s effective securityContext."""
    node = node or NodeSecurity()
    spec = pod["spec"]
    c = spec[lst][i]
    where = f"spec.{lst}[{i}]"
    pod_sc, sc = spec.get("securityContext") or {}, c.get("securityContext") or {}
    _unsupported(sc, pod_sc, where)
    eff = effective(pod_sc, sc)
    capab = eff.get("capabilities") or {}
    prof_field = (f"{where}.securityContext.seccompProfile" if sc.get("seccompProfile") is not None
                  else "spec.securityContext.seccompProfile")
    return {
        "uid": eff.get("runAsUser"), "gid": eff.get("runAsGroup"),
        "supplemental_groups": list(eff.get("supplementalGroups") or []),
        "cap_add": caps(capab.get("add")), "cap_drop": caps(capab.get("drop")),
        "privileged": bool(eff.get("privileged")),
        "allow_privilege_escalation": eff.get("allowPrivilegeEscalation"),
        "read_only_rootfs": bool(eff.get("readOnlyRootFilesystem")),
        "run_as_non_root": bool(eff.get("runAsNonRoot")),
        "seccomp": seccomp(eff.get("seccompProfile"), prof_field, node.seccomp_profile_root),
        "proc_mount": eff.get("procMount") or "Default",
        "sysctls": sysctls(pod_sc, "spec.securityContext", node, bool(spec.get("hostNetwork")),
                           bool(spec.get("hostIPC"))),
    }


def image_uid(user: str) -> int | None:
    """The uid of an image's USER as the kubelet reads it: "" is root, a number is that uid,
    a name (not resolved here) is None."""
    u = (user or "").split(":", 1)[0]
    if u == "":
        return 0
    return int(u) if u.isdigit() else None


def verify_run_as_non_root(pod: dict, lst: str, i: int, image_user: str) -> None:
    """kuberuntime's verifyRunAsNonRoot: with runAsNonRoot, refuse a container that would run
    as root (CreateContainerConfigError, upstream's messages)."""
    spec = pod["spec"]
    c = spec[lst][i]
    eff = effective(spec.get("securityContext"), c.get("securityContext"))
    if not eff.get("runAsNonRoot"):
        return
    md = pod["metadata"]
    who = f'(pod: "{md["name"]}_{md.get("namespace", "default")}({md.get("uid", "")})", container: {c["name"]})'
    if eff.get("runAsUser") is not None:
        if eff["runAsUser"] == 0:
            raise SecurityError("", f"container's runAsUser breaks non-root policy {who}")
        return
    uid = image_uid(image_user)
    if uid is None:
        raise SecurityError("", f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
                            f"cannot verify user is non-root {who}")
    if uid == 0:
        raise SecurityError("", f"container has runAsNonRoot and image will run as root {who}")
