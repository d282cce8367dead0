"""The inspect report (pure): records (what the agent wrote down about a pod) and facts (what the
kernel says now, read by kubelet_py/inspect/gather.py) become one tree of objects, each tagged
with the upstream component that would own it on a real node, and each line where the kernel
disagrees with the records says so (`problem`).

Both inputs are plain JSON values, so the daemon can send them and tests can write them as tables:

records = {"pod": {"namespace", "name", "uid", "ip"}, "cgroup_version": "v1" | "v2",
           "sandbox": None | {"dir", "namespaces": {type: path}, "shm", "cgroup_path", "qos",
                              "pid_mode", "supervisor_pid"},
           "containers": [{"name", "id", "state", "pid", "image", "image_id", "attempt", "log_path",
                           "cgroup", "state_dir", "resources": {"cpu_shares", "cpu_quota", "cpu_period",
                           "memory_limit", "pids_limit"}, "layers": [{"digest", "diff_id"}]}],
           "network": None | {"ip", "gateway", "prefixlen", "host_network", "host_veth", "ifname",
                              "ports": [{"protocol", "host_port", "container_port", "host_ip"}]},
           "bridge", "chain_prefix", "uid_hash",
           "endpoints": [{"service", "ip", "port", "protocol", "ready"}], "errors": [str]}
facts   = {"namespaces": {type: {"path", "exists", "mounted", "inode"}},
           "supervisor": {"pid", "alive"},
           "containers": {id: {"alive", "processes": [{"pid", "comm"}], "ns": {type: inode},
                               "cgroup": path | None, "mounts": [{"target", "fstype", "source", "options"}],
                               "overlay": None | {"lowerdirs": [{"given", "path", "diff_id", "blobs"}],
                                                  "upperdir", "upper_exists", "workdir"}}},
           "cgroups": {path: {"exists", "files": {name: text | None}, "usage": None | {"cpu_usage_ns",
                              "memory_usage", "memory_working_set", "pids"}}},
           "links": {"host": link | None, "bridge": link | None, "pod": None | {"eth0": link | None,
                     "lo_up", "routes": [{"dst", "gateway", "dev", "scope"}]}, "error": str | None},
             (link = netns.state.LinkState as a dict)
           "iptables": {"nat": text, "filter": text} | {"error": str},   (iptables-save's text)
           "logs": {path: size | None}, "errors": [str]}

The report: {"pod": {...}, "tree": [node], "problems": [str]} where node = {"what", "text",
"owner", "problem", "children"}; `render_text` draws it as a tree, one line per object."""

from __future__ import annotations

import re

# the upstream component that would own each kind of object on a real node
RUNC, CONTAINERD, BRIDGE, HOST_LOCAL, PORTMAP, KUBE_PROXY, KUBELET = (
    "runc", "containerd", "CNI bridge", "host-local", "portmap", "kube-proxy", "kubelet")
NS_NAMES = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid", "user": "user"}
CONTAINER_NS = ("net", "ipc", "uts", "pid", "mnt", "cgroup", "user")


def node(what: str, text: str, owner: str | None = None, problem: str | None = None, children=(),
         data: dict | None = None) -> dict:
    """One object of the report; `data` holds its facts as values for JSON readers."""
    return {"what": what, "text": text, "owner": owner, "problem": problem, "children": list(children),
            "data": data or {}}


# ---- kernel text (pure parsers) -----------------------------------------------------------------

def parse_mountinfo(text: str) -> list[dict]:
    """/proc/<pid>/mountinfo as {"target", "fstype", "source", "root", "options", "super"} per
    mount, in order (octal escapes such as \\040 decoded)."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        f, r = left.split(" "), right.split(" ")
        if not sep or len(f) < 6 or len(r) < 3:
            continue
        out.append({"root": _unescape(f[3]), "target": _unescape(f[4]), "options": f[5], "fstype": r[0],
                    "source": _unescape(r[1]), "super": r[2]})
    return out


def _unescape(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def overlay_dirs(super_options: str) -> dict:
    """{"lowerdir": [dirs, top first], "upperdir", "workdir"} of an overlay mount's options."""
    out: dict = {"lowerdir": [], "upperdir": None, "workdir": None}
    for opt in super_options.split(","):
        k, _, v = opt.partition("=")
        if k == "lowerdir":
            out["lowerdir"] = [d for d in re.split(r"(?<!\\):", v) if d]
        elif k in ("upperdir", "workdir"):
            out[k] = v
    return out


def root_mount(mounts: list[dict]) -> dict | None:
    """The mount at `/` that is seen (the last one stacked there)."""
    roots = [m for m in mounts if m["target"] == "/"]
    return roots[-1] if roots else None


def saved_rules(text: str) -> list[tuple[str, str]]:
    """(chain, rule line) of each `-A` line of one table of iptables-save's output."""
    out = []
    for line in text.splitlines():
        if line.startswith("-A "):
            out.append((line.split(" ", 2)[1], line))
    return out


def rule_owner(prefix: str, chain: str) -> str:
    rest = chain[len(prefix) + 1:]
    if rest in ("HOSTPORTS", "FIREWALL") or rest.startswith("HP-"):
        return PORTMAP
    if rest == "POSTROUTING" or rest.startswith("MASQ-"):
        return BRIDGE
    return KUBE_PROXY


def pod_rules(tables: dict[str, str], prefix: str, uid: str, uid_hash: str, ip: str | None) -> list[dict]:
    """Every rule of ours (chains named `<prefix>-...`) that concerns the pod: those of its own
    chains (named with its uid hash), those naming its uid (comments) or its IP, the Service
    endpoint chains (`<prefix>-SEP-*`) that DNAT to its IP, and the rules that jump to any of
    those chains; each with the table, chain, the rule as saved and its owner."""
    # here, not at the top: netns.services is ~15 ms of imports that `inspect`'s CLI (render_text) does not need
    from netns.services import rule_target  # a comment holding "-j X" is no target (shlex, as saved)
    out = []
    ip_re = re.compile(r"(?<![\d.])" + re.escape(ip) + r"(?![\d])") if ip else None
    for table in ("nat", "filter"):
        rules = [(c, r) for c, r in saved_rules(tables.get(table) or "") if c.startswith(prefix + "-")]
        mine = {c for c, _ in rules if uid_hash and c.endswith("-" + uid_hash)}
        if ip_re:
            mine |= {c for c, r in rules if c.startswith(prefix + "-SEP-") and ip_re.search(r)}
        for chain, rule in rules:
            if chain in mine or uid in rule or (ip_re and ip_re.search(rule)) or rule_target(rule) in mine:
                out.append({"table": table, "chain": chain, "rule": rule, "owner": rule_owner(prefix, chain)})
    return out


# ---- the report ---------------------------------------------------------------------------------

def _mi(n) -> str:
    """Bytes as the largest binary unit that divides them (64Mi), else with one decimal."""
    if n is None:
        return "-"
    n = int(n)
    for suffix, shift in (("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if n >= 1 << shift:
            return f"{n >> shift}{suffix}" if n % (1 << shift) == 0 else f"{n / (1 << shift):.1f}{suffix}"
    return f"{n}B"


def _int(v) -> int | None:
    try:
        return int(str(v).split()[0])
    except (TypeError, ValueError, IndexError):
        return None


def cgroup_values(version: str, files: dict) -> dict:
    """What the cgroup's files say, in one shape for v1 and v2: cpu shares or weight,
    quota/period (None: no quota), memory limit (None: unlimited), pids limit (None: max)."""
    big = 1 << 62  # v1's "no limit" is PAGE_COUNTER_MAX pages: 9223372036854771712
    if version == "v2":
        quota, _, period = (files.get("cpu.max") or "").partition(" ")
        mem = files.get("memory.max")
        return {"cpu.weight": _int(files.get("cpu.weight")),
                "quota": None if quota in ("", "max") else _int(quota), "period": _int(period),
                "memory_limit": None if mem in (None, "max") else _int(mem),
                "pids_limit": None if files.get("pids.max") in (None, "max") else _int(files.get("pids.max"))}
    quota = _int(files.get("cpu.cfs_quota_us"))
    mem = _int(files.get("memory.limit_in_bytes"))
    return {"cpu.shares": _int(files.get("cpu.shares")),
            "quota": None if quota is None or quota < 0 else quota, "period": _int(files.get("cpu.cfs_period_us")),
            "memory_limit": None if mem is None or mem >= big else mem,
            "pids_limit": None if files.get("pids.max") in (None, "max") else _int(files.get("pids.max"))}


def _cgroup_node(what: str, path: str, owner: str, version: str, fact: dict | None, want: dict | None) -> dict:
    if not fact or not fact.get("exists"):
        return node(what, path, owner, "missing: the record names this cgroup, the kernel has no such dir")
    v = cgroup_values(version, fact.get("files") or {})
    cpu = f"cpu.weight {v['cpu.weight']}" if version == "v2" else f"cpu.shares {v['cpu.shares']}"
    parts = [f"{version}", cpu,
             f"quota {v['quota']}/{v['period']}us" if v["quota"] is not None else "no cpu quota",
             f"memory limit {_mi(v['memory_limit'])}" if v["memory_limit"] is not None else "no memory limit",
             f"pids.max {v['pids_limit']}" if v["pids_limit"] is not None else "pids.max max"]
    use = fact.get("usage")
    if use:
        parts.append(f"using {_mi(use.get('memory_usage'))} memory (working set {_mi(use.get('memory_working_set'))}), "
                     f"{use.get('pids')} pids, {int(use.get('cpu_usage_ns') or 0) / 1e9:.2f}s cpu")
    problems = []
    want = want or {}
    if want.get("memory_limit") and v["memory_limit"] != want["memory_limit"]:
        problems.append(f"memory limit {_mi(v['memory_limit'])} in the kernel, {_mi(want['memory_limit'])} "
                        "in the container's config.json")
    if want.get("cpu_quota") and v["quota"] != want["cpu_quota"]:
        problems.append(f"cpu quota {v['quota']} in the kernel, {want['cpu_quota']} in config.json")
    if want.get("pids_limit") and v["pids_limit"] != want["pids_limit"]:
        problems.append(f"pids.max {v['pids_limit']} in the kernel, {want['pids_limit']} in config.json")
    return node(what, f"{path}: " + ", ".join(parts), owner, "; ".join(problems) or None,
                data={"path": path, "version": version, **v, "usage": use})


def _link_text(link: dict) -> str:
    bits = [f"ifindex {link.get('index')}", "up" if link.get("up") else "DOWN", f"mtu {link.get('mtu')}"]
    if link.get("addresses"):
        bits.append(", ".join(link["addresses"]))
    return ", ".join(bits)


def _sandbox(records: dict, facts: dict) -> dict:
    sb = records.get("sandbox")
    if sb is None:
        return node("sandbox", "no sandbox record", CONTAINERD, "missing: the pod has no sandbox on this node")
    kids = []
    for typ, path in sorted((sb.get("namespaces") or {}).items()):
        f = (facts.get("namespaces") or {}).get(typ) or {}
        name = NS_NAMES.get(typ, typ)
        problem = None
        if not f.get("exists"):
            problem = "missing: the pinned path is gone"
        elif not f.get("mounted"):
            problem = "not pinned: nothing is mounted there (the namespace is gone)"
        kids.append(node(f"{name} namespace", f"{name}:[{f.get('inode')}] pinned at {path}", CONTAINERD, problem,
                         data={"type": name, "inode": f.get("inode"), "path": path}))
    if sb.get("shm"):
        kids.append(node("shm", f"{sb['shm']} (the pod's /dev/shm)", CONTAINERD))
    sup = facts.get("supervisor") or {}
    if sb.get("supervisor_pid") or sup.get("pid"):
        kids.append(node("supervisor", f"pid {sup.get('pid') or sb.get('supervisor_pid')} (the pod's shim)",
                         CONTAINERD, None if sup.get("alive") else "dead: the supervisor's process is gone"))
    version = records.get("cgroup_version") or "v1"
    path = sb.get("cgroup_path") or ""
    kids.append(_cgroup_node("pod cgroup", path, KUBELET, version, (facts.get("cgroups") or {}).get(path), None))
    return node("sandbox", f"{sb.get('dir')} (QoS {sb.get('qos')}, pid namespace per {sb.get('pid_mode')})",
                CONTAINERD, None, kids)


def _network(records: dict, facts: dict, rules: list[dict]) -> dict:
    net = records.get("network")
    if net is None:
        return node("network", "no network record", BRIDGE, "missing: the pod's network setup is not recorded")
    if net.get("host_network"):
        return node("network", f"host network, IP {net.get('ip')}", KUBELET)
    links = facts.get("links") or {}
    kids = [node("IP", f"{net.get('ip')}/{net.get('prefixlen')} (allocated from the pod CIDR)", HOST_LOCAL)]
    host, br, pod = links.get("host"), links.get("bridge"), links.get("pod")
    veth = net.get("host_veth")
    if host is None:
        kids.append(node("veth host end", f"{veth}", BRIDGE, "missing: the record names this veth, the kernel has "
                                                              "no such link"))
    else:
        problem = None
        if br is None:
            problem = f"the bridge {records.get('bridge')} is missing"
        elif host.get("master") != br.get("index"):
            problem = f"not on the bridge {records.get('bridge')} (master ifindex {host.get('master')})"
        elif not host.get("up"):
            problem = "down"
        on = f", on bridge {br.get('name')} (ifindex {br.get('index')})" if br else ""
        kids.append(node("veth host end", f"{veth}: {_link_text(host)}{on}", BRIDGE, problem,
                         data={"name": veth, "index": host.get("index"), "master": host.get("master"),
                               "bridge": (br or {}).get("name")}))
    eth0 = (pod or {}).get("eth0")
    ifname = net.get("ifname") or "eth0"
    if pod is None:
        kids.append(node("veth pod end", ifname, BRIDGE, f"unreadable: {links.get('error') or 'no pod netns'}"))
    elif eth0 is None:
        kids.append(node("veth pod end", ifname, BRIDGE, "missing: no such link in the pod's netns"))
    else:
        problem = None
        want = f"{net.get('ip')}/{net.get('prefixlen')}"
        if want not in (eth0.get("addresses") or []):
            problem = f"{want} is recorded, the link has {', '.join(eth0.get('addresses') or []) or 'no address'}"
        elif host is not None and eth0.get("peer") != host.get("index"):
            problem = f"its peer is ifindex {eth0.get('peer')}, not the host end's {host.get('index')}"
        elif not eth0.get("up"):
            problem = "down"
        kids.append(node("veth pod end", f"{ifname} in the pod netns: {_link_text(eth0)}, peer ifindex "
                                          f"{eth0.get('peer')}", BRIDGE, problem))
    if pod is not None:
        gw = net.get("gateway")
        routes = pod.get("routes") or []
        has_default = any(r.get("dst") == "default" and r.get("gateway") == gw for r in routes)
        for r in routes:
            via = f" via {r['gateway']}" if r.get("gateway") else ""
            kids.append(node("route", f"{r.get('dst')}{via} dev {r.get('dev')}"
                                      + (f" scope {r['scope']}" if r.get("scope") else ""), BRIDGE))
        if gw and not has_default:
            kids.append(node("route", f"default via {gw}", BRIDGE, "missing: the recorded gateway has no default "
                                                                   "route in the pod"))
    kids.append(_iptables(records, facts, rules))
    return node("network", f"pod IP {net.get('ip')}, gateway {net.get('gateway')}", BRIDGE, None, kids)


def _iptables(records: dict, facts: dict, rules: list[dict]) -> dict:
    ipt = facts.get("iptables") or {}
    if "error" in ipt:
        return node("iptables", "rules", KUBE_PROXY, f"unreadable: {ipt['error']}")
    kids = [node("rule", f"{r['table']}: {r['rule']}", r["owner"], data={k: r[k] for k in ("table", "chain", "rule")})
            for r in rules]
    net = records.get("network") or {}
    ip = net.get("ip") or (records.get("pod") or {}).get("ip")
    dnat = [r["rule"] for r in rules if " -j DNAT " in r["rule"] + " "]
    for p in net.get("ports") or []:
        dest = f"--to-destination {ip}:{p['container_port']}"
        if not any(f"--dport {p['host_port']} " in r and dest in r for r in dnat):
            kids.append(node("rule", f"hostPort {p['host_port']}/{p['protocol']} -> {ip}:{p['container_port']}", PORTMAP,
                             "missing: the pod's hostPort has no DNAT rule"))
    for e in records.get("endpoints") or []:
        if not e.get("ready"):
            continue
        dest = f"--to-destination {e['ip']}:{e['port']}"
        if not any(r["chain"].startswith(f"{records.get('chain_prefix')}-SEP-") and dest in r["rule"] for r in rules):
            kids.append(node("rule", f"Service {e['service']} endpoint {e['ip']}:{e['port']}/{e['protocol']}", KUBE_PROXY,
                             "missing: the EndpointSlice lists this ready endpoint, no SEP rule DNATs to it"))
    return node("iptables", f"{len(rules)} rules concern the pod (legacy tables, chains {records.get('chain_prefix')}-*)",
                None, None, kids)


def mount_owner(m: dict, sandbox_dir: str | None) -> str:
    if m["target"] == "/":
        return CONTAINERD
    if m["target"] in ("/etc/hosts", "/dev/termination-log"):
        return KUBELET
    if m["target"] in ("/etc/hostname", "/etc/resolv.conf", "/dev/shm"):
        return CONTAINERD
    if "/volumes/" in m.get("root", "") or (sandbox_dir and m.get("root", "").startswith(sandbox_dir + "/volumes")):
        return KUBELET
    return RUNC


def _container(records: dict, facts: dict, c: dict) -> dict:
    f = (facts.get("containers") or {}).get(c["id"]) or {}
    kids = []
    running = c.get("state") == "running"
    procs = f.get("processes") or []
    if running:
        problem = None if f.get("alive") else f"dead: the record says running as pid {c.get('pid')}, /proc has no " \
                                              "such process"
        listed = ", ".join(f"{p['pid']} {p.get('comm') or '?'}" for p in procs) or "none"
        kids.append(node("processes", f"init pid {c.get('pid')}; in its cgroup: {listed}", RUNC, problem,
                         data={"init": c.get("pid"), "pids": [p["pid"] for p in procs]}))
    pod_ns = {NS_NAMES.get(t, t): ((facts.get("namespaces") or {}).get(t) or {}).get("inode")
              for t in ((records.get("sandbox") or {}).get("namespaces") or {})}
    if f.get("ns"):
        bits, problems = [], []
        for t in CONTAINER_NS:
            ino = f["ns"].get(t)
            if ino is None:
                continue
            shared = t in pod_ns
            bits.append(f"{t}:[{ino}]" + (" (the pod's)" if shared and pod_ns[t] == ino else ""))
            if shared and pod_ns[t] is not None and pod_ns[t] != ino:
                problems.append(f"{t} is {ino}, the pod's pinned {t} is {pod_ns[t]}")
        kids.append(node("namespaces", " ".join(bits), RUNC, "; ".join(problems) or None, data=dict(f["ns"])))
    version = records.get("cgroup_version") or "v1"
    cg = c.get("cgroup") or ""
    cg_fact = (facts.get("cgroups") or {}).get(cg)
    if not running and not (cg_fact or {}).get("exists"):
        cgn = node("cgroup", f"{cg}: removed with the {c.get('state')} container", RUNC, data={"path": cg})
    else:
        cgn = _cgroup_node("cgroup", cg, RUNC, version, cg_fact, c.get("resources"))
    if running and f.get("alive") and f.get("cgroup") and f["cgroup"].strip("/") != cg.strip("/") and not cgn["problem"]:
        cgn["problem"] = f"its init is in {f['cgroup']}, not in the recorded cgroup"
    kids.append(cgn)
    ov = f.get("overlay")
    if running and f.get("alive"):
        if ov is None:
            kids.append(node("rootfs", "/", CONTAINERD, "not an overlay: the container's / is not the image's overlay"))
        else:
            known = {ly.get("digest") for ly in c.get("layers") or []}
            layers = []
            for i, d in enumerate(ov.get("lowerdirs") or []):
                blobs = d.get("blobs") or []
                digest = next((b for b in blobs if b in known), blobs[0] if blobs else None)
                problem = None
                if not d.get("diff_id"):
                    problem = "not a snapshot of the image store"
                elif known and digest not in known:
                    problem = f"not a layer of the image {c.get('image')}"
                layers.append(node("lowerdir", f"{i}: {d.get('path') or d.get('given')} layer {digest} "
                                               f"(diff {d.get('diff_id')})", CONTAINERD, problem,
                                   data={"path": d.get("path"), "digest": digest, "diff_id": d.get("diff_id")}))
            layers.append(node("upperdir", f"{ov.get('upperdir')}", CONTAINERD,
                               None if ov.get("upper_exists") else "missing: the upper dir is gone"))
            kids.append(node("rootfs", f"overlay of {len(ov.get('lowerdirs') or [])} layers of {c.get('image')}",
                             CONTAINERD, None, layers))
        mounts = [node("mount", f"{m['target']} {m['fstype']} {m['root'] if m['root'] != '/' else m['source']} "
                                f"({m['options']})", mount_owner(m, (records.get("sandbox") or {}).get("dir")))
                  for m in f.get("mounts") or [] if m["target"] != "/"]
        kids.append(node("mounts", f"{len(mounts)} mounts besides /", None, None, mounts))
    lp = c.get("log_path")
    if lp:
        size = (facts.get("logs") or {}).get(lp)
        kids.append(node("log", f"{lp}" + (f" ({size} bytes)" if size is not None else ""), KUBELET,
                         "missing: the log file is gone" if size is None else None, data={"path": lp, "size": size}))
    state = c.get("state")
    return node("container", f"{c['name']} {c['id']} {state}" + (f" (restart {c.get('attempt')})" if c.get("attempt")
                                                                    else ""), RUNC, None, kids,
                data={"name": c["name"], "id": c["id"], "state": state})


def build_report(records: dict, facts: dict) -> dict:
    """The report of one pod: the tree of its kernel objects and every disagreement."""
    pod = records.get("pod") or {}
    net = records.get("network") or {}
    ip = net.get("ip") or pod.get("ip")
    ipt = facts.get("iptables") or {}
    rules = [] if "error" in ipt else pod_rules(ipt, records.get("chain_prefix") or "KPY", pod.get("uid") or "",
                                                records.get("uid_hash") or "", ip)
    tree = [_sandbox(records, facts), _network(records, facts, rules)]
    tree += [_container(records, facts, c) for c in records.get("containers") or []]
    tree += [node("error", e, None, f"unreadable: {e}") for e in (records.get("errors") or []) + (facts.get("errors") or [])]
    problems = []

    def walk(n: dict, where: str) -> None:
        here = f"{where}{n['what']}"
        if n.get("problem"):
            problems.append(f"{here} {n['text']}: {n['problem']}")
        for k in n["children"]:
            walk(k, here + " / ")
    for n in tree:
        walk(n, "")
    return {"kind": "PodInspection", "pod": pod, "tree": tree, "problems": problems}


def render_text(report: dict) -> str:
    """The report as a tree, one line per object: `what text [owner]`, and `!! problem` where the
    kernel disagrees with the records; a last line counts the disagreements."""
    pod = report.get("pod") or {}
    lines = [f"pod {pod.get('namespace')}/{pod.get('name')} uid {pod.get('uid')}"]

    def draw(n: dict, prefix: str, last: bool) -> None:
        owner = f"  [{n['owner']}]" if n.get("owner") else ""
        problem = f"  !! {n['problem']}" if n.get("problem") else ""
        lines.append(f"{prefix}{'└─ ' if last else '├─ '}{n['what']}: {n['text']}{owner}{problem}")
        kids = n.get("children") or []
        for i, k in enumerate(kids):
            draw(k, prefix + ("   " if last else "│  "), i == len(kids) - 1)
    tree = report.get("tree") or []
    for i, n in enumerate(tree):
        draw(n, "", i == len(tree) - 1)
    probs = report.get("problems") or []
    lines.append(f"{len(probs)} disagreement{'s' if len(probs) != 1 else ''} between the kernel and the records"
                 if probs else "the kernel agrees with the records")
    return "\n".join(lines) + "\n"
