"""Node endpoints, metrics and `top` (pure parts, and the TCP app on a fake agent): the Summary
from cgroup files on v1 and v2, usageNanoCores from two samples, metric names and labels, the
`top` tables, --listen parsing and who the TCP listener answers."""

import asyncio
import json
from types import SimpleNamespace

import pytest

from kubelet_py import stats
from kubelet_py.metrics import NodeMetrics, PodTracker, image_size_label, running_counts
from kubelet_py.prober.metrics import ProberMetrics, ProbeTarget
from kubelet_py.prober.spec import ProbeType, Result
from kubelet_py.server.listen import ListenError, bearer, check_flags, decide, parse_listen, read_token
from kubelet_py.status.records import ContainerRecord, Instance, PodRecord
from kubelet_py.top import millicores, node_table, pods_table

S = 1_000_000_000


# ---- cgroup numbers -> Summary ------------------------------------------------------------------

def _write(root, rel, files):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


@pytest.fixture
def cgroot(tmp_path, monkeypatch):
    import runtime.cgroups as cg
    monkeypatch.setattr(cg, "ROOT", str(tmp_path))
    return tmp_path


def test_read_cgroup_v2(cgroot):
    (cgroot / "cgroup.controllers").write_text("cpu memory pids\n")
    _write(cgroot, "kpy/pod1/c1", {"cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
                                   "memory.current": "10485760\n",
                                   "memory.stat": "anon 4194304\nfile 6291456\ninactive_file 2097152\n",
                                   "pids.current": "3\n"})
    r = stats.read_cgroup("kpy/pod1/c1")
    assert (r.cpu_ns, r.usage, r.working_set, r.rss, r.pids) == (2_500_000_000, 10485760, 8388608, 4194304, 3)


def test_read_cgroup_v1(cgroot):
    _write(cgroot, "cpuacct/kpy/pod1/c1", {"cpuacct.usage": "123456789\n"})
    _write(cgroot, "memory/kpy/pod1/c1", {"memory.usage_in_bytes": "20971520\n",
                                          "memory.stat": "cache 1\nrss 2\ntotal_rss 8388608\n"
                                                         "total_inactive_file 4194304\n"})
    _write(cgroot, "pids/kpy/pod1/c1", {"pids.current": "2\n"})
    r = stats.read_cgroup("kpy/pod1/c1")
    assert (r.cpu_ns, r.usage, r.working_set, r.rss, r.pids) == (123456789, 20971520, 16777216, 8388608, 2)


def test_read_cgroup_gone_is_none(cgroot):
    assert stats.read_cgroup("kpy/nothing/here") is None


def _reading(cpu_s, t_s, usage=100 << 20, ws=80 << 20, rss=50 << 20, pids=4, available=None):
    return stats.Reading(int(cpu_s * S), usage, ws, rss, pids, int(t_s * S), 1_700_000_000.0 + t_s, available)


POD = stats.PodTarget("web", "default", "u1", "2026-12-04T10:00:00Z", "kpy/pod1",
                      (stats.ContainerTarget("app", "c1", "kpy/pod1/c1", "2026-12-04T10:00:01Z"),
                       stats.ContainerTarget("gone", "c2", "kpy/pod1/c2", None)))


def test_summary_shape_and_rates_from_two_samples():
    """Two readings 1 s apart: usageNanoCores is the CPU time between them; the upstream shape."""
    clock = {"t": 0.0}
    cpu = {"kpy/pod1": 1.0, "kpy/pod1/c1": 0.75}

    def read_cg(path):
        if path not in cpu:
            return None  # c2 is not running: left out
        return _reading(cpu[path] + clock["t"] * (0.5 if path.endswith("c1") else 0.6), clock["t"])

    def read_nd():
        return _reading(1000 + clock["t"] * 1.5, clock["t"], usage=2 << 30, ws=1 << 30, rss=512 << 20, pids=300,
                        available=6 << 30)

    def sleep_and_tick(_):
        clock["t"] += 1.0

    p = stats.StatsProvider(SimpleNamespace(node_name="n1"), read_cg=read_cg, read_nd=read_nd, prime_s=1.0)
    orig = stats.time.sleep
    stats.time.sleep = sleep_and_tick
    try:
        doc = p.gather([POD], {"allocatable": {"cpu": "2", "memory": str(7 << 30)}})
    finally:
        stats.time.sleep = orig
    node, pod = doc["node"], doc["pods"][0]
    assert node["nodeName"] == "n1" and node["cpu"]["usageNanoCores"] == 1_500_000_000
    assert node["memory"]["availableBytes"] == 6 << 30 and node["memory"]["workingSetBytes"] == 1 << 30
    assert node["rlimit"]["curproc"] == 300 and node["allocatable"] == {"cpu": "2", "memory": str(7 << 30)}
    assert pod["podRef"] == {"name": "web", "namespace": "default", "uid": "u1"}
    assert pod["startTime"] == "2026-12-04T10:00:00Z"
    assert [c["name"] for c in pod["containers"]] == ["app"]
    c = pod["containers"][0]
    assert c["cpu"]["usageNanoCores"] == 500_000_000 and c["cpu"]["usageCoreNanoSeconds"] == int(1.25 * S)
    assert c["memory"] == {"time": c["memory"]["time"], "usageBytes": 100 << 20, "workingSetBytes": 80 << 20,
                           "rssBytes": 50 << 20}
    assert c["startTime"] == "2026-12-04T10:00:01Z"
    assert pod["cpu"]["usageNanoCores"] == 600_000_000 and pod["process_stats"] == {"process_count": 4}
    # a later request 2 s on: the rate over those 2 s, no second wait
    clock["t"] = 3.0
    cpu["kpy/pod1/c1"] = 0.75 + 0.5 * 1.0 + 2.0 * 0.25 - 3.0 * 0.5  # 0.25 cores over the last 2 s
    doc = p.gather([POD], {})
    assert doc["pods"][0]["containers"][0]["cpu"]["usageNanoCores"] == 250_000_000


def test_rate_tracker_window_reset_and_forget():
    t = stats.RateTracker(min_window_ns=S // 2)
    assert t.observe(("c",), 0, 0) is None
    assert t.observe(("c",), S // 10, 10**8) is None  # too close: no rate yet, sample kept
    assert t.observe(("c",), S, S // 4) == S // 4  # 0.25 s of CPU over 1 s
    assert t.observe(("c",), S + S // 10, S) == S // 4  # too close: the last rate answered
    assert t.observe(("c",), 2 * S, S // 8) is None  # CPU time went back: a new cgroup, afresh
    t.forget_others([])
    assert not t.has_sample(("c",))


def test_node_parsers():
    assert stats.parse_proc_stat("cpu  100 5 50 9000 40 3 2 1 7 0\ncpu0 1 2 3 4\n", 100) == 161 * 10**7
    mi = stats.parse_meminfo("MemTotal:       8000 kB\nMemFree:        2000 kB\nMemAvailable:   5000 kB\n"
                             "Inactive(file):  1000 kB\nAnonPages:      1500 kB\nHugePages_Total:       0\n")
    assert stats.node_memory(mi) == (6000 * 1024, 5000 * 1024, 1500 * 1024, 5000 * 1024)
    assert stats.parse_loadavg_threads("0.10 0.20 0.30 2/345 6789\n") == 345


# ---- metrics ------------------------------------------------------------------------------------

def _samples(m: NodeMetrics) -> dict:
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _pod(uid="u1", name="web", containers=("app",)):
    return {"metadata": {"uid": uid, "name": name, "namespace": "ns1"},
            "spec": {"containers": [{"name": c} for c in containers]}}


def _status(restarts=0, running=True):
    return {"phase": "Running" if running else "Pending",
            "containerStatuses": [{"name": "app", "restartCount": restarts,
                                   "state": {"running": {}} if running else {"waiting": {"reason": "X"}}}]}


def test_metric_names_and_labels():
    t = {"now": 100.0}
    recs = [PodRecord(containers={"a": ContainerRecord(current=Instance("running", "c1")),
                                  "b": ContainerRecord(current=Instance("exited", "c2", exit_code=1))},
                      sandbox_ready=True),
            PodRecord(containers={"a": ContainerRecord()}, sandbox_ready=False)]
    m = NodeMetrics(lambda: recs, clock=lambda: t["now"])
    pm = ProberMetrics(sink=m.observe_probe)
    pm.for_container(ProbeTarget("app", "web", "ns1", "u1")).observe(ProbeType.READINESS, Result.SUCCESS, 0.02)
    pm.for_container(ProbeTarget("app", "web", "ns1", "u1")).observe(ProbeType.LIVENESS, Result.FAILURE, 0.5)
    pm.observe(ProbeType.LIVENESS, Result.SUCCESS, 0.1)  # no target: counted, not exported
    assert pm.probe_total[("liveness", "failed")] == 1 and pm.probe_total[("liveness", "successful")] == 1
    m.pod_seen("u1")
    t["now"] = 102.5
    m.pod_status(_pod(), _status(running=False))
    m.pod_status(_pod(), _status())
    m.pod_status(_pod(), _status())  # observed once per pod
    m.pod_status(_pod(), _status(restarts=2))
    m.image_pulled(3.0, 50 << 20)
    m.proxy_synced(SimpleNamespace(seconds=0.004, full=False))
    m.event("Warning", "BackOff")
    m.event("Normal", "Started")
    m.error("ServicesSyncFailed")
    s = _samples(m)
    assert s[("kubelet_pod_start_duration_seconds_count", ())] == 1
    assert s[("kubelet_pod_start_duration_seconds_sum", ())] == 2.5
    assert s[("kubelet_pod_start_duration_seconds_bucket", (("le", "3.0"),))] == 1
    probe = (("container", "app"), ("namespace", "ns1"), ("pod", "web"), ("pod_uid", "u1"))
    assert s[("prober_probe_total", probe + (("probe_type", "readiness"), ("result", "successful")))] == 1
    assert s[("prober_probe_total", probe + (("probe_type", "liveness"), ("result", "failed")))] == 1
    assert s[("prober_probe_duration_seconds_count", probe[:3] + (("probe_type", "liveness"),))] == 1
    assert s[("kubelet_py_container_restarts_total", (("container", "app"), ("namespace", "ns1"), ("pod", "web")))] == 2
    assert s[("kubelet_image_pull_duration_seconds_count", (("image_size_in_bytes", "10MB-100MB"),))] == 1
    assert s[("kubelet_py_image_pull_bytes_total", ())] == 50 << 20
    assert s[("kubeproxy_sync_proxy_rules_duration_seconds_count", ())] == 1
    assert s[("kubelet_py_errors_total", (("kind", "BackOff"),))] == 1
    assert s[("kubelet_py_errors_total", (("kind", "ServicesSyncFailed"),))] == 1
    assert ("kubelet_py_errors_total", (("kind", "Started"),)) not in s
    assert s[("kubelet_running_pods", ())] == 1
    assert s[("kubelet_running_containers", (("container_state", "running"),))] == 1
    assert s[("kubelet_running_containers", (("container_state", "exited"),))] == 1
    assert not any(k[0].endswith("_created") for k in s)
    m.pod_gone("u1")  # the pod's series go with it
    assert not any(dict(k[1]).get("pod") == "web" for k in _samples(m))


def test_registries_are_per_daemon():
    a, b = NodeMetrics(), NodeMetrics()
    a.error("X")
    assert ("kubelet_py_errors_total", (("kind", "X"),)) not in _samples(b)


def test_pod_tracker_adopted_pod_and_init_restarts():
    t = PodTracker()
    pod = _pod()
    assert t.status(pod, _status(restarts=3), 10.0) == (None, {})  # adopted: not seen, restarts as they are
    assert t.status(pod, _status(restarts=4), 11.0) == (None, {"app": 1})
    t.pod_seen("u2", 0.0)
    st = {**_status(), "initContainerStatuses": [{"name": "init", "restartCount": 1, "state": {}}]}
    assert t.status(_pod("u2"), st, 4.0) == (4.0, {"init": 1})


def test_running_counts_and_size_label():
    assert running_counts([]) == (0, {"created": 0, "running": 0, "exited": 0, "unknown": 0})
    assert image_size_label(0) == "0-10MB" and image_size_label(10 << 20) == "10MB-100MB"
    assert image_size_label(200 << 30) == "GT100GB"


# ---- top ------------------------------------------------------------------------------------------

SUMMARY = {"node": {"nodeName": "n1", "cpu": {"usageNanoCores": 250_000_001}, "memory": {"workingSetBytes": 1 << 30},
                    "allocatable": {"cpu": "2", "memory": str(4 << 30)}},
           "pods": [{"podRef": {"name": "web", "namespace": "default"},
                     "containers": [{"cpu": {"usageNanoCores": 1_500_000}, "memory": {"workingSetBytes": 5 << 20}},
                                    {"cpu": {"usageNanoCores": 1}, "memory": {"workingSetBytes": (2 << 20) - 1}}]},
                    {"podRef": {"name": "api-long-name", "namespace": "other"},
                     "containers": [{"cpu": {"usageNanoCores": 998_000_000}, "memory": {"workingSetBytes": 0}}]},
                    {"podRef": {"name": "pending", "namespace": "default"}, "containers": []}]}


def test_top_pods_table_as_kubectl():
    assert pods_table(SUMMARY, "default") == ("NAME   CPU(cores)   MEMORY(bytes)   \n"
                                              "web    2m           6Mi             \n")
    assert pods_table(SUMMARY, None) == (
        "NAMESPACE   NAME            CPU(cores)   MEMORY(bytes)   \n"
        "default     web             2m           6Mi             \n"
        "other       api-long-name   998m         0Mi             \n")
    assert pods_table(SUMMARY, "nothing") == ""
    assert millicores(1) == 1 and millicores(0) == 0


def test_top_node_table_as_kubectl():
    assert node_table(SUMMARY) == ("NAME   CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)   \n"
                                   "n1     251m         12%      1024Mi          25%         \n")
    assert "<unknown>" in node_table({"node": {"nodeName": "n1"}})


# ---- --listen and who gets what -------------------------------------------------------------------

@pytest.mark.parametrize("value, want", [
    ("10250", ("127.0.0.1", 10250)), (":10250", ("127.0.0.1", 10250)), ("0.0.0.0:8080", ("0.0.0.0", 8080)),
    ("192.168.1.5:80", ("192.168.1.5", 80)), ("[::1]:10250", ("::1", 10250)), ("0", ("127.0.0.1", 0))])
def test_parse_listen(value, want):
    assert parse_listen(value) == want


@pytest.mark.parametrize("value", ["", "abc", ":70000", "host.example:80", "::1:80", "[::1]80", "1.2.3.4:"])
def test_parse_listen_refuses(value):
    with pytest.raises(ListenError) as e:
        parse_listen(value)
    assert e.value.flag == "--listen"


def test_token_file(tmp_path):
    f = tmp_path / "token"
    f.write_text("s3cr3t\n")
    f.chmod(0o600)
    assert read_token(str(f)) == "s3cr3t"
    f.write_text("  \n")
    with pytest.raises(ListenError, match="empty"):
        read_token(str(f))
    f.write_text("two words")
    with pytest.raises(ListenError, match="one word"):
        read_token(str(f))
    with pytest.raises(ListenError, match="--token-file"):
        read_token(str(tmp_path / "missing"))
    with pytest.raises(ListenError, match="needs --listen"):
        check_flags(None, str(f))


def test_decide():
    tok = "s3cr3t"
    assert decide("GET", "/healthz", None, None, None) is None
    assert decide("GET", "/healthz", None, None, tok) is None
    assert decide("GET", "/pods", None, None, None)[0] == 403  # no --token-file: only /healthz
    assert decide("GET", "/pods", "Bearer s3cr3t", None, None)[0] == 403
    assert decide("GET", "/pods", None, None, tok)[0] == 401
    assert decide("GET", "/metrics", "Bearer nope", None, tok)[0] == 401
    assert decide("GET", "/metrics", "Basic s3cr3t", None, tok)[0] == 401
    assert decide("GET", "/metrics", "Bearer s3cr3t", None, tok) is None
    assert decide("HEAD", "/stats/summary", "bearer  s3cr3t", None, tok) is None
    assert decide("GET", "/", None, "s3cr3t", tok) is None  # the page, from a browser's cookie
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert decide(method, "/apis/kubelet-py/v1/apply", "Bearer s3cr3t", None, tok)[0] == 405
    assert bearer("Bearer ") is None and bearer(None) is None


class _Store:
    version = 7

    def list(self, kind, ns=None):
        return [{"kind": "Pod", "metadata": {"name": "web", "namespace": "default"}}] if kind == "Pod" else []


def test_tcp_app_on_a_fake_agent():
    """The listener's app: healthz open (500 with the reason when stuck), the rest behind the
    token, nothing but GET/HEAD, the metrics in the text format."""
    from aiohttp.test_utils import TestClient, TestServer
    from kubelet_py.server.listen import build_app
    state = {"why": None}
    agent = SimpleNamespace(unhealthy=lambda: state["why"], store=_Store(), metrics=NodeMetrics(), workers={},
                            node_name="n1", events=lambda ns, name: [])

    async def go():
        async with TestClient(TestServer(build_app(agent, "tok"))) as c:
            r = await c.get("/healthz")
            assert (r.status, await r.text()) == (200, "ok")
            state["why"] = "the sync loop has not run for 45s"
            r = await c.get("/healthz")
            assert (r.status, await r.text()) == (500, "the sync loop has not run for 45s")
            r = await c.get("/pods")
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            r = await c.get("/pods", headers={"Authorization": "Bearer tok"})
            body = await r.json()
            assert r.status == 200 and body["kind"] == "PodList" and body["items"][0]["metadata"]["name"] == "web"
            r = await c.get("/metrics", headers={"Authorization": "Bearer tok"})
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "kubelet_running_pods 0.0" in await r.text()
            r = await c.post("/apis/kubelet-py/v1/apply", headers={"Authorization": "Bearer tok"}, data=b"{}")
            assert r.status == 405 and json.loads(await r.text())["kind"] == "Status"
            r = await c.get("/apis/kubelet-py/v1/apply", headers={"Authorization": "Bearer tok"})
            assert r.status == 404
            # a browser's first visit, no cookie yet: the page's shell (its token form), not its data
            r = await c.get("/")
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
            assert (await c.get("/page/page.js")).status == 200
            assert (await c.get("/page/api/pods")).status == 401
        async with TestClient(TestServer(build_app(agent, None))) as c:
            assert (await c.get("/metrics", headers={"Authorization": "Bearer tok"})).status == 403
    asyncio.run(go())
