"""The security context (kubelet_py.pods.security): merge, request fields, node settings, the
runAsNonRoot check's messages, and what container_request and the generated config make of it."""

from __future__ import annotations

import pytest

from kubelet_py.pods import security, translate
from kubelet_py.pods.security import NodeSecurity, SecurityError


def _pod(sc=None, csc=None, **spec):
    c = {"name": "c", "image": "i", **({"securityContext": csc} if csc is not None else {})}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [c], **({"securityContext": sc} if sc is not None else {}), **spec}}


def test_container_overrides_pod_and_fs_group_joins_the_groups():
    eff = security.effective({"runAsUser": 1, "runAsGroup": 2, "runAsNonRoot": True, "supplementalGroups": [5, 6],
                              "fsGroup": 6, "seccompProfile": {"type": "RuntimeDefault"}},
                             {"runAsUser": 10, "runAsNonRoot": False, "privileged": True})
    assert eff == {"runAsUser": 10, "runAsGroup": 2, "runAsNonRoot": False,
                   "seccompProfile": {"type": "RuntimeDefault"}, "privileged": True, "supplementalGroups": [5, 6]}
    assert security.effective({"fsGroup": 7}, None)["supplementalGroups"] == [7]
    assert security.effective({"privileged": True}, None) == {}  # pod-level privileged is not a field


def test_request_fields_map_every_field():
    pod = _pod({"runAsUser": 1000, "supplementalGroups": [4], "fsGroup": 2000,
                "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}]},
               {"capabilities": {"add": ["net_admin"], "drop": ["ALL"]}, "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False, "procMount": "Unmasked",
                "seccompProfile": {"type": "Localhost", "localhostProfile": "prof/a.json"}})
    f = security.request_fields(pod, "containers", 0, NodeSecurity("/sec"))
    assert f == {"uid": 1000, "gid": None, "supplemental_groups": [4, 2000], "cap_add": ["CAP_NET_ADMIN"],
                 "cap_drop": ["CAP_ALL"], "privileged": False, "allow_privilege_escalation": False,
                 "read_only_rootfs": True, "run_as_non_root": False, "seccomp": "Localhost//sec/prof/a.json",
                 "proc_mount": "Unmasked", "sysctls": {"net.ipv4.ip_local_port_range": "1024 65000"}}
    assert security.request_fields(_pod(), "containers", 0)["seccomp"] == "Unconfined"


def test_unsafe_sysctls_need_the_node_flag():
    pod = _pod({"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]})
    with pytest.raises(SecurityError) as e:
        security.request_fields(pod, "containers", 0)
    assert str(e.value) == 'spec.securityContext.sysctls[0]: forbidden sysctl: "net.core.somaxconn" not allowlisted'
    assert security.request_fields(pod, "containers", 0, NodeSecurity(allowed_unsafe_sysctls=("net.core.*",)))[
        "sysctls"] == {"net.core.somaxconn": "1024"}
    pod["spec"]["hostNetwork"] = True
    with pytest.raises(SecurityError, match="host net"):
        security.request_fields(pod, "containers", 0, NodeSecurity(allowed_unsafe_sysctls=("net.core.*",)))


@pytest.mark.parametrize("sc,csc,field", [
    ({"seLinuxOptions": {"level": "s0"}}, None, "spec.securityContext.seLinuxOptions"),
    (None, {"appArmorProfile": {"type": "RuntimeDefault"}}, "spec.containers[0].securityContext.appArmorProfile"),
    (None, {"seLinuxOptions": {"type": "t"}}, "spec.containers[0].securityContext.seLinuxOptions")])
def test_apparmor_and_selinux_are_refused_unless_empty(sc, csc, field):
    with pytest.raises(SecurityError) as e:
        security.request_fields(_pod(sc, csc), "containers", 0)
    assert str(e.value) == f"{field}: not supported on this node"
    security.request_fields(_pod({"seLinuxOptions": {}}, {"appArmorProfile": None}), "containers", 0)


def test_container_request_raises_a_config_error():
    with pytest.raises(translate.TranslateError) as e:
        translate.container_request(_pod({"seLinuxOptions": {"level": "s0"}}), "containers", 0)
    assert e.value.reason == "CreateContainerConfigError" and e.value.field == "spec.securityContext.seLinuxOptions"
    req = translate.container_request(_pod({"fsGroup": 9}, {"privileged": True}), "containers", 0)
    assert req.privileged and req.supplemental_groups == [9]


@pytest.mark.parametrize("sc,csc,image_user,message", [
    ({"runAsNonRoot": True}, {"runAsUser": 0}, "", "container's runAsUser breaks non-root policy"),
    ({"runAsNonRoot": True}, None, "", "container has runAsNonRoot and image will run as root"),
    ({"runAsNonRoot": True}, None, "0:0", "container has runAsNonRoot and image will run as root"),
    (None, {"runAsNonRoot": True}, "nobody",
     "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root"),
    ({"runAsNonRoot": True}, None, "1000", None), ({"runAsNonRoot": True, "runAsUser": 5}, None, "", None),
    ({"runAsNonRoot": True}, {"runAsNonRoot": False}, "", None)])
def test_run_as_non_root_messages(sc, csc, image_user, message):
    pod = _pod(sc, csc)
    if message is None:
        security.verify_run_as_non_root(pod, "containers", 0, image_user)
        return
    with pytest.raises(SecurityError) as e:
        security.verify_run_as_non_root(pod, "containers", 0, image_user)
    assert str(e.value) == f'{message} (pod: "p_ns(u)", container: c)'


def test_generated_config_carries_sysctls_and_proc_mount():
    from runtime.oci.generate import ContainerRequest, generate

    class Img:
        entrypoint, cmd, env, working_dir, user = ["sh"], [], [], "/", ""
    base = generate(ContainerRequest(name="c"), Img, "/r", "cg", "v1")
    assert base["linux"]["maskedPaths"] and "sysctl" not in base["linux"]
    doc = generate(ContainerRequest(name="c", proc_mount="Unmasked", sysctls={"net.ipv4.tcp_syncookies": "1"}),
                   Img, "/r", "cg", "v1")
    assert "maskedPaths" not in doc["linux"] and "readonlyPaths" not in doc["linux"]
    assert doc["linux"]["sysctl"] == {"net.ipv4.tcp_syncookies": "1"}
