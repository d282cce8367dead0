"""`kubectl describe pod` text: a whole pod as kubectl lays it out (tabwriter blocks ending at
section titles, the Events table flushed on its own), and the pieces one by one."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from kubelet_py.status import ContainerRecord, EventRecorder, Instance, PodRecord, Terminated, describe_pod, pod_status
from kubelet_py.status import events as ev
from kubelet_py.status.describe import describe_probe
from kubelet_py.status.timefmt import parse_rfc3339

T0 = parse_rfc3339("2024-05-01T12:00:00Z")
NOW = T0 + 300


def web_pod():
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "uid": "u1", "creationTimestamp": "2024-05-01T12:00:00Z",
                     "labels": {"tier": "front", "app": "web"},
                     "annotations": {"kubernetes.io/config.source": "file",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "nodeName": "node1", "restartPolicy": "Always",
            "initContainers": [{"name": "init-db", "image": "busybox:1.36",
                                "command": ["sh", "-c", "until nslookup db; do sleep 2; done"]}],
            "containers": [{
                "name": "web", "image": "nginx:1.25",
                "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443, "protocol": "TCP"}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 3,
                                  "timeoutSeconds": 1, "periodSeconds": 3, "successThreshold": 1, "failureThreshold": 3},
                "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "initialDelaySeconds": 0, "timeoutSeconds": 1,
                                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0.25", "memory": "64Mi"}},
                "env": [{"name": "MODE", "value": "prod"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                 {"name": "config", "mountPath": "/etc/nginx/conf.d", "readOnly": True}]}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "config", "configMap": {"name": "nginx-conf"}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}],
        },
    }


def web_record():
    return PodRecord(
        containers={
            "init-db": ContainerRecord(current=Instance("exited", "i1", "docker.io/library/busybox:1.36", "sha256:bb",
                                                        started_at="2024-05-01T12:00:02Z",
                                                        finished_at="2024-05-01T12:00:04Z", exit_code=0,
                                                        reason="Completed")),
            "web": ContainerRecord(current=Instance("running", "w2", "docker.io/library/nginx:1.25", "sha256:nn",
                                                    started_at="2024-05-01T12:03:00Z"),
                                   previous=Terminated(137, "OOMKilled", started_at="2024-05-01T12:00:05Z",
                                                       finished_at="2024-05-01T12:02:58Z", container_id="w1"),
                                   restart_count=1)},
        sandbox_ready=True, pod_ips=("10.244.0.7",), host_ips=("192.168.1.10",), start_time="2024-05-01T12:00:01Z")


def web_events(pod):
    r = EventRecorder(host="node1")
    r.record(pod, ev.scheduled(pod, "node1"), T0)
    r.record(pod, ev.already_present(pod, "init-db", "busybox:1.36"), T0 + 1)
    r.record(pod, ev.created(pod, "init-db"), T0 + 1)
    r.record(pod, ev.started(pod, "init-db"), T0 + 2)
    for t in (T0 + 5, T0 + 180):
        r.record(pod, ev.already_present(pod, "web", "nginx:1.25"), t)
        r.record(pod, ev.created(pod, "web"), t)
        r.record(pod, ev.started(pod, "web"), t)
    r.record(pod, ev.unhealthy(pod, "web", "readiness", "cat: /tmp/ready: No such file or directory"), T0 + 200)
    return r.events(pod, NOW)


EXPECTED = """\
Name:         web-0
Namespace:    default
Node:         node1/192.168.1.10
Start Time:   Wed, 01 May 2024 12:00:01 +0000
Labels:       app=web
              tier=front
Annotations:  kubernetes.io/config.source: file
Status:       Running
IP:           10.244.0.7
IPs:
  IP:  10.244.0.7
Init Containers:
  init-db:
    Container ID:  kubelet-py://i1
    Image:         busybox:1.36
    Image ID:      sha256:bb
    Port:          <none>
    Host Port:     <none>
    Command:
      sh
      -c
      until nslookup db; do sleep 2; done
    State:          Terminated
      Reason:       Completed
      Exit Code:    0
      Started:      Wed, 01 May 2024 12:00:02 +0000
      Finished:     Wed, 01 May 2024 12:00:04 +0000
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
Containers:
  web:
    Container ID:   kubelet-py://w2
    Image:          nginx:1.25
    Image ID:       sha256:nn
    Ports:          80/TCP (http), 443/TCP
    Host Ports:     0/TCP (http), 0/TCP
    State:          Running
      Started:      Wed, 01 May 2024 12:03:00 +0000
    Last State:     Terminated
      Reason:       OOMKilled
      Exit Code:    137
      Started:      Wed, 01 May 2024 12:00:05 +0000
      Finished:     Wed, 01 May 2024 12:02:58 +0000
    Ready:          False
    Restart Count:  1
    Limits:
      cpu:     500m
      memory:  128Mi
    Requests:
      cpu:      250m
      memory:   64Mi
    Liveness:   http-get http://:8080/healthz delay=3s timeout=1s period=3s #success=1 #failure=3
    Readiness:  exec [cat /tmp/ready] delay=0s timeout=1s period=10s #success=1 #failure=3
    Environment:
      MODE:      prod
      POD_NAME:  web-0 (v1:metadata.name)
      POD_IP:     (v1:status.podIP)
      PASSWORD:  <set to the key 'password' in secret 'db'>  Optional: false
    Mounts:
      /data from data (rw)
      /etc/nginx/conf.d from config (ro)
Conditions:
  Type                        Status
  PodReadyToStartContainers   True 
  Initialized                 True 
  Ready                       False 
  ContainersReady             False 
  PodScheduled                True 
Volumes:
  data:
    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:     
    SizeLimit:  <unset>
  config:
    Type:        ConfigMap (a volume populated by a ConfigMap)
    Name:        nginx-conf
    Optional:    false
QoS Class:       Burstable
Node-Selectors:  <none>
Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
Events:
  Type     Reason     Age                 From               Message
  ----     ------     ----                ----               -------
  Normal   Scheduled  5m                  default-scheduler  Successfully assigned default/web-0 to node1
  Normal   Pulled     4m59s               kubelet            Container image "busybox:1.36" already present on machine
  Normal   Created    4m59s               kubelet            Created container: init-db
  Normal   Started    4m58s               kubelet            Started container init-db
  Normal   Pulled     2m (x2 over 4m55s)  kubelet            Container image "nginx:1.25" already present on machine
  Normal   Created    2m (x2 over 4m55s)  kubelet            Created container: web
  Normal   Started    2m (x2 over 4m55s)  kubelet            Started container web
  Warning  Unhealthy  100s                kubelet            Readiness probe failed: cat: /tmp/ready: No such file or directory
"""


def test_describe_whole_pod():
    pod = web_pod()
    pod["status"] = pod_status(pod, web_record(), NOW)
    assert describe_pod(pod, web_events(pod), NOW) == EXPECTED


def test_events_as_dicts_none_and_empty():
    pod = web_pod()
    pod["status"] = pod_status(pod, web_record(), NOW)
    as_dicts = [e.as_dict() for e in web_events(pod)]
    assert describe_pod(pod, as_dicts, NOW) == EXPECTED
    assert describe_pod(pod, None, NOW) == EXPECTED.split("Events:\n")[0]
    assert describe_pod(pod, [], NOW).endswith("Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s\n"
                                               "Events:          <none>\n")


def test_minimal_pending_pod():
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]},
           "status": {"phase": "Pending"}}
    assert describe_pod(pod, [], NOW) == """\
Name:         p
Namespace:    ns
Node:         <none>
Labels:       <none>
Annotations:  <none>
Status:       Pending
IP:           
IPs:          <none>
Containers:
  c:
    Image:        nginx
    Port:         <none>
    Host Port:    <none>
    Environment:  <none>
    Mounts:       <none>
Volumes:          <none>
QoS Class:        BestEffort
Node-Selectors:   <none>
Tolerations:      <none>
Events:           <none>
"""


def test_terminating_waiting_and_zero_times_in_a_timezone():
    pod = {"metadata": {"name": "p", "namespace": "ns", "deletionTimestamp": "2024-05-01T12:04:30Z",
                        "deletionGracePeriodSeconds": 30,
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "rs-1", "controller": True}]},
           "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
           "status": {"phase": "Running", "startTime": "2024-05-01T12:00:00Z", "containerStatuses": [
               {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                             "message": "lost", "startedAt": None, "finishedAt": None}},
                "ready": False, "restartCount": 2, "imageID": "", "containerID": ""},
               {"name": "b", "state": {"terminated": {"exitCode": 143, "signal": 15, "reason": "Error",
                                                      "startedAt": "2024-05-01T12:00:00Z",
                                                      "finishedAt": "2024-05-01T12:04:31Z"}},
                "lastState": {}, "ready": False, "restartCount": 0, "imageID": "sha256:y", "containerID": "kubelet-py://b"}]}}
    text = describe_pod(pod, None, NOW, tz=timezone(timedelta(hours=2)))
    assert "Start Time:                Wed, 01 May 2024 14:00:00 +0200\n" in text
    assert "Status:                    Terminating (lasts 30s)\nTermination Grace Period:  30s\n" in text
    assert "Controlled By:             ReplicaSet/rs-1\n" in text
    assert ("    State:          Waiting\n      Reason:       CrashLoopBackOff\n    Last State:     Terminated\n"
            "      Reason:       ContainerStatusUnknown\n      Message:      lost\n      Exit Code:    137\n"
            "      Started:      Mon, 01 Jan 0001 00:00:00 +0000\n"
            "      Finished:     Mon, 01 Jan 0001 00:00:00 +0000\n") in text
    assert ("      Reason:       Error\n      Exit Code:    143\n      Signal:       15\n"
            "      Started:      Wed, 01 May 2024 14:00:00 +0200\n") in text


@pytest.mark.parametrize("probe,text", [
    ({"httpGet": {"path": "/healthz", "port": 8080}}, "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"),
    ({"httpGet": {"path": "/", "port": "http", "host": "10.0.0.1", "scheme": "HTTPS"}, "initialDelaySeconds": 5},
     "http-get https://10.0.0.1:http/ delay=5s timeout=1s period=10s #success=1 #failure=3"),
    ({"httpGet": {"path": "ready", "port": 80, "host": "fd00::1"}}, "http-get http://[fd00::1]:80/ready delay=0s timeout=1s period=10s #success=1 #failure=3"),
    ({"httpGet": {"path": "/a b?x", "port": 80}}, "http-get http://:80/a%20b%3Fx delay=0s timeout=1s period=10s #success=1 #failure=3"),
    ({"tcpSocket": {"port": 5432}, "periodSeconds": 3, "failureThreshold": 6},
     "tcp-socket :5432 delay=0s timeout=1s period=3s #success=1 #failure=6"),
    ({"grpc": {"port": 9090, "service": ""}}, "grpc <pod>:9090  delay=0s timeout=1s period=10s #success=1 #failure=3"),
    ({"exec": {"command": ["sh", "-c", "test -f /ok"]}}, "exec [sh -c test -f /ok] delay=0s timeout=1s period=10s #success=1 #failure=3"),
    ({}, "unknown delay=0s timeout=1s period=10s #success=1 #failure=3"),
])
def test_describe_probe(probe, text):
    assert describe_probe(probe) == text


def test_annotations_long_and_multiline():
    long_value = "v" * 150
    pod = {"metadata": {"name": "p", "namespace": "ns",
                        "annotations": {"a": "short", "b": long_value, "c": "line1\nline2\n"}},
           "spec": {"containers": []}, "status": {"phase": "Pending"}}
    text = describe_pod(pod, None, NOW)
    assert ("Annotations:  a: short\n"
            "              b:\n"
            f"                {'v' * 138}...\n"
            "              c:\n"
            "                line1\n"
            "                line2\n") in text
    assert "Containers: <none>\n" in text


def test_env_from_resource_fields_and_volumes():
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
           "spec": {"readinessGates": [{"conditionType": "example.com/lb"}],
                    "containers": [{"name": "c", "image": "x",
                                    "resources": {"requests": {"cpu": "250m"}},
                                    "envFrom": [{"configMapRef": {"name": "cm"}},
                                                {"secretRef": {"name": "sec", "optional": True}, "prefix": "S_"}],
                                    "env": [{"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                                            {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu",
                                                                                                   "divisor": "1m"}}},
                                            {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                                            {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": True}}},
                                            {"name": "MULTI", "value": "one\ntwo"}],
                                    "volumeMounts": [{"name": "s", "mountPath": "/s", "subPath": "sub"}]}],
                    "volumes": [{"name": "s", "secret": {"secretName": "sec"}},
                                {"name": "h", "hostPath": {"path": "/var/log", "type": "Directory"}},
                                {"name": "d", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                                {"name": "pj", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607}},
                                                                         {"configMap": {"name": "kube-root-ca.crt"}},
                                                                         {"downwardAPI": {}}]}},
                                {"name": "odd", "gitRepo": {"repository": "r"}}]},
           "status": {"phase": "Pending", "conditions": [{"type": "example.com/lb", "status": "False"}]}}
    text = describe_pod(pod, None, NOW)
    assert ("    Requests:\n      cpu:  250m\n    Environment Variables from:\n"
            "      cm   ConfigMap                Optional: false\n"
            "      sec  Secret with prefix 'S_'  Optional: true\n") in text
    assert ("      CPU_LIMIT:  node allocatable (limits.cpu)\n"
            "      CPU_REQ:    250 (requests.cpu)\n"
            "      LABEL:      x (v1:metadata.labels['app'])\n"
            "      KEY:        <set to the key 'k' of config map 'cm'>  Optional: true\n"
            "      MULTI:      one\n"
            "                  two\n") in text
    assert "      /s from s (rw,path=\"sub\")\n" in text
    assert "Readiness Gates:\n  Type             Status\n  example.com/lb   False \nConditions:\n" in text
    assert ("  s:\n    Type:        Secret (a volume populated by a Secret)\n    SecretName:  sec\n"
            "    Optional:    false\n") in text
    assert "    Path:          /var/log\n    HostPathType:  Directory\n" in text
    assert ("    Type:  DownwardAPI (a volume populated by information about the pod)\n    Items:\n"
            "      metadata.labels -> labels\n") in text
    assert ("    TokenExpirationSeconds:  3607\n    ConfigMapName:           kube-root-ca.crt\n"
            "    Optional:                false\n    DownwardAPI:             true\n") in text
    assert "  odd:\n  <unknown>\n" in text


def test_events_sorted_by_series_last_timestamp_then_event_time():
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}, "status": {"phase": "Pending"}}
    events = [
        {"type": "Normal", "reason": "Late", "message": "m", "count": 1, "source": {"component": "kubelet"},
         "firstTimestamp": "2024-05-01T12:04:00Z", "lastTimestamp": "2024-05-01T12:04:00Z"},
        {"type": "Normal", "reason": "Series", "message": "m", "reportingComponent": "ctrl",
         "eventTime": "2024-05-01T12:00:00.000000Z",
         "series": {"count": 4, "lastObservedTime": "2024-05-01T12:02:00.000000Z"}},
        {"type": "Normal", "reason": "Early", "message": "  spaced  ", "source": {"component": "kubelet"},
         "eventTime": "2024-05-01T12:01:00.000000Z"},
    ]
    text = describe_pod(pod, events, NOW)
    assert text.split("Events:\n")[1] == (
        "  Type    Reason  Age              From     Message\n"
        "  ----    ------  ----             ----     -------\n"
        "  Normal  Early   4m               kubelet  spaced\n"
        "  Normal  Series  3m (x4 over 5m)  ctrl     m\n"
        "  Normal  Late    60s              kubelet  m\n")
