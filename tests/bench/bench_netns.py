#!/usr/bin/env python3
"""Pod network benchmarks, run by hand (never part of CI's pass/fail); prints ratios against peers.

    .venv/bin/python tests/bench/bench_netns.py [--runs N] [--pods N] [--no-cni]

1. Setup + teardown of one pod network (median of --runs, default 50), kubelet-py in-process vs
   the CNI `bridge` + `host-local` plugins (and + `portmap` for the hostPort case) from Debian's
   containernetworking-plugins, executed by hand with the same config (bridge, subnet, gateway,
   ipMasq, hairpin). Peers are interleaved run by run (this VM is noisy). Targets: setup and
   teardown each under 15 ms in-process.
2. The floor: `ip link add` of a veth pair (peer into the netns) and `ip link del`, as commands,
   and the same two netlink calls in-process.
3. 100 pods set up in a row (each in its own netns): total time, the first and last tenth's
   median setup, and the number of iptables commits (must be O(pods)).
Root only. Everything lives in test-named objects (bridge kpyb*, netns kpytest-bench-*, chains
KPYB*, CNI's own chains) and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

from netns import NetworkConfig, iptables, netlink, remove_network, setup_pod_network, teardown_pod_network  # noqa: E402
from tests.integration.netns_helpers import Netns, free_subnets, run  # noqa: E402

CNI_PATH = "/usr/lib/cni"


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def row(label: str, xs: list[float], ref: float | None = None, ref_name: str = "") -> None:
    ratio = f"  {med(xs) / ref:5.2f}x {ref_name}" if ref else ""
    print(f"  {label:<58} median {med(xs) * 1000:7.2f} ms  (min {min(xs) * 1000:6.2f}, n={len(xs)}){ratio}")


class Cni:
    """The CNI plugins executed by hand, as a runtime would."""

    def __init__(self, bridge: str, subnet, work: str, hostport: int | None):
        self.work = work
        self.hostport = hostport
        self.net = {"cniVersion": "1.0.0", "name": "kpybench", "type": "bridge", "bridge": bridge,
                    "isGateway": True, "ipMasq": True, "hairpinMode": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": str(subnet),
                                                                 "gateway": str(subnet.network_address + 1)}]],
                             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": os.path.join(work, "ipam")}}

    def _exec(self, plugin: str, command: str, conf: dict, netns: str, cid: str) -> str:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
               "CNI_PATH": CNI_PATH, "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        r = subprocess.run([os.path.join(CNI_PATH, plugin)], input=json.dumps(conf), env=env,
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"CNI {plugin} {command}: {r.stdout} {r.stderr}")
        return r.stdout

    def _portmap_conf(self, prev: dict | None) -> dict:
        conf = {"cniVersion": "1.0.0", "name": "kpybench", "type": "portmap", "snat": True,
                "capabilities": {"portMappings": True},
                "runtimeConfig": {"portMappings": [{"hostPort": self.hostport, "containerPort": 8080,
                                                    "protocol": "tcp"}]}}
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def add(self, netns: str, cid: str) -> None:
        out = json.loads(self._exec("bridge", "ADD", self.net, netns, cid))
        if self.hostport:
            self._exec("portmap", "ADD", self._portmap_conf(out), netns, cid)

    def delete(self, netns: str, cid: str) -> None:
        if self.hostport:
            self._exec("portmap", "DEL", self._portmap_conf(None), netns, cid)
        self._exec("bridge", "DEL", self.net, netns, cid)


def cni_chains() -> set[str]:
    out = set()
    for tool in ("iptables-save", "iptables-legacy-save"):
        if shutil.which(tool):
            r = subprocess.run([tool], capture_output=True, text=True)
            out |= {(tool, line.split()[0][1:]) for line in r.stdout.splitlines() if line.startswith(":CNI-")}
    return out


def remove_cni_chains(before: set) -> None:
    """Remove the CNI chains (and jumps to them) this run created, in whichever backend."""
    for tool, chain in sorted(cni_chains() - before):
        ipt = tool.replace("-save", "")
        for table in ("nat", "filter"):
            save = subprocess.run([tool, "-t", table], capture_output=True, text=True).stdout
            for line in save.splitlines():
                if line.startswith("-A ") and f"-j {chain}" in line and not line.startswith(f"-A {chain} "):
                    subprocess.run([ipt, "-t", table, "-D"] + shlex.split(line)[1:], capture_output=True)
    for tool, chain in sorted(cni_chains() - before):
        ipt = tool.replace("-save", "")
        for table in ("nat", "filter"):
            subprocess.run([ipt, "-t", table, "-F", chain], capture_output=True)
            subprocess.run([ipt, "-t", table, "-X", chain], capture_output=True)


def nft_tables() -> set[str]:
    if not shutil.which("nft"):
        return set()
    r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return {line.strip() for line in r.stdout.splitlines() if line.startswith("table ")}


def remove_new_nft_tables(before: set[str]) -> None:
    """iptables-nft (CNI's backend here) creates `table ip nat` etc.; drop the ones this run
    created once they hold no rule."""
    for t in sorted(nft_tables() - before):
        listing = subprocess.run(["nft", "list"] + t.split(), capture_output=True, text=True).stdout
        if not any(line.strip().startswith(("ip ", "meta ", "counter", "jump", "masquerade", "dnat", "tcp", "udp"))
                   for line in listing.splitlines()):
            subprocess.run(["nft", "delete"] + t.split(), capture_output=True)


def one_pod(args, work: str, ns: Netns, hostport: int | None) -> None:
    subnet_k, subnet_c = free_subnets(2)
    tag = secrets.token_hex(2)
    cfg = NetworkConfig(state_root=os.path.join(work, f"kpy-{tag}"), bridge=f"kpyb{tag}",
                        gateway=f"{subnet_k.network_address + 1}/24", chain_prefix=f"KPYB{tag.upper()}")
    ports = [{"containerPort": 8080, "hostPort": hostport}] if hostport else []
    cni = Cni(f"kpybc{tag}", subnet_c, os.path.join(work, f"cni-{tag}"), hostport) if not args.no_cni else None
    ks, kt, kn, cs, ct = [], [], [], [], []
    try:
        # warm both (first iptables rule build loads xtables extensions; first exec of a plugin)
        setup_pod_network("bench", ns.path, ports, config=cfg)
        teardown_pod_network("bench", config=cfg)
        if cni:
            cni.add(ns.path, "bench0")
            cni.delete(ns.path, "bench0")
        for i in range(args.runs):
            t0 = time.perf_counter()
            setup_pod_network("bench", ns.path, ports, config=cfg)
            t1 = time.perf_counter()
            teardown_pod_network("bench", config=cfg)
            t2 = time.perf_counter()
            ks.append(t1 - t0)
            kt.append(t2 - t1)
            setup_pod_network("bench", ns.path, ports, config=cfg)
            t3 = time.perf_counter()
            teardown_pod_network("bench", config=cfg, wait=False)
            kn.append(time.perf_counter() - t3)
            netlink.wait_deleted()
            if cni:
                t0 = time.perf_counter()
                cni.add(ns.path, f"bench{i + 1}")
                t1 = time.perf_counter()
                cni.delete(ns.path, f"bench{i + 1}")
                cs.append(t1 - t0)
                ct.append(time.perf_counter() - t1)
    finally:
        teardown_pod_network("bench", config=cfg)
        remove_network(cfg)
        if cni:
            run(["ip", "link", "del", cni.net["bridge"]], check=False)
    what = "with a hostPort" if hostport else "no hostPort"
    peer = "bridge+host-local" + ("+portmap" if hostport else "")
    print(f"\n== one pod network, {what} (kubelet-py in-process vs CNI {peer} exec'd)")
    if cs:
        row(f"CNI ADD ({peer})", cs)
        row(f"CNI DEL ({peer})", ct)
        row("CNI ADD + DEL", [a + b for a, b in zip(cs, ct)])
    row("kubelet-py setup_pod_network", ks, med(cs) if cs else None, "CNI ADD")
    row("kubelet-py teardown_pod_network (wait=True)", kt, med(ct) if ct else None, "CNI DEL")
    row("kubelet-py teardown_pod_network (wait=False)", kn, med(ct) if ct else None, "CNI DEL")
    row("kubelet-py setup + teardown (wait=True)", [a + b for a, b in zip(ks, kt)],
        med([a + b for a, b in zip(cs, ct)]) if cs else None, "CNI ADD+DEL")
    for label, xs in (("setup", ks), ("teardown wait=True", kt), ("teardown wait=False", kn)):
        verdict = "meets" if med(xs) < 0.015 else "MISSES"
        print(f"  target: {label} under 15 ms: {verdict} ({med(xs) * 1000:.2f} ms)")


def floor(args, ns: Netns) -> None:
    name = "kpyfloor" + secrets.token_hex(2)
    add, dele, padd, pdel = [], [], [], []
    ipr = netlink._host()
    fd = os.open(ns.path, os.O_RDONLY)
    try:
        for _ in range(args.runs):
            t0 = time.perf_counter()
            run(["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns.name])
            t1 = time.perf_counter()
            run(["ip", "link", "del", name])
            t2 = time.perf_counter()
            add.append(t1 - t0)
            dele.append(t2 - t1)
            t0 = time.perf_counter()
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
            t1 = time.perf_counter()
            ipr.link("del", ifname=name)
            t2 = time.perf_counter()
            padd.append(t1 - t0)
            pdel.append(t2 - t1)
    finally:
        os.close(fd)
        run(["ip", "link", "del", name], check=False)
    print("\n== floor: a veth pair with its peer in the pod netns")
    row("`ip link add ... type veth peer ... netns` (command)", add)
    row("`ip link del` of it (command)", dele)
    row("RTM_NEWLINK veth in-process (pyroute2)", padd)
    row("RTM_DELLINK veth in-process (pyroute2): the kernel's cost", pdel)


def many(args, work: str) -> None:
    (subnet,) = free_subnets(1)
    tag = secrets.token_hex(2)
    cfg = NetworkConfig(state_root=os.path.join(work, f"many-{tag}"), bridge=f"kpyb{tag}",
                        gateway=f"{subnet.network_address + 1}/24",
                        chain_prefix=f"KPYB{tag.upper()}")
    spaces = Netns.create_many(args.pods, tag=f"bench-{tag}")
    times = []
    try:
        setup_pod_network("warm", spaces[0].path, config=cfg)
        teardown_pod_network("warm", config=cfg)
        c0 = sum(iptables.commits.values())
        t_all = time.perf_counter()
        for i, ns in enumerate(spaces):
            t0 = time.perf_counter()
            setup_pod_network(f"many-{i}", ns.path, [{"containerPort": 80, "hostPort": 20000 + i}] if i % 2 else [],
                              config=cfg)
            times.append(time.perf_counter() - t0)
        total = time.perf_counter() - t_all
        n_commits = sum(iptables.commits.values()) - c0
        t_down = time.perf_counter()
        for i in range(len(spaces)):
            teardown_pod_network(f"many-{i}", config=cfg, wait=False)
        netlink.wait_deleted()
        down = time.perf_counter() - t_down
    finally:
        remove_network(cfg)
        Netns.delete_many(spaces)
    k = max(1, len(times) // 10)
    print(f"\n== {args.pods} pods set up in a row (every other one with a hostPort)")
    print(f"  total {total * 1000:.0f} ms; per pod: first {k} median {med(times[:k]) * 1000:.2f} ms, "
          f"last {k} median {med(times[-k:]) * 1000:.2f} ms")
    print(f"  iptables commits: {n_commits} for {args.pods} pods ({n_commits / args.pods:.2f} per pod; "
          f"O(pods): one nat commit per pod, one filter commit for the first hostPort)")
    print(f"  teardown of all (wait=False, then waiting for the deletes): {down * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--no-cni", action="store_true", help="skip the CNI peers")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_netns: needs root")
    if not args.no_cni and not os.path.exists(os.path.join(CNI_PATH, "bridge")):
        sys.exit("bench_netns: apt-get install containernetworking-plugins (or --no-cni)")
    work = tempfile.mkdtemp(prefix="kpy-bench-netns-")
    before = cni_chains()
    tables_before = nft_tables()
    (ns,) = Netns.create_many(1, tag=f"bench-{secrets.token_hex(2)}")
    try:
        print(f"kubelet-py netns benchmark: {args.runs} runs, kernel {os.uname().release}, {os.cpu_count()} CPUs")
        one_pod(args, work, ns, None)
        one_pod(args, work, ns, 18000 + secrets.randbelow(1000))
        floor(args, ns)
        many(args, work)
    finally:
        Netns.delete_many([ns])
        remove_cni_chains(before)
        remove_new_nft_tables(tables_before)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
