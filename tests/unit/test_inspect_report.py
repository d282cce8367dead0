"""The inspect report (kubelet_py/inspect/report.py, pure): kernel text parsed, the iptables rules
that concern a pod picked out of iptables-save's output with their owners, cgroup files read the
same way on v1 and v2, and every disagreement between facts and records named on its line."""

from __future__ import annotations

import copy

import pytest

from kubelet_py.inspect.report import (build_report, cgroup_values, overlay_dirs, parse_mountinfo, pod_rules,
                                       render_text, root_mount)

UID = "72109164-5f9e-408f-89c2-b42c4eb1f640"
H = "06751b93cae2"
IP = "10.250.66.2"
SB = f"/run/kpy/pods/{UID}"
POD_CG = f"kpy/kubepods/pod{UID}"
CG = f"{POD_CG}/kpyabc"
LOG = f"/var/log/pods/default_web_{UID}/web/0.log"
SNAP = "/var/lib/kpy/images/snapshots/sha256/92a1/fs"

MOUNTINFO = f"""\
2838 1100 0:780 / / rw,relatime - overlay overlay rw,lowerdir=l/0:l/1,upperdir=upper,workdir=work,uuid=on
2839 2838 0:782 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
2842 2840 0:722 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
2855 2838 254:0 {SB}/etc/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw
2860 2838 254:0 /var/lib/kpy/pods/{UID}/volumes/data /my\\040data rw,relatime - ext4 /dev/vda rw
"""

NAT = f"""\
*nat
:PREROUTING ACCEPT [0:0]
:KPY-HOSTPORTS - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "kubelet-py kpy0: pod hostPorts" -j KPY-HOSTPORTS
-A KPY-HOSTPORTS -p tcp -m tcp --dport 18080 -m comment --comment "kubelet-py pod {UID}: hostPort 18080/tcp" -j KPY-HP-{H}
-A KPY-HOSTPORTS -p tcp -m tcp --dport 9999 -m comment --comment "kubelet-py pod other: hostPort 9999/tcp" -j KPY-HP-ffffffffffff
-A KPY-HP-{H} -s 127.0.0.1/32 -p tcp -m tcp --dport 18080 -j MARK --set-xmark 0x2000/0x2000
-A KPY-HP-{H} -p tcp -m tcp --dport 18080 -j DNAT --to-destination {IP}:8080
-A KPY-HP-ffffffffffff -p tcp -m tcp --dport 9999 -j DNAT --to-destination 10.250.66.3:80
-A KPY-MASQ-{H} ! -d 224.0.0.0/4 -j MASQUERADE
-A KPY-POSTROUTING -s {IP}/32 -j KPY-MASQ-{H}
-A KPY-POSTROUTING -s 10.250.66.21/32 -j KPY-MASQ-eeeeeeeeeeee
-A KPY-SEP-AAAAAAAAAAAAAAAA -s {IP}/32 -m comment --comment "default/web" -j KPY-MARK-MASQ
-A KPY-SEP-AAAAAAAAAAAAAAAA -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination {IP}:8080
-A KPY-SEP-BBBBBBBBBBBBBBBB -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.250.66.22:8080
-A KPY-SVC-CCCCCCCCCCCCCCCC -m comment --comment "default/web -> {IP}:8080" -j KPY-SEP-AAAAAAAAAAAAAAAA
-A KPY-SVC-CCCCCCCCCCCCCCCC -m comment --comment "default/web -> 10.250.66.22:8080" -j KPY-SEP-BBBBBBBBBBBBBBBB
-A OTHER-SEP-X -j DNAT --to-destination {IP}:8080
COMMIT
"""


def test_mountinfo_overlay_and_owners_of_mounts():
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m["target"] for m in mounts] == ["/", "/proc", "/dev/shm", "/etc/hosts", "/my data"]
    root = root_mount(mounts)
    assert root["fstype"] == "overlay"
    assert overlay_dirs(root["super"]) == {"lowerdir": ["l/0", "l/1"], "upperdir": "upper", "workdir": "work"}
    assert root_mount(parse_mountinfo("garbage\n")) is None


def test_the_rules_that_concern_the_pod_and_their_owners():
    got = [(r["chain"], r["owner"]) for r in pod_rules({"nat": NAT}, "KPY", UID, H, IP)]
    assert got == [("KPY-HOSTPORTS", "portmap"), ("KPY-HP-" + H, "portmap"), ("KPY-HP-" + H, "portmap"),
                   ("KPY-MASQ-" + H, "CNI bridge"), ("KPY-POSTROUTING", "CNI bridge"),
                   ("KPY-SEP-AAAAAAAAAAAAAAAA", "kube-proxy"), ("KPY-SEP-AAAAAAAAAAAAAAAA", "kube-proxy"),
                   ("KPY-SVC-CCCCCCCCCCCCCCCC", "kube-proxy")]
    # another pod's IP that begins with ours (10.250.66.21/22) is not ours; other prefixes are never read
    assert not any("10.250.66.2" + d in r["rule"] for r in pod_rules({"nat": NAT}, "KPY", UID, H, IP) for d in "12")


@pytest.mark.parametrize("version,files,want", [
    ("v1", {"cpu.shares": "256", "cpu.cfs_quota_us": "25000", "cpu.cfs_period_us": "100000",
            "memory.limit_in_bytes": "67108864", "pids.max": "max"},
     {"cpu.shares": 256, "quota": 25000, "period": 100000, "memory_limit": 64 << 20, "pids_limit": None}),
    ("v1", {"cpu.shares": "2", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000",
            "memory.limit_in_bytes": "9223372036854771712", "pids.max": "100"},
     {"cpu.shares": 2, "quota": None, "period": 100000, "memory_limit": None, "pids_limit": 100}),
    ("v2", {"cpu.weight": "10", "cpu.max": "25000 100000", "memory.max": "67108864", "pids.max": "max"},
     {"cpu.weight": 10, "quota": 25000, "period": 100000, "memory_limit": 64 << 20, "pids_limit": None}),
    ("v2", {"cpu.weight": "1", "cpu.max": "max 100000", "memory.max": "max", "pids.max": "42"},
     {"cpu.weight": 1, "quota": None, "period": 100000, "memory_limit": None, "pids_limit": 42}),
])
def test_cgroup_values_v1_and_v2(version, files, want):
    assert cgroup_values(version, files) == want


def _link(name, index, master=None, peer=None, addresses=()):
    return {"name": name, "index": index, "kind": "veth", "up": True, "mtu": 1500, "master": master, "peer": peer,
            "alias": None, "addresses": list(addresses), "hairpin": None}


CG_FILES = {"cpu.shares": "256", "cpu.cfs_quota_us": "25000", "cpu.cfs_period_us": "100000",
            "memory.limit_in_bytes": str(64 << 20), "pids.max": "max"}
USAGE = {"cpu_usage_ns": 2 * 10**7, "memory_usage": 233472, "memory_working_set": 229376, "pids": 1}
RECORDS = {
    "pod": {"namespace": "default", "name": "web", "uid": UID, "ip": IP}, "cgroup_version": "v1",
    "sandbox": {"dir": SB, "namespaces": {"network": f"{SB}/ns/net", "ipc": f"{SB}/ns/ipc", "uts": f"{SB}/ns/uts"},
                "shm": f"{SB}/shm", "cgroup_path": POD_CG, "qos": "guaranteed", "pid_mode": "container",
                "supervisor_pid": 900},
    "containers": [{"name": "web", "id": "kpyabc", "state": "running", "pid": 1000, "image": "busybox", "image_id": "x",
                    "attempt": 0, "log_path": LOG, "cgroup": CG, "state_dir": "/var/lib/kpy/containers/kpyabc",
                    "resources": {"cpu_shares": 256, "cpu_quota": 25000, "cpu_period": 100000,
                                  "memory_limit": 64 << 20, "pids_limit": None},
                    "layers": [{"digest": "sha256:e882", "diff_id": "sha256:92a1"}]}],
    "network": {"ip": IP, "gateway": "10.250.66.1", "prefixlen": 24, "host_network": False, "host_veth": "kpyveth",
                "ifname": "eth0", "ports": [{"protocol": "tcp", "host_port": 18080, "container_port": 8080,
                                             "host_ip": ""}]},
    "bridge": "kpy0", "chain_prefix": "KPY", "uid_hash": H,
    "endpoints": [{"service": "default/web", "ip": IP, "port": 8080, "protocol": "TCP", "ready": True}], "errors": []}
FACTS = {
    "namespaces": {"network": {"path": f"{SB}/ns/net", "exists": True, "mounted": True, "inode": 11},
                   "ipc": {"path": f"{SB}/ns/ipc", "exists": True, "mounted": True, "inode": 12},
                   "uts": {"path": f"{SB}/ns/uts", "exists": True, "mounted": True, "inode": 13}},
    "supervisor": {"pid": 900, "alive": True},
    "containers": {"kpyabc": {
        "alive": True, "processes": [{"pid": 1000, "comm": "httpd"}],
        "ns": {"net": 11, "ipc": 12, "uts": 13, "pid": 14, "mnt": 15, "cgroup": 1, "user": 2}, "cgroup": "/" + CG,
        "mounts": parse_mountinfo(MOUNTINFO),
        "overlay": {"lowerdirs": [{"given": "l/0", "path": SNAP, "diff_id": "sha256:92a1", "blobs": ["sha256:e882"]}],
                    "upperdir": "/var/lib/kpy/containers/kpyabc/upper", "upper_exists": True,
                    "workdir": "/var/lib/kpy/containers/kpyabc/work"}}},
    "cgroups": {POD_CG: {"exists": True, "files": CG_FILES, "usage": USAGE},
                CG: {"exists": True, "files": CG_FILES, "usage": USAGE}},
    "links": {"host": _link("kpyveth", 30, master=29, peer=2), "bridge": _link("kpy0", 29),
              "pod": {"eth0": _link("eth0", 2, peer=30, addresses=[f"{IP}/24"]), "lo_up": True,
                      "routes": [{"dst": "default", "gateway": "10.250.66.1", "dev": "eth0", "scope": None},
                                 {"dst": "10.250.66.0/24", "gateway": None, "dev": "eth0", "scope": "link"}]},
              "error": None},
    "iptables": {"nat": NAT, "filter": ""},
    "logs": {LOG: 120}, "errors": []}


def _lines(report: dict) -> list[str]:
    return render_text(report).splitlines()


def test_a_pod_whose_kernel_state_agrees_with_its_records():
    report = build_report(RECORDS, FACTS)
    assert report["problems"] == []
    text = render_text(report)
    assert text.splitlines()[-1] == "the kernel agrees with the records"
    want = [("net namespace: net:[11] pinned at", "[containerd]"), ("processes: init pid 1000; in its cgroup: 1000 httpd",
                                                                      "[runc]"),
            ("pod cgroup: " + POD_CG + ": v1, cpu.shares 256, quota 25000/100000us, memory limit 64Mi", "[kubelet]"),
            ("IP: 10.250.66.2/24", "[host-local]"), ("veth host end: kpyveth: ifindex 30, up", "[CNI bridge]"),
            ("veth pod end: eth0 in the pod netns", "[CNI bridge]"),
            ("route: default via 10.250.66.1 dev eth0", "[CNI bridge]"),
            (f"DNAT --to-destination {IP}:8080", "[portmap]"), ("-A KPY-SEP-AAAAAAAAAAAAAAAA -p tcp", "[kube-proxy]"),
            (f"lowerdir: 0: {SNAP} layer sha256:e882 (diff sha256:92a1)", "[containerd]"),
            ("mount: /etc/hosts", "[kubelet]"), ("mount: /my data", "[kubelet]"), ("mount: /proc proc", "[runc]"),
            ("namespaces: net:[11] (the pod's)", "[runc]"), (f"log: {LOG} (120 bytes)", "[kubelet]")]
    for head, owner in want:
        line = next((ln for ln in text.splitlines() if head in ln), None)
        assert line is not None, (head, text)
        assert line.endswith(owner), line


def _set(d: dict, path: str, value) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d[k]
    if value is _DEL:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


_DEL = object()
NS_DIFF = {"net": 99, "ipc": 12, "uts": 13, "pid": 14, "mnt": 15, "cgroup": 1, "user": 2}


@pytest.mark.parametrize("where,path,value,line,problem", [
    ("facts", "links.host", None, "veth host end: kpyveth", "missing: the record names this veth"),
    ("facts", "links.host.master", 7, "veth host end", "not on the bridge kpy0"),
    ("facts", "links.pod.eth0", None, "veth pod end", "missing: no such link in the pod's netns"),
    ("facts", "links.pod.eth0.addresses", ["10.9.9.9/24"], "veth pod end", f"{IP}/24 is recorded, the link has 10.9.9.9/24"),
    ("facts", "links.pod.routes", [], "route: default via 10.250.66.1", "missing: the recorded gateway has no default"),
    ("facts", f"cgroups.{CG}", {"exists": False, "files": {}, "usage": None}, f"cgroup: {CG}", "missing: the record "
                                                                                                   "names this cgroup"),
    ("facts", "containers.kpyabc.alive", False, "processes: init pid 1000", "dead: the record says running as pid 1000"),
    ("facts", "containers.kpyabc.ns", NS_DIFF, "namespaces:", "net is 99, the pod's pinned net is 11"),
    ("facts", "namespaces.network.mounted", False, "net namespace", "not pinned: nothing is mounted there"),
    ("facts", "supervisor.alive", False, "supervisor: pid 900", "dead: the supervisor's process is gone"),
    ("facts", "containers.kpyabc.overlay.upper_exists", False, "upperdir:", "missing: the upper dir is gone"),
    ("facts", "containers.kpyabc.overlay", None, "rootfs: /", "not an overlay"),
    ("facts", "containers.kpyabc.cgroup", "/elsewhere", f"cgroup: {CG}", "its init is in /elsewhere"),
    ("facts", "logs", {}, f"log: {LOG}", "missing: the log file is gone"),
    ("facts", "iptables", {"error": "iptables-legacy-save is not installed"}, "iptables: rules",
     "unreadable: iptables-legacy-save is not installed"),
    ("records", "containers.0.resources.memory_limit", 32 << 20, f"cgroup: {CG}",
     "memory limit 64Mi in the kernel, 32Mi in the container's config.json"),
    ("records", "containers.0.layers", [{"digest": "sha256:0000", "diff_id": "sha256:1111"}], "lowerdir: 0:",
     "not a layer of the image busybox"),
    ("records", "network.ports.0.host_port", 18081, "rule: hostPort 18081/tcp", "missing: the pod's hostPort has no DNAT"),
    ("records", "endpoints.0.port", 9090, "rule: Service default/web endpoint 10.250.66.2:9090/TCP",
     "missing: the EndpointSlice lists this ready endpoint"),
    ("records", "network", None, "network: no network record", "missing: the pod's network setup is not recorded"),
])
def test_each_disagreement_is_said_on_its_line(where, path, value, line, problem):
    records, facts = copy.deepcopy(RECORDS), copy.deepcopy(FACTS)
    _set(records if where == "records" else facts, path, value)
    report = build_report(records, facts)
    hits = [ln for ln in _lines(report) if line in ln and "!! " in ln]
    assert hits, render_text(report)
    assert problem in hits[0], hits[0]
    assert len(report["problems"]) >= 1 and any(problem in p for p in report["problems"])
    assert _lines(report)[-1].endswith("between the kernel and the records")


def test_an_exited_container_without_its_cgroup_or_processes_is_no_disagreement():
    records, facts = copy.deepcopy(RECORDS), copy.deepcopy(FACTS)
    records["containers"][0].update(state="exited", pid=None)
    facts["cgroups"][CG] = {"exists": False, "files": {}, "usage": None}
    facts["containers"]["kpyabc"].update(alive=False, processes=[], ns={}, mounts=[], overlay=None)
    report = build_report(records, facts)
    assert report["problems"] == [], report["problems"]
    assert any("removed with the exited container" in ln for ln in _lines(report))
    facts["logs"] = {}  # its log is kept until the pod goes
    assert [p.split(": ", 1)[1] for p in build_report(records, facts)["problems"]] == ["missing: the log file is gone"]


def test_a_not_ready_endpoint_needs_no_rule_and_a_missing_sandbox_is_said():
    records = copy.deepcopy(RECORDS)
    records["endpoints"][0].update(port=9090, ready=False)
    assert build_report(records, FACTS)["problems"] == []
    records["sandbox"] = None
    assert build_report(records, FACTS)["problems"][0].startswith("sandbox no sandbox record: missing")
