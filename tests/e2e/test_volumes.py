"""Volumes, mounts and the security context end to end: a real `kubelet-py serve` driven through
the CLI, on the built-in busybox image. Pod names carry a `vol-` prefix (unique in this suite)."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from tests.e2e.daemon import Daemon, status_of

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"


def _pod(name: str, containers: list[dict], volumes: list[dict], **spec) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": containers, "volumes": volumes, **spec}})


def _c(name: str, script: str, mounts: list[dict], **kw) -> dict:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], "volumeMounts": mounts, **kw}


def _cm(name: str, data: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})


def _running(p) -> bool:
    return (p.get("status") or {}).get("phase") == "Running" and all(
        "running" in (s.get("state") or {}) for s in (p.get("status") or {}).get("containerStatuses") or [{}])


def _exec(d: Daemon, pod: str, script: str, container: str | None = None) -> str:
    args = ["exec", pod] + (["-c", container] if container else []) + ["--", "sh", "-c", script]
    return d.cli(*args).stdout


def _pod_dir(d: Daemon, uid: str) -> str:
    return os.path.join(d.root, "kubelet", "pods", uid)


def _gone(d: Daemon, name: str, uid: str) -> None:
    d.cli("delete", "pod", name, "--grace-period", "1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.path.exists(_pod_dir(d, uid)):
        time.sleep(0.2)
    assert not os.path.exists(_pod_dir(d, uid)), os.listdir(_pod_dir(d, uid))
    with open("/proc/self/mountinfo") as f:
        assert uid not in f.read()


def test_configmap_update_reaches_a_running_pod_but_not_its_subpath_mount(d):
    d.apply(_cm("vol-cm", {"greeting": "hello", "other": "x"}))
    d.apply(_pod("vol-cmpod", [_c("c", "sleep 3600", [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "cfg", "mountPath": "/etc/one/greeting", "subPath": "greeting"}])],
        [{"name": "cfg", "configMap": {"name": "vol-cm"}}]))
    pod = d.wait_for("vol-cmpod", _running, 60, what="Running")
    assert _exec(d, "vol-cmpod", "cat /etc/cfg/greeting; echo; cat /etc/one/greeting") == "hello\nhello"
    layout = _exec(d, "vol-cmpod", "ls -a /etc/cfg; readlink /etc/cfg/greeting; readlink /etc/cfg/..data").split()
    assert "..data" in layout and "../data/greeting" not in layout and "..data/greeting" in layout, layout
    assert any(x.startswith("..20") for x in layout), layout
    # read-only, as upstream mounts API data
    assert "Read-only" in d.cli("exec", "vol-cmpod", "--", "sh", "-c", "touch /etc/cfg/x 2>&1; true").stdout
    d.apply(_cm("vol-cm", {"greeting": "bonjour"}))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        if _exec(d, "vol-cmpod", "cat /etc/cfg/greeting") == "bonjour":
            break
        time.sleep(0.2)
    assert _exec(d, "vol-cmpod", "cat /etc/cfg/greeting") == "bonjour", "update not seen in 15 s"
    assert _exec(d, "vol-cmpod", "ls /etc/cfg").split() == ["greeting"]  # the stale key's link went
    assert _exec(d, "vol-cmpod", "cat /etc/one/greeting") == "hello"  # subPath: never updated
    _gone(d, "vol-cmpod", pod["metadata"]["uid"])


def test_secret_files_are_on_tmpfs_with_their_modes(d):
    d.apply(json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vol-sec"},
                        "data": {"user": base64.b64encode(b"admin").decode(),
                                 "pass": base64.b64encode(b"s3cret").decode()}}))
    d.apply(_pod("vol-secpod", [_c("c", "sleep 3600", [{"name": "s", "mountPath": "/etc/s"}])],
                 [{"name": "s", "secret": {"secretName": "vol-sec", "defaultMode": 0o400,
                                           "items": [{"key": "user", "path": "u"},
                                                     {"key": "pass", "path": "d/p", "mode": 0o440}]}}]))
    pod = d.wait_for("vol-secpod", _running, 60, what="Running")
    out = _exec(d, "vol-secpod", "cat /etc/s/u /etc/s/d/p; echo; stat -L -c '%a %n' /etc/s/u /etc/s/d/p; "
                                 "grep ' /etc/s ' /proc/self/mountinfo")
    lines = out.splitlines()
    assert lines[0] == "admins3cret"
    assert lines[1:3] == ["400 /etc/s/u", "440 /etc/s/d/p"], out
    assert " - tmpfs " in lines[3] and " ro," in lines[3] + ",", lines[3]
    uid = pod["metadata"]["uid"]
    vol = os.path.join(_pod_dir(d, uid), "volumes", "kubernetes.io~secret", "s")
    with open("/proc/self/mountinfo") as f:
        assert any(f" {vol} " in line and " - tmpfs " in line for line in f), "secret volume not a tmpfs on the host"
    _gone(d, "vol-secpod", uid)


def test_hostpath_type_failure_names_the_field(d, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    d.apply(_pod("vol-hp", [_c("c", "sleep 3600", [{"name": "h", "mountPath": "/h"}])],
                 [{"name": "h", "hostPath": {"path": str(f), "type": "Directory"}}]))
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = d.cli("describe", "pod", "vol-hp").stdout
        if "FailedMount" in text:
            break
        time.sleep(0.3)
    assert "FailedMount" in text and "spec.volumes[0].hostPath.type" in text, text
    assert f"hostPath type check failed: {f} is not a directory" in text, text
    assert d.pod("vol-hp")["status"]["phase"] == "Pending"
    assert f.read_text() == "x"


def test_fsgroup_makes_an_emptydir_writable_by_a_non_root_user(d):
    d.apply(_pod("vol-fsg", [_c("c", "sleep 3600", [{"name": "w", "mountPath": "/w"}],
                                securityContext={"runAsUser": 1000, "runAsGroup": 3000,
                                                 "allowPrivilegeEscalation": False})],
                 [{"name": "w", "emptyDir": {}}], securityContext={"fsGroup": 2000}))
    pod = d.wait_for("vol-fsg", _running, 60, what="Running")
    out = _exec(d, "vol-fsg", "id; echo hi > /w/f && stat -c '%g %a' /w/f /w && cat /w/f")
    assert "uid=1000" in out and "2000" in out.splitlines()[0], out
    assert out.splitlines()[1:] == ["2000 644", "2000 2777", "hi"], out
    _gone(d, "vol-fsg", pod["metadata"]["uid"])


def test_an_emptydir_is_shared_by_two_containers_and_deletion_leaves_nothing(d):
    d.apply(_pod("vol-share", [
        _c("writer", "echo from-writer > /data/x; sleep 3600", [{"name": "data", "mountPath": "/data"}]),
        _c("reader", "sleep 3600", [{"name": "data", "mountPath": "/in", "readOnly": True},
                                    {"name": "mem", "mountPath": "/m"}])],
        [{"name": "data", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}}]))
    pod = d.wait_for("vol-share", _running, 60, what="Running")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and \
            _exec(d, "vol-share", "cat /in/x 2>/dev/null; true", "reader") != "from-writer\n":
        time.sleep(0.2)
    assert _exec(d, "vol-share", "cat /in/x", "reader") == "from-writer\n"
    assert "Read-only" in _exec(d, "vol-share", "touch /in/y 2>&1; true", "reader")
    assert "size=2048k" in _exec(d, "vol-share", "grep ' /m ' /proc/mounts", "reader")
    _gone(d, "vol-share", pod["metadata"]["uid"])


def test_a_subpath_symlink_escape_is_refused_and_nothing_outside_is_touched(d, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("host data")
    d.apply(_pod("vol-esc", [
        _c("b", "ls /x; echo written > /x/new; sleep 3600", [{"name": "v", "mountPath": "/x", "subPath": "escape"}])],
        [{"name": "v", "emptyDir": {}}],
        initContainers=[_c("a", f"ln -s {canary} /v/escape", [{"name": "v", "mountPath": "/v"}])]))
    deadline = time.monotonic() + 40
    st = {}
    while time.monotonic() < deadline:
        st = status_of(d.pod("vol-esc"), "b")
        if (st.get("state") or {}).get("waiting", {}).get("reason") == "CreateContainerConfigError":
            break
        time.sleep(0.3)
    msg = st["state"]["waiting"].get("message", "")
    assert "leads out of the volume" in msg and "subPath" in msg, st
    assert sorted(os.listdir(canary)) == ["secret"] and (canary / "secret").read_text() == "host data"
    pod = d.pod("vol-esc")
    _gone(d, "vol-esc", pod["metadata"]["uid"])
    assert sorted(os.listdir(canary)) == ["secret"]


def test_volumes_survive_a_daemon_restart_and_gc_removes_those_of_undesired_pods(d):
    d.apply(_cm("vol-rcm", {"k": "one"}))
    d.apply(json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vol-rsec"},
                        "data": {"s": base64.b64encode(b"sec").decode()}}))
    vols = [{"name": "c", "configMap": {"name": "vol-rcm"}}, {"name": "s", "secret": {"secretName": "vol-rsec"}},
            {"name": "e", "emptyDir": {}}]
    mounts = [{"name": "c", "mountPath": "/c"}, {"name": "s", "mountPath": "/s"}, {"name": "e", "mountPath": "/e"}]
    d.apply(_pod("vol-keep", [_c("c", "echo kept > /e/f; sleep 3600", mounts)], vols))
    d.apply(_pod("vol-drop", [_c("c", "sleep 3600", mounts)], vols))
    keep = d.wait_for("vol-keep", _running, 60, what="Running")
    drop = d.wait_for("vol-drop", _running, 60, what="Running")
    d.kill9()
    os.unlink(os.path.join(d.root, "kubelet", "objects", "Pod", "default", "vol-drop.json"))  # no longer desired
    d.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.path.exists(_pod_dir(d, drop["metadata"]["uid"])):
        time.sleep(0.2)
    assert not os.path.exists(_pod_dir(d, drop["metadata"]["uid"]))
    with open("/proc/self/mountinfo") as f:
        assert drop["metadata"]["uid"] not in f.read()
    pod = d.wait_for("vol-keep", _running, 30, what="Running again")
    assert status_of(pod, "c")["containerID"] == status_of(keep, "c")["containerID"]  # adopted, not restarted
    assert _exec(d, "vol-keep", "cat /c/k /s/s /e/f") == "onesec" + "kept\n"
    d.apply(_cm("vol-rcm", {"k": "two"}))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15 and _exec(d, "vol-keep", "cat /c/k") != "two":
        time.sleep(0.2)
    assert _exec(d, "vol-keep", "cat /c/k") == "two"
    _gone(d, "vol-keep", keep["metadata"]["uid"])


def test_a_missing_configmap_volume_waits_then_the_pod_starts(d):
    d.apply(_pod("vol-wait", [_c("c", "cat /c/k; sleep 3600", [{"name": "c", "mountPath": "/c"}])],
                 [{"name": "c", "configMap": {"name": "vol-later"}}]))
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline and "FailedMount" not in text:
        text = d.cli("describe", "pod", "vol-wait").stdout
        time.sleep(0.3)
    assert 'MountVolume.SetUp failed for volume "c" : spec.volumes[0].configMap: configmap "vol-later" not found' \
        in text, text
    assert d.pod("vol-wait")["status"]["phase"] == "Pending"
    d.apply(_cm("vol-later", {"k": "here"}))
    pod = d.wait_for("vol-wait", _running, 30, what="Running once the ConfigMap exists")
    assert _exec(d, "vol-wait", "cat /c/k") == "here"
    _gone(d, "vol-wait", pod["metadata"]["uid"])


def test_a_disk_empty_dir_over_its_size_limit_evicts_the_pod(d):
    d.apply(_pod("vol-evict", [_c("c", "dd if=/dev/zero of=/e/big bs=1024 count=2048; sleep 3600",
                                  [{"name": "e", "mountPath": "/e"}])],
                 [{"name": "e", "emptyDir": {"sizeLimit": "1Mi"}}]))
    pod = d.wait_for("vol-evict", lambda p: (p.get("status") or {}).get("phase") == "Failed", 60, what="Evicted")
    assert pod["status"]["reason"] == "Evicted", pod["status"]
    assert pod["status"]["message"] == 'Usage of EmptyDir volume "e" exceeds the limit "1Mi". '
    assert "terminated" in status_of(pod, "c")["state"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and os.path.exists(_pod_dir(d, pod["metadata"]["uid"])):
        time.sleep(0.2)
    assert not os.path.exists(_pod_dir(d, pod["metadata"]["uid"]))  # its volumes go with its containers
    d.cli("delete", "pod", "vol-evict", "--grace-period", "1")


def test_security_context_run_as_non_root_and_sysctls(d):
    d.apply(_pod("vol-nonroot", [_c("c", "sleep 3600", [], securityContext={"runAsNonRoot": True})], []))
    deadline = time.monotonic() + 30
    st = {}
    while time.monotonic() < deadline:
        st = status_of(d.pod("vol-nonroot"), "c")
        if (st.get("state") or {}).get("waiting", {}).get("reason") == "CreateContainerConfigError":
            break
        time.sleep(0.3)
    assert st["state"]["waiting"]["message"].startswith(
        "container has runAsNonRoot and image will run as root (pod: \"vol-nonroot_default("), st
    d.apply(_pod("vol-sysctl", [_c("c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; sleep 3600", [],
                                   securityContext={"runAsUser": 1000, "runAsNonRoot": True})], [],
                 securityContext={"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]}))
    pod = d.wait_for("vol-sysctl", _running, 60, what="Running")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not d.cli("logs", "vol-sysctl").stdout:
        time.sleep(0.2)
    assert d.cli("logs", "vol-sysctl").stdout == "80\n"
    d.apply(_pod("vol-unsafe", [_c("c", "sleep 3600", [])], [],
                 securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1000"}]}))
    st = d.wait_for("vol-unsafe", lambda p: (p.get("status") or {}).get("phase") == "Failed", 30,
                    what="rejected")["status"]  # the kubelet's sysctl admission
    assert (st["reason"], st["message"]) == (
        "SysctlForbidden", 'Pod was rejected: forbidden sysctl: "net.core.somaxconn" not allowlisted'), st
    assert "SysctlForbidden" in d.cli("describe", "pod", "vol-unsafe").stdout
    _gone(d, "vol-sysctl", pod["metadata"]["uid"])


def test_allowed_unsafe_sysctls_and_a_localhost_seccomp_profile(tmp_path):
    prof = tmp_path / "seccomp"
    prof.mkdir()
    (prof / "deny-mkdir.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    daemon = Daemon(tmp_path, extra=["--allowed-unsafe-sysctls", "net.core.*", "--seccomp-profile-root", str(prof)])
    daemon.start()
    try:
        daemon.apply(_pod("vol-sec2", [_c("c", "cat /proc/sys/net/core/somaxconn; "
                                               "mkdir /tmp/x 2>/dev/null || echo denied; sleep 3600", [],
                                          securityContext={"seccompProfile": {"type": "Localhost",
                                                                              "localhostProfile": "deny-mkdir.json"}})],
                          [], securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1234"}]}))
        daemon.wait_for("vol-sec2", _running, 60, what="Running")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "denied" not in daemon.cli("logs", "vol-sec2").stdout:
            time.sleep(0.2)
        assert daemon.cli("logs", "vol-sec2").stdout == "1234\ndenied\n"
    finally:
        leaks = daemon.cleanup()
    assert leaks == [], leaks


def test_downward_api_volume_follows_label_and_annotation_changes(d):
    def pod(labels, annotations):
        return json.dumps({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "vol-dapi", "labels": labels, "annotations": annotations},
                           "spec": {"containers": [_c("c", "sleep 3600", [{"name": "info", "mountPath": "/info"}])],
                                    "volumes": [{"name": "info", "downwardAPI": {"items": [
                                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                        {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
                                        {"path": "notes", "fieldRef": {"fieldPath": "metadata.annotations"}}]}}]}})
    d.apply(pod({"app": "x", "tier": "one"}, {"note": 'say "hi"'}))
    p = d.wait_for("vol-dapi", _running, 60, what="Running")
    assert _exec(d, "vol-dapi", "cat /info/labels; echo; cat /info/tier") == 'app="x"\ntier="one"\none'
    assert 'note="say \\"hi\\""' in _exec(d, "vol-dapi", "cat /info/notes")
    d.apply(pod({"app": "x", "tier": "two"}, {"note": "changed"}))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15 and _exec(d, "vol-dapi", "cat /info/tier") != "two":
        time.sleep(0.2)
    assert _exec(d, "vol-dapi", "cat /info/labels; echo; cat /info/tier") == 'app="x"\ntier="two"\ntwo'
    assert 'note="changed"' in _exec(d, "vol-dapi", "cat /info/notes")
    _gone(d, "vol-dapi", p["metadata"]["uid"])
