"""The podman peer of tests/bench/bench_kubelet.py: Debian's podman (runc, netavark) with the
isolated configuration of ../shared/peers/common.sh (its `podman_env`, reused as is), a store of
its own holding the built-in busybox image under the same name as kubelet-py's, a network of its
own (a private subnet and bridge name, so that nothing collides with another run), and the
host state podman leaves behind (../shared/peers/README.md, problem 6) put back at the end.

    host = HostState.snapshot()          before podman ever runs
    pm = Podman(work_dir, subnet); pm.setup(oci_layout_dir)
    pm.run("kube", "play", "--network", pm.network, "pod.yaml")
    pm.cleanup(); host.restore()
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shlex
import shutil
import subprocess
import time

PEERS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                     "shared", "peers")
IMAGE = "kubelet-py.local/busybox:1.35"
NETNS_DIR = "/run/netns"
AARDVARK_DIR = "/run/containers/networks"


def _chains(save: str, prefixes=("NETAVARK", "CNI-")) -> list[str]:
    return [ln[1:].split()[0] for ln in save.splitlines() if ln.startswith(":") and ln[1:].startswith(prefixes)]


def _nft_tables() -> list[str]:
    if not shutil.which("nft"):
        return []
    p = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return [ln.strip() for ln in p.stdout.splitlines() if ln.strip()]


class HostState:
    """What podman/netavark change on the host outside their store, taken before the run, and put
    back after it (as ../shared/peers/bench.sh's snapshot/cleanup): NETAVARK chains and the jumps to
    them (iptables-nft), nft tables created by iptables-nft, libpod_parent cgroups, ip_forward,
    netavark's /run/containers/networks, bridges."""

    def __init__(self):
        self.ip_forward = ""
        self.fw_preexisting = True
        self.nft_tables: list[str] = []
        self.libpod_parent: set[str] = set()
        self.links: set[str] = set()
        self.aardvark_dir = True

    @classmethod
    def snapshot(cls) -> "HostState":
        s = cls()
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            s.ip_forward = f.read().strip()
        save = subprocess.run(["iptables-nft-save"], capture_output=True, text=True).stdout
        s.fw_preexisting = bool(_chains(save))
        s.nft_tables = _nft_tables()
        s.libpod_parent = set(glob.glob("/sys/fs/cgroup/*/libpod_parent"))
        s.links = set(_links())
        s.aardvark_dir = os.path.exists(AARDVARK_DIR)
        return s

    def restore(self) -> list[str]:
        """Put back what podman changed; what was removed, one line each."""
        done = []
        if not self.fw_preexisting:
            done += _remove_podman_chains()
        for t in _nft_tables():
            fam, name = t.split()[1:3]
            if t in self.nft_tables or fam != "ip":
                continue
            rules = subprocess.run(["iptables-nft-save", "-t", name], capture_output=True, text=True).stdout
            if not any(ln.startswith("-A") for ln in rules.splitlines()):
                subprocess.run(["nft", "delete", "table", fam, name], capture_output=True)
                done.append(f"nft table {fam} {name}")
        for h in glob.glob("/sys/fs/cgroup/*/libpod_parent"):
            if h in self.libpod_parent:
                continue
            for dirpath, _dirs, _files in sorted(os.walk(h), key=lambda x: -len(x[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
            done.append(f"cgroup {h}" + (" (still busy)" if os.path.isdir(h) else ""))
        for link in _links():
            if link not in self.links and link.startswith("kpybp"):
                subprocess.run(["ip", "link", "del", link], capture_output=True)
                done.append(f"link {link}")
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() != self.ip_forward:
                with open("/proc/sys/net/ipv4/ip_forward", "w") as w:
                    w.write(self.ip_forward)
                done.append(f"ip_forward back to {self.ip_forward}")
        if not self.aardvark_dir and os.path.isdir(AARDVARK_DIR):
            shutil.rmtree(AARDVARK_DIR, ignore_errors=True)
            done.append(AARDVARK_DIR)
        return done


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [ln.split(": ")[1].split("@")[0] for ln in out.splitlines() if ": " in ln]


def _remove_podman_chains() -> list[str]:
    """Every jump to and every chain named NETAVARK*/CNI-* of iptables-nft (netavark uses it)."""
    done = []
    for table in ("filter", "nat", "mangle", "raw"):
        save = subprocess.run(["iptables-nft-save", "-t", table], capture_output=True, text=True).stdout
        chains = _chains(save)
        if not chains:
            continue
        for ln in save.splitlines():
            if ln.startswith("-A ") and not ln.split()[1].startswith(("NETAVARK", "CNI-")) and \
                    any(f"-j {c}" in ln for c in chains):
                subprocess.run(["iptables-nft", "-t", table, "-D"] + shlex.split(ln)[1:], capture_output=True)
        for c in chains:
            subprocess.run(["iptables-nft", "-t", table, "-F", c], capture_output=True)
        for c in chains:
            subprocess.run(["iptables-nft", "-t", table, "-X", c], capture_output=True)
        done.append(f"iptables-nft {table}: {len(chains)} NETAVARK/CNI chains")
    return done


class Podman:
    def __init__(self, work: str, subnet):
        self.dir = os.path.join(work, "peers")  # PEERS_WORK of common.sh
        tag = secrets.token_hex(3)
        self.network = f"kpyb-{tag}"
        self.bridge = f"kpybp{tag}"  # 11 chars: an interface name is at most 15
        self.subnet = str(subnet)
        p = subprocess.run(["bash", "-c", 'source "$1"; PODMAN_RUNTIME=runc podman_env; env -0', "-",
                            os.path.join(PEERS, "common.sh")],
                           capture_output=True, env={**os.environ, "PEERS_WORK": self.dir})
        if p.returncode != 0:
            raise RuntimeError(f"common.sh podman_env: {p.stderr.decode(errors='replace')}")
        env = dict(kv.split("=", 1) for kv in p.stdout.decode().split("\0") if "=" in kv)
        self.env = {**os.environ, **{k: v for k, v in env.items() if k.startswith("CONTAINERS_")}}
        self.events_log = os.path.join(self.dir, "podman", "events.log")

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        p = subprocess.run(["podman", *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} -> {p.returncode}: {p.stderr.strip()[-2000:]}")
        return p

    def setup(self, layout: str) -> None:
        """The same busybox image as kubelet-py's, from the same OCI layout, under the same name;
        a network of our own (podman 4.3 has no --interface-name: its file is edited)."""
        iid = self.run("pull", "-q", f"oci:{layout}:{IMAGE}").stdout.split()[-1]
        self.run("tag", iid, IMAGE)  # the oci: transport names it after the layout's path
        self.run("network", "create", "--subnet", self.subnet, self.network)
        path = os.path.join(self.dir, "podman", "networks-netavark", f"{self.network}.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["network_interface"] = self.bridge
        with open(path, "w") as f:
            json.dump(cfg, f, indent=5)

    def events_offset(self) -> int:
        try:
            return os.path.getsize(self.events_log)
        except OSError:
            return 0

    def events_since(self, offset: int) -> list[dict]:
        with open(self.events_log, "rb") as f:
            f.seek(offset)
            data = f.read().decode(errors="replace")
        out = []
        for ln in data.splitlines():
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
        return out

    def conmons(self) -> list[int]:
        """PIDs of conmon processes of this store (their command line names our runroot)."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if cmd.split(b"\0")[0].endswith(b"conmon") and self.dir.encode() in cmd:
                out.append(int(pid))
        return out

    def cleanup(self) -> list[str]:
        """Every pod, container, network and image of our store removed, then the store itself;
        what was left behind (mounts that would not go), one line each."""
        left = []
        if os.path.isdir(self.dir):
            self.run("pod", "rm", "-af", "-t", "0", check=False)
            self.run("rm", "-af", "-t", "0", check=False)
            self.run("network", "rm", "-f", self.network, check=False)
            self.run("rmi", "-af", check=False)
            for _ in range(50):
                if not self.conmons():
                    break
                time.sleep(0.1)
            with open("/proc/self/mounts") as f:
                points = [ln.split()[1] for ln in f if ln.split()[1].startswith(self.dir)]
            for mp in sorted(points, key=len, reverse=True):
                if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                    left.append(f"podman mount {mp}")
            if not left:
                shutil.rmtree(self.dir, ignore_errors=True)
        return left
