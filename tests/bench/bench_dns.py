#!/usr/bin/env python3
"""Cluster DNS benchmark, run by hand (never part of CI's pass/fail).

    .venv/bin/python tests/bench/bench_dns.py [--seconds 5] [--rate 5000] [--services 1000]

The server under test runs in its own process pinned to one core (the last allowed CPU); the
load generator runs here, pinned to another, with one UDP socket and a fixed send schedule
(open loop: queries leave at --rate whether or not answers came back, so a slow server shows
as latency and loss, not as a politely slower client). Latency is send-to-receive per query.

Rows, each measured in this same run:
  floor    a raw UDP echo server on the same asyncio loop (what Python's datagram path costs)
  hot      cluster names with the answer cache on (a name asked again is a dict lookup)
  cold     the same names, cache off: every query parsed, resolved and packed with dnslib
  nx       names under the search path that do not exist (what ndots:5 makes clients ask)
  max      the most answers per second with 64 queries in flight (closed loop), cache off

Target (issue 19): 5,000 qps on one core with p99 under 5 ms. The server's CPU use is read from
/proc, so "qps per core" is answers / CPU-seconds of the server process.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import select
import socket
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

from dnslib import DNSRecord  # noqa: E402

from kubelet_py.dns import DNSServer, Resolver  # noqa: E402
from kubelet_py.services.endpoints import controller_slices  # noqa: E402

HOST = "127.0.0.31"


def world(n: int):
    services, pods = [], []
    for i in range(n):
        name = f"svc{i}"
        services.append({"kind": "Service", "metadata": {"name": name, "namespace": "default", "uid": f"u{i}"},
                         "spec": {"type": "ClusterIP", "selector": {"app": name},
                                  "clusterIP": f"10.96.{i // 250 + 1}.{i % 250 + 1}",
                                  "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}})
        pods.append({"metadata": {"name": f"p{i}", "namespace": "default", "labels": {"app": name}, "uid": f"p{i}"},
                     "spec": {"nodeName": "n"},
                     "status": {"phase": "Running", "podIP": f"10.244.{i // 250}.{i % 250 + 1}",
                                "conditions": [{"type": "Ready", "status": "True"}]}})
    slices = [s for svc in services for s in controller_slices(svc, pods)]
    return Resolver.build(services, slices, pods, ["default"])


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def favour() -> None:
    """As root, run ahead of the neighbours' processes on this shared machine (nice -10), so
    the rows measure the server rather than whoever else has the core."""
    try:
        os.nice(-10)
    except PermissionError:
        pass  # not root: measured at normal priority, noisier


def serve(kind: str, port: int, cpu: int, services: int, ready) -> None:
    os.sched_setaffinity(0, {cpu})
    favour()

    async def main():
        loop = asyncio.get_running_loop()
        if kind == "echo":
            await loop.create_datagram_endpoint(Echo, local_addr=(HOST, port))
        else:
            server = DNSServer(world(services), [], cache=(kind == "hot"))
            await server.start(HOST, port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queries(names: list[str]) -> list[bytes]:
    return [DNSRecord.question(n, "A").pack() for n in names]


def open_loop(port: int, packets: list[bytes], rate: int, seconds: float) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.connect((HOST, port))
    s.setblocking(False)
    sent_at: dict[int, float] = {}
    lat: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter()
    i = 0
    while True:
        now = time.perf_counter()
        due = min(total, int((now - start) * rate) + 1)
        while i < due:
            qid = i & 0xFFFF
            pkt = packets[i % len(packets)]
            s.send(qid.to_bytes(2, "big") + pkt[2:])
            sent_at[qid] = time.perf_counter()
            i += 1
        r, _, _ = select.select([s], [], [], 0.0005)
        if r:
            while True:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    break
                t = sent_at.pop(int.from_bytes(data[:2], "big"), None)
                if t is not None:
                    lat.append(time.perf_counter() - t)
        if i >= total and (not sent_at or time.perf_counter() - start > seconds + 1.0):
            break
    s.close()
    return {"sent": total, "answered": len(lat), "elapsed": seconds, "lat": lat}


def closed_loop(port: int, packets: list[bytes], seconds: float, window: int = 64) -> float:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((HOST, port))
    s.settimeout(1.0)
    n, i = 0, 0
    for _ in range(window):
        s.send(packets[i % len(packets)])
        i += 1
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            s.recv(4096)
        except socket.timeout:
            s.send(packets[i % len(packets)])  # a lost one: keep the window full
            i += 1
            continue
        n += 1
        s.send(packets[i % len(packets)])
        i += 1
    s.close()
    return n / (time.perf_counter() - start)


def run_server(kind: str, services: int, cpu: int):
    port = 20000 + random.randrange(20000)
    ready = multiprocessing.Event()
    p = multiprocessing.Process(target=serve, args=(kind, port, cpu, services, ready), daemon=True)
    p.start()
    if not ready.wait(60):
        p.terminate()
        raise SystemExit(f"{kind} server did not start")
    return p, port


def p99_of(res: dict) -> float:
    lat = sorted(res["lat"])
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("inf")


def report(label: str, res: dict, cpu: float, floor: dict | None) -> None:
    lat = sorted(res["lat"])
    if not lat:
        print(f"  {label:<6} no answers")
        return
    qps = res["answered"] / res["elapsed"]
    p50, p99 = lat[len(lat) // 2] * 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    loss = 100.0 * (res["sent"] - res["answered"]) / res["sent"]
    per_core = res["answered"] / cpu if cpu > 0 else float("nan")
    extra = ""
    if floor is not None and floor["lat"]:
        fl = sorted(floor["lat"])
        extra = f"  p99 {p99 / (fl[int(len(fl) * 0.99)] * 1000):4.1f}x floor"
    print(f"  {label:<6} answered {qps:8.0f} qps  loss {loss:5.2f}%  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  "
          f"server CPU {cpu / res['elapsed'] * 100:5.1f}%  ({per_core:8.0f} answers per CPU-second){extra}")


def in_process(services: int, names: list[str], nx: list[str]) -> None:
    """The server's own cost per answer without sockets (best of 5 x 10,000 calls): what one core
    can answer at most, whatever the neighbours do to the rows above."""
    resolver = world(services)
    print("  in-process cost per answer (no sockets, best of 5):")
    for label, cache, pkts in (("hot", True, queries(names)), ("cold", False, queries(names)),
                               ("nx", False, queries(nx))):
        server = DNSServer(resolver, [], cache=cache)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for i in range(10000):
                server.answer_local(pkts[i % len(pkts)], udp=True)
            best = min(best, (time.perf_counter() - t) / 10000)
        print(f"    {label:<5} {best * 1e6:6.1f} us  = {1 / best:8.0f} answers per core-second")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = cpus[-1], cpus[0]
    os.sched_setaffinity(0, {client_cpu})
    favour()
    print(f"cluster DNS benchmark: {args.services} Services, {args.rate} qps offered for {args.seconds:.0f} s per row, "
          f"server on CPU {server_cpu}, client on CPU {client_cpu}")
    names = [f"svc{random.randrange(args.services)}.default.svc.cluster.local" for _ in range(2000)]
    nx = [f"svc{i}.example.com.default.svc.cluster.local" for i in range(2000)]
    rows: dict[str, list[tuple[dict, float]]] = {}
    for _ in range(args.runs):  # kinds interleaved run by run: this machine is shared and noisy
        for kind, packets in (("echo", queries(names)), ("hot", queries(names)), ("cold", queries(names)),
                              ("nx", queries(nx))):
            server = "echo" if kind == "echo" else ("hot" if kind == "hot" else "cold")
            p, port = run_server(server, args.services, server_cpu)
            try:
                c0 = cpu_seconds(p.pid)
                res = open_loop(port, packets, args.rate, args.seconds)
                cpu = cpu_seconds(p.pid) - c0
            finally:
                p.terminate()
                p.join()
            rows.setdefault(kind, []).append((res, cpu))
    print(f"(each row: the run of median p99 out of {args.runs})")
    floor = None
    for kind, runs in rows.items():
        runs.sort(key=lambda rc: p99_of(rc[0]))
        res, cpu = runs[len(runs) // 2]
        if kind == "echo":
            floor = res
        report("floor" if kind == "echo" else kind, res, cpu, None if kind == "echo" else floor)
    p, port = run_server("cold", args.services, server_cpu)
    try:
        c0 = cpu_seconds(p.pid)
        qps = closed_loop(port, queries(names), args.seconds)
        cpu = cpu_seconds(p.pid) - c0
    finally:
        p.terminate()
        p.join()
    print(f"  max    {qps:8.0f} qps answered with 64 in flight, cache off (server CPU {cpu / args.seconds * 100:.0f}%)")
    in_process(args.services, names, nx)
    print("target: 5000 qps on one core, p99 < 5 ms")


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    main()
