"""kubectl get output: the pod STATUS/READY/RESTARTS logic, AGE, wide columns, namespaces,
-o name, and the tabwriter layout underneath; Go's duration and time formats."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from kubelet_py.status import name_output, namespaces_table, pod_row, pods_table
from kubelet_py.status.printers import no_resources_message
from kubelet_py.status.tabwriter import TabWriter, tabbed
from kubelet_py.status.timefmt import go_duration, human_duration, parse_rfc3339, rfc1123z, rfc3339

NOW = parse_rfc3339("2024-05-01T12:00:00Z")


def ago(seconds):
    return rfc3339(NOW - seconds)


def pod(statuses=(), init_statuses=None, phase="Running", containers=None, init=None, conditions=None, **meta):
    names = containers or [s["name"] for s in statuses] or ["app"]
    spec = {"containers": [{"name": n} for n in names]}
    if init is not None:
        spec["initContainers"] = init
    status = {"phase": phase, "containerStatuses": list(statuses)}
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        status["conditions"] = [{"type": t, "status": s} for t, s in conditions.items()]
    return {"metadata": {"name": "p", "namespace": "ns", "creationTimestamp": ago(200), **meta},
            "spec": spec, "status": status}


def c(name="app", ready=False, restarts=0, last_finished=None, started=None, **state):
    s = {"name": name, "ready": ready, "restartCount": restarts, "state": state or {"running": {}}}
    if last_finished is not None:
        s["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(last_finished)}}
    if started is not None:
        s["started"] = started
    return s


RUNNING = {"running": {"startedAt": "x"}}
INIT2 = [{"name": "i1"}, {"name": "i2"}]


@pytest.mark.parametrize("p,ready,status", [
    (pod([c(ready=True)]), "1/1", "Running"),
    (pod([c(ready=False)]), "0/1", "Running"),
    (pod([c(waiting={"reason": "ContainerCreating"})], phase="Pending"), "0/1", "ContainerCreating"),
    (pod([c(waiting={"reason": "CrashLoopBackOff", "message": "back-off"})]), "0/1", "CrashLoopBackOff"),
    (pod([c(terminated={"exitCode": 0, "reason": "Completed"})], phase="Succeeded"), "0/1", "Completed"),
    (pod([c(terminated={"exitCode": 1, "reason": "Error"})], phase="Failed"), "0/1", "Error"),
    (pod([c(terminated={"exitCode": 137, "reason": "OOMKilled"})]), "0/1", "OOMKilled"),
    (pod([c(terminated={"exitCode": 137, "signal": 9})], phase="Failed"), "0/1", "Signal:9"),
    (pod([c(terminated={"exitCode": 2})], phase="Failed"), "0/1", "ExitCode:2"),
    (pod([c(waiting={})], phase="Pending"), "0/1", "Pending"),                     # no reason: the phase
    (pod([], phase="Pending", containers=["app"]), "0/1", "Pending"),
    # the first container (in status order) with a reason wins
    (pod([c("a", waiting={"reason": "CrashLoopBackOff"}), c("b", waiting={"reason": "ImagePullBackOff"})]),
     "0/2", "CrashLoopBackOff"),
    (pod([c("a", ready=True), c("b", waiting={"reason": "ErrImagePull"})]), "1/2", "ErrImagePull"),
    # a Completed container next to a running one
    (pod([c("a", terminated={"exitCode": 0, "reason": "Completed"}), c("b", ready=True)], conditions={"Ready": "True"}),
     "1/2", "Running"),
    (pod([c("a", terminated={"exitCode": 0, "reason": "Completed"}), c("b", ready=True)], conditions={"Ready": "False"}),
     "1/2", "NotReady"),
    # the phase stays when no container has a reason
    (pod([c(ready=True)], phase="Failed"), "1/1", "Failed"),
])
def test_status_and_ready_columns(p, ready, status):
    row = pod_row(p, NOW)
    assert (row[1], row[2]) == (ready, status)


def test_pod_reason_replaces_the_phase():
    p = pod([c(waiting={})], phase="Failed")
    p["status"]["reason"] = "Evicted"
    assert pod_row(p, NOW)[2] == "Evicted"


@pytest.mark.parametrize("init_statuses,status", [
    ([c("i1", **RUNNING), c("i2", waiting={"reason": "PodInitializing"})], "Init:0/2"),
    ([c("i1", waiting={"reason": "PodInitializing"}), c("i2", waiting={"reason": "PodInitializing"})], "Init:0/2"),
    ([c("i1", terminated={"exitCode": 0, "reason": "Completed"}), c("i2", **RUNNING)], "Init:1/2"),
    ([c("i1", terminated={"exitCode": 0}), c("i2", waiting={"reason": "CrashLoopBackOff"})], "Init:CrashLoopBackOff"),
    ([c("i1", terminated={"exitCode": 0}), c("i2", terminated={"exitCode": 1, "reason": "Error"})], "Init:Error"),
    ([c("i1", terminated={"exitCode": 3})], "Init:ExitCode:3"),
    ([c("i1", terminated={"exitCode": 137, "signal": 9})], "Init:Signal:9"),
    ([c("i1", waiting={"reason": "ErrImagePull"})], "Init:ErrImagePull"),
    # initialization done: the app containers decide
    ([c("i1", terminated={"exitCode": 0}), c("i2", terminated={"exitCode": 0})], "PodInitializing"),
])
def test_init_status(init_statuses, status):
    p = pod([c(waiting={"reason": "PodInitializing"})], init_statuses=init_statuses, init=INIT2, phase="Pending")
    assert pod_row(p, NOW)[2] == status


def test_sidecars_count_in_ready_and_restarts():
    init = [{"name": "side", "restartPolicy": "Always"}, {"name": "i2"}]
    inits = [c("side", ready=True, started=True, restarts=2, **RUNNING), c("i2", terminated={"exitCode": 0}, restarts=5)]
    p = pod([c("app", ready=True, restarts=1)], init_statuses=inits, init=init, conditions={"Initialized": "True"})
    row = pod_row(p, NOW)
    # 2/2: the started sidecar and the app; restarts: sidecar + app, the regular init's are dropped
    assert row[1:4] == ["2/2", "Running", "3"]
    not_started = [c("side", ready=False, started=False, **RUNNING), c("i2", waiting={"reason": "PodInitializing"})]
    p = pod([c("app", waiting={"reason": "PodInitializing"})], init_statuses=not_started, init=init, phase="Pending")
    assert pod_row(p, NOW)[1:3] == ["0/2", "Init:0/2"]


def test_restarts_column():
    p = pod([c("a", restarts=3, last_finished=300, ready=True), c("b", restarts=2, last_finished=40, ready=True)])
    assert pod_row(p, NOW)[3] == "5 (40s ago)"
    assert pod_row(pod([c(restarts=0)]), NOW)[3] == "0"
    assert pod_row(pod([c(restarts=4)]), NOW)[3] == "4"                  # no termination time known
    init = pod([c(waiting={"reason": "PodInitializing"})], phase="Pending", init=[{"name": "i1"}],
               init_statuses=[c("i1", restarts=7, last_finished=3600 * 5, waiting={"reason": "CrashLoopBackOff"})])
    assert pod_row(init, NOW)[2:4] == ["Init:CrashLoopBackOff", "7 (5h ago)"]


@pytest.mark.parametrize("meta,phase,status", [
    ({"deletionTimestamp": ago(5)}, "Running", "Terminating"),
    ({"deletionTimestamp": ago(5)}, "Pending", "Terminating"),
    ({"deletionTimestamp": ago(5)}, "Succeeded", "Completed"),
])
def test_terminating(meta, phase, status):
    state = {"terminated": {"exitCode": 0, "reason": "Completed"}} if phase == "Succeeded" else RUNNING
    assert pod_row(pod([c(**state)], phase=phase, **meta), NOW)[2] == status


def test_unknown_and_scheduling_gated():
    p = pod([c(**RUNNING)], deletionTimestamp=ago(5))
    p["status"]["reason"] = "NodeLost"
    assert pod_row(p, NOW)[2] == "Unknown"
    gated = pod([], phase="Pending")
    gated["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    assert pod_row(gated, NOW)[2] == "SchedulingGated"


def test_pods_table_layout():
    a = pod([c(ready=True)])
    b = pod([c(waiting={"reason": "CrashLoopBackOff"}, restarts=12, last_finished=150)], name="crashy-1",
            creationTimestamp=ago(3600 * 50))
    lines = pods_table([a, b], NOW).splitlines()
    assert lines == [
        "NAME       READY   STATUS             RESTARTS         AGE",
        "p          1/1     Running            0                3m20s",
        "crashy-1   0/1     CrashLoopBackOff   12 (2m30s ago)   2d2h",
    ]


def test_pods_table_wide_all_namespaces_and_no_headers():
    p = pod([c(ready=True)], name="web")
    p["spec"]["nodeName"] = "node1"
    p["status"]["podIPs"] = [{"ip": "10.244.0.5"}]
    p["spec"]["readinessGates"] = [{"conditionType": "a"}, {"conditionType": "b"}]
    p["status"]["conditions"] = [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}]
    assert pods_table([p], NOW, wide=True, all_namespaces=True).splitlines() == [
        "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE     IP           NODE    NOMINATED NODE   READINESS GATES",
        "ns          web    1/1     Running   0          3m20s   10.244.0.5   node1   <none>           1/2",
    ]
    bare = pod([c()], name="x")
    assert pod_row(bare, NOW, wide=True)[5:] == ["<none>", "<none>", "<none>", "<none>"]
    assert pods_table([bare], NOW, no_headers=True) == "x     0/1   Running   0     3m20s\n"
    assert pods_table([], NOW) == "NAME   READY   STATUS   RESTARTS   AGE\n"


def test_age_unknown_without_creation_time():
    p = pod([c()])
    del p["metadata"]["creationTimestamp"]
    assert pod_row(p, NOW)[4] == "<unknown>"


def test_namespaces_table():
    ns = [{"metadata": {"name": "default", "creationTimestamp": ago(86400 * 10)}, "status": {"phase": "Active"}},
          {"metadata": {"name": "kube-system", "creationTimestamp": ago(45)}, "status": {"phase": "Terminating"}}]
    assert namespaces_table(ns, NOW).splitlines() == [
        "NAME          STATUS        AGE",
        "default       Active        10d",
        "kube-system   Terminating   45s",
    ]


@pytest.mark.parametrize("obj,name", [
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}, "pod/x"),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}, "namespace/default"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}, "configmap/cm"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}, "deployment.apps/web"),
])
def test_name_output(obj, name):
    assert name_output(obj) == name


def test_no_resources_message():
    assert no_resources_message("default") == "No resources found in default namespace."
    assert no_resources_message(None) == "No resources found"


# -- tabwriter --

def test_tabwriter_column_blocks():
    w = TabWriter(0, 0, 1, ".")
    w.write("a\tb\tc\naa\tbb\tcc\naaa\t\naaaa\tdddd\teeee\n")
    # the b's and the d's are in different column blocks: line 3 has no second column
    assert w.getvalue() == "a....b..c\naa...bb.cc\naaa..\naaaa.dddd.eeee\n"


def test_tabwriter_single_cell_line_flushes():
    out = tabbed("x:\t1\nlonger-key:\t2\nSection\nk:\tv\n", 0, 8, 2)
    assert out == "x:           1\nlonger-key:  2\nSection\nk:  v\n"
    assert tabbed("a\tb", 0, 8, 1) == "a b"          # the unterminated last line is written as is
    assert tabbed("a\t\tb\nxyz\t\tc\n", 0, 8, 1) == "a    b\nxyz  c\n"


def test_tabwriter_rejects_bad_settings():
    with pytest.raises(ValueError):
        TabWriter(-1)
    with pytest.raises(ValueError):
        TabWriter(padchar="\t")


# -- times --

@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (0.9, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (200, "3m20s"), (599, "9m59s"),
    (600, "10m"), (10799, "179m"), (10800, "3h"), (3 * 3600 + 1800, "3h30m"), (8 * 3600, "8h"),
    (47 * 3600 + 3599, "47h"), (48 * 3600, "2d"), (51 * 3600, "2d3h"), (8 * 86400, "8d"), (400 * 86400, "400d"),
    (730 * 86400, "2y"), (740 * 86400, "2y10d"), (8 * 365 * 86400, "8y"), (-1, "0s"), (-1.5, "0s"), (-2, "<invalid>"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (10, "10s"), (80, "1m20s"), (300, "5m0s"), (3600, "1h0m0s"), (3661.5, "1h1m1.5s"),
    (0.5, "500ms"), (0.0015, "1.5ms"), (1.2345, "1.2345s"), (1e-6, "1µs"), (5e-9, "5ns"), (-2, "-2s"),
])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_time_formats():
    assert rfc1123z("2024-05-01T12:00:05Z") == "Wed, 01 May 2024 12:00:05 +0000"
    assert rfc1123z("2024-05-01T12:00:05Z", timezone(timedelta(hours=2))) == "Wed, 01 May 2024 14:00:05 +0200"
    assert rfc1123z(0.0, timezone(-timedelta(hours=5, minutes=30))) == "Wed, 31 Dec 1969 18:30:00 -0530"
    assert parse_rfc3339("2024-05-01T14:00:05.25+02:00") == parse_rfc3339("2024-05-01T12:00:05Z") + 0.25
    assert rfc3339(parse_rfc3339("2024-05-01T12:00:05.999Z")) == "2024-05-01T12:00:05Z"
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")
    with pytest.raises(ValueError):
        parse_rfc3339("2024-02-30T00:00:00Z")
