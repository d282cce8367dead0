"""Services end to end: a real daemon keeps EndpointSlices of ready pods, the iptables rules of
its Services (legacy tables, its own chain prefix) and the cluster DNS on its own address; a
client pod reaches backends by ClusterIP, by name and through a NodePort."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from tests.e2e.daemon import Daemon, condition

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"


def _backend(name: str) -> str:
    # httpd answering its own name; Ready while /www/ready exists
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "echo"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "web", "image": IMAGE, "ports": [{"name": "http", "containerPort": 8080}],
            "command": ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; touch /www/ready; "
                        "exec httpd -f -p 8080 -h /www"],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1,
                               "failureThreshold": 1}}]}})


SERVICE = json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
                      "spec": {"selector": {"app": "echo"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}})
CLIENT = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
                     "spec": {"terminationGracePeriodSeconds": 1,
                              "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}})


def _fetch_many(d: Daemon, url: str, n: int) -> list[str]:
    script = f"for i in $(seq {n}); do timeout 3 wget -qO- {url} || echo FAIL; done"
    return d.cli("exec", "client", "--", "sh", "-c", script, timeout=120).stdout.split()


def _ready_endpoints(d: Daemon) -> set[str]:
    slices = json.loads(d.cli("get", "endpointslices", "-o", "json").stdout)["items"]
    return {e["targetRef"]["name"] for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")}


def _nat(d: Daemon) -> str:
    return subprocess.run(["iptables-legacy-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout


def _until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_a_cluster_ip_service_by_ip_and_name_follows_readiness(d):
    names = [f"echo-{i}" for i in range(3)]
    for n in names:
        d.apply(_backend(n))
    d.apply(SERVICE)
    d.apply(CLIENT)
    for n in names + ["client"]:
        d.wait_for(n, lambda p: condition(p, "Ready") == "True", 60, what="Ready")
    svc = json.loads(d.cli("get", "svc", "echo", "-o", "json").stdout)
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith(d.service_cidr.rsplit(".", 1)[0] + ".") and ip != d.cluster_dns
    table = d.cli("get", "services").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:5] == ["echo", "ClusterIP", ip, "<none>", "80/TCP"]
    _until(lambda: _ready_endpoints(d) == set(names), 10, "three ready endpoints")
    # the rules are kube-proxy's, under this daemon's prefix, one DNAT per endpoint
    nat = _nat(d)
    assert f"-A {d.chain}-SERVICES -d {ip}/32 -p tcp" in nat and nat.count("-j DNAT") >= 3, nat
    # by ClusterIP: every backend answers (the client was made after the Service: it has its env)
    env = d.cli("exec", "client", "--", "env").stdout
    assert f"ECHO_SERVICE_HOST={ip}\n" in env and "ECHO_SERVICE_PORT_WEB=80\n" in env
    got = _fetch_many(d, f"http://{ip}/", 60)
    assert "FAIL" not in got and set(got) == set(names), got
    # by name, through the cluster DNS the daemon serves (short name: the pod's search path)
    resolv = d.cli("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {d.cluster_dns}" in resolv and "search default.svc.cluster.local" in resolv
    look = d.cli("exec", "client", "--", "nslookup", "echo.default.svc.cluster.local").stdout
    assert ip in look, look
    assert set(_fetch_many(d, "http://echo/", 30)) <= set(names)
    # a backend that stops being ready leaves the rotation, and comes back
    d.cli("exec", "echo-0", "--", "rm", "/www/ready")
    _until(lambda: _ready_endpoints(d) == {"echo-1", "echo-2"}, 15, "echo-0 out")
    time.sleep(0.5)  # one sync
    got = _fetch_many(d, f"http://{ip}/", 30)
    assert "echo-0" not in got and set(got) == {"echo-1", "echo-2"}, got
    d.cli("exec", "echo-0", "--", "touch", "/www/ready")
    _until(lambda: _ready_endpoints(d) == set(names), 15, "echo-0 back")
    # deleting the Service removes exactly its rules; the ClusterIP then answers nothing
    d.cli("delete", "svc", "echo")
    _until(lambda: ip not in _nat(d), 10, "the Service's rules gone")
    assert f"{d.chain}-SVC-" not in _nat(d) and f"{d.chain}-SEP-" not in _nat(d)
    assert d.cli("get", "endpointslices", check=False).stdout == ""


def test_a_node_port_reaches_its_pod_from_the_node(d):
    d.apply(_backend("np-0"))
    d.wait_for("np-0", lambda p: condition(p, "Ready") == "True", 60, what="Ready")
    out = d.cli("expose", "pod", "np-0", "--port", "8081", "--target-port", "http", "--type", "NodePort",
                "--name", "np").stdout
    assert out == "service/np exposed\n"
    svc = json.loads(d.cli("get", "svc", "np", "-o", "json").stdout)
    port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767 and svc["spec"]["selector"] == {"app": "echo"}
    gateway = d.gateway_ip()  # a local address of the node
    body = _until(lambda: _get(f"http://{gateway}:{port}/"), 15, "the NodePort answering")
    assert body == "np-0\n"
    desc = d.cli("describe", "svc", "np").stdout
    assert "Type:                     NodePort" in desc and f"NodePort:                 <unset>  {port}/TCP" in desc, desc


def test_a_headless_service_answers_its_pods_and_rules_survive_a_daemon_restart(d):
    """A headless Service's name resolves to its ready pods' IPs (and a pod's hostname under its
    subdomain); a ClusterIP Service's rules stay through a daemon SIGKILL, and the restarted
    daemon converges: a new backend joins the rotation."""
    d.apply(_backend("hl-0").replace('"spec": {', '"spec": {"hostname": "first", "subdomain": "hl", ', 1))
    d.apply(json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hl"},
                        "spec": {"clusterIP": "None", "selector": {"app": "echo"},
                                 "ports": [{"name": "web", "port": 8080}]}}))
    d.apply(SERVICE)
    d.apply(CLIENT)
    for n in ("hl-0", "client"):
        d.wait_for(n, lambda p: condition(p, "Ready") == "True", 60, what="Ready")
    pod_ip = d.pod("hl-0")["status"]["podIP"]
    _until(lambda: _ready_endpoints(d) == {"hl-0"}, 10, "the endpoint")
    look = d.cli("exec", "client", "--", "nslookup", "hl.default.svc.cluster.local").stdout
    assert pod_ip in look, look
    look = d.cli("exec", "client", "--", "nslookup", "first.hl.default.svc.cluster.local").stdout
    assert pod_ip in look, look
    nx = d.cli("exec", "client", "--", "nslookup", "nope.default.svc.cluster.local", check=False)
    assert nx.returncode != 0 and pod_ip not in nx.stdout
    ip = json.loads(d.cli("get", "svc", "echo", "-o", "json").stdout)["spec"]["clusterIP"]
    before = [ln for ln in _nat(d).splitlines() if d.chain in ln]
    d.kill9()
    assert [ln for ln in _nat(d).splitlines() if d.chain in ln] == before  # the rules outlive the daemon
    assert _get(f"http://{ip}/") == "first\n"  # from the node, while no daemon runs (hl-0's hostname)
    d.start()
    d.apply(_backend("hl-1"))
    d.wait_for("hl-1", lambda p: condition(p, "Ready") == "True", 60, what="Ready")
    _until(lambda: _ready_endpoints(d) == {"hl-0", "hl-1"}, 15, "the new endpoint")
    time.sleep(0.5)
    assert set(_fetch_many(d, f"http://{ip}/", 30)) == {"first", "hl-1"}
    assert json.loads(d.cli("get", "svc", "echo", "-o", "json").stdout)["spec"]["clusterIP"] == ip


def _get(url: str) -> str | None:
    try:
        return urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return None


def test_services_in_nf_tables_with_the_config_files_services_iptables_nft(tmp_path):
    """servicesIptables: nft (serve --services-iptables nft) puts the Services' rules in
    iptables-nft's tables, none in the legacy ones (the pod network's stay there); a ClusterIP
    reaches its pod from the node; uninstalling the network removes them."""
    config = tmp_path / "config.yaml"
    config.write_text("servicesIptables: nft\n")
    d = Daemon(tmp_path, extra=["--config", str(config)]).start()
    try:
        d.apply(_backend("nft-0"))
        d.apply(SERVICE)
        d.wait_for("nft-0", lambda p: condition(p, "Ready") == "True", 60, what="Ready")
        ip = json.loads(d.cli("get", "svc", "echo", "-o", "json").stdout)["spec"]["clusterIP"]
        _until(lambda: f"-j DNAT --to-destination {d.pod('nft-0')['status']['podIP']}:8080" in _saved("iptables-nft-save"),
               15, "the Service's rules in nf_tables")
        nft = _saved("iptables-nft-save")
        assert f"-A {d.chain}-SERVICES -d {ip}/32 -p tcp" in nft and f"-j {d.chain}-SERVICES" in nft
        legacy = _saved("iptables-legacy-save")
        assert f"{d.chain}-SERVICES" not in legacy and f"{d.chain}-SEP-" not in legacy
        assert f":{d.chain}-POSTROUTING" in legacy  # the pod network's masquerade chain: legacy
        assert _until(lambda: _get(f"http://{ip}/"), 15, "the ClusterIP answering") == "nft-0\n"
        # inspect finds the pod's endpoint rule in nf_tables (it reads iptables-nft-save too)
        from tests.e2e.test_inspect import _nodes
        report = json.loads(d.cli("inspect", "pod", "nft-0", "-o", "json").stdout)
        pod_ip = d.pod("nft-0")["status"]["podIP"]
        assert [r for r in _nodes(report["tree"], "rule") if r["data"]["chain"].startswith(f"{d.chain}-SEP-")
                and f"-j DNAT --to-destination {pod_ip}:8080" in r["data"]["rule"]], report["tree"]
        assert not [p for p in report["problems"] if "no SEP rule" in p], report["problems"]
        d.cli("delete", "svc", "echo")
        _until(lambda: ip not in _saved("iptables-nft-save"), 10, "the Service's rules gone")
    finally:
        leaks = d.cleanup()
    assert leaks == [], leaks
    assert d.chain not in _saved("iptables-nft-save") and d.chain not in _saved("iptables-legacy-save")


def _saved(save: str) -> str:
    return subprocess.run([save, "-t", "nat"], capture_output=True, text=True, check=True).stdout
