"""The node page (kubelet_py/server/page): its view model (pure: the pods' rows, a pod's detail,
which logs to read, the inspect report laid out as boxes and arrows) and its routes on an aiohttp
app with a stand-in agent (headers, JSON, errors). The page in a browser, with a real daemon, is
tests/e2e/test_node_page.py."""

from __future__ import annotations

import asyncio
import copy

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp import web

from kubelet_py.inspect.report import build_report
from kubelet_py.server.errors import ApiError
from kubelet_py.server.page import CSP, add_routes
from kubelet_py.server.page.model import (LOG_TAIL_BYTES, event_row, health, log_requests, log_tail, picture,
                                          pod_detail, pod_rows, rule_line, state_text)
from kubelet_py.status.timefmt import rfc3339
from tests.unit.test_inspect_report import FACTS, RECORDS

NOW = 1_800_000_000.0


def _pod(name, *, ns="default", statuses=(), init=(), phase="Running", ip="10.0.0.5", created=NOW - 300, **meta):
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "creationTimestamp": rfc3339(created),
                         **meta},
            "spec": {"initContainers": [{"name": s["name"]} for s in init],
                     "containers": [{"name": s["name"], "image": "busybox"} for s in statuses] or [{"name": "c"}]},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
                       "initContainerStatuses": list(init), "containerStatuses": list(statuses)}}


def _running(name="c", ready=True, restarts=0, last=None):
    st = {"name": name, "ready": ready, "restartCount": restarts,
          "state": {"running": {"startedAt": rfc3339(NOW - 60)}}}
    if last:
        st["lastState"] = last
    return st


def _crashloop(name="c", restarts=3):
    return {"name": name, "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": rfc3339(NOW - 20)}}}


def _creating(name="c"):
    return {"name": name, "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}


# ---- the pods list ------------------------------------------------------------------------------

def test_rows_say_what_kubectl_get_pods_says_with_a_health_class():
    pods = [_pod("web", statuses=[_running()]),
            _pod("crash", statuses=[_crashloop()]),
            _pod("new", statuses=[_creating()], phase="Pending", ip=""),
            _pod("half", statuses=[_running("a"), _running("b", ready=False)]),
            _pod("sys", ns="kube-system", statuses=[_running()])]
    rows = pod_rows(pods, NOW)
    assert [(r["namespace"], r["name"]) for r in rows] == [("default", "crash"), ("default", "half"),
                                                          ("default", "new"), ("default", "web"), ("kube-system", "sys")]
    by = {r["name"]: r for r in rows}
    assert {k: by["web"][k] for k in ("ready", "status", "restarts", "ip", "age",
                                                                      "health", "phase")} == {
        "ready": "1/1", "status": "Running", "restarts": "0", "ip": "10.0.0.5", "age": "5m", "health": "ok",
        "phase": "Running"}
    assert (by["crash"]["status"], by["crash"]["health"], by["crash"]["restarts"]) == ("CrashLoopBackOff", "bad",
                                                                                     "3 (20s ago)")
    assert (by["new"]["status"], by["new"]["health"], by["new"]["ip"]) == ("ContainerCreating", "warn", "")
    assert (by["half"]["ready"], by["half"]["health"]) == ("1/2", "warn")


@pytest.mark.parametrize("status,ready,phase,want", [
    ("Running", "2/2", "Running", "ok"), ("Completed", "0/1", "Succeeded", "ok"), ("Running", "0/1", "Running", "warn"),
    ("Pending", "0/1", "Pending", "warn"), ("Init:0/2", "0/1", "Pending", "warn"), ("Terminating", "1/1", "Running", "warn"),
    ("Init:CrashLoopBackOff", "0/1", "Pending", "bad"), ("ImagePullBackOff", "0/1", "Pending", "bad"),
    ("ExitCode:3", "0/1", "Running", "bad"), ("OOMKilled", "0/1", "Running", "bad"), ("Error", "0/1", "Failed", "bad"),
])
def test_health(status, ready, phase, want):
    assert health(status, ready, phase) == want


# ---- one pod ------------------------------------------------------------------------------------

def test_which_logs_are_read():
    pod = _pod("p", init=[{"name": "init", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}],
               statuses=[_running("web"), _crashloop("crash"), _creating("new"),
                         _running("again", last={"terminated": {"exitCode": 2}})])
    # a crash-looping container's current attempt has not started: its previous one explains it
    assert log_requests(pod) == [("init", False), ("web", False), ("crash", True), ("again", False)]


def test_container_states_in_words():
    assert state_text(_running(), NOW) == "Running for 60s"
    assert state_text(_crashloop(), NOW) == "Waiting: CrashLoopBackOff (back-off 40s restarting failed container)"
    assert state_text({"state": _crashloop()["lastState"]}, NOW) == "Terminated: Error, exit code 1, 20s ago"
    assert state_text({"state": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "signal": 9}}}, NOW) == \
        "Terminated: OOMKilled, exit code 137, signal 9"
    assert state_text({}, NOW) == "Waiting: no status yet"


def test_detail_holds_labels_annotations_events_and_logs_as_given():
    canary = '<img src=x onerror="alert(1)">'
    pod = _pod("web", statuses=[_crashloop("web")], labels={"app": "web"}, annotations={"note": canary})
    events = [{"type": "Warning", "reason": "BackOff", "message": " Back-off restarting failed container \n",
               "source": {"component": "kubelet"}, "firstTimestamp": rfc3339(NOW - 100),
               "lastTimestamp": rfc3339(NOW - 5), "count": 4}]
    d = pod_detail(pod, events, [log_tail("web", True, b"boom\n", None)], NOW)
    assert d["pod"]["status"] == "CrashLoopBackOff"
    assert d["labels"] == [["app", "web"]] and d["annotations"] == [["note", canary]]  # data, not markup: as is
    assert d["events"] == [{"type": "Warning", "reason": "BackOff", "age": "5s", "first": "100s", "count": 4,
                            "from": "kubelet", "message": "Back-off restarting failed container"}]
    assert d["containers"] == [{"name": "web", "kind": "app", "image": "busybox", "ready": False, "restarts": 3,
                                "state": "Waiting: CrashLoopBackOff (back-off 40s restarting failed container)",
                                "last": "Terminated: Error, exit code 1, 20s ago"}]
    assert d["logs"] == [{"container": "web", "previous": True, "text": "boom\n", "error": None}]


def test_event_row_defaults():
    assert event_row({"reason": "Pulled", "eventTime": rfc3339(NOW - 3), "reportingComponent": "kubelet"}, NOW) == {
        "type": "", "reason": "Pulled", "age": "3s", "first": "3s", "count": 1, "from": "kubelet", "message": ""}


def test_log_tail_keeps_the_end_from_a_line_start_and_replaces_bad_utf8():
    data = b"".join(b"line %06d\n" % i for i in range(10000)) + b"bad \xff end\n"
    t = log_tail("c", False, data, None)
    assert t["text"].endswith("bad \ufffd end\n") and len(t["text"].encode()) <= LOG_TAIL_BYTES
    assert t["text"].startswith("line ") and len(t["text"].splitlines()[0]) == len("line 000000")
    assert log_tail("c", False, None, "gone")["text"] == ""


# ---- the picture --------------------------------------------------------------------------------

def _boxes(pic: dict) -> dict:
    return {b["id"]: b for b in pic["boxes"]}


def _inside(inner: dict, outer: dict) -> bool:
    return (outer["x"] <= inner["x"] and inner["x"] + inner["w"] <= outer["x"] + outer["w"]
            and outer["y"] <= inner["y"] and inner["y"] + inner["h"] <= outer["y"] + outer["h"])


def _overlap(a: dict, b: dict) -> bool:
    return not (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"])


def test_the_picture_of_a_pod_behind_a_service_with_a_hostport():
    pic = picture(build_report(RECORDS, FACTS))
    boxes = _boxes(pic)
    assert pic["boxes"][0]["id"] == "pod"  # drawn first: behind what it holds
    pod = boxes["pod"]
    assert pod["head"] == "pod default/web" and pod["lines"][0] == "pod IP 10.250.66.2, gateway 10.250.66.1"
    inner = ["ns-net", "ns-ipc", "ns-uts", "eth0", "pod-cgroup", "container-web"]
    for i in inner:
        assert _inside(boxes[i], pod), i
    for i, a in enumerate(inner):
        for b in inner[i + 1:]:
            assert not _overlap(boxes[a], boxes[b]), (a, b)
    assert boxes["ns-net"]["lines"] == ["", "[11]"] and boxes["ns-net"]["owner"] == "containerd"
    assert boxes["eth0"]["lines"][1:3] == ["10.250.66.2/24", "ifindex 2, up, mtu 1500"]
    web = boxes["container-web"]
    assert web["owner"] == "runc" and "init pid 1000, 1 process in its cgroup" in web["lines"]
    assert "memory limit 64Mi" in web["lines"] and "rootfs: overlay of 1 layers of busybox" in web["lines"]
    assert boxes["veth-host"]["lines"][1:] == ["kpyveth", "ifindex 30"] and boxes["bridge"]["lines"][0] == "kpy0"
    # the rules that bring traffic in: one box per chain, jumps before their targets, DNATs to the bridge
    chains = [b["id"] for b in pic["boxes"] if b["id"].startswith("chain-")]
    assert chains == ["chain-nat-KPY-HOSTPORTS", "chain-nat-KPY-SVC-CCCCCCCCCCCCCCCC",
                      "chain-nat-KPY-HP-06751b93cae2", "chain-nat-KPY-SEP-AAAAAAAAAAAAAAAA"]
    sep = boxes["chain-nat-KPY-SEP-AAAAAAAAAAAAAAAA"]
    assert sep["owner"] == "kube-proxy" and sep["lines"] == [
        "/* default/web */", "-s 10.250.66.2/32 -j KPY-MARK-MASQ", "-p tcp -j DNAT --to-destination 10.250.66.2:8080"]
    assert boxes["chain-nat-KPY-HP-06751b93cae2"]["owner"] == "portmap"
    ends = {(tuple(ln["points"][0]), tuple(ln["points"][-1])): ln for ln in pic["links"]}

    def edge(a, b):  # a's right edge to b's left edge
        return any(p0[0] == a["x"] + a["w"] and a["y"] <= p0[1] <= a["y"] + a["h"] and p1[0] == b["x"]
                   and b["y"] <= p1[1] <= b["y"] + b["h"] for p0, p1 in ends)
    assert edge(boxes["veth-host"], boxes["eth0"]) and edge(boxes["bridge"], boxes["veth-host"])
    assert edge(sep, boxes["bridge"]) and edge(boxes["chain-nat-KPY-HP-06751b93cae2"], boxes["bridge"])
    assert not edge(boxes["chain-nat-KPY-HOSTPORTS"], boxes["bridge"])  # it jumps, the HP chain DNATs
    jumps = [ln for ln in pic["links"] if len(ln["points"]) == 4]
    assert len(jumps) == 2
    assert not any(b["problem"] for b in pic["boxes"])
    for b in pic["boxes"]:
        assert 0 <= b["x"] and b["x"] + b["w"] <= pic["width"] and b["y"] + b["h"] <= pic["height"], b["id"]
        assert all(len(ln) <= int((b["w"] - 16) / 7.3) for ln in b["lines"]), b["id"]


def _set(d, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value


@pytest.mark.parametrize("where,path,value,box,says", [
    ("facts", "links.host", None, "veth-host", "!! missing: the record names this veth"),
    ("facts", "links.pod.eth0", None, "eth0", "!! missing: no such link in the pod's netns"),
    ("facts", "links.pod.routes", [], "eth0", "!! route: missing: the recorded gateway has no default route"),
    ("facts", "namespaces.network.mounted", False, "ns-net", "!! not pinned"),
    ("facts", "supervisor.alive", False, "pod", "!! supervisor: dead"),
    ("facts", "containers.kpyabc.alive", False, "container-web", "!! processes: dead"),
    ("facts", "iptables", {"error": "no iptables-legacy-save"}, "missing-", "!! unreadable: no iptables-legacy-save"),
    ("records", "network.ports", [{"protocol": "tcp", "host_port": 18081, "container_port": 8080, "host_ip": ""}],
     "missing-", "!! missing: the pod's hostPort has no DNAT rule"),
])
def test_a_disagreement_marks_its_box(where, path, value, box, says):
    records, facts = copy.deepcopy(RECORDS), copy.deepcopy(FACTS)
    _set(records if where == "records" else facts, path, value)
    pic = picture(build_report(records, facts))
    hit = [b for b in pic["boxes"] if b["id"].startswith(box) and b["problem"]]
    assert hit, [(b["id"], b["lines"]) for b in pic["boxes"]]
    # the line says it (cut to the box's width), the tooltip in full
    shown = [ln.rstrip("\u2026") for ln in hit[0]["lines"] if ln.startswith("!! ")]
    assert any(ln[:len(says)] == says[:len(ln)] for ln in shown), hit[0]["lines"]
    assert says in hit[0]["title"]


def test_no_sandbox_no_network_and_host_network():
    records = copy.deepcopy(RECORDS)
    records["sandbox"] = records["network"] = None
    records["containers"] = []
    pic = picture(build_report(records, FACTS))
    boxes = _boxes(pic)
    assert boxes["pod"]["problem"] and any("no sandbox" in ln or "missing" in ln for ln in boxes["pod"]["lines"])
    assert boxes["network"]["lines"][0] == "no network record" and boxes["network"]["problem"]
    records["network"] = {"host_network": True, "ip": "192.168.1.2"}
    assert "the node's own netns" in _boxes(picture(build_report(records, FACTS)))["network"]["lines"][0]


def test_an_exited_container_whose_cgroup_went_with_it():
    records, facts = copy.deepcopy(RECORDS), copy.deepcopy(FACTS)
    records["containers"][0]["state"] = "exited"
    del facts["cgroups"][records["containers"][0]["cgroup"]]
    web = _boxes(picture(build_report(records, facts)))["container-web"]
    assert web["lines"][0] == "exited kpyabc"
    assert "cgroup \u2026/kpyabc: removed with the exited container" in web["lines"]
    assert not web["problem"]


def test_rule_line_keeps_what_the_rule_does():
    r = '-A KPY-SEP-X -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.1.2.3:8080'
    assert rule_line(r, "KPY-SEP-X", 80) == "-p tcp -j DNAT --to-destination 10.1.2.3:8080"
    short = rule_line(r, "KPY-SEP-X", 20)
    assert len(short) == 20 and short.startswith("\u2026") and short.endswith("--to-destination 10.1.2.3:8080"[-19:])


# ---- the routes, on an app with a stand-in agent ----------------------------------------------

class _Store:
    def __init__(self, pods):
        self.pods = pods

    def list(self, kind, ns=None):
        return [p for p in self.pods if ns is None or p["metadata"]["namespace"] == ns] if kind == "Pod" else []

    def get(self, kind, ns, name):
        return next((p for p in self.list(kind, ns) if p["metadata"]["name"] == name), None)


class _Agent:
    node_name = "node-1"

    def __init__(self, pods, logs):
        self.store, self.logs, self.asked = _Store(pods), logs, []

    def events(self, ns, name):
        return [{"type": "Normal", "reason": "Started", "message": "<script>x</script>", "count": 1,
                 "lastTimestamp": rfc3339(NOW), "firstTimestamp": rfc3339(NOW), "source": {"component": "kubelet"}}]

    def log_reader(self, ns, name, container, previous, tail, since, timestamps, follow):
        self.asked.append((container, previous, tail, follow))
        if container not in self.logs:
            raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')

        async def read():
            yield self.logs[container]
        return read()


async def _client(agent) -> TestClient:
    app = web.Application()
    add_routes(app, agent)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def test_routes_serve_the_page_and_its_json():
    async def main():
        pod = _pod("web", statuses=[_running("web"), _crashloop("side")])
        agent = _Agent([pod], {"web": b"hello <b>\n"})
        c = await _client(agent)
        try:
            r = await c.get("/")
            html = await r.text()
            assert r.status == 200 and r.content_type == "text/html" and r.headers["Content-Security-Policy"] == CSP
            assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
            assert '<script src="page/page.js"></script>' in html and "://" not in html  # nothing external
            for path, ctype in (("/page/page.js", "text/javascript"), ("/page/page.css", "text/css")):
                r = await c.get(path)
                assert r.status == 200 and r.content_type == ctype and r.headers["X-Content-Type-Options"] == "nosniff"
            js = await (await c.get("/page/page.js")).text()
            assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js
            assert (await c.get("/page/other.js")).status == 404
            r = await c.get("/page/api/pods")
            body = await r.json()
            assert body["node"] == "node-1" and [p["name"] for p in body["pods"]] == ["web"]
            assert r.headers["Cache-Control"] == "no-store"
            d = await (await c.get("/page/api/pods/default/web")).json()
            assert d["events"][0]["message"] == "<script>x</script>"
            # the web container's current log; the crash-looping side's previous one, which is missing
            assert agent.asked == [("web", False, 100, False), ("side", True, 100, False)]
            assert d["logs"][0] == {"container": "web", "previous": False, "text": "hello <b>\n", "error": None}
            assert d["logs"][1]["error"].startswith('container "side" in pod "web" is waiting')
            d = await (await c.get("/page/api/pods/default/web?logs=0")).json()  # between two reads of the logs
            assert d["logs"] is None and len(agent.asked) == 2 and d["events"]
            r = await c.get("/page/api/pods/default/nope")
            assert r.status == 404 and (await r.json())["message"] == 'pods "nope" not found'
            r = await c.get("/page/api/pods/default/nope/inspect")
            assert r.status == 404 and (await r.json())["reason"] == "NotFound"
        finally:
            await c.close()
    asyncio.run(main())
