"""The container environment (kubelet_py.pods.env): upstream's expansion table
(third_party/forked/golang/expansion/expand_test.go), makeEnvironmentVariables' cases
(kubelet_pods_test.go: envFrom, prefixes, optional refs, service variables, errors) and the
downward API's values (resource helpers_test.go's rounding)."""

from __future__ import annotations

import base64

import pytest

from kubelet_py.pods.env import (EnvError, PodFacts, expand, field_ref_value, literal_env, make_environment,
                                 resource_field_value)

VARS = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}


@pytest.mark.parametrize("text,want", [
    ("$(VAR_A)", "A"), ("$(VAR_A)-$(VAR_A)", "A-A"), ("$(VAR_A)-1", "A-1"), ("___$(VAR_B)___", "___B___"),
    ("___$(VAR_C)", "___C"), ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"), ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"), ("f000-$$VAR_A", "f000-$VAR_A"),
    ("foo\\$(VAR_C)bar", "foo\\Cbar"), ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"), ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"), ("$(VAR_REF)", "$(VAR_A)"),
    ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"), ("foo$(VAR_EMPTY)bar", "foobar"),
    ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"), ("f00__(VAR_A)__", "f00__(VAR_A)__"),
    ("$?_boo_$!", "$?_boo_$!"), ("$VAR_A", "$VAR_A"), ("$(VAR_DNE)", "$(VAR_DNE)"),
    ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"), ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
    ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"), ("$$$$$$$(VAR_A)", "$$$A"), ("$VAR_A)", "$VAR_A)"),
    ("${VAR_A}", "${VAR_A}"), ("$(VAR_B)_______$(A", "B_______$(A"), ("$(VAR_C)_______$(", "C_______$("),
    ("$(VAR_A)foobar$", "Afoobar$"), ("foo-\\$(VAR_A", "foo-\\$(VAR_A"), ("--$($($($($--", "--$($($($($--"),
    ("$($($($($--foo$(", "$($($($($--foo$("), ("foo0--$($($($(", "foo0--$($($($("),
    ("$(foo$$var)", "$(foo$$var)"), ("\n", "\n"), ("", ""), ("$", "$"), ("$()", "$()"),
])
def test_expansion_table(text, want):
    assert expand(text, VARS) == want


def test_expansion_looks_in_each_mapping_in_turn():
    assert expand("$(A)$(B)$(C)", {"A": "1"}, {"A": "x", "B": "2"}) == "12$(C)"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


NS = "test1"
OBJECTS = {
    ("ConfigMap", "test-config-map"): {"kind": "ConfigMap", "data": {"REPLACE_ME": "FROM_CONFIG_MAP",
                                                                     "DUPE_TEST": "CONFIG_MAP"},
                                       "binaryData": {"BIN": b64("never in env")}},
    ("Secret", "test-secret"): {"kind": "Secret", "data": {"REPLACE_ME": b64("FROM_SECRET"),
                                                           "DUPE_TEST": b64("SECRET")}},
    ("ConfigMap", "bad-keys"): {"kind": "ConfigMap", "data": {"a=b": "x", "key": "value"}},
}


def lookup(kind, name):
    return OBJECTS.get((kind, name))


def pod(*containers, **spec) -> dict:
    return {"metadata": {"name": "dapi-test-pod-name", "namespace": NS, "uid": "uid-1",
                         "labels": {"app": "web", "tier": "fe"}, "annotations": {"build": "two"}},
            "spec": {"nodeName": "node-name", "serviceAccountName": "special", "containers": list(containers),
                     **spec}}


def ctr(env=None, env_from=None, **kw) -> dict:
    c = {"name": "c", "image": "i", **kw}
    if env is not None:
        c["env"] = env
    if env_from is not None:
        c["envFrom"] = env_from
    return c


def env_of(c: dict, facts: PodFacts = PodFacts(), p: dict | None = None) -> dict[str, str]:
    p = p or pod(c)
    return make_environment(p, c, lookup, facts).env


SERVICES = {"TEST_SERVICE_HOST": "1.2.3.1", "TEST_SERVICE_PORT": "8081", "TEST_PORT": "tcp://1.2.3.1:8081"}


def test_env_from_config_map_with_prefix_expansion_and_overrides():
    c = ctr(env=[{"name": "TEST_LITERAL", "value": "test-test-test"},
                 {"name": "EXPANSION_TEST", "value": "$(REPLACE_ME)"},
                 {"name": "DUPE_TEST", "value": "ENV_VAR"}],
            env_from=[{"configMapRef": {"name": "test-config-map"}},
                      {"prefix": "p_", "configMapRef": {"name": "test-config-map"}}])
    assert env_of(c, PodFacts(service_env=SERVICES)) == {
        "REPLACE_ME": "FROM_CONFIG_MAP", "DUPE_TEST": "ENV_VAR", "p_REPLACE_ME": "FROM_CONFIG_MAP",
        "p_DUPE_TEST": "CONFIG_MAP", "TEST_LITERAL": "test-test-test", "EXPANSION_TEST": "FROM_CONFIG_MAP", **SERVICES}


def test_env_from_secret_and_later_sources_win():
    c = ctr(env_from=[{"configMapRef": {"name": "test-config-map"}}, {"secretRef": {"name": "test-secret"}}],
            env=[{"name": "EXPANSION_TEST", "value": "$(REPLACE_ME)"}])
    assert env_of(c) == {"REPLACE_ME": "FROM_SECRET", "DUPE_TEST": "SECRET", "EXPANSION_TEST": "FROM_SECRET"}


def test_service_variables_come_last_and_never_override():
    c = ctr(env=[{"name": "TEST_SERVICE_HOST", "value": "mine"}, {"name": "URL", "value": "$(TEST_PORT)/x"}])
    env = env_of(c, PodFacts(service_env=SERVICES))
    assert env["TEST_SERVICE_HOST"] == "mine" and env["URL"] == "tcp://1.2.3.1:8081/x"
    assert list(env)[:2] == ["TEST_SERVICE_HOST", "URL"] and env["TEST_SERVICE_PORT"] == "8081"


def test_env_values_see_only_earlier_names_and_value_from_is_never_expanded():
    c = ctr(env=[{"name": "UNCHANGED", "value": "$(PROTOCOL)://$(IP)"}, {"name": "IP", "value": "1.2.3.4"},
                 {"name": "PROTOCOL", "value": "https"}, {"name": "ADDR", "value": "$(PROTOCOL)://$(IP)"},
                 {"name": "ESCAPED", "value": "$$(PROTOCOL)"},
                 {"name": "RAW", "valueFrom": {"configMapKeyRef": {"name": "raw", "key": "k"}}},
                 {"name": "EMPTY", "value": ""}])
    OBJECTS[("ConfigMap", "raw")] = {"data": {"k": "$(IP)"}}
    try:
        assert env_of(c) == {"UNCHANGED": "$(PROTOCOL)://$(IP)", "IP": "1.2.3.4", "PROTOCOL": "https",
                             "ADDR": "https://1.2.3.4", "ESCAPED": "$(PROTOCOL)", "RAW": "$(IP)", "EMPTY": ""}
    finally:
        del OBJECTS[("ConfigMap", "raw")]
    assert literal_env(c) == {"UNCHANGED": "$(PROTOCOL)://$(IP)", "IP": "1.2.3.4", "PROTOCOL": "https",
                              "ADDR": "https://1.2.3.4", "ESCAPED": "$(PROTOCOL)", "EMPTY": ""}


def key_ref(kind: str, name: str, key: str, optional: bool | None = None) -> dict:
    ref = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"name": "V", "valueFrom": {kind: ref}}


@pytest.mark.parametrize("env,env_from,message", [
    ([key_ref("configMapKeyRef", "missing", "k")], None, 'configmap "missing" not found'),
    ([key_ref("secretKeyRef", "missing", "k")], None, 'secret "missing" not found'),
    ([key_ref("configMapKeyRef", "test-config-map", "nope")], None,
     "couldn't find key nope in ConfigMap test1/test-config-map"),
    ([key_ref("secretKeyRef", "test-secret", "nope", optional=False)], None,
     "couldn't find key nope in Secret test1/test-secret"),
    ([key_ref("configMapKeyRef", "test-config-map", "BIN")], None,  # binaryData never reaches env
     "couldn't find key BIN in ConfigMap test1/test-config-map"),
    (None, [{"configMapRef": {"name": "missing"}}], 'configmap "missing" not found'),
    (None, [{"secretRef": {"name": "missing", "optional": False}}], 'secret "missing" not found'),
])
def test_a_missing_reference_is_an_error_with_upstreams_words(env, env_from, message):
    with pytest.raises(EnvError) as e:
        env_of(ctr(env=env, env_from=env_from))
    assert str(e.value) == message and e.value.reason == "CreateContainerConfigError"


def test_optional_references_are_skipped_and_leave_earlier_values():
    c = ctr(env_from=[{"configMapRef": {"name": "missing", "optional": True}},
                      {"secretRef": {"name": "missing", "optional": True}},
                      {"configMapRef": {"name": "test-config-map"}}],
            env=[key_ref("configMapKeyRef", "missing", "k", optional=True),
                 {**key_ref("secretKeyRef", "test-secret", "nope", optional=True), "name": "DUPE_TEST"},
                 {**key_ref("secretKeyRef", "test-secret", "REPLACE_ME"), "name": "S"}])
    assert env_of(c) == {"REPLACE_ME": "FROM_CONFIG_MAP", "DUPE_TEST": "CONFIG_MAP", "S": "FROM_SECRET"}


def test_without_a_lookup_every_reference_is_missing():
    c = ctr(env=[key_ref("configMapKeyRef", "test-config-map", "REPLACE_ME")])
    with pytest.raises(EnvError, match='configmap "test-config-map" not found'):
        make_environment(pod(c), c, None)


def test_env_from_keys_that_are_not_variable_names_are_skipped_and_reported():
    c = ctr(env_from=[{"configMapRef": {"name": "bad-keys"}}])
    got = make_environment(pod(c), c, lookup)
    assert got.env == {"key": "value"}
    assert [s.message() for s in got.skipped] == [
        "Keys [a=b] from the EnvFrom configMap test1/bad-keys were skipped since they are considered invalid "
        "environment variable names."]
    # upstream's classic rule (C identifiers), as its docs' example: a stricter check skips more
    OBJECTS[("Secret", "digits")] = {"data": {"1badkey": b64("x"), "2alsobad": b64("y"), "ok": b64("z")}}
    try:
        c = ctr(env_from=[{"secretRef": {"name": "digits"}}])
        strict = make_environment(pod(c), c, lookup, env_name_errors=lambda k: [] if not k[0].isdigit() else ["no"])
    finally:
        del OBJECTS[("Secret", "digits")]
    assert strict.env == {"ok": "z"}
    assert strict.skipped[0].message().startswith("Keys [1badkey, 2alsobad] from the EnvFrom secret test1/digits ")


def field(path: str) -> dict:
    return {"name": path.replace(".", "_").replace("['", "_").replace("']", ""),
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def test_downward_api_fields():
    paths = ["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['app']",
             "metadata.labels['none']", "metadata.annotations['build']", "spec.nodeName",
             "spec.serviceAccountName", "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs"]
    c = ctr(env=[field(p) for p in paths])
    facts = PodFacts(pod_ips=("10.244.0.5", "fd00::5"), host_ips=("192.168.1.2", "fd01::2"))
    assert list(env_of(c, facts).values()) == [
        "dapi-test-pod-name", NS, "uid-1", "web", "", "two", "node-name", "special", "10.244.0.5",
        "10.244.0.5,fd00::5", "192.168.1.2", "192.168.1.2,fd01::2"]


def test_downward_api_maps_and_unsupported_fields():
    p = pod(ctr())
    assert field_ref_value(p, "metadata.labels") == 'app="web"\ntier="fe"'
    with pytest.raises(EnvError, match="unsupported fieldPath: spec.restartPolicy"):
        field_ref_value(p, "spec.restartPolicy")
    with pytest.raises(EnvError, match="field label not supported: spec.hostname"):
        field_ref_value(p, "spec.hostname")
    with pytest.raises(EnvError, match="host IPs"):
        field_ref_value(p, "status.hostIP")


def res(requests=None, limits=None) -> dict:
    r = {}
    if requests:
        r["requests"] = requests
    if limits:
        r["limits"] = limits
    return r


@pytest.mark.parametrize("resource,divisor,resources,want", [
    ("limits.cpu", None, res(limits={"cpu": "9"}), "9"),
    ("requests.cpu", None, res(), "0"),
    ("requests.cpu", None, res(requests={"cpu": "8"}), "8"),
    ("requests.cpu", None, res(requests={"cpu": "100m"}), "1"),  # rounded up to whole cores
    ("requests.cpu", "100m", res(requests={"cpu": "1500m"}), "15"),
    ("requests.cpu", "1m", res(requests={"cpu": "125m"}), "125"),
    ("limits.cpu", "1m", res(limits={"cpu": "250m"}), "250"),
    ("limits.memory", None, res(limits={"memory": "64Mi"}), "67108864"),
    ("requests.memory", None, res(requests={"memory": "32Mi"}), "33554432"),
    ("limits.memory", "1Mi", res(limits={"memory": "10Mi"}), "10"),
    ("limits.memory", "1Ki", res(limits={"memory": "1Mi"}), "1024"),
    ("limits.memory", "1Mi", res(limits={"memory": "1500Ki"}), "2"),  # 1.46 Mi rounds up
    ("requests.memory", "1k", res(requests={"memory": "1"}), "1"),
    ("limits.ephemeral-storage", "1Mi", res(limits={"ephemeral-storage": "10Mi"}), "10"),
    ("requests.ephemeral-storage", None, res(requests={"ephemeral-storage": "1G"}), "1000000000"),
    ("limits.hugepages-2Mi", "1Mi", res(limits={"hugepages-2Mi": "4Mi"}), "4"),
    # an unset (or zero) limit is the node's allocatable amount; requests are not defaulted
    ("limits.cpu", None, res(), "4"),
    ("limits.cpu", "1m", res(limits={"cpu": "0"}), "4000"),
    ("limits.memory", "1Mi", res(), "7900"),
    ("limits.ephemeral-storage", None, res(), "90000000000"),
    ("requests.memory", None, res(), "0"),
])
def test_resource_field_values_round_up(resource, divisor, resources, want):
    ref = {"resource": resource, **({"divisor": divisor} if divisor else {})}
    c = ctr(resources=resources)
    alloc = {"cpu": "4", "memory": "7900Mi", "ephemeral-storage": "90G"}
    assert resource_field_value(ref, pod(c), c, alloc) == want
    got = env_of(ctr(resources=resources, env=[{"name": "R", "valueFrom": {"resourceFieldRef": ref}}]),
                 PodFacts(allocatable=alloc))
    assert got == {"R": want}


def test_resource_field_of_another_container():
    app = ctr(name="app", resources=res(requests={"cpu": "250m"}))
    init = ctr(name="setup")
    me = ctr(name="me", env=[{"name": "CPU", "valueFrom": {"resourceFieldRef": {"containerName": "app",
                                                                                 "resource": "requests.cpu",
                                                                                 "divisor": "1m"}}},
                             {"name": "LIM", "valueFrom": {"resourceFieldRef": {"containerName": "app",
                                                                                 "resource": "limits.cpu"}}},
                             {"name": "INIT", "valueFrom": {"resourceFieldRef": {"containerName": "setup",
                                                                                  "resource": "limits.cpu"}}}])
    p = pod(app, me, initContainers=[init])
    # an init container's limits are not defaulted from the node (upstream defaults spec.containers only)
    assert make_environment(p, me, lookup, PodFacts(allocatable={"cpu": "2"})).env == {"CPU": "250", "LIM": "2",
                                                                                         "INIT": "0"}
    with pytest.raises(EnvError, match="container nope not found"):
        resource_field_value({"containerName": "nope", "resource": "limits.cpu"}, p, me)
    with pytest.raises(EnvError, match="unsupported container resource : limits.gpu"):
        resource_field_value({"resource": "limits.gpu"}, p, me)


def test_secret_bytes_that_are_not_utf8_survive():
    OBJECTS[("Secret", "bin")] = {"data": {"k": base64.b64encode(b"\xff\xfe").decode()}}
    try:
        env = env_of(ctr(env=[key_ref("secretKeyRef", "bin", "k")]))
    finally:
        del OBJECTS[("Secret", "bin")]
    assert env["V"].encode("utf-8", "surrogateescape") == b"\xff\xfe"
