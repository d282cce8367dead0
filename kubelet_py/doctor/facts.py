"""Edge of `kubelet-py doctor`: what the checks look at, read from this host into plain values
(/proc, /sys, statvfs, netlink through pyroute2, the legacy tables through python-iptables, and
`iptables --version` / `iptables -S` run as the host's own command). Each gatherer catches its
own failures and records them, so one unreadable thing never hides the other checks."""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import subprocess

from . import checks

log = logging.getLogger("kubelet_py.doctor")
NAMESPACES = ("mnt", "pid", "net", "ipc", "uts", "user", "cgroup")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20, close_fds=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)
    return p.returncode, p.stdout


def filesystems() -> list[str]:
    text = _read("/proc/filesystems") or ""
    return [line.split()[-1] for line in text.splitlines() if line.split()]


def overlay_module(release: str) -> bool:
    return any(os.path.exists(f"/lib/modules/{release}/kernel/fs/overlayfs/overlay.ko{ext}")
               for ext in ("", ".xz", ".zst", ".gz"))


def cgroup() -> dict:
    from runtime import cgroups
    version = cgroups.detect()
    if version == "v2":
        return {"version": "v2", "controllers": (_read("/sys/fs/cgroup/cgroup.controllers") or "").split(),
                "hybrid": False}
    known = {line.split()[0] for line in (_read("/proc/cgroups") or "").splitlines()[1:] if line.split()}
    have, hybrid = set(), False
    for _point, fstype, options in cgroups.v1_hierarchies():
        if fstype == "cgroup2":
            hybrid = True
        else:
            have |= {o for o in options.split(",") if o in known}
    if not have and not hybrid:
        return {"version": "none", "controllers": [], "hybrid": False}
    return {"version": "v1", "controllers": sorted(have), "hybrid": hybrid}


def iptables(chain_prefix: str) -> dict:
    out: dict = {"version": None, "legacy_chains": [], "host_chains": []}
    host = shutil.which("iptables")
    if host:
        rc, text = _run([host, "--version"])
        out["version"] = text.strip() if rc == 0 else None
    try:
        from netns import iptables as ipt
        for table in ("filter", "nat"):
            out["legacy_chains"] += [f"{table}/{c}" for c in ipt.chains(table) if c.startswith(chain_prefix + "-")]
    except Exception as e:  # noqa: BLE001 - recorded: iptc missing is the python-deps check's to report
        out["legacy_error"] = str(e)
        log.debug("reading the legacy tables: %s", e)
    out["forward_policy"] = forward_policies()
    if host:
        for table in ("filter", "nat"):
            rc, text = _run([host, "-w", "5", "-t", table, "-S"])
            out["host_chains"] += [f"{table}/{w[1]}" for w in (ln.split() for ln in text.splitlines())
                                   if rc == 0 and len(w) >= 2 and w[0] == "-N" and w[1].startswith(chain_prefix + "-")]
    return out


def forward_policies() -> dict:
    """{"legacy": "ACCEPT"|"DROP", "nft": ...} of filter FORWARD, per family whose command is
    installed (a packet to or between pods must pass both)."""
    out = {}
    for family in ("legacy", "nft"):
        cmd = shutil.which(f"iptables-{family}")
        if cmd:
            rc, text = _run([cmd, "-w", "5", "-S", "FORWARD"])
            words = text.split("\n", 1)[0].split() if rc == 0 else []
            if words[:2] == ["-P", "FORWARD"] and len(words) == 3:
                out[family] = words[2]
    return out


def python_deps() -> dict:
    out = {}
    for mod in checks.PYTHON_DEPS:
        try:
            importlib.import_module(mod)
            out[mod] = None
        except Exception as e:  # noqa: BLE001 - any import failure (OSError of a missing libiptc, too) is the fact
            out[mod] = f"{type(e).__name__}: {e}"
    return out


def disk(paths: dict) -> dict:
    out = {}
    for what, path in paths.items():
        probe = path
        while not os.path.exists(probe) and probe not in ("/", ""):
            probe = os.path.dirname(probe)
        try:
            st = os.statvfs(probe)
        except OSError as e:
            out[what] = {"path": path, "error": e.strerror}
            continue
        mount = probe
        while mount != "/" and not os.path.ismount(mount):
            mount = os.path.dirname(mount)
        out[what] = {"path": path, "free": st.f_bavail * st.f_frsize, "total": st.f_blocks * st.f_frsize,
                     "mount": mount}
    return out


def network() -> dict:
    from pyroute2 import IPRoute
    links, addresses, routes = {}, [], []
    with IPRoute() as ipr:
        names = {}
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            info = link.get_attr("IFLA_LINKINFO")
            names[link["index"]] = name
            links[name] = info.get_attr("IFLA_INFO_KIND") if info else ""
        for a in ipr.get_addr(family=2):
            addresses.append({"addr": a.get_attr("IFA_ADDRESS"), "prefixlen": a["prefixlen"],
                              "dev": names.get(a["index"])})
        for r in ipr.get_routes(family=2, table=254):
            dst = r.get_attr("RTA_DST")
            routes.append({"dst": f"{dst}/{r['dst_len']}" if dst else "0.0.0.0/0",
                           "dev": names.get(r.get_attr("RTA_OIF"))})
    for a in addresses:  # an address is a claim on its subnet even without a route (a down link)
        routes.append({"dst": f"{a['addr']}/{a['prefixlen']}", "dev": a["dev"]})
    return {"links": links, "addresses": addresses, "routes": routes}


def processes() -> list[dict]:
    """kubelet-py daemons (`serve` in their command line) and other kubelets and runtimes."""
    out = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        comm = _read(f"/proc/{pid}/comm")
        raw = None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if comm in checks.OTHER_RUNTIMES:
            out.append({"pid": int(pid), "comm": comm, "kind": "other", "argv": argv})
        elif "serve" in argv and any(a.endswith(("kubelet-py", "kubelet_py")) or a == "kubelet_py" for a in argv[:3]):
            out.append({"pid": int(pid), "comm": comm, "kind": "kubelet-py", "argv": argv})
    return out


def gather(cfg: dict) -> dict:
    release = os.uname().release
    ns = {n: os.path.exists(f"/proc/self/ns/{n}") for n in NAMESPACES}
    mun = _read("/proc/sys/user/max_user_namespaces")
    net: dict
    try:
        net = network()
    except Exception as e:  # noqa: BLE001 - recorded; the checks see no routes and say why
        log.warning("reading links and routes: %s", e)
        net = {"links": {}, "addresses": [], "routes": [], "error": str(e)}
    return {
        "euid": os.geteuid(),
        "kernel": release,
        "filesystems": filesystems(),
        "overlay_module": overlay_module(release),
        "namespaces": ns,
        "max_user_namespaces": int(mun) if mun and mun.isdigit() else None,
        "cgroup": cgroup(),
        "iptables": iptables(cfg["chain_prefix"]),
        "ip_forward": _read("/proc/sys/net/ipv4/ip_forward"),
        "br_netfilter": _read("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "binaries": {b: shutil.which(b) for b in checks.BINARIES},
        "python": python_deps(),
        "disk": disk({"root": cfg["root"], "run-root": cfg["run_root"], "log-root": cfg["log_root"]}),
        "net": net,
        "processes": processes(),
    }
