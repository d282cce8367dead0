"""`kubelet-py doctor`'s checks over gathered facts (kubelet_py.doctor.checks): tables of hosts."""

from __future__ import annotations

import copy

import pytest

from kubelet_py.doctor import checks as c

CFG = {"pod_cidr": "10.244.0.0/16", "service_cidr": "10.96.0.0/12", "bridge": "kpy0", "chain_prefix": "KPY",
       "root": "/var/lib/kubelet-py", "run_root": "/run/kubelet-py", "socket": "/run/kubelet-py/kubelet-py.sock",
       "log_root": "/var/log/pods",
       "defaults": {"root": "/var/lib/kubelet-py", "run_root": "/run/kubelet-py",
                    "socket": "/run/kubelet-py/kubelet-py.sock", "bridge": "kpy0"}}

GOOD = {
    "euid": 0, "kernel": "6.1.0-27-amd64", "filesystems": ["ext4", "overlay", "cgroup2"], "overlay_module": True,
    "namespaces": dict.fromkeys(("mnt", "pid", "net", "ipc", "uts", "user", "cgroup"), True),
    "max_user_namespaces": 15000,
    "cgroup": {"version": "v2", "controllers": ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"], "hybrid": False},
    "iptables": {"version": "iptables v1.8.9 (legacy)", "legacy_chains": ["nat/KPY-SERVICES"],
                 "host_chains": ["nat/KPY-SERVICES"], "forward_policy": {"legacy": "ACCEPT", "nft": "ACCEPT"}},
    "ip_forward": "1", "br_netfilter": "1",
    "binaries": {"iptables-legacy-restore": "/usr/sbin/iptables-legacy-restore",
                 "iptables-legacy-save": "/usr/sbin/iptables-legacy-save"},
    "python": dict.fromkeys(c.PYTHON_DEPS),
    "disk": {w: {"path": p, "free": 50 << 30, "total": 100 << 30, "mount": "/"}
             for w, p in (("root", "/var/lib/kubelet-py"), ("run-root", "/run/kubelet-py"), ("log-root", "/var/log/pods"))},
    "net": {"links": {"lo": "", "eth0": "", "kpy0": "bridge"},
            "addresses": [{"addr": "192.168.1.5", "prefixlen": 24, "dev": "eth0"},
                          {"addr": "10.244.0.1", "prefixlen": 16, "dev": "kpy0"}],
            "routes": [{"dst": "0.0.0.0/0", "dev": "eth0"}, {"dst": "192.168.1.0/24", "dev": "eth0"},
                       {"dst": "10.244.0.0/16", "dev": "kpy0"}]},
    "processes": [],
}


def with_(**changes) -> dict:
    f = copy.deepcopy(GOOD)
    for path, value in changes.items():
        d = f
        keys = path.split("__")
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return f


def by_name(f: dict) -> dict:
    return {x.name: x for x in c.run_all(f, CFG)}


def test_a_good_host_passes_everything():
    results = c.run_all(GOOD, CFG)
    assert [x for x in results if x.status != c.OK] == []
    assert not c.failed(results)
    names = [x.name for x in results]
    assert len(names) == len(set(names))
    for expected in ("root", "kernel", "overlayfs", "namespace/user", "namespace/cgroup", "cgroups", "iptables/backend",
                     "iptables/visible", "ip_forward", "br_netfilter", "binary/iptables-legacy-restore", "python-deps",
                     "disk/root", "disk/run-root", "disk/log-root", "bridge/kpy0", "cidr/pods", "cidr/services",
                     "other/kubelet-py", "other/runtimes"):
        assert expected in names


# (facts changed, the check, its status, words of its message, words of its fix)
CASES = [
    (dict(euid=1000), "root", c.FAIL, "uid 1000", "sudo"),
    (dict(kernel="4.9.0-1-amd64"), "kernel", c.FAIL, "older than 4.18", "newer"),
    (dict(kernel="4.18.0"), "kernel", c.OK, "4.18.0", ""),
    (dict(filesystems=["ext4"]), "overlayfs", c.FAIL, "not loaded", "modprobe overlay"),
    (dict(filesystems=["ext4"], overlay_module=False), "overlayfs", c.FAIL, "no overlay", "CONFIG_OVERLAY_FS"),
    (dict(namespaces__pid=False), "namespace/pid", c.FAIL, "missing", "CONFIG_PID_NS"),
    (dict(namespaces__user=False), "namespace/user", c.WARN, "hostUsers: false", "CONFIG_USER_NS"),
    (dict(max_user_namespaces=0), "namespace/user", c.WARN, "max_user_namespaces = 0", "sysctl -w user.max_user"),
    (dict(namespaces__cgroup=False), "namespace/cgroup", c.WARN, "missing", "CONFIG_CGROUP_NS"),
    (dict(cgroup={"version": "v2", "controllers": ["cpu", "io"], "hybrid": False}), "cgroups", c.FAIL,
     "missing memory, pids", "subtree_control"),
    (dict(cgroup={"version": "v1", "controllers": ["cpu", "cpuacct", "memory", "pids"], "hybrid": True}), "cgroups",
     c.OK, "cgroup v1 (hybrid", ""),
    (dict(cgroup={"version": "v1", "controllers": ["cpu", "cpuacct", "pids"], "hybrid": False}), "cgroups", c.FAIL,
     "missing memory", "cgroup_enable=memory"),
    (dict(cgroup={"version": "none", "controllers": [], "hybrid": False}), "cgroups", c.FAIL, "no cgroup", "mount"),
    (dict(cgroup={"version": "v2", "controllers": ["cpu", "memory", "pids"], "hybrid": False}), "cgroups/optional",
     c.WARN, "cpuset, io, hugetlb", "enable"),
    (dict(iptables={"version": "iptables v1.8.9 (nf_tables)", "legacy_chains": ["nat/KPY-SERVICES"],
                    "host_chains": []}), "iptables/visible", c.WARN, "nft: our KPY-* chains (legacy tables, 1 now)",
     "iptables-legacy-save"),
    (dict(iptables={"version": "iptables v1.8.9 (nf_tables)", "legacy_chains": [], "host_chains": []}),
     "iptables/backend", c.OK, "nft variant", ""),
    # serve --services-iptables nft: the Services' chains are in nf_tables, the pod network's in legacy
    (dict(iptables={"version": "iptables v1.8.9 (nf_tables)", "legacy_chains": ["nat/KPY-POSTROUTING"],
                    "host_chains": ["nat/KPY-SERVICES", "filter/KPY-FORWARD"]}), "iptables/visible", c.WARN,
     "(legacy tables, 1 now) do not show in `iptables -S` (the Services' 2, in nf_tables, do)", "iptables-legacy-save"),
    (dict(iptables={"version": "iptables v1.8.9 (nf_tables)", "legacy_chains": [],
                    "host_chains": ["nat/KPY-SERVICES", "filter/KPY-FORWARD"]}), "iptables/visible", c.OK,
     "are visible to the host's iptables: 2 now", ""),
    (dict(iptables={"version": "iptables v1.8.9 (nf_tables)", "legacy_chains": [], "host_chains": ["nat/KPY-SERVICES"]}),
     "iptables/backend", c.OK, "legacy tables, the Services' chains nf_tables (--services-iptables nft: 1 now)", ""),
    (dict(iptables={"version": None, "legacy_chains": [], "host_chains": []}), "iptables/backend", c.WARN,
     "no `iptables`", "apt-get install iptables"),
    (dict(ip_forward="0"), "ip_forward", c.WARN, "the daemon sets it", "sysctl -w net.ipv4.ip_forward=1"),
    (dict(br_netfilter=None), "br_netfilter", c.WARN, "not loaded", "modprobe br_netfilter"),
    (dict(br_netfilter="0"), "br_netfilter", c.WARN, "= 0", "bridge-nf-call-iptables=1"),
    (dict(iptables__forward_policy={"legacy": "ACCEPT", "nft": "DROP"}), "iptables/forward", c.WARN,
     "DROP in the nft tables", "iptables-nft -I FORWARD -s 10.244.0.0/16 -j ACCEPT"),
    (dict(iptables__forward_policy={"legacy": "DROP", "nft": "DROP"}), "iptables/forward", c.WARN,
     "DROP in the legacy and nft tables", "iptables-legacy -I FORWARD -d 10.244.0.0/16 -j ACCEPT"),
    (dict(iptables__forward_policy={}), "iptables/forward", c.OK, "no iptables command to ask", ""),
    (dict(binaries__iptables_legacy_restore=None), "binary/iptables-legacy-restore", c.FAIL, "not found",
     "apt-get install iptables"),
    (dict(python__iptc="OSError: libiptc.so: cannot open"), "python-deps", c.FAIL, "iptc (OSError", "pip install"),
    (dict(disk__root={"path": "/var/lib/kubelet-py", "free": 500 << 20, "total": 1 << 40, "mount": "/var"}),
     "disk/root", c.WARN, "500.0 MiB free (on /var)", "image prune"),
    (dict(disk__log_root={"path": "/var/log/pods", "free": 10 << 20, "total": 1 << 40, "mount": "/"}),
     "disk/log-root", c.FAIL, "10.0 MiB", "--log-root"),
    (dict(net__links={"kpy0": "veth"}), "bridge/kpy0", c.FAIL, "is a veth device", "ip link del kpy0"),
    (dict(net__links={"eth0": ""}, net__addresses=[], net__routes=[]), "bridge/kpy0", c.OK, "does not exist yet", ""),
    (dict(net__addresses=[{"addr": "10.244.9.1", "prefixlen": 24, "dev": "kpy0"}]), "bridge/kpy0", c.FAIL,
     "not the pod network's gateway 10.244.0.1", "--pod-cidr"),
    (dict(net__routes=[{"dst": "10.0.0.0/8", "dev": "eth0"}]), "cidr/pods", c.FAIL, "overlaps 10.0.0.0/8 on eth0",
     "--pod-cidr"),
    (dict(net__routes=[{"dst": "10.100.0.0/16", "dev": "tun0"}]), "cidr/services", c.WARN,
     "overlaps 10.100.0.0/16 on tun0", "remove the overlapping route"),
    (dict(net__routes=[{"dst": "0.0.0.0/0", "dev": "eth0"}, {"dst": "10.244.0.0/16", "dev": "kpy0"}]), "cidr/pods",
     c.OK, "overlaps no other route", ""),
    (dict(processes=[{"pid": 7, "comm": "containerd", "kind": "other", "argv": ["containerd"]},
                     {"pid": 9, "comm": "dockerd", "kind": "other", "argv": ["dockerd"]}]), "other/runtimes", c.WARN,
     "containerd (pid 7), Docker (pid 9)", "share bridges"),
    (dict(processes=[{"pid": 11, "comm": "kubelet-py", "kind": "kubelet-py", "argv": ["/usr/bin/kubelet-py", "serve"]}]),
     "other/kubelet-py", c.OK, "pid 11 (root, run_root, socket, bridge)", ""),
    (dict(processes=[{"pid": 11, "comm": "kubelet-py", "kind": "kubelet-py", "argv": ["/k", "serve"]},
                     {"pid": 12, "comm": "python", "kind": "kubelet-py",
                      "argv": ["/py", "-m", "kubelet_py", "--root=/tmp/r", "serve", "--bridge", "kpy0"]},
                     {"pid": 13, "comm": "python", "kind": "kubelet-py",
                      "argv": ["/py", "-m", "kubelet_py", "--root", "/tmp/a", "--run-root", "/tmp/b", "--socket",
                               "/tmp/s", "serve", "--bridge", "kpyx"]}]),
     "other/kubelet-py", c.FAIL, "2 kubelet-py daemons share these paths: pid 11 (root, run_root, socket, bridge); "
     "pid 12 (run_root, socket, bridge)", "stop all but one"),
]


@pytest.mark.parametrize("changes,name,status,msg,fix", CASES, ids=[f"{x[1]}-{i}" for i, x in enumerate(CASES)])
def test_checks(changes, name, status, msg, fix):
    changes = {k.replace("iptables_legacy_restore", "iptables-legacy-restore").replace("log_root", "log-root"): v
               for k, v in changes.items()}
    got = by_name(with_(**changes))[name]
    assert got.status == status, got
    assert msg in got.message, got
    assert fix in got.fix, got
    if status == c.OK:
        assert got.fix == ""
    assert bool(c.failed([got])) == (status == c.FAIL and got.required)


@pytest.mark.parametrize("out,backend", [("iptables v1.8.9 (nf_tables)", "nft"), ("iptables v1.8.7 (legacy)", "legacy"),
                                         ("iptables v1.6.1", "legacy"), (None, None), ("", None)])
def test_iptables_backend(out, backend):
    assert c.iptables_backend(out) == backend


def test_render_has_one_line_per_check_with_its_fix():
    results = c.run_all(with_(euid=1000, br_netfilter=None), CFG)
    lines = c.render(results).splitlines()
    assert len(lines) == len(results)
    root = next(ln for ln in lines if " root " in ln)
    assert root.startswith("FAIL") and "-- fix: run it as root" in root
    assert next(ln for ln in lines if "br_netfilter" in ln).startswith("WARN")
