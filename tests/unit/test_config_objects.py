"""ConfigMaps and Secrets as objects: validation (ValidateConfigMap/ValidateSecret's cases), the
immutable update rules, `create configmap|secret` builders (kubectl's generator cases), and the
get/describe printers (pure)."""

from __future__ import annotations

import base64

import pytest

from kubelet_py.api.errors import ApiError
from kubelet_py.api.load import admit
from kubelet_py.api.update import create, update
from kubelet_py.api.validation import validate
from kubelet_py.create import (CreateError, configmap, parse_env_file, parse_file_source, parse_literal,
                               secret_generic, secret_tls)
from kubelet_py.status.describe import describe_configmap, describe_secret
from kubelet_py.status.printers import configmaps_table, secrets_table

NOW = 1_700_000_000


def b64(s: str | bytes) -> str:
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def problems(obj: dict) -> list[str]:
    return [str(e).split(": ", 1)[1] for e in validate(obj)]


def secret(type_: str | None = None, data: dict | None = None, **meta) -> dict:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default", **meta},
           "data": {k: b64(v) for k, v in (data or {}).items()}}
    if type_ is not None:
        obj["type"] = type_
    return obj


@pytest.mark.parametrize("type_,data,meta,want", [
    ("Opaque", {"a": "1"}, {}, []),
    ("", {}, {}, []),
    ("example.com/anything", {}, {}, []),
    ("kubernetes.io/tls", {"tls.crt": "c", "tls.key": "k"}, {}, []),
    ("kubernetes.io/tls", {}, {}, ["data[tls.crt]: Required value", "data[tls.key]: Required value"]),
    ("kubernetes.io/basic-auth", {"username": ""}, {}, []),
    ("kubernetes.io/basic-auth", {}, {}, ["data[username]: Required value", "data[password]: Required value"]),
    ("kubernetes.io/ssh-auth", {"ssh-privatekey": "k"}, {}, []),
    ("kubernetes.io/ssh-auth", {"ssh-privatekey": ""}, {}, ["data[ssh-privatekey]: Required value"]),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": '{"auths": {}}'}, {}, []),
    ("kubernetes.io/dockerconfigjson", {}, {}, ["data[.dockerconfigjson]: Required value"]),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "[1]"}, {},
     ['data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": json: cannot unmarshal array into Go '
      "value of type map[string]interface {}"]),
    ("kubernetes.io/dockercfg", {}, {}, ["data[.dockercfg]: Required value"]),
    ("kubernetes.io/dockercfg", {".dockercfg": "{"}, {}, None),
    ("kubernetes.io/service-account-token", {}, {},
     ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]),
    ("kubernetes.io/service-account-token", {}, {"annotations": {"kubernetes.io/service-account.name": "sa"}}, []),
])
def test_secret_types_and_their_required_keys(type_, data, meta, want):
    got = problems(secret(type_, data, **meta))
    if want is None:
        assert len(got) == 1 and got[0].startswith('data[.dockercfg]: Invalid value: "<secret contents redacted>"')
    else:
        assert got == want


def test_sizes_and_keys():
    big = "x" * (1024 * 1024)
    assert problems(secret("Opaque", {"a": big})) == []
    assert problems(secret("Opaque", {"a": big, "b": "1"})) == ["data: Too long: may not be more than 1048576 bytes"]
    assert problems(secret("Opaque", {"..a": "1"})) == ['data[..a]: Invalid value: "..a": must not start with \'..\'']
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"},
          "data": {"a": "x" * (1024 * 1024 - 2)}, "binaryData": {"b": b64(b"\0\1\2")}}
    assert problems(cm) == ["Too long: may not be more than 1048576 bytes"]
    cm["binaryData"] = {"b": b64(b"\0\1")}
    assert problems(cm) == []


def test_string_data_is_folded_into_data_and_validated_there():
    doc = admit({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth",
                 "stringData": {"username": "admin", "password": "t0p-Secret"}}).obj
    assert doc["data"] == {"username": "YWRtaW4=", "password": "dDBwLVNlY3JldA=="} and "stringData" not in doc
    with pytest.raises(ApiError, match=r"data\[tls.key\]: Required value"):
        admit({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls",
               "stringData": {"tls.crt": "c"}})


def cm(**extra) -> dict:
    return admit({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, **extra}).obj


def test_immutable_objects_refuse_data_changes_with_upstreams_words():
    old = create(cm(data={"a": "1"}, binaryData={"b": b64("x")}, immutable=True), NOW, lambda: "u")
    with pytest.raises(ApiError) as e:
        update(old, cm(data={"a": "1"}, binaryData={"b": b64("y")}, immutable=True))
    assert [str(x) for x in e.value.errors] == [
        "configmap default/c: binaryData: Forbidden: field is immutable when `immutable` is set"]
    assert update(old, cm(data={"a": "1"}, binaryData={"b": b64("x")}, immutable=True)) == old
    # metadata may still change
    new = cm(data={"a": "1"}, binaryData={"b": b64("x")}, immutable=True)
    new["metadata"]["labels"] = {"x": "y"}
    assert update(old, new)["metadata"]["labels"] == {"x": "y"}
    sold = create(admit(secret("Opaque", {"k": "v"}) | {"immutable": True}).obj, NOW, lambda: "u")
    with pytest.raises(ApiError) as e:
        update(sold, admit(secret("Opaque", {"k": "w"})).obj)
    assert [str(x) for x in e.value.errors] == [
        "secret default/s: immutable: Forbidden: field is immutable when `immutable` is set",
        "secret default/s: data: Forbidden: field is immutable when `immutable` is set"]


# ---- create configmap / secret -------------------------------------------------------------------

def test_literal_and_file_sources():
    assert parse_literal("k=v=w") == ("k", "v=w") and parse_literal("k=") == ("k", "")
    with pytest.raises(CreateError, match="invalid literal source kv, expected key=value"):
        parse_literal("kv")
    assert parse_file_source("/etc/game.properties") == ("game.properties", "/etc/game.properties")
    assert parse_file_source("g=/etc/game.properties") == ("g", "/etc/game.properties")
    for bad, msg in (("=/a", "key name for file path /a missing"), ("k=", "file path for key name k missing"),
                     ("a=b=c", "key names or file paths cannot contain '='")):
        with pytest.raises(CreateError, match=msg):
            parse_file_source(bad)


def test_env_files_as_kubectl_reads_them():
    text = b"\xef\xbb\xbf# comment\n\n  A=1\nB=x=y\nC\nD=\n"
    assert parse_env_file(text, "f.env", {"C": "from-env"}.get) == [("A", "1"), ("B", "x=y"), ("C", "from-env"),
                                                                      ("D", "")]
    with pytest.raises(CreateError, match='"1A" is not a valid key name: a valid environment variable name must'):
        parse_env_file(b"1A=x\n", "f.env")
    with pytest.raises(CreateError, match="env file f.env contains invalid utf8 bytes at line 2"):
        parse_env_file(b"A=1\nB=\xff\n", "f.env")


def test_configmap_builder():
    obj = configmap("game", "ns1", literals=["special.how=very"], files=[("ui", b"color=red\n"), ("bin", b"\xff\x00")])
    assert obj == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "game", "namespace": "ns1"},
                   "data": {"special.how": "very", "ui": "color=red\n"}, "binaryData": {"bin": "/wA="}}
    assert admit(obj).obj["data"]["ui"] == "color=red\n"  # what is built is valid
    assert configmap("e", env_files=[("A", "1")]) == {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "e"}, "data": {"A": "1"}}
    with pytest.raises(CreateError, match='cannot add key "a", another key by that name already exists in Data for '
                                          'ConfigMap "c"'):
        configmap("c", literals=["a=1", "a=2"])
    with pytest.raises(CreateError, match='"a b" is not a valid key name for a ConfigMap: a valid config key'):
        configmap("c", literals=["a b=1"])
    with pytest.raises(CreateError, match="from-env-file cannot be combined with from-file or from-literal"):
        configmap("c", literals=["a=1"], env_files=[("b", "2")])


def test_secret_builders():
    obj = secret_generic("db", literals=["password=39528$vdg7Jb"], files=[("key", b"\xff")], type_="example.com/x")
    assert obj == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "type": "example.com/x",
                   "data": {"password": b64("39528$vdg7Jb"), "key": "/w=="}}
    assert "type" not in secret_generic("o", literals=["a=b"])  # the API server makes it Opaque
    assert admit(secret_generic("o", literals=["a=b"])).obj["type"] == "Opaque"
    with pytest.raises(CreateError, match="cannot add key a, another key by that name already exists"):
        secret_generic("s", literals=["a=1"], files=[("a", b"2")])
    with pytest.raises(CreateError, match='"a/b" is not valid key name for a Secret'):
        secret_generic("s", literals=["a/b=1"])
    tls = secret_tls("web", b"CERT", b"KEY", "ns1")
    assert tls["type"] == "kubernetes.io/tls" and tls["data"] == {"tls.crt": b64("CERT"), "tls.key": b64("KEY")}
    assert validate(admit(tls).obj) == []


# ---- printers ---------------------------------------------------------------------------------------

def test_get_tables():
    a = {"metadata": {"name": "special-config", "namespace": "default", "creationTimestamp": "2023-11-14T22:12:20Z"},
         "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert configmaps_table([a], NOW + 120) == "NAME             DATA   AGE\nspecial-config   3      3m\n"
    s = {"metadata": {"name": "test-secret", "namespace": "ns1", "creationTimestamp": "2023-11-14T22:13:20Z"},
         "type": "Opaque", "data": {"username": b64("my-app")}}
    assert secrets_table([s], NOW + 60, all_namespaces=True) == (
        "NAMESPACE   NAME          TYPE     DATA   AGE\n"
        "ns1         test-secret   Opaque   1      60s\n")


def test_describe_never_prints_a_secret_value():
    s = secret("Opaque", {"username": "my-app", "password": "39528$vdg7Jb"}, labels={"app": "x"})
    text = describe_secret(s)
    assert text == ("Name:         s\nNamespace:    default\nLabels:       app=x\nAnnotations:  <none>\n\n"
                    "Type:  Opaque\n\nData\n====\npassword:  12 bytes\nusername:  6 bytes\n")
    assert "my-app" not in text and b64("my-app") not in text


def test_describe_configmap():
    c = {"metadata": {"name": "special-config", "namespace": "default"},
         "data": {"SPECIAL_TYPE": "charm", "SPECIAL_LEVEL": "very"}, "binaryData": {"b": b64(b"\0\1\2")}}
    assert describe_configmap(c, [], NOW) == (
        "Name:         special-config\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\n"
        "Data\n====\nSPECIAL_LEVEL:\n----\nvery\nSPECIAL_TYPE:\n----\ncharm\n\nBinaryData\n====\nb: 3 bytes\n\n"
        "Events:  <none>\n")


def test_create_dry_run_prints_the_object_and_sends_nothing(tmp_path):
    import json

    from click.testing import CliRunner

    from kubelet_py.cli import cli
    (tmp_path / "app.env").write_text("A=1\n")
    args = ["--socket", str(tmp_path / "none.sock"), "create", "configmap", "x", "-n", "ns1", "--from-env-file",
            str(tmp_path / "app.env"), "--dry-run", "client"]
    out = CliRunner().invoke(cli, args + ["-o", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "x", "namespace": "ns1"}, "data": {"A": "1"}}
    assert CliRunner().invoke(cli, args).output == "configmap/x created (dry run)\n"
    out = CliRunner().invoke(cli, ["--socket", str(tmp_path / "none.sock"), "create", "secret", "generic", "s",
                                   "--from-literal", "a=b"])
    assert out.exit_code != 0  # no daemon: it was sent
