#!/usr/bin/env python3
"""Service rule benchmarks, run by hand (never part of CI's pass/fail); prints ratios against the
floor measured in the same run.

    .venv/bin/python tests/bench/bench_services.py [--services 1000] [--endpoints 10] [--runs 3]
                                                   [--changes 10] [--conns 2000] [--no-iptc] [--no-nft]

1. Full sync of N Services x M endpoints into empty tables: ServiceProxy (planning, reading the
   live tables, rendering, one `iptables-legacy-restore --noflush`) against the floor: the same
   rules, as one iptables-restore input in kube-proxy's format (chain lines, rules, COMMIT per
   table), loaded by `iptables-legacy-restore --noflush` alone. Target: within 2x of the floor.
   The same with the rules already in place (a restarted daemon's first sync). The
   python-iptables applier (backend "iptc", one libiptc commit per table) once, for the choice.
   Then the same for the "nft" backend (serve --services-iptables nft): ServiceProxy with
   `iptables-nft-restore --noflush` against that tool alone on the same text.
2. One endpoint change with all of that in place (incremental: only the Service's SVC chain
   rewritten, one SEP chain added and one removed), both legacy appliers, against restore of the
   same delta alone; then the nft backend against `iptables-nft-restore --noflush` of the same
   delta. Target: under 100 ms (the legacy kernel API replaces the whole table on each commit,
   its floor alone is over it; nf_tables applies the delta).
3. Connection rate (TCP connect + close, sequential, from a client pod) to a backend pod through
   a ClusterIP (with all N Services in place; one Service sorting first in P-SERVICES, one last:
   a new connection's first packet walks P-SERVICES rule by rule) against direct to the pod IP;
   interleaved batches. Target: within 10%.

Root only. Everything runs in a network namespace of its own (its own legacy and nf_tables
tables, bridge and pods), made here and removed at the end: the host's tables never hold the
30,000 rules.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

from netns import (Endpoint, NetworkConfig, ServicePort, ServiceProxy, remove_network, services,  # noqa: E402
                   setup_pod_network, teardown_pod_network)
from netns.servicesync import _gc_paused  # noqa: E402
from tests.integration.netns_helpers import Netns, run  # noqa: E402

RESTORE = {"legacy": "iptables-legacy-restore", "nft": "iptables-nft-restore"}
BACKEND = {"legacy": "restore", "nft": "nft"}       # ServiceProxy's backend writing each family
EMPTY = "*filter\nCOMMIT\n*nat\nCOMMIT\n"      # without --noflush: every chain flushed, ours deleted


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def row(label: str, xs: list[float], ref: float | None = None, ref_name: str = "") -> None:
    ratio = f"  {med(xs) / ref:5.2f}x {ref_name}" if ref else ""
    print(f"  {label:<62} median {med(xs) * 1000:9.1f} ms  (min {min(xs) * 1000:8.1f}, n={len(xs)}){ratio}",
          flush=True)


def restore(text: str, noflush: bool = True, family: str = "legacy") -> float:
    t0 = time.perf_counter()
    subprocess.run([RESTORE[family], "-w", "5"] + (["--noflush"] if noflush else []), input=text.encode(), check=True)
    return time.perf_counter() - t0


def reset() -> None:
    """Both families empty (a proxy's first sync also clears ours from the family it does not write)."""
    for family in RESTORE:
        restore(EMPTY, noflush=False, family=family)


def synthetic(n: int, m: int, real: tuple[str, str] | None = None):
    """n ClusterIP Services (every 10th with a NodePort) of m endpoints each, in 10.96.0.0/12 and
    10.245.0.0/16 (addresses nobody answers). `real`: (ClusterIP key suffix, pod IP) of one more
    Service sorting last, backed by a real pod."""
    sps, eps = [], {}
    cips = ipaddress.ip_network("10.96.0.0/12").hosts()
    next(cips)
    pods = ipaddress.ip_network("10.245.0.0/16").hosts()
    for i in range(n):
        sp = ServicePort(f"ns{i % 20}", f"svc{i:05d}", "http", "TCP", str(next(cips)), 80,
                         node_port=30000 + i if i % 10 == 0 else None)
        sps.append(sp)
        eps[sp.key] = [Endpoint(str(next(pods)), 8080) for _ in range(m)]
    if real:       # real = ((ClusterIP first, ClusterIP last), pod IP): first and last in P-SERVICES
        for ns, ip in (("00-bench", real[0][0]), ("zz-bench", real[0][1])):
            sp = ServicePort(ns, "target", "", "TCP", ip, 80)
            sps.append(sp)
            eps[sp.key] = [Endpoint(real[1], 8080)]
    return sps, eps


def full_sync(args, cfg) -> None:
    print(f"\n1. full sync of {args.services} Services x {args.endpoints} endpoints into empty tables", flush=True)
    sps, eps = synthetic(args.services, args.endpoints)
    with _gc_paused():               # as ServiceProxy plans
        t0 = time.perf_counter()
        rules = services.plan(cfg, sps, eps)
        t_plan = time.perf_counter() - t0
    text = rules.render()
    n_rules = sum(len(c.rules) for cs in rules.chains.values() for c in cs)
    n_chains = sum(len(cs) for cs in rules.chains.values())
    print(f"  {n_chains} chains, {n_rules} rules, {len(text) / 1e6:.1f} MB of restore input; planning alone "
          f"{t_plan * 1000:.0f} ms", flush=True)
    for family in args.families:
        tool, backend = RESTORE[family], BACKEND[family]
        floor, ours = [], []
        for _ in range(args.runs):          # interleaved, each into empty tables
            reset()
            floor.append(restore(text, family=family))
            reset()
            p = ServiceProxy(cfg, backend=backend)
            t0 = time.perf_counter()
            r = p.sync(sps, eps)
            ours.append(time.perf_counter() - t0)
            assert r.full and len(r.written) == n_chains
        row(f"floor: {tool} --noflush of the same rules", floor)
        row(f"ServiceProxy full sync ({backend} applier)", ours, med(floor), "floor")
        # a restarted daemon: the same rules already in place, a fresh proxy (reads the live tables,
        # rewrites every chain of ours)
        floor2, ours2 = [], []
        for _ in range(args.runs):
            floor2.append(restore(text, family=family))
            t0 = time.perf_counter()
            ServiceProxy(cfg, backend=backend).sync(sps, eps)
            ours2.append(time.perf_counter() - t0)
        row(f"floor ({family}), the same rules already in place", floor2)
        row(f"ServiceProxy full sync, new proxy, rules in place ({backend})", ours2, med(floor2), "floor")
        if args.iptc and family == "legacy":
            reset()
            p = ServiceProxy(cfg, backend="iptc")
            t0 = time.perf_counter()
            p.sync(sps, eps)
            row("ServiceProxy full sync (python-iptables applier), once", [time.perf_counter() - t0], med(floor),
                "floor")


def incremental(args, cfg) -> None:
    print(f"\n2. one endpoint change with {args.services} x {args.endpoints} in place", flush=True)
    for family in args.families:
        sps, eps = synthetic(args.services, args.endpoints)
        reset()
        p = ServiceProxy(cfg, backend=BACKEND[family])
        p.sync(sps, eps)
        key = sps[len(sps) // 2].key
        first = eps[key][0]
        spare = Endpoint("10.246.0.1", 8080)
        backends = [BACKEND[family]] + (["iptc"] if args.iptc and family == "legacy" else [])
        results: dict[str, list[float]] = {b: [] for b in backends}
        floor = []
        for i in range(args.changes):
            for backend in backends:       # the appliers write the same deltas; the plan applied is shared
                p.backend = backend
                old = p.applied
                eps[key][0] = spare if eps[key][0] == first else first
                t0 = time.perf_counter()
                r = p.sync(sps, eps)
                results[backend].append(time.perf_counter() - t0)
                assert not r.full and len(r.written) == 2 and len(r.deleted) == 1, r     # SVC + new SEP; old SEP
                # the floor: the same delta by restore alone, once more (it is idempotent: the chain
                # lines create or flush, the removed chain is made and deleted again)
                floor.append(restore(services.restore_text(services.delta(cfg, p.applied, old)), family=family))
        row(f"floor: {RESTORE[family]} --noflush of the same delta", floor)
        row(f"ServiceProxy incremental sync ({BACKEND[family]} applier)", results[BACKEND[family]], med(floor), "floor")
        if "iptc" in results:
            row("ServiceProxy incremental sync (python-iptables applier)", results["iptc"], med(floor), "floor")


class AcceptLoop:
    """A TCP server in a pod netns: accepts and closes, from a thread here."""

    def __init__(self, ns: Netns, port: int):
        self.sock = ns.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen(512)
        self.sock.settimeout(0.5)
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            c.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def rate(ns: Netns, ip: str, port: int, n: int) -> float:
    """Connections per second: n sequential connect + close from ns."""
    t0 = time.perf_counter()
    for _ in range(n):
        s = ns.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST: no TIME_WAIT pile-up
        s.connect((ip, port))
        s.close()
    return n / (time.perf_counter() - t0)


def connections(args, cfg) -> None:
    print(f"\n3. connection rate through a ClusterIP ({args.services} Services in place) vs direct to the pod",
          flush=True)
    reset()
    client, server = Netns.create_many(2, "bench-svc-" + secrets.token_hex(2))
    loop = None
    try:
        setup_pod_network("bench-client", client.path, config=cfg)
        srv_ip = setup_pod_network("bench-server", server.path, config=cfg).ip
        loop = AcceptLoop(server, 8080)
        first, last = "10.111.255.253", "10.111.255.254"
        sps, eps = synthetic(args.services, args.endpoints, real=((first, last), srv_ip))
        p = ServiceProxy(cfg)
        p.sync(sps, eps)
        paths = (("direct to the pod IP", srv_ip, 8080), ("ClusterIP, first rule of P-SERVICES", first, 80),
                 ("ClusterIP, last rule of P-SERVICES", last, 80))
        for _, ip, port in paths:                # warm up
            rate(client, ip, port, 200)
        got: dict[str, list[float]] = {label: [] for label, _, _ in paths}
        batch = max(args.conns // 7, 100)
        for _ in range(7):                       # interleaved batches
            for label, ip, port in paths:
                got[label].append(rate(client, ip, port, batch))
        d = med(got[paths[0][0]])
        for label, _, _ in paths:
            v = med(got[label])
            print(f"  {label:<40} median {v:8.0f} conn/s  {v / d:5.2f}x direct "
                  f"(batches of {batch}, n=7)", flush=True)
    finally:
        if loop:
            loop.close()
        for uid in ("bench-client", "bench-server"):
            teardown_pod_network(uid, config=cfg)
        Netns.delete_many([client, server])


def child(args) -> None:
    tag = secrets.token_hex(3)
    work = tempfile.mkdtemp(prefix="kpy-bench-svc-")
    cfg = NetworkConfig(state_root=work, bridge=f"kpyb{tag}", gateway="10.244.0.1/16", chain_prefix="KPY",
                        host_resolv_conf="/dev/null")
    run(["ip", "link", "set", "lo", "up"])
    try:
        full_sync(args, cfg)
        incremental(args, cfg)
        connections(args, cfg)
    finally:
        reset()
        remove_network(cfg)
        run(["rm", "-rf", work])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--no-iptc", dest="iptc", action="store_false")
    ap.add_argument("--no-nft", dest="families", action="store_const", const=("legacy",), default=("legacy", "nft"),
                    help="only the legacy tables (no iptables-nft-restore)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only")
    if args.child:
        child(args)
        return
    ns = f"kpytest-bench-svc-{secrets.token_hex(3)}"
    run(["ip", "netns", "add", ns])
    try:
        print(f"bench_services: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, netns {ns}, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--child",
                        *sys.argv[1:]], check=True)
    finally:
        run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
