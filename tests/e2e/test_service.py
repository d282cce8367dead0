"""kubelet-py as a service, end to end: a real daemon tells a notify socket the test binds that it
is ready (only once its API socket serves), pings the watchdog, re-reads its config file on
SIGHUP, says STOPPING on SIGTERM and leaves its pods running; `drain` stops them; `doctor` on
this host; install-service into a private unit directory."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import need_tool
from tests.e2e.daemon import Daemon
from tests.integration.leaks import processes_naming
from tests.integration.netns_helpers import free_subnets

pytestmark = [pytest.mark.root]
IMAGE = "kubelet-py.local/busybox:1.35"


def _pod(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}})


class NotifySocket:
    """The service manager's side: a datagram socket that records every message (time, fields)
    and, when READY=1 arrives, whether the daemon's API socket accepts a connection then."""

    def __init__(self, path: str, api_socket: str):
        self.path, self.api = path, api_socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[dict] = []
        self.serving_at_ready: list[bool] = []
        self.done = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            if fields.get("READY") == "1":
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    c.connect(self.api)
                    self.serving_at_ready.append(True)
                except OSError:
                    self.serving_at_ready.append(False)
                finally:
                    c.close()
            with self.cond:
                self.messages.append(fields)
                self.cond.notify_all()

    def wait_for(self, key: str, value: str = "1", after: int = 0, timeout: float = 30) -> int:
        """Index of the first message from `after` on with key=value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, m in enumerate(self.messages[after:], after):
                    if m.get(key) == value:
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {key}={value} in {timeout}s; got {self.messages}")
                self.cond.wait(left)

    def close(self) -> None:
        self.done = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def notified(tmp_path, monkeypatch):
    """A daemon started with $NOTIFY_SOCKET (and a 0.6 s watchdog) and a config file."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("maxPods: 50\n")
    d = Daemon(tmp_path, extra=["--config", str(cfg)])
    n = NotifySocket(str(tmp_path / "notify"), d.socket)
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)
    monkeypatch.setenv("WATCHDOG_USEC", "600000")
    try:
        d.start()
        yield d, n, cfg
    finally:
        leaks = d.cleanup()
        n.close()
        assert leaks == [], leaks


def test_ready_once_serving_then_watchdog_pings_and_stopping(notified):
    d, n, _cfg = notified
    ready = n.wait_for("READY")
    # before READY=1 only the start-up STATUS (no watchdog ping of a daemon not yet serving)
    assert ready == 1 and n.messages[0] == {"STATUS": "starting: reading the checkpoint, adopting the pods that run"}
    assert n.serving_at_ready[0] is True  # the API socket accepted a connection when READY=1 came
    assert n.messages[ready]["MAINPID"] == str(d.proc.pid)
    assert n.messages[ready]["STATUS"].startswith(f"serving on {d.socket}")
    count = len(n.messages)
    time.sleep(2.0)
    pings = [m for m in n.messages[count:] if m.get("WATCHDOG") == "1"]
    assert 2 <= len(pings) <= 8, n.messages  # every 0.3 s (half of WATCHDOG_USEC)
    # the variables were taken out of the environment: no process the daemon started has them
    path = n.path.encode()
    holders = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) not in (os.getpid(), d.proc.pid):
            try:
                if path in open(f"/proc/{pid}/environ", "rb").read():
                    holders.append(pid)
            except OSError:
                pass
    assert holders == []
    # logs: one logfmt line per record
    assert re.search(r'^time=\S+Z level=info logger=kubelet_py msg="serving on ' + re.escape(d.socket),
                     d.daemon_log(), re.M), d.daemon_log()[-2000:]
    d.stop()
    assert d.proc.returncode == 0
    stopping = n.wait_for("STOPPING", after=count)
    assert "pods" in n.messages[stopping]["STATUS"]


def test_sighup_applies_live_keys_and_names_those_that_need_a_restart(notified):
    d, n, cfg = notified
    n.wait_for("READY")
    d.apply(_pod("one"))
    # maxPods is live; nodeName needs a restart; logLevel is given as a flag (--log-level debug): the flag wins
    cfg.write_text("maxPods: 1\nnodeName: elsewhere\nlogLevel: error\n")
    mark = len(n.messages)
    os.kill(d.proc.pid, signal.SIGHUP)
    reloading = n.wait_for("RELOADING", after=mark)
    n.wait_for("READY", after=reloading)
    log = d.daemon_log()
    assert "SIGHUP: maxPods is now 1" in log
    assert re.search(r"SIGHUP: nodeName changed in \S*config.yaml: restart the daemon", log), log[-3000:]
    assert "logLevel is now" not in log
    p = d.cli("apply", "-f", "-", input=_pod("two"), check=False)
    assert p.returncode != 0 and "maximum of 1 pods" in p.stderr, p.stderr
    # a broken file is refused and the daemon runs on with what it had
    cfg.write_text("maxPods: 1\nbogus: 1\n")
    mark = len(n.messages)
    os.kill(d.proc.pid, signal.SIGHUP)
    n.wait_for("READY", after=mark)
    assert f"{cfg}: unknown key 'bogus'" in d.daemon_log()
    assert d.proc.poll() is None
    d.cli("get", "pod", "one")


def test_sigterm_leaves_pods_running_and_drain_stops_them(tmp_path):
    man = tmp_path / "manifests"
    man.mkdir()
    (man / "static.yaml").write_text(_pod("stat"))
    d = Daemon(tmp_path, manifests=str(man)).start()
    try:
        for name in ("a", "b"):
            d.apply(_pod(name))
        for name in ("a", "b"):
            d.wait_for(name, lambda p: (p.get("status") or {}).get("phase") == "Running", 60, what="Running")
        d.stop()  # SIGTERM
        assert d.proc.returncode == 0
        assert processes_naming(d.run), "SIGTERM must leave the pods' supervisors running"
        d.start()
        t0 = time.monotonic()
        out = d.cli("drain", "--grace-period", "1", timeout=120).stdout
        assert "draining 2 pods" in out
        assert "pod default/a gone" in out and "pod default/b gone" in out
        assert re.search(r"drained: 2 pods stopped in [\d.]+s", out), out
        assert time.monotonic() - t0 < 60
        static = [ln for ln in out.splitlines() if ln.startswith("skipped static pod default/stat-")]
        assert len(static) == 1 and "remove its file" in static[0], out
        left = json.loads(d.cli("get", "pods", "-A", "-o", "json").stdout)["items"]
        assert [p["metadata"]["name"] for p in left] == [static[0].split("default/")[1].split(":")[0]]
        (man / "static.yaml").unlink()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and json.loads(d.cli("get", "pods", "-o", "json").stdout)["items"]:
            time.sleep(0.2)
        assert d.cli("drain").stdout.strip() == "no pods to drain"
    finally:
        leaks = d.cleanup()
    assert leaks == [], leaks


# ---- doctor -----------------------------------------------------------------------------------------

EVERY_CHECK = {"root", "kernel", "overlayfs", *(f"namespace/{n}" for n in ("mnt", "pid", "net", "ipc", "uts", "user",
                                                                             "cgroup")),
               "cgroups", "iptables/backend", "iptables/visible", "iptables/forward", "ip_forward", "br_netfilter",
               "binary/iptables-legacy-restore", "binary/iptables-legacy-save", "python-deps", "disk/root",
               "disk/run-root", "disk/log-root", "cidr/pods", "cidr/services", "other/kubelet-py", "other/runtimes"}


def _doctor(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubelet_py", "--root", str(tmp_path / "root"), "--run-root",
                           str(tmp_path / "run"), "--log-root", str(tmp_path / "logs"), "--socket",
                           str(tmp_path / "run" / "s.sock"), "doctor", "--config", os.devnull, *args],
                          capture_output=True, text=True, timeout=120)


def test_doctor_passes_on_this_host_and_reports_every_check(tmp_path):
    tag = secrets.token_hex(3)
    args = ["--pod-cidr", str(free_subnets(1)[0]), "--bridge", f"kpyd{tag}", "--chain-prefix", f"KPYD{tag.upper()}"]
    p = _doctor(tmp_path, "-o", "json", *args)
    doc = json.loads(p.stdout)
    failed = [c for c in doc["checks"] if c["status"] == "fail"]
    assert p.returncode == 0 and doc["ok"] is True, failed
    names = {c["name"] for c in doc["checks"]}
    assert names == EVERY_CHECK | {f"bridge/kpyd{tag}"} or \
        names == EVERY_CHECK | {f"bridge/kpyd{tag}", "cgroups/optional"}, names
    for c in doc["checks"]:
        assert c["status"] in ("ok", "warn") and c["message"], c
        assert (c["fix"] != "") == (c["status"] != "ok"), c
    assert doc["facts"]["euid"] == 0
    text = _doctor(tmp_path, *args)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert len(lines) == len(doc["checks"]) + 1 and lines[-1].startswith(f"{len(doc['checks'])} checks: 0 required")


def test_doctor_fails_on_a_taken_bridge_name_and_an_overlapping_route(tmp_path):
    from pyroute2 import IPRoute
    name, net = f"kpyx{secrets.token_hex(3)}", free_subnets(1)[0]
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="veth", peer=f"{name}p")  # (no dummy driver in every kernel)
        try:
            idx = ipr.link_lookup(ifname=name)[0]
            ipr.addr("add", index=idx, address=str(net.network_address + 5), prefixlen=24)
            ipr.link("set", index=idx, state="up")
            p = _doctor(tmp_path, "-o", "json", "--pod-cidr", str(net.supernet(new_prefix=20)), "--bridge", name)
            doc = json.loads(p.stdout)
            got = {c["name"]: c for c in doc["checks"]}
            assert p.returncode == 1 and doc["ok"] is False
            assert got[f"bridge/{name}"]["status"] == "fail" and "is a veth device" in got[f"bridge/{name}"]["message"]
            assert got["cidr/pods"]["status"] == "fail"
            assert f"{net} on {name}" in got["cidr/pods"]["message"], got["cidr/pods"]
            text = _doctor(tmp_path, "--pod-cidr", str(net.supernet(new_prefix=20)), "--bridge", name)
            assert text.returncode == 1
            assert re.search(r"^FAIL\s+cidr/pods\s+.*-- fix: choose a free --pod-cidr", text.stdout, re.M), text.stdout
        finally:
            ipr.link("del", ifname=name)


def test_doctor_warns_of_a_forward_policy_drop(tmp_path):
    """In a network namespace of its own whose legacy FORWARD policy is DROP (as Docker leaves a
    host's tables): the check names the family and gives the rules that let pod traffic pass."""
    ns = f"kpydf{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "iptables-legacy", "-P", "FORWARD", "DROP"], check=True)
        p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "kubelet_py", "--root", str(tmp_path / "r"),
                            "--run-root", str(tmp_path / "run"), "doctor", "--config", os.devnull, "-o", "json",
                            "--pod-cidr", "10.251.0.0/16"], capture_output=True, text=True, timeout=120)
        got = {c["name"]: c for c in json.loads(p.stdout)["checks"]}["iptables/forward"]
        assert got["status"] == "warn" and "DROP in the legacy tables" in got["message"], got
        assert "iptables-legacy -I FORWARD -s 10.251.0.0/16 -j ACCEPT" in got["fix"], got
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


# ---- install-service ------------------------------------------------------------------------------

def test_install_service_writes_a_unit_systemd_accepts_and_uninstall_removes_it(tmp_path):
    units = tmp_path / "units"
    cfg = tmp_path / "config.yaml"
    cfg.write_text("maxPods: 20\n")
    base = [sys.executable, "-m", "kubelet_py", "--root", str(tmp_path / "state")]
    p = subprocess.run(base + ["install-service", "--unit-dir", str(units), "--config", str(cfg), "--watchdog-sec",
                               "30"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    unit = units / "kubelet-py.service"
    assert f"wrote {unit}" in p.stdout and "systemctl not run" in p.stdout
    text = unit.read_text()
    script = os.path.join(os.path.dirname(sys.executable), "kubelet-py")
    assert f"ExecStart={script} --root {tmp_path / 'state'} serve --config {cfg}\n" in text
    for line in ("Type=notify", "KillMode=process", "Delegate=yes", "Restart=always", "WatchdogSec=30"):
        assert f"\n{line}\n" in text
    v = subprocess.run([need_tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stderr
    # the command the unit runs parses that config file
    check = subprocess.run([script, "serve", "--config", str(cfg), "--help"], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0
    p = subprocess.run(base + ["uninstall-service", "--unit-dir", str(units)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and f"removed {unit}" in p.stdout and not unit.exists()
    p = subprocess.run(base + ["uninstall-service", "--unit-dir", str(units)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "was not there" in p.stdout
