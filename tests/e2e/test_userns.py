"""`hostUsers: false` end to end: a pod applied to a real `kubelet-py serve` runs in a user
namespace of its own range of host ids (the kubelet's per-pod range), its containers share it,
its network works (the pod's IP, its /etc/hosts), exec is its root, and deleting it leaves
nothing. The daemon's roots are below /var/tmp, open to others on the way: the pod's root is
a host uid of its range, and reaches its rootfs through them (pytest's tmp dirs are 0700)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import time
import urllib.request

import pytest

from tests.e2e.daemon import Daemon, condition

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"


@pytest.fixture
def d():
    top = tempfile.mkdtemp(prefix="kpy-e2eu-", dir="/var/tmp")
    os.chmod(top, 0o755)
    daemon = Daemon(pathlib.Path(top)).start()
    try:
        yield daemon
        leaks = daemon.cleanup()
        assert leaks == [], leaks
    finally:
        daemon.stop()
        shutil.rmtree(top, ignore_errors=True)


def _uid_map(text: str) -> list[str]:
    return text.split()[:3]


def test_a_host_users_false_pod_runs_in_its_own_range_and_leaves_nothing(d):
    web = ("cat /proc/self/uid_map; mkdir -p /www; echo hi-from-userns > /www/index.html; "
           "ls -ln /etc/hosts; exec httpd -f -p 8080 -h /www")
    side = ("cat /proc/self/uid_map; echo from-side > /shared/f && ls -ln /shared/f; cat /cfg/k; echo; "
            "echo side-done; exec sleep 3600")
    d.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "uns-cfg"},
                        "data": {"k": "v-from-configmap"}}))
    d.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "uns"},
                        "spec": {"hostUsers": False, "containers": [
                            {"name": "web", "image": IMAGE, "command": ["sh", "-c", web],
                             "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}},
                            {"name": "side", "image": IMAGE, "command": ["sh", "-c", side],
                             "volumeMounts": [{"name": "shared", "mountPath": "/shared"},
                                              {"name": "cfg", "mountPath": "/cfg"}]}],
                            "volumes": [{"name": "shared", "emptyDir": {}},
                                        {"name": "cfg", "configMap": {"name": "uns-cfg"}}]}}))
    pod = d.wait_for("uns", lambda p: condition(p, "Ready") == "True", 60, what="Ready")
    uid = pod["metadata"]["uid"]
    from runtime.sandbox import load_sandbox
    first, count = load_sandbox(d.run, uid).user_ids
    assert count == 65536 and first >= 65536 and first % 65536 == 0
    # both containers in the pod's one range, the web server reachable at the pod's IP
    deadline = time.monotonic() + 20
    while "side-done" not in d.cli("logs", "uns", "-c", "side").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    logs = {c: d.cli("logs", "uns", "-c", c).stdout for c in ("web", "side")}
    for c, text in logs.items():
        assert _uid_map(text) == ["0", str(first), str(count)], (c, text)
    # volumes: an emptyDir the pod's root writes (root's inside), a configMap it reads
    written = next(line for line in logs["side"].splitlines() if line.endswith("/shared/f"))
    assert written.split()[2:4] == ["0", "0"] and "v-from-configmap" in logs["side"], logs["side"]
    hosts = next(line for line in logs["web"].splitlines() if line.endswith("/etc/hosts"))
    assert hosts.split()[2:4] == ["0", "0"], hosts  # the network layer's file, idmapped: root's inside
    ip = pod["status"]["podIP"]
    assert urllib.request.urlopen(f"http://{ip}:8080/", timeout=5).read() == b"hi-from-userns\n"
    # exec: the namespace's root, whose files (the image's, its own writes) are root's inside
    out = d.cli("exec", "uns", "-c", "web", "--", "sh", "-c", "id -u; cat /proc/self/uid_map; ls -ln /www/index.html").stdout
    assert out.split()[:4] == ["0", "0", str(first), str(count)] and out.split()[6:8] == ["0", "0"], out
    # on the host, the pod's processes run as its range's ids: root inside is `first`
    host_uids = set()
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and open(f"/proc/{p}/cmdline", "rb").read() == b"sleep\x003600\x00":
                status = open(f"/proc/{p}/status").read()
                host_uids.add(next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1])
        except OSError:
            pass
    assert str(first) in host_uids, host_uids
    # a daemon killed and started again adopts the pod as it is: same containers, same range
    web_id = next(c["containerID"] for c in pod["status"]["containerStatuses"] if c["name"] == "web")
    d.kill9()
    d.start()
    pod = d.wait_for("uns", lambda p: condition(p, "Ready") == "True", 30, what="Ready after a restart")
    assert next(c["containerID"] for c in pod["status"]["containerStatuses"] if c["name"] == "web") == web_id
    out = d.cli("exec", "uns", "-c", "side", "--", "cat", "/proc/self/uid_map").stdout
    assert _uid_map(out) == ["0", str(first), str(count)], out
    d.cli("delete", "pod", "uns", "--grace-period", "1")
    from runtime import pod as rt
    from runtime.container import Paths
    assert rt.list_objects(Paths(d.root, d.run, d.cg)) == []
    ranges = os.path.join(d.run, "userns-ranges")
    assert not os.path.isdir(ranges) or [n for n in os.listdir(ranges) if not n.startswith(".")] == []
