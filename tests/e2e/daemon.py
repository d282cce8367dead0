"""A real `kubelet-py serve` for end-to-end tests, with private roots, socket, cgroup root,
bridge, pod CIDR and chain prefix (two runs side by side never collide), the built-in busybox
image imported (also under the upstream examples' names), and a leak check when it goes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

from runtime.image.archive import import_path
from runtime.image.build import write_oci_layout
from runtime.image.reference import parse_reference
from runtime.image.store import ImageStore
from runtime.image.testimages import DEFAULT_IMAGE, busybox_image
from tests.integration.leaks import cgroups_under, mounts_under, processes_naming, remove_cgroup_tree
from tests.integration.netns_helpers import free_subnets

# the upstream examples' busybox images, served by the built-in one (IfNotPresent: no pull)
ALIASES = ("registry.k8s.io/busybox:1.27.2", "busybox:1.28", "busybox:1.27.2")


class Daemon:
    def __init__(self, tmp_path, crashloop_max: float = 2.0, manifests: str | None = None, extra=()):
        self.tmp = tmp_path
        self.tag = secrets.token_hex(3)
        self.root, self.run, self.logs = (str(tmp_path / n) for n in ("root", "run", "logs"))
        self.socket = str(tmp_path / "run" / "kpy.sock")
        self.cg = f"kpye2e-{self.tag}"
        self.bridge = f"kpye{self.tag}"
        self.chain = f"KE{self.tag[:5].upper()}"  # 7 characters: the Services' chains must fit in 28
        # a service network of its own (its DNS address is put on this daemon's bridge)
        n = int(self.tag, 16)
        self.service_cidr = f"10.{100 + n % 60}.{(n >> 8) % 256}.0/24"
        self.cluster_dns = f"10.{100 + n % 60}.{(n >> 8) % 256}.10"
        self.subnet = free_subnets(1)[0]
        self.manifests = manifests
        self.crashloop_max = crashloop_max
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        self.killed = False  # by kill9(), and not started again since
        self.log_file = str(tmp_path / "daemon.log")
        layout = str(tmp_path / "layout")
        write_oci_layout(layout, {DEFAULT_IMAGE: busybox_image()})
        store = ImageStore(self.root)
        rec = import_path(store, layout)[0]
        for name in ALIASES:
            store.tag(str(parse_reference(name)), rec.digest)

    def base(self) -> list[str]:
        return [sys.executable, "-m", "kubelet_py", "--root", self.root, "--run-root", self.run, "--log-root", self.logs,
                "--socket", self.socket, "--cgroup-root", self.cg]

    def start(self) -> "Daemon":
        # --config /dev/null: never the host's /etc/kubelet-py/config.yaml (an --config in extra wins)
        cmd = self.base() + ["serve", "--config", os.devnull, "--bridge", self.bridge, "--pod-cidr", str(self.subnet),
                             "--chain-prefix", self.chain, "--crashloop-max", str(self.crashloop_max), "--log-level", "debug",
                             "--service-cidr", self.service_cidr, "--cluster-dns", self.cluster_dns] + self.extra
        if self.manifests:
            cmd += ["--manifests", self.manifests]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_file, "ab"), stderr=subprocess.STDOUT)
        self.killed = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                why = f"the daemon exited {self.proc.returncode}:\n{self.daemon_log()}"
                break
            if self.cli("get", "ns", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        else:
            why = f"the daemon did not answer within 30 s:\n{self.daemon_log()}"
        # what a daemon that never served made (its bridge, chains, cgroups) goes too: the
        # fixture's cleanup never runs for a start that failed
        self.cleanup(restart=False)
        raise AssertionError(why)

    def gateway_ip(self) -> str:
        """The bridge's address: a local address of the node (where NodePorts answer too)."""
        return str(next(self.subnet.hosts()))

    def daemon_log(self) -> str:
        try:
            return open(self.log_file, errors="replace").read()[-20000:]
        except OSError:
            return ""

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.killed = True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cli(self, *args, check: bool = True, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run(self.base() + list(args), capture_output=True, text=True, timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"kubelet-py {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}\n"
                                 f"--- daemon log ---\n{self.daemon_log()[-6000:]}")
        return p

    def apply(self, yaml_text: str) -> str:
        return self.cli("apply", "-f", "-", input=yaml_text).stdout

    def pod(self, name: str, ns: str = "default") -> dict:
        return json.loads(self.cli("get", "pod", name, "-n", ns, "-o", "json").stdout)

    def wait_for(self, name: str, pred, timeout: float = 60, ns: str = "default", what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        pod = None
        while time.monotonic() < deadline:
            p = self.cli("get", "pod", name, "-n", ns, "-o", "json", check=False)
            if p.returncode == 0:
                pod = json.loads(p.stdout)
                if pred(pod):
                    return pod
            time.sleep(0.2)
        raise AssertionError(f"pod {name}: {what or 'condition'} not met in {timeout}s; last:\n"
                             f"{json.dumps((pod or {}).get('status'), indent=1)}\n--- daemon log ---\n{self.daemon_log()[-6000:]}")

    def cleanup(self, restart: bool = True) -> list[str]:
        """Delete every pod (as a user would), stop the daemon, report what deleting left behind,
        then remove whatever is left (a failed test's). A daemon the test killed (kill9) and did
        not start again, as a test that fails in between leaves it, is started again first: with
        no daemon nothing deletes the pods, and their mounts and cgroups were reported as left."""
        if restart and self.killed:
            try:
                self.start()  # a start that fails cleans up by itself (restart=False)
            except AssertionError as e:
                return [f"the killed daemon did not start again for the cleanup: {e}"]
        if self.proc and self.proc.poll() is None:
            for ns in json.loads(self.cli("get", "ns", "-o", "json", check=False).stdout or '{"items": []}')["items"]:
                try:
                    self.cli("delete", "pods", "--all", "-n", ns["metadata"]["name"], "--grace-period", "1",
                             check=False, timeout=60)
                except subprocess.TimeoutExpired:  # reported below as what is left; gc removes it
                    pass
        self.stop()
        leaks = []
        if mounts_under(self.root, self.run):
            leaks.append(f"mounts: {mounts_under(self.root, self.run)}")
        if processes_naming(self.run):
            leaks.append(f"processes: {processes_naming(self.run)}")
        if cgroups_under(self.cg):
            leaks.append(f"cgroups: {cgroups_under(self.cg)}")
        from runtime import pod as rt
        from runtime.container import Paths
        import netns
        from kubelet_py.node import _gateway_of
        cfg = netns.NetworkConfig(state_root=self.root, bridge=self.bridge, gateway=_gateway_of(str(self.subnet)),
                                  chain_prefix=self.chain, veth_prefix=self.bridge[:7])
        rt.gc(ImageStore(self.root), Paths(self.root, self.run, self.cg))
        netns.remove_network(cfg)  # the Services' chains with it
        remove_cgroup_tree(self.cg, if_empty=True)
        return leaks


def status_of(pod: dict, container: str) -> dict:
    st = pod.get("status") or {}
    for s in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
        if s["name"] == container:
            return s
    return {}


def condition(pod: dict, ctype: str) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c["status"]
    return None
