"""kubelet_py.api.update: create fills the system fields; update keeps them, checks the pod
update rules with upstream's message and bumps resourceVersion and generation."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from kubelet_py.api import ApiError, admit, create, update
from kubelet_py.api.errors import FAILED_PRECONDITION, INVALID_ARGUMENT
from kubelet_py.api.update import POD_UPDATE_FORBIDDEN, already_exists, diff_paths, timestamp

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)


def manifest(**spec) -> dict:
    base = {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}],
            "initContainers": [{"name": "i", "image": "busybox:1.36"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": base}


def stored(**spec) -> dict:
    return create(admit(manifest(**spec)).obj, NOW, lambda: "uid-1")


def put(old: dict, new: dict) -> dict:
    return update(old, admit(new).obj)


def refused(old: dict, new: dict) -> list[str]:
    with pytest.raises(ApiError) as e:
        put(old, new)
    assert e.value.kind == INVALID_ARGUMENT
    return [str(x) for x in e.value.errors]


def test_create_sets_system_fields_and_status():
    obj = admit(manifest()).obj
    before = copy.deepcopy(obj)
    pod = create(obj, NOW, lambda: "uid-1")
    assert obj == before
    assert pod["metadata"] == {"name": "web", "namespace": "default", "labels": {"app": "web"}, "uid": "uid-1",
                               "creationTimestamp": "2025-01-02T03:04:05Z", "resourceVersion": "1", "generation": 1}
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_create_replaces_given_system_fields_and_status():
    obj = admit(manifest()).obj
    obj["metadata"].update(uid="mine", resourceVersion="99", creationTimestamp="1999-01-01T00:00:00Z", generation=7)
    obj["status"] = {"phase": "Running"}
    pod = create(obj, 1735787045, lambda: "uid-2", version="500")
    assert (pod["metadata"]["uid"], pod["metadata"]["resourceVersion"], pod["metadata"]["generation"]) == (
        "uid-2", "500", 1)
    assert pod["metadata"]["creationTimestamp"] == "2025-01-02T03:04:05Z"
    assert pod["status"]["phase"] == "Pending"


def test_create_generates_a_name_from_generate_name():
    obj = admit({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}}).obj
    a = create(obj, NOW, lambda: "11111111-2222")
    b = create(obj, NOW, lambda: "33333333-4444")
    assert a["metadata"]["name"].startswith("cfg-") and len(a["metadata"]["name"]) == 9
    assert a["metadata"]["name"] != b["metadata"]["name"]
    assert set(a["metadata"]["name"][4:]) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert "generation" not in a["metadata"] and "status" not in a


def test_timestamp_needs_a_zone():
    with pytest.raises(ValueError):
        timestamp(dt.datetime(2025, 1, 1))


def test_image_label_and_annotation_changes_are_allowed():
    old = stored()
    new = manifest()
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    new["spec"]["initContainers"][0]["image"] = "busybox:1.37"
    new["metadata"]["labels"] = {"app": "web", "tier": "front"}
    new["metadata"]["annotations"] = {"note": "x"}
    out = put(old, new)
    assert out["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert out["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert (out["metadata"]["uid"], out["metadata"]["creationTimestamp"]) == ("uid-1", "2025-01-02T03:04:05Z")
    assert (out["metadata"]["resourceVersion"], out["metadata"]["generation"]) == ("2", 2)
    assert out["status"] == old["status"]


def test_metadata_only_change_keeps_generation():
    old = stored()
    new = manifest()
    new["metadata"]["labels"] = {"app": "other"}
    out = put(old, new)
    assert (out["metadata"]["resourceVersion"], out["metadata"]["generation"]) == ("2", 1)


def test_no_change_returns_the_old_object_unbumped():
    old = stored()
    out = put(old, manifest())
    assert out == old and out is not old


def test_explicit_version():
    old = stored()
    new = manifest()
    new["metadata"]["labels"] = {}
    assert update(old, admit(new).obj, version="77")["metadata"]["resourceVersion"] == "77"


@pytest.mark.parametrize("path,value,field", [
    ("restartPolicy", "Never", "spec.restartPolicy"),
    ("dnsPolicy", "Default", "spec.dnsPolicy"),
    ("hostname", "h", "spec.hostname"),
    ("terminationGracePeriodSeconds", 10, "spec.terminationGracePeriodSeconds"),
])
def test_other_spec_changes_are_forbidden(path, value, field):
    new = manifest(**{path: value})
    assert refused(stored(), new) == [f"pod default/web: {field}: Forbidden: {POD_UPDATE_FORBIDDEN}"]


def test_container_field_changes_name_the_field():
    new = manifest()
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = 8080
    new["spec"]["containers"][0]["command"] = ["sh"]
    assert refused(stored(), new) == [
        f"pod default/web: spec.containers[0].ports[0].containerPort: Forbidden: {POD_UPDATE_FORBIDDEN}",
        f"pod default/web: spec.containers[0].command: Forbidden: {POD_UPDATE_FORBIDDEN}"]


def test_adding_or_removing_containers_is_forbidden():
    new = manifest()
    new["spec"]["containers"].append({"name": "d", "image": "x"})
    assert refused(stored(), new) == ["pod default/web: spec.containers: Forbidden: pod updates may not add or remove "
                                      "containers"]
    new = manifest(initContainers=[])
    assert refused(stored(), new) == ["pod default/web: spec.initContainers: Forbidden: pod updates may not add or "
                                      "remove containers"]


def test_image_with_whitespace_is_refused_on_update():
    new = manifest()
    new["spec"]["containers"][0]["image"] = " nginx:2"
    assert refused(stored(), new) == ['pod default/web: spec.containers[0].image: Invalid value: " nginx:2": must not '
                                      "have leading or trailing whitespace"]


def test_active_deadline_may_be_added_or_lowered_only():
    old = stored()
    added = put(old, manifest(activeDeadlineSeconds=100))
    assert added["spec"]["activeDeadlineSeconds"] == 100
    lowered = put(added, manifest(activeDeadlineSeconds=50))
    assert lowered["metadata"]["generation"] == 3
    assert refused(lowered, manifest(activeDeadlineSeconds=60)) == [
        "pod default/web: spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"]
    assert refused(lowered, manifest()) == [
        "pod default/web: spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to "
        "nil value"]


def test_tolerations_may_only_be_added_or_have_seconds_changed():
    t1 = {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
    old = stored(tolerations=[t1])
    t2 = {"key": "other", "operator": "Exists"}
    out = put(old, manifest(tolerations=[dict(t1, tolerationSeconds=5), t2]))
    assert out["spec"]["tolerations"][1] == t2
    assert refused(old, manifest(tolerations=[t2])) == [
        "pod default/web: spec.tolerations: Forbidden: existing toleration can not be modified except its "
        "tolerationSeconds"]


def test_stale_resource_version_and_other_uid_conflict():
    old = stored()
    new = admit(manifest()).obj
    new["metadata"]["resourceVersion"] = "0"
    with pytest.raises(ApiError) as e:
        update(old, new)
    assert e.value.kind == FAILED_PRECONDITION
    assert str(e.value) == ('pod default/web: metadata.resourceVersion: Operation cannot be fulfilled on pods "web": '
                            "the object has been modified; please apply your changes to the latest version and try "
                            "again")
    new["metadata"]["resourceVersion"] = "1"
    new["metadata"]["labels"] = {}
    assert update(old, new)["metadata"]["resourceVersion"] == "2"
    new["metadata"]["uid"] = "someone-else"
    with pytest.raises(ApiError, match="Precondition failed: UID in precondition: someone-else, UID in object meta: "
                                       "uid-1"):
        update(old, new)


def test_name_or_kind_cannot_change():
    old = stored()
    new = admit(manifest()).obj
    new["metadata"]["name"] = "other"
    with pytest.raises(ApiError, match='metadata.name: Invalid value: "other": field is immutable'):
        update(old, new)


def test_update_does_not_change_its_inputs():
    old = stored()
    new = admit(manifest(activeDeadlineSeconds=5)).obj
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)
    update(old, new)
    assert (old, new) == (old_copy, new_copy)


def cm(**extra) -> dict:
    return admit({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, **extra}).obj


def test_immutable_config_map():
    old = create(cm(data={"a": "1"}, immutable=True), NOW, lambda: "u")
    with pytest.raises(ApiError) as e:
        update(old, cm(data={"a": "2"}))
    assert [str(x) for x in e.value.errors] == [
        "configmap default/c: immutable: Forbidden: field is immutable when `immutable` is set",
        "configmap default/c: data: Forbidden: field is immutable when `immutable` is set"]
    mutable = create(cm(data={"a": "1"}), NOW, lambda: "u")
    assert update(mutable, cm(data={"a": "2"}))["data"] == {"a": "2"}


def test_secret_type_is_immutable():
    def secret(t):
        return admit({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": t}).obj
    old = create(secret("Opaque"), NOW, lambda: "u")
    with pytest.raises(ApiError, match='type: Invalid value: "example.com/x": field is immutable'):
        update(old, secret("example.com/x"))


def test_namespace_spec_is_kept():
    ns = admit({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}).obj
    old = create(ns, NOW, lambda: "u")
    new = admit({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {"finalizers": []}}).obj
    assert update(old, new) == old


def test_already_exists():
    err = already_exists(stored())
    assert str(err) == 'pod default/web: metadata.name: pods "web" already exists'
    assert err.kind == "ALREADY_EXISTS"


def test_diff_paths():
    assert diff_paths({"a": 1, "b": [1, {"c": 2}]}, {"a": 1, "b": [1, {"c": 3}], "d": 4}) == ["b[1].c", "d"]
    assert diff_paths({"l": [1]}, {"l": [1, 2]}) == ["l"]
