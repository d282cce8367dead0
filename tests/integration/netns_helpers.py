"""Test-made network worlds for the netns tests: unique bridge/CIDR/chain prefix per test module,
pod network namespaces made with `ip netns`, an "outside host" netns on its own veth and subnet
routed via the node, sockets opened inside a namespace (setns in the calling thread), busybox
httpd servers, and the leak check. Traffic only ever goes to loopback or to addresses inside
namespaces made here.

Also a small CLI used by the tests as a separate process:
  python -m tests.integration.netns_helpers setup-many CONFIG_JSON THREADS UID=NETNS_PATH...
  python -m tests.integration.netns_helpers crash CONFIG_JSON STEP UID NETNS_PATH [PORTS_JSON]
  python -m tests.integration.netns_helpers pod-network CONFIG_JSON UID
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

BUSYBOX = shutil.which("busybox") or "/bin/busybox"     # busybox-static
NETNS_PREFIX = "kpytest-"


def run(cmd: str | list, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check, capture_output=True, text=True, **kw)


def _routed_24s() -> set[str]:
    out = run(["ip", "-4", "-o", "route", "show", "table", "all"]).stdout
    nets = set()
    for line in out.splitlines():
        dst = line.split()[0]
        if dst[0].isdigit():
            nets.add(dst)
    return nets


def free_subnets(n: int) -> list[ipaddress.IPv4Network]:
    """n distinct /24s in 10.250.0.0-10.251.255.0 that nothing on this host routes."""
    used = [ipaddress.ip_network(x, strict=False) for x in _routed_24s() if x != "default"]
    out: list[ipaddress.IPv4Network] = []
    while len(out) < n:
        cand = ipaddress.ip_network(f"10.{250 + secrets.randbelow(2)}.{secrets.randbelow(256)}.0/24")
        if cand in out or any(cand.overlaps(u) for u in used):
            continue
        out.append(cand)
    return out


def make_config(state_root: str, subnet: ipaddress.IPv4Network, **kw):
    from netns import NetworkConfig
    tag = secrets.token_hex(3)
    resolv = os.path.join(state_root, "host-resolv.conf")
    if not os.path.exists(resolv):
        os.makedirs(state_root, exist_ok=True)
        with open(resolv, "w") as f:
            f.write("nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n")
    base = dict(state_root=state_root, bridge=f"kpyt{tag}", gateway=f"{subnet.network_address + 1}/{subnet.prefixlen}",
                chain_prefix=f"KPYT{tag.upper()}", host_resolv_conf=resolv)
    base.update(kw)
    return NetworkConfig(**base)


def config_json(cfg) -> str:
    return json.dumps(dataclasses.asdict(cfg))


def config_from_json(text: str):
    from netns import NetworkConfig
    return NetworkConfig(**json.loads(text))


class Netns:
    """A network namespace made with `ip netns add` (pinned at /run/netns/<name>)."""

    def __init__(self, name: str):
        self.name = name
        self.path = f"/run/netns/{name}"

    @classmethod
    def create_many(cls, n: int, tag: str = "") -> list["Netns"]:
        tag = tag or secrets.token_hex(3)
        out = [cls(f"{NETNS_PREFIX}{tag}-{i}") for i in range(n)]
        run(["ip", "-batch", "-"], input="".join(f"netns add {ns.name}\n" for ns in out))
        return out

    @staticmethod
    def delete_many(nss) -> None:
        names = [ns.name for ns in nss if os.path.exists(ns.path)]
        if names:
            run(["ip", "-batch", "-"], input="".join(f"netns del {n}\n" for n in names), check=False)

    def exec(self, *argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.name, *argv], check=check, timeout=timeout)

    def popen(self, *argv: str) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def socket(self, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket that lives in this namespace (made there with setns, used from here)."""
        from netns import nsfs
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with nsfs.entered(fd):
                return socket.socket(socket.AF_INET, kind)
        finally:
            os.close(fd)


def http_get(ip: str, port: int, path: str = "/", ns: Netns | None = None, timeout: float = 3.0) -> str:
    """Body of GET http://ip:port/path, from the host or from inside `ns`."""
    s = ns.socket() if ns is not None else socket.socket()
    with s:
        s.settimeout(timeout)
        s.connect((ip, port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise AssertionError(f"GET http://{ip}:{port}{path}: {status!r}")
    return body.decode()


def write_site(d: str, index: str) -> str:
    """A web root with index.html and cgi-bin/ip (prints the client's address)."""
    os.makedirs(os.path.join(d, "cgi-bin"), exist_ok=True)
    with open(os.path.join(d, "index.html"), "w") as f:
        f.write(index)
    cgi = os.path.join(d, "cgi-bin", "ip")
    with open(cgi, "w") as f:
        # httpd listens on a v6 socket: REMOTE_ADDR is "[::ffff:a.b.c.d]"
        f.write('#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\n'
                'echo "$REMOTE_ADDR" | sed -e "s/^\\[::ffff://" -e "s/\\]$//" | tr -d "\\n"\n')
    os.chmod(cgi, 0o755)
    os.chmod(d, 0o755)
    return d


class Httpd:
    """busybox httpd in a namespace, listening on every address of it."""

    def __init__(self, ns: Netns, port: int, root: str, wait_ip: str = "127.0.0.1"):
        self.proc = ns.popen(BUSYBOX, "httpd", "-f", "-p", str(port), "-h", root)
        deadline = time.monotonic() + 10
        while True:
            try:
                http_get(wait_ip, port, "/", ns=ns, timeout=1)
                return
            except (OSError, AssertionError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"busybox httpd did not start in {ns.name} on {port}")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)


class Outside:
    """An "outside" host: its own netns on a veth whose host end has <subnet>.1 and whose inside
    end has <subnet>.2, with no route to the pod CIDR (so it cannot reach pods unless routed)."""

    def __init__(self, subnet: ipaddress.IPv4Network):
        tag = secrets.token_hex(3)
        self.ns = Netns(f"{NETNS_PREFIX}out-{tag}")
        self.link = f"kpyto{tag}"
        self.node_ip = str(subnet.network_address + 1)
        self.ip = str(subnet.network_address + 2)
        self.prefix = subnet.prefixlen
        run(["ip", "netns", "add", self.ns.name])
        run(f"ip link add {self.link} type veth peer name eth0 netns {self.ns.name} && "
            f"ip addr add {self.node_ip}/{self.prefix} dev {self.link} && ip link set {self.link} up && "
            f"ip -n {self.ns.name} addr add {self.ip}/{self.prefix} dev eth0 && "
            f"ip -n {self.ns.name} link set eth0 up && ip -n {self.ns.name} link set lo up")

    def route_to(self, cidr: str, add: bool = True) -> None:
        run(["ip", "-n", self.ns.name, "route", "add" if add else "del", cidr, "via", self.node_ip])

    def close(self) -> None:
        run(["ip", "link", "del", self.link], check=False)
        Netns.delete_many([self.ns])


def wait_port(ns: Netns, port: int) -> None:
    """Wait until something listens on tcp/<port> inside ns."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with ns.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} in {ns.name}")


# ---- what is left of a network ------------------------------------------------------------------

def links_of(cfg) -> list[str]:
    """`ip -o link` lines of this network: its bridge and every link whose alias names it."""
    out = run(["ip", "-o", "link"]).stdout.splitlines()
    return [line for line in out if f" {cfg.bridge}:" in line or f"bridge={cfg.bridge} " in line
            or f"master {cfg.bridge} " in line]


def saved_rules(cfg) -> list[str]:
    """`iptables-legacy-save` lines that mention this network's chain prefix."""
    out = run(["iptables-legacy-save"]).stdout.splitlines()
    return [line for line in out if cfg.chain_prefix + "-" in line]


def allocation_files(cfg) -> list[str]:
    out = []
    for d in (cfg.ipam_dir, cfg.hostports_dir):
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in os.listdir(d) if n not in ("lock", "last_reserved_ip")]
    return sorted(out)


def record_files(cfg) -> list[str]:
    d = cfg.records_dir
    return sorted(os.path.join(d, n) for n in os.listdir(d)) if os.path.isdir(d) else []


def base_only(cfg) -> bool:
    """True when the tables hold exactly our base chains and jumps (no pod rule at all)."""
    lines = saved_rules(cfg)
    p = cfg.chain_prefix
    allowed = (f":{p}-POSTROUTING ", f":{p}-HOSTPORTS ", f":{p}-FIREWALL ", f"-A {p}-POSTROUTING -m mark",
               f"-A {p}-FIREWALL ", "-A PREROUTING ", "-A OUTPUT ", "-A POSTROUTING ", "-A INPUT ")
    return all(line.startswith(allowed) for line in lines)


def assert_nothing_left(cfg, bridge_removed: bool = True) -> None:
    from netns import netlink
    netlink.wait_deleted()
    links = links_of(cfg)
    if bridge_removed:
        assert links == [], f"links left: {links}"
        assert saved_rules(cfg) == [], f"rules left: {saved_rules(cfg)}"
    else:
        assert [line for line in links if f" {cfg.bridge}:" not in line] == [], f"pod links left: {links}"
        assert base_only(cfg), f"pod rules left: {saved_rules(cfg)}"
    assert allocation_files(cfg) == [], f"allocations left: {allocation_files(cfg)}"
    assert record_files(cfg) == [], f"records left: {record_files(cfg)}"


# ---- separate-process helpers ---------------------------------------------------------------------

def _setup_many(cfg_json: str, threads: str, *pairs: str) -> None:
    from netns import setup_pod_network
    cfg = config_from_json(cfg_json)
    todo = [p.split("=", 1) for p in pairs]
    with ThreadPoolExecutor(int(threads)) as pool:
        nets = list(pool.map(lambda up: setup_pod_network(up[0], up[1], config=cfg), todo))
    print(json.dumps({n.pod_uid: n.ip for n in nets}))


def _crash(cfg_json: str, step: str, uid: str, path: str, ports_json: str = "[]") -> None:
    """Set up a pod and SIGKILL this process when `step` is reached (before it runs)."""
    from netns import iptables, netlink, network, podrecords
    targets = {"files": (network, "_pod_files"), "veth": (netlink, "create_veth"),
               "address": (netlink, "configure_pod"), "rules": (iptables, "apply"), "record": (podrecords, "write")}
    mod, name = targets[step]

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(mod, name, die)
    from netns import PodDNS
    network.setup_pod_network(uid, path, json.loads(ports_json), config=config_from_json(cfg_json),
                              pod=PodDNS(name="crash"), files_dir=os.path.join(config_from_json(cfg_json).state_root, "f"))
    print("not killed")


def _pod_network(cfg_json: str, uid: str) -> None:
    """What a restarted daemon learns of a pod's network: PodNetwork as JSON, or the error's
    class, kind and field."""
    from netns import NetnsError, pod_network
    try:
        net = pod_network(uid, config=config_from_json(cfg_json))
    except NetnsError as e:
        print(json.dumps({"error": type(e).__name__, "kind": e.kind, "field": e.field, "message": str(e)}))
        return
    print(json.dumps({"network": dataclasses.asdict(net), "repr": repr(net)}))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"setup-many": _setup_many, "crash": _crash, "pod-network": _pod_network}[cmd](*args)
