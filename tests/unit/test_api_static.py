"""kubelet_py.api.static: a static pod's name, node, annotations, toleration and content-derived UID."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kubelet_py.api import ApiError
from kubelet_py.api.defaults import set_defaults
from kubelet_py.api.load import decode, read_objects
from kubelet_py.api.static import (CONFIG_HASH, CONFIG_SEEN, CONFIG_SOURCE, api_references, fnv128a, hashed_bytes,
                                   load_static, seen_timestamp, static_pod, static_uid)

PATH = "/etc/kubelet-py/manifests/web.yaml"
WEB = """apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: c
    image: nginx:1.25
"""


def test_fnv128a_known_vectors():
    # FNV-1a 128-bit reference values (offset basis for the empty input; "a" from the published test suite)
    assert fnv128a(b"") == 0x6C62272E07BB014262B821756295C58D
    assert fnv128a(b"a") == 0xD228CB696F1A8CAF78912B704E4A8964


def test_static_pod_fields():
    seen = dt.datetime(2025, 1, 2, 3, 4, 5, 120000, tzinfo=dt.timezone.utc)
    pod, warnings = load_static(WEB, PATH, "node-1", seen=seen)
    assert warnings == ()
    meta = pod["metadata"]
    assert (meta["name"], meta["namespace"]) == ("web-node-1", "default")
    assert meta["annotations"] == {CONFIG_HASH: meta["uid"], CONFIG_SOURCE: "file",
                                   CONFIG_SEEN: "2025-01-02T03:04:05.12Z"}
    assert pod["spec"]["nodeName"] == "node-1"
    assert pod["spec"]["tolerations"] == [{"operator": "Exists", "effect": "NoExecute"}]
    assert pod["status"] == {"phase": "Pending"}
    assert "serviceAccountName" not in pod["spec"]
    assert len(meta["uid"]) == 32 and int(meta["uid"], 16) >= 0


def test_node_name_is_lowered_in_the_pod_name_only():
    out = static_pod({"kind": "Pod", "metadata": {"name": "web"}, "spec": {}}, node_name="Node-A", path=PATH)
    assert out["metadata"]["name"] == "web-node-a" and out["spec"]["nodeName"] == "Node-A"


def test_uid_is_the_documented_hash():
    pod, _ = load_static(WEB, PATH, "node-1")
    decoded = decode(read_objects(WEB, PATH)[0][0])[0]
    defaulted = set_defaults(decoded, service_account=False)
    expected = json.dumps(defaulted, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() \
        + b"host:node-1" + b"file:" + PATH.encode()
    assert hashed_bytes(defaulted, "node-1", PATH) == expected
    assert pod["metadata"]["uid"] == f"{fnv128a(expected):032x}" == static_uid(defaulted, "node-1", PATH)


def test_uid_is_stable_and_follows_meaning_node_and_path():
    uid = load_static(WEB, PATH, "node-1")[0]["metadata"]["uid"]
    reformatted = ('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},\n'
                   ' "spec": {"containers": [{"image": "nginx:1.25", "name": "c"}]}}')
    assert load_static(reformatted, PATH, "node-1")[0]["metadata"]["uid"] == uid
    assert load_static(WEB + "# a comment\n", PATH, "node-1")[0]["metadata"]["uid"] == uid
    assert load_static(WEB.replace("1.25", "1.26"), PATH, "node-1")[0]["metadata"]["uid"] != uid
    assert load_static(WEB, PATH, "node-2")[0]["metadata"]["uid"] != uid
    assert load_static(WEB, PATH + ".2", "node-1")[0]["metadata"]["uid"] != uid
    seen = dt.datetime.now(dt.timezone.utc)
    assert load_static(WEB, PATH, "node-1", seen=seen)[0]["metadata"]["uid"] == uid


def test_existing_toleration_is_not_doubled():
    text = WEB + "  tolerations:\n  - operator: Exists\n    effect: NoExecute\n"
    assert load_static(text, PATH, "n")[0]["spec"]["tolerations"] == [{"operator": "Exists", "effect": "NoExecute"}]


def test_one_pod_per_file():
    with pytest.raises(ApiError) as e:
        load_static(WEB + "---\n" + WEB, PATH, "n")
    assert str(e.value) == f"{PATH}: a static pod file holds exactly one Pod (found Pod, Pod)"
    with pytest.raises(ApiError, match=r"holds exactly one Pod \(found ConfigMap\)"):
        load_static("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", PATH, "n")
    with pytest.raises(ApiError, match=r"holds exactly one Pod \(found nothing\)"):
        load_static("# empty\n", PATH, "n")


def test_name_is_required():
    with pytest.raises(ApiError) as e:
        load_static(WEB.replace("  name: web\n", "  labels: {a: b}\n"), PATH, "n")
    assert str(e.value) == f"{PATH}: pod default/(no name): metadata.name: Required value: a static pod needs a name"


def test_invalid_static_pod_names_the_file():
    with pytest.raises(ApiError) as e:
        load_static(WEB.replace("image: nginx:1.25", "image: ''"), PATH, "n")
    assert str(e.value) == f"{PATH}: pod default/web-n: spec.containers[0].image: Required value"


def test_references_to_api_objects_are_refused():
    text = WEB + ("    env:\n    - name: A\n      valueFrom: {configMapKeyRef: {name: cm, key: k}}\n"
                  "    envFrom:\n    - secretRef: {name: s}\n  volumes:\n  - name: v\n    secret: {secretName: s}\n"
                  "  - name: p\n    projected: {sources: [{configMap: {name: c}}]}\n  serviceAccountName: robot\n")
    with pytest.raises(ApiError) as e:
        load_static(text, PATH, "n")
    assert [f"{x.field}: {x.body()}" for x in e.value.errors] == [
        "spec.serviceAccountName: Forbidden: a static pod may not reference service accounts",
        "spec.volumes[0].secret: Forbidden: a static pod may not reference secrets",
        "spec.volumes[1].projected.sources[0].configMap: Forbidden: a static pod may not reference configmaps",
        "spec.containers[0].env[0].valueFrom.configMapKeyRef: Forbidden: a static pod may not reference configmaps",
        "spec.containers[0].envFrom[0].secretRef: Forbidden: a static pod may not reference secrets"]


def test_host_path_and_empty_dir_are_fine():
    text = WEB + "  volumes:\n  - name: h\n    hostPath: {path: /var/log}\n  - name: e\n    emptyDir: {}\n"
    pod, _ = load_static(text, PATH, "n")
    assert api_references(pod) == []


def test_seen_timestamp_format():
    assert seen_timestamp(dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)) == "2025-01-02T03:04:05Z"
    assert seen_timestamp(dt.datetime(2025, 1, 2, 3, 4, 5, 1, tzinfo=dt.timezone.utc)) == "2025-01-02T03:04:05.000001Z"
