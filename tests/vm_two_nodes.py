"""The Vagrant lab's two-node scenario, as CI can run it: two virtme-ng VMs (tests/vm.py's bed,
one vCPU and 768 MiB each) joined by a qemu UDP socket link on 127.0.0.1, each provisioned by
vagrant/provision.sh (--skip-install: the VMs share this checkout's venv), running the daemon from
the unit's ExecStart with its own pod CIDR (10.244.1.0/24, 10.244.2.0/24) and a route to the
other's through the link. Checked, from each node:

  1. its static pod hello-<node> (vagrant/manifests/hello.yaml) is Ready;
  2. from inside that pod, the other node's pod answers by pod IP, and its /cgi-bin/ip saw this
     pod's own IP as the client (pod to pod across nodes without NAT: --cluster-cidr);
  3. the other node's NodePort Service (vagrant/web.yaml, applied there) answers at its node IP;
  4. once both daemons are SIGKILLed, the other node's pod and Service still answer (pods and
     rules outlive the daemon).

    python -m tests.vm_two_nodes           # the scenario; exit 0 when both nodes pass

Run by scripts/test after the VM group (so by CI): the scenario needs two VMs driven from the
host at once, which the VM runner's one-VM pytest session cannot do. A VM that cannot boot is a
failure with the reason. Each node writes <results>/<node>.json (its checks) and .log (its steps,
the daemon's log)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

from tests.vm import TOP, VMError, VMSpec, _prune_old_results, find_kernel, vng_command, vng_env

log = logging.getLogger("tests.vm_two_nodes")
CLUSTER_CIDR = "10.244.0.0/16"
NODES = {  # as vagrant/Vagrantfile, on the link instead of the private network
    "node1": {"ip": "192.168.56.11", "pod_cidr": "10.244.1.0/24", "mac": "52:54:00:4b:50:01"},
    "node2": {"ip": "192.168.56.12", "pod_cidr": "10.244.2.0/24", "mac": "52:54:00:4b:50:02"},
}
KPY = os.path.join(os.path.dirname(sys.executable), "kubelet-py")
FETCH = "timeout 20 wget -qO-"  # busybox wget's own -T segfaults (machine notes)
WAIT = 150  # seconds for any one wait inside a VM (TCG: the daemon alone takes ~30 s to start)


# ---- inside a VM ---------------------------------------------------------------------------------

def sh(cmd: list[str], timeout: float = 120, check: bool = True, env: dict | None = None) -> str:
    log.info("+ %s", shlex.join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    out = (p.stdout + p.stderr).strip()
    if out:
        log.info("%s", out)
    if check and p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)}: exit {p.returncode}: {out[-500:]}")
    return p.stdout.strip()


def wait_peer(results: str, peer: str, what: str, timeout: float = WAIT) -> str:
    """The other node's file <peer>.<what>, once it is there; an error at once when the other
    node has finished (its <peer>.json) without writing it."""
    path, verdict = os.path.join(results, f"{peer}.{what}"), os.path.join(results, f"{peer}.json")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            if what != "json" and os.path.exists(verdict):
                raise RuntimeError(f"{peer} stopped before its {what} (see {peer}.log)") from None
            time.sleep(1)
    raise RuntimeError(f"{peer} did not write its {what} within {timeout} s")


def put(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def link_name(mac: str) -> str:
    for name in os.listdir("/sys/class/net"):
        with open(f"/sys/class/net/{name}/address") as f:
            if f.read().strip() == mac:
                return name
    raise RuntimeError(f"no interface with MAC {mac}: the qemu link is missing")


def exec_start(unit: str) -> list[str]:
    """The daemon's command line as the unit that install-service wrote runs it."""
    with open(unit) as f:
        for line in f:
            if line.startswith("ExecStart="):
                return shlex.split(line.split("=", 1)[1])
    raise RuntimeError(f"{unit} has no ExecStart")


def node_main(name: str, results: str) -> int:
    me = NODES[name]
    peer_name, peer = next((n, v) for n, v in NODES.items() if n != name)
    checks: dict = {"node": name}
    daemon = None
    try:
        # The VM's /var is an overlay over this machine's root: the image snapshots and the pods'
        # overlay upper dirs need a plain filesystem below them (as tests/vm.py's TMPDIR).
        os.makedirs("/var/lib/kubelet-py", exist_ok=True)
        sh(["mount", "-t", "tmpfs", "-o", "size=600m", "kpy-lab", "/var/lib/kubelet-py"])
        dev = link_name(me["mac"])
        sh(["ip", "addr", "add", f"{me['ip']}/24", "dev", dev])
        sh(["ip", "link", "set", dev, "up"])
        sh(["ip", "link", "set", "lo", "up"])
        sh([os.path.join(TOP, "vagrant", "provision.sh"), "--skip-install", "--node-name", name,
            "--node-ip", me["ip"], "--pod-cidr", me["pod_cidr"], "--cluster-cidr", CLUSTER_CIDR,
            "--peer", f"{peer['ip']}={peer['pod_cidr']}"], timeout=300, env=dict(os.environ, KPY_VENV=sys.prefix))
        cmd = exec_start("/etc/systemd/system/kubelet-py.service")
        checks["exec_start"] = shlex.join(cmd)
        dlog = open(os.path.join(results, f"{name}.daemon.log"), "w")
        daemon = subprocess.Popen(cmd, stdout=dlog, stderr=subprocess.STDOUT, start_new_session=True)
        pod = f"hello-{name}"
        sh([KPY, "wait", f"pod/{pod}", "--for=condition=Ready", f"--timeout={WAIT}s"], timeout=WAIT + 60)
        # the walk-through's pod and NodePort Service (vagrant/web.yaml), reached from the peer
        sh([KPY, "apply", "-f", os.path.join(TOP, "vagrant", "web.yaml")])
        pod_ip = sh([KPY, "get", "pod", pod, "-o", "jsonpath={.status.podIP}"])
        checks["pod_ip"] = pod_ip
        sh([KPY, "wait", "pod/web", "--for=condition=Ready", f"--timeout={WAIT}s"], timeout=WAIT + 60)
        put(os.path.join(results, f"{name}.podip"), pod_ip)
        peer_ip = wait_peer(results, peer_name, "podip")
        # 2. pod to pod across the link, from inside this node's pod (one exec: ~12 s under TCG)
        page, seen = sh([KPY, "exec", pod, "--", "sh", "-c", f"{FETCH} http://{peer_ip}:8080/ && echo && "
                         f"{FETCH} http://{peer_ip}:8080/cgi-bin/ip"]).split("\n\n", 1)
        checks["peer_page"], checks["peer_saw"] = page, seen
        checks["pod_to_pod"] = page == f"hello from pod {peer_ip} on node {peer_name}"
        # httpd listens on [::]: an IPv4 client reads as [::ffff:a.b.c.d]
        checks["no_nat"] = seen.strip("[]").removeprefix("::ffff:") == pod_ip
        nodeport = ["busybox", "timeout", "20", "busybox", "wget", "-qO-", f"http://{peer['ip']}:30080/"]
        svc_page = sh(nodeport)
        checks["peer_nodeport"] = svc_page
        checks["service_from_other_node"] = svc_page == f"web on node {peer_name}"
        # 3. both daemons killed (once both nodes are past step 2); the peer's pod still serves
        put(os.path.join(results, f"{name}.fetched"), "1")
        wait_peer(results, peer_name, "fetched")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        put(os.path.join(results, f"{name}.killed"), "1")
        wait_peer(results, peer_name, "killed")
        after = sh(["busybox", "timeout", "20", "busybox", "wget", "-qO-", f"http://{peer_ip}:8080/"])
        checks["survives_daemon_kill"] = after == page and sh(nodeport) == svc_page
    except Exception as e:  # every failure goes to the node's verdict, read by the host
        log.exception("node %s failed", name)
        checks["error"] = f"{type(e).__name__}: {e}"
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
    put(os.path.join(results, f"{name}.json"), json.dumps(checks, indent=1))
    try:  # this VM powers off when the script ends: stay until the other node has fetched from it
        wait_peer(results, peer_name, "json")
    except RuntimeError as e:
        log.warning("%s", e)
    return 0


# ---- on the host ---------------------------------------------------------------------------------

CHECKS = ("pod_to_pod", "no_nat", "service_from_other_node", "survives_daemon_kill")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_scenario(timeout: float = 420) -> int:
    kernel = find_kernel()
    _prune_old_results()  # /var/tmp/kpy-vm-*: the VM group's results dirs and these
    results = tempfile.mkdtemp(prefix="kpy-vm-2n-", dir="/var/tmp")
    ports = {n: free_udp_port() for n in NODES}
    procs = {}
    t0 = time.time()
    for name, node in NODES.items():
        peer = next(n for n in NODES if n != name)
        # the link: a UDP socket pair on loopback (no listen/connect order between the two qemus)
        net = f"socket,id=l0,localaddr=127.0.0.1:{ports[name]},udp=127.0.0.1:{ports[peer]}"
        spec = VMSpec(memory="768M", cpus=1, rwdirs=[results],
                      qemu_opts=["-netdev", net, "-device", f"virtio-net-pci,netdev=l0,mac={node['mac']}"])
        inner = (f"cd {shlex.quote(TOP)} && PYTHONDONTWRITEBYTECODE=1 {shlex.quote(sys.executable)} "
                 f"-m tests.vm_two_nodes node {name} {results} > {results}/{name}.log 2>&1")
        out = open(os.path.join(results, f"{name}.vng.log"), "w")
        procs[name] = subprocess.Popen(vng_command(spec, kernel, inner), stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=TOP, env=vng_env())
    try:
        for name, p in procs.items():
            p.wait(timeout=max(1, timeout - (time.time() - t0)))
    except subprocess.TimeoutExpired:
        for p in procs.values():
            p.kill()
        raise VMError(f"the two-node scenario did not finish within {timeout:.0f} s (logs: {results})") from None
    wall = time.time() - t0
    rc = 0
    for name in NODES:
        path = os.path.join(results, f"{name}.json")
        if not os.path.exists(path):
            tail = _tail(os.path.join(results, f"{name}.vng.log")) + _tail(os.path.join(results, f"{name}.log"))
            raise VMError(f"{name} did not report (vng exit {procs[name].returncode}); its output ends:\n{tail}")
        with open(path) as f:
            checks = json.load(f)
        bad = [c for c in CHECKS if checks.get(c) is not True]
        print(f"[tests.vm_two_nodes] {name}: " + ", ".join(f"{c} {'ok' if checks.get(c) is True else 'FAILED'}"
                                                        for c in CHECKS) + f"; pod IP {checks.get('pod_ip')}")
        if bad:
            rc = 1
            print(json.dumps(checks, indent=1))
            print(f"--- {name}.log (end)\n{_tail(os.path.join(results, name + '.log'))}")
            print(f"--- {name}.daemon.log (end)\n{_tail(os.path.join(results, name + '.daemon.log'))}")
    print(f"[tests.vm_two_nodes] {'passed' if rc == 0 else 'FAILED'} in {wall:.0f} s; logs: {results}")
    return rc


def _tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-n:]) + "\n"
    except OSError as e:
        return f"({e})\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.vm_two_nodes", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    n = sub.add_parser("node", help="inside a VM: one node's part")
    n.add_argument("name", choices=sorted(NODES))
    n.add_argument("results")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if a.cmd == "node":
        return node_main(a.name, a.results)
    try:
        return run_scenario()
    except VMError as e:
        print(f"tests.vm_two_nodes: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
