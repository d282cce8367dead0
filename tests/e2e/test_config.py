"""ConfigMaps, Secrets and the container environment end to end: a real `kubelet-py serve`
driven through the CLI, on the built-in busybox image. The environment is read from inside the
container (`exec env`)."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from tests.e2e.daemon import status_of

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"


def _pod(name: str, container: dict, **spec) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                       "spec": {"containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "600"],
                                                **container}], **spec}})


def _obj(kind: str, name: str, **fields) -> str:
    return json.dumps({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, **fields})


def _running(d, name: str, timeout: float = 30) -> dict:
    return d.wait_for(name, lambda p: "running" in status_of(p, "c").get("state", {}), timeout, what="running")


def _env(d, pod: str) -> dict[str, str]:
    out = d.cli("exec", pod, "--", "env").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_env_from_configmap_secret_field_and_resource_refs(d):
    d.apply(_obj("ConfigMap", "cfg-env", data={"level": "very", "how.much": "a lot", "1st": "one"}))
    d.apply(_obj("Secret", "sec-env", stringData={"password": "39528$vdg7Jb", "user": "my-app"}))
    d.apply(_pod("env-refs", {
        "resources": {"requests": {"cpu": "125m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "envFrom": [{"configMapRef": {"name": "cfg-env"}, "prefix": "CM_"}, {"secretRef": {"name": "sec-env"}}],
        "env": [{"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg-env", "key": "level"}}},
                {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "sec-env", "key": "password"}}},
                {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}},
                {"name": "SENTENCE", "value": "$(LEVEL) $(CM_level) $$(LEVEL) $(PASS) $(LATER)"},
                {"name": "LATER", "value": "later"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
                {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu",
                                                                       "divisor": "1m"}}},
                {"name": "CPU_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "MEM_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
                {"name": "MEM_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                       "divisor": "1Mi"}}}]}))
    pod = _running(d, "env-refs")
    env = _env(d, "env-refs")
    assert env["CM_level"] == "very" and env["CM_how.much"] == "a lot" and env["CM_1st"] == "one"
    assert env["password"] == "39528$vdg7Jb" and env["user"] == "my-app"
    assert env["LEVEL"] == "very" and env["PASS"] == "39528$vdg7Jb" and "GONE" not in env
    assert env["SENTENCE"] == "very very $(LEVEL) 39528$vdg7Jb $(LATER)"
    md = pod["metadata"]
    assert (env["POD"], env["NS"], env["UID"], env["APP"]) == ("env-refs", "default", md["uid"], "env-refs")
    assert env["NODE"] == pod["spec"]["nodeName"] and env["SA"] == "default"
    assert env["IP"] == pod["status"]["podIP"] == env["IPS"]
    assert (env["CPU_REQ"], env["MEM_REQ"], env["MEM_LIM"]) == ("125", str(32 << 20), "64")
    assert env["CPU_LIM"] == str(os.cpu_count())  # no limit: the node's allocatable cpus


def test_missing_configmap_is_a_config_error_until_it_is_created(d):
    d.apply(_pod("wait-cfg", {"env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "late",
                                                                                     "key": "k"}}}]}))
    pod = d.wait_for("wait-cfg", lambda p: status_of(p, "c").get("state", {}).get("waiting", {}).get("reason")
                     == "CreateContainerConfigError", 30, what="CreateContainerConfigError")
    assert status_of(pod, "c")["state"]["waiting"]["message"] == 'configmap "late" not found'
    assert d.cli("get", "pods").stdout.splitlines()[1].split()[:3] == ["wait-cfg", "0/1", "CreateContainerConfigError"]
    events = d.cli("describe", "pod", "wait-cfg").stdout
    assert 'Error: configmap "late" not found' in events, events
    d.apply(_obj("ConfigMap", "late", data={"other": "x"}))  # the key is still missing
    pod = d.wait_for("wait-cfg", lambda p: "couldn't find key" in str(status_of(p, "c").get("state")), 10,
                     what="the missing key")
    assert status_of(pod, "c")["state"]["waiting"]["message"] == "couldn't find key k in ConfigMap default/late"
    t0 = time.monotonic()
    d.apply(_obj("ConfigMap", "late", data={"k": "finally"}))
    _running(d, "wait-cfg", timeout=8)
    assert time.monotonic() - t0 < 5  # at once, not at the next 10 s resync
    assert _env(d, "wait-cfg")["K"] == "finally"


def test_missing_secret_in_env_from_blocks_an_init_container(d):
    d.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "wait-sec"},
                        "spec": {"initContainers": [{"name": "init", "image": IMAGE, "command": ["true"],
                                                     "envFrom": [{"secretRef": {"name": "creds"}}]}],
                                 "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "600"]}]}}))
    pod = d.wait_for("wait-sec", lambda p: status_of(p, "init").get("state", {}).get("waiting", {}).get("reason")
                     == "CreateContainerConfigError", 30, what="CreateContainerConfigError")
    assert status_of(pod, "init")["state"]["waiting"]["message"] == 'secret "creds" not found'
    assert d.cli("get", "pods").stdout.splitlines()[1].split()[2] == "Init:CreateContainerConfigError"
    d.apply(_obj("Secret", "creds", stringData={"TOKEN": "t0k"}))
    _running(d, "wait-sec")


def test_immutable_configmap_refuses_changes_but_can_be_deleted(d):
    d.apply(_obj("ConfigMap", "frozen", data={"a": "1"}, immutable=True))
    p = d.cli("apply", "-f", "-", input=_obj("ConfigMap", "frozen", data={"a": "2"}, immutable=True), check=False)
    assert p.returncode != 0
    assert "data: Forbidden: field is immutable when `immutable` is set" in p.stderr, p.stderr
    p = d.cli("apply", "-f", "-", input=_obj("ConfigMap", "frozen", data={"a": "1"}), check=False)
    assert "immutable: Forbidden: field is immutable when `immutable` is set" in p.stderr, p.stderr
    assert d.apply(_obj("ConfigMap", "frozen", data={"a": "1"}, immutable=True)).strip() == "configmap/frozen unchanged"
    d.cli("delete", "configmap", "frozen")
    assert d.apply(_obj("ConfigMap", "frozen", data={"a": "2"})).strip() == "configmap/frozen created"


def test_secrets_are_checkpointed_0600_and_never_logged(d):
    d.apply(_obj("Secret", "hush", stringData={"password": "s3cr3t-value-xyz"}))
    d.apply(_pod("hush-pod", {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "hush",
                                                                                  "key": "password"}}}]}))
    _running(d, "hush-pod")
    assert _env(d, "hush-pod")["P"] == "s3cr3t-value-xyz"
    found = []
    for dirpath, _dirs, files in [*os.walk(d.root), *os.walk(d.logs)]:
        for f in files:
            path = os.path.join(dirpath, f)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            if b"czNjcjN0LXZhbHVlLXh5eg==" in data or b"s3cr3t-value-xyz" in data:
                found.append(path)
    # on disk (--root, the logs) only the checkpoint holds it; the container's config.json (its env,
    # as upstream's) is under --run-root, a tmpfs (/run) outside tests
    assert found == [os.path.join(d.root, "kubelet", "objects", "Secret", "default", "hush.json")], found
    assert stat.S_IMODE(os.stat(found[0]).st_mode) == 0o600
    assert "s3cr3t-value-xyz" not in d.daemon_log() and "czNjcjN0LXZhbHVlLXh5eg" not in d.daemon_log()


def test_create_get_describe_delete_from_the_cli(d, tmp_path):
    (tmp_path / "game.properties").write_text("enemies=aliens\nlives=3\n")
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "color").write_text("red")
    (tmp_path / "ui" / "blob").write_bytes(b"\xff\x00\x01")
    (tmp_path / "app.env").write_text("# settings\nMODE=fast\nEMPTY=\n")
    d.cli("create", "namespace", "cfg-ns")
    out = d.cli("create", "configmap", "game", "-n", "cfg-ns", "--from-literal", "special.how=very",
                "--from-file", str(tmp_path / "game.properties"), "--from-file", f"ui-dir={tmp_path / 'ui'}",
                check=False)
    assert out.returncode != 0 and "cannot give a key name for a directory path" in out.stderr
    assert d.cli("create", "configmap", "game", "-n", "cfg-ns", "--from-literal", "special.how=very",
                 "--from-file", str(tmp_path / "game.properties"), "--from-file", str(tmp_path / "ui")
                 ).stdout == "configmap/game created\n"
    cm = json.loads(d.cli("get", "configmap", "game", "-n", "cfg-ns", "-o", "json").stdout)
    assert cm["data"] == {"special.how": "very", "game.properties": "enemies=aliens\nlives=3\n", "color": "red"}
    assert cm["binaryData"] == {"blob": "/wAB"}
    again = d.cli("create", "configmap", "game", "-n", "cfg-ns", "--from-literal", "a=b", check=False)
    assert again.returncode != 0 and 'configmaps "game" already exists' in again.stderr, again.stderr
    d.cli("create", "configmap", "envs", "-n", "cfg-ns", "--from-env-file", str(tmp_path / "app.env"))
    table = d.cli("get", "cm", "-n", "cfg-ns").stdout.splitlines()
    assert [r.split()[:2] for r in table] == [["NAME", "DATA"], ["envs", "2"], ["game", "4"]]
    text = d.cli("describe", "configmap", "game", "-n", "cfg-ns").stdout
    assert "special.how:\n----\nvery\n" in text and "blob: 3 bytes" in text

    assert d.cli("create", "secret", "generic", "db", "-n", "cfg-ns", "--from-literal", "password=39528$vdg7Jb",
                 "--from-file", f"key={tmp_path / 'ui' / 'color'}").stdout == "secret/db created\n"
    d.cli("create", "secret", "generic", "typed", "-n", "cfg-ns", "--type", "example.com/x", "--from-literal", "a=b")
    rows = d.cli("get", "secrets", "-n", "cfg-ns").stdout.splitlines()
    assert [r.split()[:3] for r in rows] == [["NAME", "TYPE", "DATA"], ["db", "Opaque", "2"],
                                             ["typed", "example.com/x", "1"]]
    text = d.cli("describe", "secret", "db", "-n", "cfg-ns").stdout
    assert "password:  12 bytes" in text and "key:       3 bytes" in text and "39528" not in text, text
    sec = json.loads(d.cli("get", "secret", "db", "-n", "cfg-ns", "-o", "json").stdout)
    assert sec["data"]["password"] == "Mzk1MjgkdmRnN0pi"
    bad = d.cli("create", "secret", "tls", "web", "-n", "cfg-ns", "--cert", str(tmp_path / "game.properties"),
                "--key", str(tmp_path / "game.properties"), check=False)
    assert bad.returncode != 0 and "failed to load key pair" in bad.stderr

    # a pod of the namespace reads both
    d.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cfg-reader", "namespace": "cfg-ns"},
                        "spec": {"containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "600"],
                                                 "envFrom": [{"configMapRef": {"name": "envs"}, "prefix": "APP_"},
                                                             {"secretRef": {"name": "db"}, "prefix": "DB_"}]}]}}))
    d.wait_for("cfg-reader", lambda p: "running" in status_of(p, "c").get("state", {}), 30, ns="cfg-ns")
    env = dict(ln.split("=", 1) for ln in d.cli("exec", "cfg-reader", "-n", "cfg-ns", "--", "env").stdout.splitlines()
               if "=" in ln)
    assert (env["APP_MODE"], env["APP_EMPTY"], env["DB_password"], env["DB_key"]) == ("fast", "", "39528$vdg7Jb",
                                                                                          "red")
    assert d.cli("delete", "configmap", "game", "-n", "cfg-ns").stdout == \
        'configmap "game" deleted from cfg-ns namespace\n'
    assert d.cli("delete", "secret", "db", "-n", "cfg-ns").stdout == 'secret "db" deleted from cfg-ns namespace\n'
    gone = d.cli("get", "secret", "db", "-n", "cfg-ns", check=False)
    assert gone.returncode != 0 and 'secrets "db" not found' in gone.stderr
    assert [r.split()[0] for r in d.cli("get", "configmaps", "-A").stdout.splitlines()[1:]] == ["cfg-ns"]
