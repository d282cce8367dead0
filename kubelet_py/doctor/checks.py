"""`kubelet-py doctor`'s checks: pure functions over the facts gathered from the host
(kubelet_py.doctor.facts), each returning Check values with the fix for what is wrong.

A check that fails and is `required` makes doctor exit non-zero: the daemon cannot run pods
without it. The others are warnings: some features (Services, hostUsers: false, a view of our
rules through the host's iptables) need them, or the daemon fixes them itself at start."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass

OK, WARN, FAIL = "ok", "warn", "fail"

MIN_KERNEL = (4, 18)  # overlayfs with index/redirect_dir defaults, cgroup2 pids/memory, pidfd-less but sane
REQUIRED_NAMESPACES = ("mnt", "pid", "net", "ipc", "uts")
OPTIONAL_NAMESPACES = {"user": "pods with hostUsers: false", "cgroup": "a private /sys/fs/cgroup view in containers"}
CONTROLLERS = {"v2": ("cpu", "memory", "pids"), "v1": ("cpu", "cpuacct", "memory", "pids")}
OPTIONAL_CONTROLLERS = {"v2": ("cpuset", "io", "hugetlb"), "v1": ("cpuset", "blkio", "hugetlb", "devices", "freezer")}
# program -> (required, what needs it)
BINARIES = {"iptables-legacy-restore": (True, "Services and hostPorts: one iptables commit per table"),
            "iptables-legacy-save": (False, "reading our rules back (doctor, debugging)")}
PYTHON_DEPS = ("pyroute2", "iptc", "cgroupspy", "yaml", "click", "zstandard", "pyseccomp", "aiohttp", "inotify_simple",
               "grpc", "grpc_health.v1.health_pb2", "dnslib", "prometheus_client")
DISK_FAIL, DISK_WARN = 100 << 20, 1 << 30
OTHER_RUNTIMES = {"kubelet": "a kubelet", "containerd": "containerd", "dockerd": "Docker", "crio": "CRI-O",
                  "k3s": "k3s", "k3s-server": "k3s", "k3s-agent": "k3s", "podman": "podman"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, warn, fail
    message: str
    fix: str = ""
    required: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _c(name, ok, msg, fix="", required=True) -> Check:
    status = OK if ok else (FAIL if required else WARN)
    return Check(name, status, msg, "" if ok else fix, required)


def check_root(f: dict) -> list[Check]:
    uid = f["euid"]
    return [_c("root", uid == 0, "running as root" if uid == 0 else f"running as uid {uid}, not root",
               "run it as root (sudo kubelet-py ...): namespaces, mounts, cgroups and iptables need it")]


def kernel_version(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def check_kernel(f: dict) -> list[Check]:
    v = kernel_version(f["kernel"])
    ok = v >= MIN_KERNEL
    return [_c("kernel", ok, f"kernel {f['kernel']}" + ("" if ok else f", older than {MIN_KERNEL[0]}.{MIN_KERNEL[1]}"),
               f"boot a kernel {MIN_KERNEL[0]}.{MIN_KERNEL[1]} or newer (Debian 12: linux-image-amd64)")]


def check_overlayfs(f: dict) -> list[Check]:
    if "overlay" in f["filesystems"]:
        return [_c("overlayfs", True, "overlay is in /proc/filesystems")]
    if f.get("overlay_module"):
        return [_c("overlayfs", False, "overlay is not loaded (the module is there)",
                   "modprobe overlay; echo overlay > /etc/modules-load.d/overlay.conf")]
    return [_c("overlayfs", False, "the kernel has no overlay filesystem", "boot a kernel with CONFIG_OVERLAY_FS")]


def check_namespaces(f: dict) -> list[Check]:
    out = []
    ns = f["namespaces"]
    for name in REQUIRED_NAMESPACES:
        out.append(_c(f"namespace/{name}", ns.get(name, False), f"{name} namespaces " +
                      ("available" if ns.get(name) else "missing from /proc/self/ns"),
                      f"boot a kernel with CONFIG_{name.upper()}_NS" if name != "mnt" else
                      "boot a kernel with namespaces"))
    for name, why in OPTIONAL_NAMESPACES.items():
        have = ns.get(name, False)
        msg, fix = f"{name} namespaces available", ""
        if not have:
            msg, fix = f"{name} namespaces missing ({why} cannot run)", f"boot a kernel with CONFIG_{name.upper()}_NS"
        elif name == "user" and f.get("max_user_namespaces") == 0:
            have, msg = False, f"user namespaces disabled: user.max_user_namespaces = 0 ({why} cannot run)"
            fix = "sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/)"
        out.append(_c(f"namespace/{name}", have, msg, fix, required=False))
    return out


def check_cgroups(f: dict) -> list[Check]:
    cg = f["cgroup"]
    version, have = cg["version"], set(cg["controllers"])
    if version not in CONTROLLERS:
        return [_c("cgroups", False, "no cgroup hierarchy mounted at /sys/fs/cgroup",
                   "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)")]
    layout = {"v2": "cgroup v2 (unified)",
              "v1": "cgroup v1" + (" (hybrid: cgroup2 also mounted)" if cg.get("hybrid") else "")}
    missing = [c for c in CONTROLLERS[version] if c not in have]
    optional = [c for c in OPTIONAL_CONTROLLERS[version] if c not in have]
    out = [_c("cgroups", not missing, f"{layout[version]}, controllers: {' '.join(sorted(have)) or 'none'}" +
              (f"; missing {', '.join(missing)}" if missing else ""),
              "enable the controllers (v2: echo +cpu +memory +pids > /sys/fs/cgroup/cgroup.subtree_control; v1: "
              "mount their hierarchies; boot with cgroup_enable=memory if memory is off)")]
    if optional:
        out.append(_c("cgroups/optional", False, f"optional controllers missing: {', '.join(optional)} "
                      "(their pod fields are not enforced)", "enable them as above", required=False))
    return out


def iptables_backend(version_output: str | None) -> str | None:
    """'legacy' or 'nft' from `iptables --version` ("iptables v1.8.9 (nf_tables)")."""
    if not version_output:
        return None
    if "nf_tables" in version_output:
        return "nft"
    return "legacy" if "legacy" in version_output or re.search(r"v1\.[0-6]\.", version_output) else None


def check_iptables(f: dict, chain_prefix: str) -> list[Check]:
    ipt = f["iptables"]
    backend = iptables_backend(ipt.get("version"))
    ours, visible = ipt.get("legacy_chains") or [], ipt.get("host_chains") or []
    # with the host's iptables nft, chains of ours it shows are the Services' (serve --services-iptables nft)
    nft_ours = [c for c in visible if c not in ours] if backend == "nft" else []
    hidden = [c for c in ours if c not in visible]
    out = []
    if backend is None:
        out.append(_c("iptables/backend", False, "no `iptables` command on this host (our rules are in the legacy "
                      "tables, written through python-iptables and iptables-legacy-restore)",
                      "apt-get install iptables", required=False))
    else:
        out.append(Check("iptables/backend", OK, f"host iptables is the {backend} variant ({ipt['version']}); "
                         "kubelet-py writes the legacy tables" +
                         (f", the Services' chains nf_tables (--services-iptables nft: {len(nft_ours)} now)"
                          if nft_ours else ""), "", False))
    if backend == "legacy" or (ours and not hidden) or (nft_ours and not hidden):
        out.append(Check("iptables/visible", OK, f"our chains ({chain_prefix}-*) are visible to the host's iptables" +
                         (f": {len(ours) + len(nft_ours)} now" if ours or nft_ours else ""), "", False))
    elif backend == "nft":
        out.append(_c("iptables/visible", False,
                      f"the host's iptables is nft: our {chain_prefix}-* chains (legacy tables"
                      + (f", {len(hidden)} now" if hidden else "")
                      + ") do not show in `iptables -S`"
                      + (f" (the Services' {len(nft_ours)}, in nf_tables, do)" if nft_ours else "")
                      + "; both apply to traffic",
                      "read them with iptables-legacy-save, or make legacy the host's iptables: "
                      "update-alternatives --set iptables /usr/sbin/iptables-legacy"
                      + ("" if nft_ours else " (the Services' chains alone: serve --services-iptables nft)"),
                      required=False))
    return out


def check_forward_policy(f: dict, pod_cidr: str) -> list[Check]:
    """A FORWARD policy DROP (Docker sets it in the tables of the host's iptables) drops what the
    pods send and receive through the node unless a rule there accepts it: the pod network adds
    no FORWARD rule of its own (as the CNI bridge plugin without its firewall plugin)."""
    pol = f["iptables"].get("forward_policy") or {}
    drops = [fam for fam, p in sorted(pol.items()) if p == "DROP"]
    if not drops:
        seen = ", ".join(f"{fam} {p}" for fam, p in sorted(pol.items())) or "no iptables command to ask"
        return [Check("iptables/forward", OK, f"FORWARD policy: {seen}", "", False)]
    fix = "; ".join(f"iptables-{fam} -I FORWARD -s {pod_cidr} -j ACCEPT; iptables-{fam} -I FORWARD -d {pod_cidr} "
                    "-j ACCEPT" for fam in drops)
    return [_c("iptables/forward", False,
               f"the FORWARD policy is DROP in the {' and '.join(drops)} tables: traffic between pods, from pods "
               "to the outside and to pods from outside is dropped unless accepted there",
               fix + " (with Docker: in its DOCKER-USER chain)", required=False)]


def check_ip_forward(f: dict) -> list[Check]:
    v = f["ip_forward"]
    return [_c("ip_forward", v == "1", f"net.ipv4.ip_forward = {v}" + ("" if v == "1" else
               " (the daemon sets it to 1 when it sets up the pod network)"),
               "sysctl -w net.ipv4.ip_forward=1 (and net.ipv4.ip_forward = 1 in /etc/sysctl.d/)", required=False)]


def check_br_netfilter(f: dict) -> list[Check]:
    v = f["br_netfilter"]
    if v is None:
        return [_c("br_netfilter", False, "br_netfilter is not loaded: traffic between pods on the bridge skips "
                   "iptables (a pod reaching a Service backed by a pod on the same bridge, hairpin)",
                   "modprobe br_netfilter; echo br_netfilter > /etc/modules-load.d/br_netfilter.conf", required=False)]
    return [_c("br_netfilter", v == "1", f"br_netfilter loaded, net.bridge.bridge-nf-call-iptables = {v}" +
               ("" if v == "1" else " (the daemon sets it to 1 at start)"),
               "sysctl -w net.bridge.bridge-nf-call-iptables=1", required=False)]


def check_binaries(f: dict) -> list[Check]:
    out = []
    for name, (required, why) in BINARIES.items():
        path = f["binaries"].get(name)
        out.append(_c(f"binary/{name}", path is not None, f"{name}: {path}" if path else f"{name} not found ({why})",
                      "apt-get install iptables", required=required))
    return out


def check_python(f: dict) -> list[Check]:
    errors = {m: e for m, e in f["python"].items() if e}
    return [_c("python-deps", not errors, f"{len(f['python'])} modules import" if not errors else
               "cannot import: " + "; ".join(f"{m} ({e})" for m, e in errors.items()),
               "pip install . in the checkout (the venv the service runs from); Debian: apt-get install "
               "libiptc-dev libseccomp2 for iptc and seccomp")]


def _human(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"


def check_disk(f: dict) -> list[Check]:
    out = []
    for what, d in f["disk"].items():
        free = d.get("free")
        if free is None:
            out.append(_c(f"disk/{what}", False, f"{d['path']}: {d.get('error', 'cannot be measured')}",
                          f"create {d['path']} on a local filesystem"))
            continue
        msg = f"{d['path']}: {_human(free)} free (on {d['mount']})"
        status = OK if free >= DISK_WARN else (WARN if free >= DISK_FAIL else FAIL)
        out.append(Check(f"disk/{what}", status, msg, "" if status == OK else
                         f"free space on {d['mount']} (kubelet-py image prune; old logs) or move --{what} elsewhere",
                         True))
    return out


def overlapping_routes(cidr: str, routes: list[dict], bridge: str, bridge_ok: bool) -> list[str]:
    """Routes and addresses of other devices that overlap `cidr` (our bridge's own are fine when
    `bridge_ok`). Routes: {"dst": "10.0.0.0/8", "dev": "eth0"}; a default route never counts."""
    net = ipaddress.ip_network(cidr, strict=False)
    out = []
    for r in routes:
        dst = r.get("dst")
        if not dst or dst in ("0.0.0.0/0", "default"):
            continue
        try:
            other = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if other.version != net.version or not other.overlaps(net) or other.prefixlen == 0:
            continue
        if bridge_ok and r.get("dev") == bridge:
            continue
        out.append(f"{dst} on {r.get('dev') or '?'}")
    return sorted(set(out))


def check_networks(f: dict, pod_cidr: str, service_cidr: str, bridge: str) -> list[Check]:
    net = f["net"]
    links, routes = net["links"], net["routes"]
    out = []
    kind = links.get(bridge)
    gw = str(ipaddress.ip_network(pod_cidr, strict=False).network_address + 1)
    if kind is None:
        out.append(Check(f"bridge/{bridge}", OK, f"{bridge} does not exist yet (the daemon makes it)", "", True))
    elif kind != "bridge":
        out.append(_c(f"bridge/{bridge}", False, f"{bridge} exists and is a {kind or 'non-bridge'} device",
                      f"choose another --bridge, or remove the device (ip link del {bridge})"))
    else:
        addrs = [a["addr"] for a in net["addresses"] if a.get("dev") == bridge]
        ok = not addrs or gw in addrs
        out.append(_c(f"bridge/{bridge}", ok, f"{bridge} is a bridge with {', '.join(addrs) or 'no address'}" +
                      ("" if ok else f", not the pod network's gateway {gw}"),
                      f"another network uses {bridge}: choose another --bridge or --pod-cidr"))
    own = kind == "bridge"
    pod_hits = overlapping_routes(pod_cidr, routes, bridge, own)
    out.append(_c("cidr/pods", not pod_hits, f"pod CIDR {pod_cidr} " + (f"overlaps {', '.join(pod_hits)}" if pod_hits
                  else "overlaps no other route"), "choose a free --pod-cidr (serve --pod-cidr, podCidr in the "
                  "config file)"))
    svc_hits = overlapping_routes(service_cidr, routes, "", False)
    out.append(_c("cidr/services", not svc_hits, f"service CIDR {service_cidr} " +
                  (f"overlaps {', '.join(svc_hits)}: those destinations would be taken for Services" if svc_hits
                   else "overlaps no route"), "remove the overlapping route, or move the other network",
                  required=False))
    return out


def parse_serve_args(argv: list[str]) -> dict:
    """--root, --run-root, --socket and --bridge of a `kubelet-py ... serve ...` command line
    (None when absent: the defaults)."""
    want = {"--root": "root", "--run-root": "run_root", "--socket": "socket", "--bridge": "bridge"}
    out = dict.fromkeys(want.values())
    for i, a in enumerate(argv):
        key, eq, value = a.partition("=")
        if key in want:
            out[want[key]] = value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return out


def check_others(f: dict, paths: dict, defaults: dict) -> list[Check]:
    """Another kubelet-py daemon on the same paths or bridge, and other kubelets or runtimes."""
    out = []
    same = []
    for p in f["processes"]:
        if p["kind"] != "kubelet-py":
            continue
        args = {k: v or defaults[k] for k, v in parse_serve_args(p["argv"]).items()}
        shared = [k for k in ("root", "run_root", "socket", "bridge") if args[k] == paths[k]]
        if shared:
            same.append(f"pid {p['pid']} ({', '.join(shared)})")
    if len(same) > 1:
        out.append(_c("other/kubelet-py", False, f"{len(same)} kubelet-py daemons share these paths: {'; '.join(same)}",
                      "stop all but one (systemctl stop kubelet-py; kill PID), or give each its own --root, "
                      "--run-root, --socket, --bridge, --pod-cidr"))
    else:
        out.append(Check("other/kubelet-py", OK, f"the kubelet-py daemon here: {same[0]}" if same else
                         "no kubelet-py daemon runs on these paths", "", True))
    others = [f"{OTHER_RUNTIMES[p['comm']]} (pid {p['pid']})"
              for p in sorted(f["processes"], key=lambda p: p["pid"]) if p["kind"] == "other"]
    out.append(_c("other/runtimes", not others, "running: " + ", ".join(others) if others else
                  "no other kubelet or container runtime runs", "they keep their own paths, but share bridges, "
                  "iptables and cgroups with us: check the bridge and CIDR lines, or stop them", required=False))
    return out


def run_all(f: dict, cfg: dict) -> list[Check]:
    """Every check. `cfg`: pod_cidr, service_cidr, bridge, chain_prefix, and the paths root,
    run_root, socket (with their defaults in cfg['defaults'])."""
    return [*check_root(f), *check_kernel(f), *check_overlayfs(f), *check_namespaces(f), *check_cgroups(f),
            *check_iptables(f, cfg["chain_prefix"]), *check_forward_policy(f, cfg["pod_cidr"]), *check_ip_forward(f),
            *check_br_netfilter(f),
            *check_binaries(f), *check_python(f), *check_disk(f),
            *check_networks(f, cfg["pod_cidr"], cfg["service_cidr"], cfg["bridge"]),
            *check_others(f, cfg, cfg["defaults"])]


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL and c.required]


def render(checks: list[Check]) -> str:
    """One line per check: STATUS name: message [— fix: ...]."""
    w = max((len(c.name) for c in checks), default=0)
    return "".join(f"{c.status.upper():<4}  {c.name:<{w}}  {c.message}" + (f"  -- fix: {c.fix}" if c.fix else "") + "\n"
                   for c in checks)
