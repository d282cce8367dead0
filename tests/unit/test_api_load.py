"""kubelet_py.api.load: files of several documents and kinds, Lists, decoding (types, nulls,
unknown fields), error lines naming file/document/object/field, and every upstream example."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from kubelet_py.api import ApiError, Source, admit, load, read_objects
from kubelet_py.api.load import decode

EXAMPLES = pathlib.Path(__file__).parent.parent / "data" / "upstream_examples"  # ../shared/examples/upstream, copied
EXAMPLE_FILES = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.yaml"))

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: c
    image: nginx
"""


def errors(data, file="web.yaml", **kw) -> list[str]:
    with pytest.raises(ApiError) as e:
        load(data, file, **kw)
    return [str(x) for x in e.value.errors]


def test_every_upstream_example_loads():
    assert len(EXAMPLE_FILES) == 60
    kinds = {}
    for rel in EXAMPLE_FILES:
        docs = load((EXAMPLES / rel).read_bytes(), rel, strict=True)
        assert docs, rel
        for d in docs:
            kinds[d.obj["kind"]] = kinds.get(d.obj["kind"], 0) + 1
            assert d.warnings == ()
    assert kinds == {"Pod": 51, "Service": 5, "ConfigMap": 4, "Secret": 3}


def test_example_octal_mode_reads_as_511():
    rel = "pods/storage/projected-secrets-nondefault-permission-mode.yaml"
    pod = load((EXAMPLES / rel).read_text(), rel)[0].obj
    items = pod["spec"]["volumes"][0]["projected"]["sources"][1]["secret"]["items"]
    assert items[0]["mode"] == 511


def test_multi_kind_file_has_document_sources():
    docs = load((EXAMPLES / "secret/dotfile-secret.yaml").read_text(), "dotfile-secret.yaml")
    assert [(d.obj["kind"], str(d.source)) for d in docs] == [
        ("Secret", "dotfile-secret.yaml (document 1)"), ("Pod", "dotfile-secret.yaml (document 2)")]


def test_single_document_source_is_the_file():
    (doc,) = load(POD, "web.yaml")
    assert doc.source == Source("web.yaml") and str(doc.source) == "web.yaml"


def test_json_file_and_json_stream():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    assert load(json.dumps(pod), "web.json")[0].obj["metadata"]["name"] == "web"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}
    docs = load(json.dumps(ns) + "\n" + json.dumps(pod), "two.json")
    assert [d.obj["kind"] for d in docs] == ["Namespace", "Pod"]


def test_flow_yaml_starting_with_brace_is_yaml():
    docs = load('{apiVersion: v1, kind: Namespace, metadata: {name: prod,},}', "ns.yaml")
    assert docs[0].obj["metadata"]["name"] == "prod"


def test_v1_list_and_typed_list():
    lst = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"k": "v"}}]}
    docs = load(json.dumps(lst), "list.json")
    assert [(d.obj["kind"], d.source.item) for d in docs] == [("Namespace", 0), ("ConfigMap", 1)]
    assert str(docs[1].source) == "list.json (item 1)"
    typed = {"apiVersion": "v1", "kind": "PodList", "items": [{"metadata": {"name": "p"},
                                                               "spec": {"containers": [{"name": "c", "image": "i"}]}}]}
    assert load(json.dumps(typed), "pods.json")[0].obj["kind"] == "Pod"


def test_bytes_with_bom_and_utf16():
    assert load(b"\xef\xbb\xbf" + POD.encode(), "web.yaml")[0].obj["metadata"]["name"] == "web"
    assert load(POD.encode("utf-16"), "web.yaml")[0].obj["metadata"]["name"] == "web"
    assert errors(b"a: \xff\xfe\xfd\n") == ["web.yaml: not UTF-8 text (byte 3)"]


def test_file_and_document_caps():
    assert errors(POD, max_file_bytes=50) == [f"web.yaml: file is larger than 50 bytes ({len(POD)})"]
    msgs = errors("kind: Namespace\n---\n" + POD, max_document_bytes=80)
    assert msgs == ["web.yaml (document 2): line 2: document is larger than 80 bytes"]


def test_yaml_error_names_file_line_and_path():
    assert errors(POD + "  - name: c\n    image: x\n    name: d\n") == [
        'web.yaml: line 11: spec.containers[1].name: key "name" already set in map (first at line 9)']


def test_empty_documents_are_skipped_and_non_objects_refused():
    assert len(load("---\n# nothing\n---\n" + POD + "---\n", "web.yaml")) == 1
    assert errors("- a\n- b\n") == ["web.yaml: line 1: a document must be an object (a mapping), not a list"]


def test_unknown_kind_names_the_document():
    text = POD + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
    assert errors(text) == [
        'web.yaml (document 2): deployment default/d: no matches for kind "Deployment" in version "apps/v1" '
        "(this agent serves v1 Pod, Namespace, ConfigMap, Secret, Service, Endpoints; discovery.k8s.io/v1 EndpointSlice)"]
    assert errors("apiVersion: v2\nkind: Pod\nmetadata: {name: p}\n")[0].startswith(
        'web.yaml: pod default/p: no matches for kind "Pod" in version "v2"')


def test_missing_kind_and_api_version():
    assert errors("metadata: {name: x}\n") == ["web.yaml: object default/x: apiVersion: Required value",
                                               "web.yaml: object default/x: kind: Required value"]


def test_every_error_of_every_document_at_once():
    text = POD.replace("name: c", "name: C") + "---\n" + POD.replace("image: nginx", "image: ''")
    assert errors(text) == [
        'web.yaml (document 1): pod default/web: spec.containers[0].name: Invalid value: "C": a lowercase RFC 1123 '
        "label must consist of lower case alphanumeric characters or '-', and must start and end with an "
        "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        "web.yaml (document 2): pod default/web: spec.containers[0].image: Required value"]


def test_unknown_fields_warn_or_fail_in_strict_mode():
    text = POD.replace("    image: nginx\n", "    image: nginx\n    imagePullPolicyy: Always\n") + "  foo: 1\n"
    (doc,) = load(text, "web.yaml")
    assert [str(w) for w in doc.warnings] == [
        'web.yaml: pod default/web: unknown field "spec.containers[0].imagePullPolicyy"',
        'web.yaml: pod default/web: unknown field "spec.foo"']
    assert "foo" not in doc.obj["spec"]
    assert errors(text, strict=True) == [w for w in map(str, doc.warnings)]


@pytest.mark.parametrize("field,value,message", [
    ("    workingDir: 1.25\n", None,
     "spec.containers[0].workingDir: Invalid value: 1.25: must be a string (quote it)"),
    ("    workingDir: yes\n", None, "spec.containers[0].workingDir: Invalid value: true: must be a string (YAML "
                                    "reads unquoted yes/no/on/off/true/false as booleans: quote it)"),
    ("    ports: [{containerPort: '80'}]\n", None,
     'spec.containers[0].ports[0].containerPort: Invalid value: "80": must be a 32-bit integer'),
    ("    ports: [{containerPort: 3000000000}]\n", None,
     "spec.containers[0].ports[0].containerPort: Invalid value: 3000000000: must be a 32-bit integer"),
    ("    stdin: 'true'\n", None, 'spec.containers[0].stdin: Invalid value: "true": must be a boolean (true or false)'),
    ("    command: echo\n", None, 'spec.containers[0].command: Invalid value: "echo": must be a list'),
    ("    resources: {limits: {cpu: abc}}\n", None,
     "spec.containers[0].resources.limits[cpu]: Invalid value: \"abc\": quantities must match the regular "
     "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("    env: [{name: A, value: 1}]\n", None, "spec.containers[0].env[0].value: Invalid value: 1: must be a string "
                                               "(quote it)"),
    ("    livenessProbe: {tcpSocket: {port: 1.5}}\n", None,
     "spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 1.5: must be an integer or a string"),
])
def test_type_errors(field, value, message):
    text = POD + field
    assert errors(text) == [f"web.yaml: pod default/web: {message}"]


def test_nulls_are_absent_and_numbers_normalized():
    text = POD + "    args: [a, null]\n    resources: {limits: {cpu: 0.5, memory: 1.0e3}}\n    env: null\n"
    pod = load(text, "web.yaml")[0].obj
    c = pod["spec"]["containers"][0]
    assert c["args"] == ["a", ""]
    assert "env" not in c
    assert c["resources"]["limits"] == {"cpu": "500m", "memory": "1k"}


def test_load_does_not_change_its_input_objects():
    objs = read_objects(POD, "web.yaml")
    before = copy.deepcopy(objs)
    admit(objs[0][0], objs[0][1])
    assert objs == before


def test_decode_keeps_unknown_out_and_reports_them():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labelz": {}}, "data": {"a": "b"}}
    decoded, errs, warns = decode(obj)
    assert decoded == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    assert errs == [] and [w.field for w in warns] == ["metadata.labelz"]


def test_config_map_value_must_be_a_string():
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  enabled: on\n  num: '1'\n"
    assert errors(text) == ["web.yaml: configmap default/c: data[enabled]: Invalid value: true: must be a string "
                            "(YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"]


def test_secret_base64_is_checked_and_string_data_folded():
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: '!!notb64'}\n"
    assert errors(text) == ["web.yaml: secret default/s: data[a]: Invalid value: illegal base64 data"]
    wrapped = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  a: |\n    YWJj\n    ZA==\n"
    assert load(wrapped, "s.yaml")[0].obj["data"] == {"a": "YWJjZA=="}
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: YQ==}\nstringData: {b: hi, a: x}\n"
    s = load(text, "s.yaml")[0].obj
    assert s["data"] == {"a": "eA==", "b": "aGk="} and "stringData" not in s and s["type"] == "Opaque"


def test_services_and_endpointslices_are_accepted():
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\n"
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1}\naddressType: IPv4\n"
            "endpoints: []\n")
    assert [d.obj["kind"] for d in load(text, "svc.yaml")] == ["Service", "EndpointSlice"]
    bad = "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\n"
    assert errors(bad)[0].startswith('web.yaml: service default/1web: metadata.name: Invalid value: "1web": a DNS-1035 '
                                     "label must consist of lower case alphanumeric characters or '-', start with an "
                                     "alphabetic character")


def test_examples_outside_default_need_their_namespace():
    from kubelet_py.api import check_namespaces
    missing = {}
    for rel in EXAMPLE_FILES:
        for d in load((EXAMPLES / rel).read_bytes(), rel):
            for e in check_namespaces(d.obj, {"default"}, d.source):
                missing.setdefault(e.value, []).append(rel)
    assert missing == {
        "cpu-example": ["pods/resource/cpu-request-limit.yaml"],
        "mem-example": ["pods/resource/memory-request-limit-2.yaml", "pods/resource/memory-request-limit-3.yaml",
                        "pods/resource/memory-request-limit.yaml"],
        "qos-example": ["pods/qos/qos-pod-2.yaml", "pods/qos/qos-pod-3.yaml", "pods/qos/qos-pod-4.yaml",
                        "pods/qos/qos-pod.yaml"]}
