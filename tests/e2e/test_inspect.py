"""`kubelet-py inspect pod` through a real daemon: a pod with a hostPort and a memory limit,
behind a Service. What the report says is checked against the kernel read here (/proc, the
cgroup files, netlink, iptables-legacy-save); then the pod's veth is deleted by hand and the
report says it is missing."""

from __future__ import annotations

import json
import os
import random
import time

import pytest
from pyroute2 import IPRoute

from runtime.cgroups import Cgroup
from tests.e2e.daemon import Daemon, condition, status_of

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"


def _manifests(host_port: int) -> str:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "web", "image": IMAGE,
               "command": ["sh", "-c", "mkdir -p /www; echo hi > /www/index.html; exec httpd -f -p 8080 -h /www"],
               "ports": [{"name": "http", "containerPort": 8080, "hostPort": host_port}],
               "resources": {"limits": {"memory": "48Mi", "cpu": "250m"}},
               "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [pod, svc]})


def _nodes(tree: list[dict], what: str) -> list[dict]:
    out = []
    for n in tree:
        if n["what"] == what:
            out.append(n)
        out += _nodes(n["children"], what)
    return out


def _inspect(d: Daemon) -> dict:
    return json.loads(d.cli("inspect", "pod", "web", "-o", "json").stdout)


def _container_pids_from_proc(cid: str) -> set[int]:
    """Every process whose cgroup (any hierarchy) ends with the container's id, from /proc."""
    out = set()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cgroup") as f:
                if any(line.rstrip().endswith("/" + cid) for line in f):
                    out.add(int(p))
        except OSError:
            continue
    return out


def test_inspect_a_pod_behind_a_service_then_its_veth_deleted_by_hand(d):
    host_port = random.randint(20000, 29999)
    d.apply(_manifests(host_port))
    pod = d.wait_for("web", lambda p: condition(p, "Ready") == "True", 60, what="Ready")
    ip = pod["status"]["podIP"]
    cid = status_of(pod, "web")["containerID"].split("//")[1]
    # the Service's endpoint rule follows readiness: wait until the report lists it
    deadline = time.monotonic() + 20
    while True:
        report = _inspect(d)
        sep = [r for r in _nodes(report["tree"], "rule") if r["data"].get("chain", "").startswith(f"{d.chain}-SEP-")
               and f"-j DNAT --to-destination {ip}:8080" in r["data"]["rule"]]
        if sep or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sep, json.dumps(report, indent=1)
    assert sep[0]["owner"] == "kube-proxy"
    assert report["problems"] == [], report["problems"]

    # the container's processes are its real ones
    procs = _nodes(report["tree"], "processes")[0]["data"]
    assert procs["pids"] and set(procs["pids"]) == _container_pids_from_proc(cid)
    init = procs["init"]
    with open(f"/proc/{init}/comm") as f:
        assert f.read().strip() == "httpd"
    # the pod's pinned netns is the one the container's init is in
    netns = [n for n in _nodes(report["tree"], "net namespace")][0]["data"]
    assert netns["inode"] == os.stat(f"/proc/{init}/ns/net").st_ino == os.stat(netns["path"]).st_ino
    assert _nodes(report["tree"], "namespaces")[0]["data"]["net"] == netns["inode"]
    # its cgroup exists with the memory limit the pod asked for
    cg = [n for n in _nodes(report["tree"], "cgroup") if n["data"]["path"].endswith("/" + cid)][0]
    assert cg["data"]["memory_limit"] == 48 << 20
    cgroup = Cgroup(cg["data"]["path"])
    mem_dir = cgroup.dir("memory")
    assert os.path.isdir(mem_dir)
    limit_file = "memory.max" if cgroup.version == "v2" else "memory.limit_in_bytes"
    with open(os.path.join(mem_dir, limit_file)) as f:
        assert int(f.read()) == 48 << 20
    assert init in cgroup.pids()
    # its veth's host end exists, on this daemon's bridge
    veth = _nodes(report["tree"], "veth host end")[0]
    name = veth["data"]["name"]
    with IPRoute() as ipr:
        link = ipr.get_links(ifname=name)[0]
        bridge = ipr.get_links(ifname=d.bridge)[0]
    assert link["index"] == veth["data"]["index"] and link.get_attr("IFLA_MASTER") == bridge["index"]
    assert veth["data"]["bridge"] == d.bridge and veth["owner"] == "CNI bridge"
    # the hostPort's DNAT (portmap's) is listed
    hp = [r for r in _nodes(report["tree"], "rule") if f"--dport {host_port} " in r["data"]["rule"]
          and f"-j DNAT --to-destination {ip}:8080" in r["data"]["rule"]]
    assert hp and hp[0]["owner"] == "portmap"
    # the overlay's lower dirs are the image's layers
    lowers = _nodes(report["tree"], "lowerdir")
    assert lowers and all(n["data"]["digest"] and n["problem"] is None for n in lowers)

    with IPRoute() as ipr:
        ipr.link("del", ifname=name)
    text = d.cli("inspect", "pod", "web").stdout
    line = next(ln for ln in text.splitlines() if "veth host end" in ln)
    assert name in line and "!! missing" in line and line.index("[CNI bridge]") < line.index("!!"), text
    assert text.splitlines()[-1].endswith("disagreements between the kernel and the records")
    report = _inspect(d)
    assert any(p.startswith(f"network / veth host end {name}: missing") for p in report["problems"]), report["problems"]


def test_inspect_of_a_pod_that_is_not_there(d):
    p = d.cli("inspect", "pod", "nope", check=False)
    assert p.returncode == 1 and 'pods "nope" not found' in p.stderr
