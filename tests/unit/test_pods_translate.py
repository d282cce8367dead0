"""From a v1 Pod to the runtime's requests (pure)."""

from kubelet_py.pods.translate import container_request, expand, literal_env, sandbox_config


def test_expansion_as_the_kubelet_does_it():
    env = {"A": "x", "B": "y"}
    assert expand("$(A)-$(B)", env) == "x-y"
    assert expand("$(C)", env) == "$(C)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("$$$(A)", env) == "$x"
    assert expand("a$b $(A", env) == "a$b $(A"
    assert expand("$", env) == "$"


def test_env_values_see_only_earlier_names_and_command_sees_all():
    c = {"name": "c", "image": "i", "command": ["echo", "$(LATER)", "$$(LATER)"],
         "env": [{"name": "UNCHANGED", "value": "$(LATER)://$(IP)"}, {"name": "IP", "value": "1.2.3.4"},
                 {"name": "LATER", "value": "https"}, {"name": "ADDR", "value": "$(LATER)://$(IP)"},
                 {"name": "REF", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
    assert literal_env(c) == {"UNCHANGED": "$(LATER)://$(IP)", "IP": "1.2.3.4", "LATER": "https",
                              "ADDR": "https://1.2.3.4"}
    pod = {"metadata": {"name": "p", "uid": "u1"}, "spec": {"containers": [c]}}
    req = container_request(pod, "containers", 0)
    assert req.command == ["echo", "https", "$(LATER)"]
    assert c["command"] == ["echo", "$(LATER)", "$$(LATER)"]  # the pod is not changed


def test_security_context_and_resources_reach_the_request():
    pod = {"metadata": {"name": "p", "uid": "u1"},
           "spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000]},
                    "containers": [{"name": "c", "image": "i",
                                    "securityContext": {"runAsUser": 2000, "allowPrivilegeEscalation": False,
                                                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                                        "readOnlyRootFilesystem": True},
                                    "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                                  "limits": {"cpu": "500m", "memory": "128Mi"}}}]}}
    r = container_request(pod, "containers", 0)
    assert (r.uid, r.gid, r.supplemental_groups) == (2000, 3000, [4000])
    assert r.allow_privilege_escalation is False and r.read_only_rootfs
    assert (r.cap_add, r.cap_drop) == (["CAP_NET_ADMIN"], ["CAP_ALL"])
    assert (r.cpu_request_milli, r.cpu_limit_milli, r.memory_request, r.memory_limit) == (250, 500, 64 << 20, 128 << 20)
    cfg = sandbox_config(pod)
    assert cfg.qos == "burstable" and cfg.uid == "u1"
