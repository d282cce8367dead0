"""The node page's view model (pure): what the page shows, computed from the agent's objects as
plain JSON values, so that the page's script only puts text where it is told.

- `pod_rows`: the pods list, one row per pod as `kubectl get pods -o wide` has it (the cells come
  from kubelet_py/status/printers.py's `pod_row`), with a health class for its colour;
- `pod_detail`: one pod: its row, labels, annotations, conditions, containers, events and the
  log tails read for it; `log_requests` says which logs to read (a crash-looping container's
  current attempt has no log yet: its previous one is what explains it);
- `picture`: the `inspect pod` report (kubelet_py/inspect/report.py) laid out as boxes and
  arrows on a grid: the Service and hostPort rules that reach the pod, its bridge, the veth's
  host end, and the pod with its pinned namespaces, its cgroup, its eth0 and one box per
  container (pids, cgroup limits and usage, rootfs). A box whose object disagrees with the
  records is marked and says why. The script draws it as SVG without knowing what a pod is."""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from ...inspect.report import _mi  # bytes as 64Mi / 1.5Mi, as the report writes them
from ...status import podspec
from ...status.printers import pod_row
from ...status.timefmt import since

# STATUS cells that mean the pod is failing (kubectl's reasons, as the status layer sets them)
BAD_REASONS = frozenset({
    "CrashLoopBackOff", "Error", "Failed", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
    "OOMKilled", "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "StartError",
    "ContainerCannotRun", "DeadlineExceeded", "Evicted", "Unknown", "SysctlForbidden"})
LOG_TAIL_LINES = 100
LOG_TAIL_BYTES = 32 << 10


# ---- the pods list ------------------------------------------------------------------------------

def health(status: str, ready: str, phase: str) -> str:
    """`ok`, `warn` or `bad`: the row's colour (bad: failing; warn: not yet, or not all, ready)."""
    reason = status.split(":", 1)[1] if status.startswith("Init:") else status
    if phase == "Failed" or reason in BAD_REASONS or reason.startswith(("ExitCode:", "Signal:")):
        return "bad"
    if status in ("Completed", "Succeeded") or phase == "Succeeded":
        return "ok"
    n, _, total = ready.partition("/")
    return "ok" if status == "Running" and n == total else "warn"


def row(pod: Mapping, now: float) -> dict:
    """One row: namespace, name, uid, phase, ready, status, restarts, IP, age, node, health."""
    name, ready, status, restarts, age, ip, node = pod_row(pod, now, wide=True)[:7]
    md, phase = podspec.metadata(pod), (pod.get("status") or {}).get("phase") or "Pending"
    return {"namespace": md.get("namespace") or "default", "name": name, "uid": md.get("uid", ""), "phase": phase,
            "ready": ready, "status": status, "restarts": restarts, "ip": "" if ip == "<none>" else ip, "age": age,
            "node": "" if node == "<none>" else node, "health": health(status, ready, phase)}


def pod_rows(pods: Iterable[Mapping], now: float) -> list[dict]:
    """The pods list, by namespace then name."""
    return sorted((row(p, now) for p in pods), key=lambda r: (r["namespace"], r["name"]))


# ---- one pod ------------------------------------------------------------------------------------

def _statuses(pod: Mapping) -> dict[str, Mapping]:
    st = pod.get("status") or {}
    return {s.get("name"): s for s in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or [])}


def _containers(pod: Mapping) -> list[tuple[Mapping, str]]:
    """(spec, kind) of every container in the order the pod runs them: init (or sidecar), then app."""
    return ([(c, "sidecar" if podspec.is_sidecar(c) else "init") for c in podspec.init_containers(pod)]
            + [(c, "app") for c in podspec.containers(pod)])


def log_requests(pod: Mapping) -> list[tuple[str, bool]]:
    """(container, previous) of each log worth showing: a started container's current log; for one
    waiting again after an exit (CrashLoopBackOff), its previous attempt's log; nothing for a
    container that never started (its state says why)."""
    out = []
    statuses = _statuses(pod)
    for c, _ in _containers(pod):
        st = statuses.get(c.get("name")) or {}
        state, last = st.get("state") or {}, st.get("lastState") or {}
        if "running" in state or "terminated" in state:
            out.append((c["name"], False))
        elif "waiting" in state and last.get("terminated"):
            out.append((c["name"], True))
    return out


def state_text(st: Mapping, now: float) -> str:
    """A container's state in a few words: `Running for 5m`, `Waiting: CrashLoopBackOff (back-off
    10s restarting ...)`, `Terminated: Error, exit code 1, 20s ago`."""
    state = st.get("state") or {}
    if "running" in state:
        return f"Running for {since(state['running'].get('startedAt'), now)}"
    if "terminated" in state:
        t = state["terminated"]
        text = f"Terminated: {t.get('reason') or 'Unknown'}, exit code {t.get('exitCode', 0)}"
        if t.get("signal"):
            text += f", signal {t['signal']}"
        if t.get("finishedAt"):
            text += f", {since(t['finishedAt'], now)} ago"
        return text + (f": {t['message']}" if t.get("message") else "")
    if "waiting" in state:
        w = state["waiting"]
        return f"Waiting: {w.get('reason') or 'ContainerCreating'}" + (f" ({w['message']})" if w.get("message") else "")
    return "Waiting: no status yet"


def event_row(e: Mapping, now: float) -> dict:
    """An event as `describe` lists it: type, reason, age of the last one, count, source, message."""
    return {"type": e.get("type") or "", "reason": e.get("reason") or "",
            "age": since(e.get("lastTimestamp") or e.get("eventTime"), now),
            "first": since(e.get("firstTimestamp") or e.get("eventTime"), now), "count": int(e.get("count") or 1),
            "from": (e.get("source") or {}).get("component") or e.get("reportingComponent") or "",
            "message": str(e.get("message") or "").strip()}


def log_tail(container: str, previous: bool, data: bytes | None, error: str | None) -> dict:
    """One log's tail as text (invalid UTF-8 replaced; only the last LOG_TAIL_BYTES, from a line start)."""
    text = (data or b"")[-LOG_TAIL_BYTES:]
    if data and len(data) > LOG_TAIL_BYTES and b"\n" in text:
        text = text[text.index(b"\n") + 1:]
    return {"container": container, "previous": previous, "text": text.decode("utf-8", "replace"), "error": error}


def pod_detail(pod: Mapping, events: Iterable[Mapping], logs: Iterable[Mapping] | None, now: float) -> dict:
    """One pod's page; `logs` None: not read this time (the page keeps the tails it has)."""
    md, st = podspec.metadata(pod), pod.get("status") or {}
    statuses = _statuses(pod)
    containers = []
    for c, kind in _containers(pod):
        s = statuses.get(c.get("name")) or {}
        containers.append({"name": c.get("name", ""), "kind": kind, "image": c.get("image", ""),
                           "ready": bool(s.get("ready")), "restarts": int(s.get("restartCount") or 0),
                           "state": state_text(s, now),
                           "last": state_text({"state": s["lastState"]}, now) if s.get("lastState") else ""})
    return {"pod": row(pod, now),
            "labels": sorted([k, str(v)] for k, v in (md.get("labels") or {}).items()),
            "annotations": sorted([k, str(v)] for k, v in (md.get("annotations") or {}).items()),
            "conditions": [[c.get("type", ""), c.get("status", "")] for c in st.get("conditions") or []],
            "qos": st.get("qosClass") or "", "hostIP": st.get("hostIP") or "",
            "message": " ".join(x for x in (st.get("reason"), st.get("message")) if x),
            "containers": containers,
            "events": [event_row(e, now) for e in events],
            "logs": None if logs is None else list(logs)}


# ---- the inspect picture ------------------------------------------------------------------------

LINE, PAD, CHAR_W = 16, 8, 7.3      # px: a text line, a box's padding, a 12px monospace character
JUMPS_W = 40                         # left of the rules: the connectors of one chain's jump to another
RULES_X, RULES_W = 10 + JUMPS_W, 380  # the rules that bring traffic to the pod
BRIDGE_X, BRIDGE_W = RULES_X + RULES_W + 40, 170
VETH_X, VETH_W = BRIDGE_X + BRIDGE_W + 40, 200
POD_X, POD_W = VETH_X + VETH_W + 40, 480
ETH0_W = 210
WIDTH = POD_X + POD_W + 10
GAP = 10
PORTMAP, KUBE_PROXY = "portmap", "kube-proxy"


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:max(chars - 1, 0)] + "\u2026"


def _problems(n: Mapping, where: str = "") -> list[str]:
    """Every problem in a node's subtree, each named by where it is below `n`."""
    out = [f"{where}{n['problem']}"] if n.get("problem") else []
    for k in n.get("children") or []:
        out += _problems(k, f"{k.get('what')}: ")
    return out


class _Canvas:
    def __init__(self):
        self.boxes: list[dict] = []
        self.links: list[dict] = []

    def box(self, id_: str, kind: str, x: float, y: float, w: float, head: str, lines: list[str], owner=None,
            problems: Iterable[str] = (), title: str = "", h: float | None = None) -> dict:
        """A box at (x, y), `w` wide, as high as its lines (or `h`). The owner tag goes right of the
        head, or on a line of its own under it where both do not fit; each problem is a line of
        its own starting with `!! `; `title` (the tooltip) is the full text."""
        problems = list(problems)
        chars = int((w - 2 * PAD) / CHAR_W)
        owner = owner or ""
        lines = ([""] if owner and len(head) + len(owner) + 2 > chars else []) + list(lines)
        body = [_fit(ln, chars) for ln in lines] + [_fit("!! " + p, chars) for p in problems]
        full = "\n".join([title or "\n".join(x for x in [head + (f" [{owner}]" if owner else ""), *lines] if x),
                          *("!! " + p for p in problems)])
        b = {"id": id_, "kind": kind, "x": x, "y": y, "w": w, "h": h or 2 * PAD + LINE * (1 + len(body)),
             "head": _fit(head, chars), "owner": owner, "owner_row": 1 if lines[:1] == [""] and owner else 0,
             "lines": body, "problem": bool(problems), "title": full}
        self.boxes.append(b)
        return b

    def link(self, a: dict, b: dict, label: str = "", problem: bool = False) -> None:
        """An arrow from a's right edge to b's left edge, level with their heads."""
        ya, yb = a["y"] + PAD + LINE, b["y"] + PAD + LINE
        self.links.append({"points": [[a["x"] + a["w"], ya], [b["x"], yb]], "label": label, "problem": problem})

    def jump(self, a: dict, b: dict, lane: int) -> None:
        """A connector on the left of two boxes of one column: a chain's rule jumps to the other chain."""
        x = a["x"] - 8 - 6 * (lane % 5)
        ya, yb = a["y"] + PAD + LINE, b["y"] + PAD + LINE
        self.links.append({"points": [[a["x"], ya], [x, ya], [x, yb], [b["x"], yb]], "label": "", "problem": False})


def _find(nodes: Iterable[Mapping], what: str) -> Mapping | None:
    return next((n for n in nodes if n.get("what") == what), None)


def _kids(n: Mapping | None) -> list[Mapping]:
    return list((n or {}).get("children") or [])


def _own(n: Mapping | None) -> list[str]:
    return [n["problem"]] if n and n.get("problem") else []


def _cgroup_lines(n: Mapping) -> list[str]:
    d = n.get("data") or {}
    if "version" not in d:  # nothing read: gone (a problem), or removed with its exited container
        text = n.get("text", "")
        rest = text.split(": ", 1)[1] if ": " in text else ""
        return [f"\u2026/{(d.get('path') or text).rsplit('/', 1)[-1].split(': ')[0]}" + (f": {rest}" if rest else "")]
    cpu = f"cpu.weight {d.get('cpu.weight')}" if d.get("version") == "v2" else f"cpu.shares {d.get('cpu.shares')}"
    quota = f"quota {d['quota']}/{d.get('period')}us" if d.get("quota") is not None else "no cpu quota"
    mem = f"memory limit {_mi(d['memory_limit'])}" if d.get("memory_limit") is not None else "no memory limit"
    lines = [f"{d.get('version')} \u2026/{d.get('path', '').rsplit('/', 1)[-1]}", f"{cpu}, {quota}", mem]
    use = d.get("usage")
    if use:
        lines.append(f"using {_mi(use.get('memory_usage'))}, {use.get('pids')} pids, "
                     f"{int(use.get('cpu_usage_ns') or 0) / 1e9:.2f}s cpu")
    return lines


def _container_box(cv: _Canvas, n: Mapping, x: float, y: float, w: float) -> dict:
    d, kids = n.get("data") or {}, _kids(n)
    lines = [f"{d.get('state') or ''} {str(d.get('id') or '')[:16]}".strip()]
    procs = _find(kids, "processes")
    if procs:
        pd = procs.get("data") or {}
        k = len(pd.get("pids") or [])
        lines.append(f"init pid {pd.get('init')}, {k} process{'es' if k != 1 else ''} in its cgroup")
    ns = _find(kids, "namespaces")
    if ns and ns.get("data"):
        own = [t for t in ("pid", "mnt") if t in ns["data"]]
        lines.append("own " + ", ".join(f"{t}:[{ns['data'][t]}]" for t in own) + "; the pod's net, ipc, uts")
    cg = _find(kids, "cgroup")
    if cg:
        cl = _cgroup_lines(cg)
        lines += ["cgroup " + cl[0]] + cl[1:]
    rootfs = _find(kids, "rootfs")
    if rootfs:
        lines.append("rootfs: " + rootfs.get("text", ""))
    return cv.box(f"container-{d.get('name') or n.get('text')}", "container", x, y, w,
                  f"container {d.get('name') or n.get('text', '')}", lines, n.get("owner"), _problems(n),
                  title=n.get("text", ""))


def _jump_target(rule: str) -> str | None:
    parts = rule.split(" -j ", 1)
    return parts[1].split(" ", 1)[0] if len(parts) == 2 else None


_COMMENT = re.compile(r'-m comment --comment ("[^"]*"|\S+) ?')
RULE_CHARS = int((RULES_W - 2 * PAD) / CHAR_W)


def rule_line(rule: str, chain: str, chars: int) -> str:
    """A saved rule shortened to what it does: without `-A CHAIN`, its comment and `-m tcp`, and
    cut at its start rather than its end (the target is what tells)."""
    text = rule.replace(f"-A {chain} ", "", 1)
    text = _COMMENT.sub("", text)
    text = re.sub(r"-m (tcp|udp|sctp) (?=-|!)", "", text).strip()
    return text if len(text) <= chars else "\u2026" + text[len(text) - chars + 1:]


def _chain_order(chains: dict[tuple[str, str], list[Mapping]]) -> list[tuple[str, str]]:
    """The chains with each after every chain of the set that jumps to it (entry chains first)."""
    depth = {k: 0 for k in chains}
    for _ in range(len(chains)):
        for (table, chain), rs in chains.items():
            for r in rs:
                t = (table, _jump_target(r["data"].get("rule") or "") or "")
                if t in depth and t != (table, chain):
                    depth[t] = max(depth[t], depth[(table, chain)] + 1)
    return sorted(chains, key=lambda k: depth[k])  # stable: saved order within a depth


def _rule_boxes(cv: _Canvas, rules: list[Mapping], y: float) -> tuple[list[tuple[dict, bool]], float]:
    """One box per chain of the rules that bring traffic to the pod (kube-proxy's Service chains,
    portmap's hostPort chains), a connector for each jump from one to another; each box with
    whether it DNATs to the pod."""
    chains: dict[tuple[str, str], list[Mapping]] = {}
    for r in rules:
        d = r.get("data") or {}
        chains.setdefault((d.get("table", ""), d.get("chain", "")), []).append(r)
    boxes: dict[tuple[str, str], dict] = {}
    out = []
    for table, chain in _chain_order(chains):
        rs = chains[(table, chain)]
        text = [(r["data"].get("rule") or "") for r in rs]
        comments = list(dict.fromkeys(c for t in text for c in _COMMENT.findall(t)))
        b = cv.box(f"chain-{table}-{chain}", "rule", RULES_X, y, RULES_W, f"{table} {chain}",
                   [f"/* {c.strip(chr(34))} */" for c in comments[:1]] + [rule_line(t, chain, RULE_CHARS) for t in text],
                   rs[0].get("owner"), title="\n".join(text))
        boxes[(table, chain)] = b
        out.append((b, any(" -j DNAT " in t + " " for t in text)))
        y = b["y"] + b["h"] + GAP
    lane = 0
    for (table, chain), rs in chains.items():
        for t in {_jump_target(r["data"].get("rule") or "") for r in rs}:
            if (table, t) in boxes and t != chain:
                cv.jump(boxes[(table, chain)], boxes[(table, t)], lane)
                lane += 1
    return out, y


def picture(report: Mapping) -> dict:
    """The report as boxes and arrows: {"width", "height", "boxes": [{"id", "kind", "x", "y", "w",
    "h", "head", "owner", "owner_row", "lines", "problem", "title"}], "links": [{"points": [[x, y],
    ...], "label", "problem"}]}. Kinds: pod, ns, cgroup, veth, bridge, rule, container, note.
    Every problem of the report is on the box of its object (and the page lists them all too)."""
    cv = _Canvas()
    tree = list(report.get("tree") or [])
    pod = report.get("pod") or {}
    sandbox, network = _find(tree, "sandbox"), _find(tree, "network")
    net_kids = _kids(network)
    ipt = _find(net_kids, "iptables")
    rules = [r for r in _kids(ipt) if r.get("data")]
    ingress = [r for r in rules if r.get("owner") in (KUBE_PROXY, PORTMAP)]
    egress = [r for r in rules if r.get("owner") not in (KUBE_PROXY, PORTMAP)]
    missing = [r for r in _kids(ipt) if not r.get("data") and r.get("problem")]

    # the pod: a head, its pinned namespaces, eth0 and the pod cgroup side by side, its containers
    ix, iw = POD_X + PAD, POD_W - 2 * PAD
    sb_text = (sandbox or {}).get("text") or ""
    head_lines = [(network or {}).get("text") or "no network record",
                  sb_text[sb_text.find(" (") + 2:].rstrip(")") if " (" in sb_text else sb_text or "no sandbox record"]
    pod_problems = _own(sandbox) + [p for k in _kids(sandbox) if k.get("what") in ("supervisor", "shm")
                                    for p in _problems(k, f"{k.get('what')}: ")]
    pod_problems += [e.get("problem") or e.get("text", "") for e in tree if e.get("what") == "error"]
    y = GAP + 2 * PAD + LINE * (1 + len(head_lines) + len(pod_problems)) + GAP
    ns_nodes = [n for n in _kids(sandbox) if n.get("what", "").endswith(" namespace")]
    ns_boxes = []
    for i, n in enumerate(ns_nodes):
        w = (iw - GAP * (len(ns_nodes) - 1)) / len(ns_nodes)
        d = n.get("data") or {}
        ns_boxes.append(cv.box(f"ns-{d.get('type') or i}", "ns", ix + i * (w + GAP), y, w,
                               f"{d.get('type') or n['what']} namespace", [f"[{d.get('inode')}]"], n.get("owner"),
                               _own(n), title=n.get("text", "")))
    if ns_boxes:
        y = max(b["y"] + b["h"] for b in ns_boxes) + GAP
    pod_end, ip_node = _find(net_kids, "veth pod end"), _find(net_kids, "IP")
    eth0 = None
    row_bottom = y
    if pod_end is not None:
        routes = [r for r in net_kids if r.get("what") == "route"]
        link = (pod_end.get("text") or "").split(": ", 1)[-1].split(", ")
        eth0 = cv.box("eth0", "veth", ix, y, ETH0_W, "eth0 (veth, pod end)",
                      [((ip_node or {}).get("text") or "").split(" ", 1)[0], ", ".join(link[:3])]
                      + [r.get("text", "") for r in routes if r.get("text", "").startswith("default")],
                      pod_end.get("owner"), _own(pod_end) + [p for r in routes for p in _problems(r, "route: ")],
                      title="\n".join([pod_end.get("text", "")] + [r.get("text", "") for r in routes]))
        row_bottom = eth0["y"] + eth0["h"]
    pod_cg = _find(_kids(sandbox), "pod cgroup")
    if pod_cg is not None:
        cx = ix + (ETH0_W + GAP if eth0 else 0)
        b = cv.box("pod-cgroup", "cgroup", cx, y, ix + iw - cx, "pod cgroup", _cgroup_lines(pod_cg), pod_cg.get("owner"),
                   _own(pod_cg), title=pod_cg.get("text", ""))
        row_bottom = max(row_bottom, b["y"] + b["h"])
    y = row_bottom + GAP
    for n in tree:
        if n.get("what") == "container":
            b = _container_box(cv, n, ix, y, iw)
            y = b["y"] + b["h"] + GAP
    cv.box("pod", "pod", POD_X, GAP, POD_W, f"pod {pod.get('namespace')}/{pod.get('name')}", head_lines,
           (sandbox or {}).get("owner"), pod_problems, h=y - 2 * GAP + PAD)
    cv.boxes.insert(0, cv.boxes.pop())  # drawn first: behind what it holds
    bottom = y

    # the node's side: the veth's host end, the bridge, the rules that bring traffic to the pod
    ay = eth0["y"] if eth0 else GAP
    if not net_kids:  # no network record, or the node's network
        what = "the node's own netns" if (network or {}).get("text", "").startswith(
            "host network") else "no network record"
        note = cv.box("network", "note", VETH_X, ay, VETH_W, "network", [what], None, _own(network))
        return {"width": WIDTH, "height": max(bottom, note["y"] + note["h"]) + GAP, "boxes": cv.boxes,
                "links": cv.links}
    host_end = _find(net_kids, "veth host end")
    hd = (host_end or {}).get("data") or {}
    veth = cv.box("veth-host", "veth", VETH_X, ay, VETH_W, "veth (host end)",
                  [hd.get("name") or (host_end or {}).get("text", ""), f"ifindex {hd.get('index')}" if hd else ""],
                  (host_end or {}).get("owner"), _own(host_end), title=(host_end or {}).get("text", ""))
    bridge = cv.box("bridge", "bridge", BRIDGE_X, ay, BRIDGE_W, "bridge",
                    [hd.get("bridge") or "?", f"ifindex {hd.get('master')}" if hd.get("master") else ""], "CNI bridge")
    if eth0:
        cv.link(veth, eth0, "veth", veth["problem"] or eth0["problem"])
    cv.link(bridge, veth, "", veth["problem"])
    boxes, ry = _rule_boxes(cv, ingress, GAP)
    for b, dnat in boxes:
        if dnat:
            cv.link(b, bridge, "DNAT", b["problem"])
    for m in missing + ([ipt] if ipt and ipt.get("problem") else []):
        b = cv.box(f"missing-{len(cv.boxes)}", "rule", RULES_X, ry, RULES_W, m.get("text", ""), [], m.get("owner"),
                   _own(m))
        ry = b["y"] + b["h"] + GAP
    bottom = max(bottom, ry, veth["y"] + veth["h"], bridge["y"] + bridge["h"])
    if egress:
        out = cv.box("egress", "rule", BRIDGE_X, max(bridge["y"] + bridge["h"], veth["y"] + veth["h"]) + 3 * GAP,
                     VETH_X + VETH_W - BRIDGE_X, "from the pod out", [
                         f"{r['data'].get('table')} {r['data'].get('chain')}: {r['data'].get('rule', '').split(' ', 2)[-1]}"
                         for r in egress], egress[0].get("owner"), title="\n".join(r["data"].get("rule", "") for r in egress))
        bottom = max(bottom, out["y"] + out["h"])
    return {"width": WIDTH, "height": bottom + GAP, "boxes": cv.boxes, "links": cv.links}
