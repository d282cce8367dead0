"""Edge: what `inspect pod` reports, read for the daemon's API route. `inspect_pod` takes what the
agent holds in memory (the stored pod, its worker's container ids, the EndpointSlices naming it)
on the event loop, then reads everything else in a worker thread (asyncio.to_thread): the
records on disk (sandbox.json, the supervisor's container records, each container's config.json,
the network record, the image store's snapshots) and the kernel's live state (/proc, the pinned
namespaces, cgroup files, netlink in the host and in the pod netns, `iptables-legacy-save` and
`iptables-nft-save` (the Services' rules with serve --services-iptables nft), the log files). kubelet_py/inspect/report.py (pure) makes the report of both."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess

log = logging.getLogger("kubelet_py.inspect")
IPTABLES_SAVE = os.environ.get("KPY_IPTABLES_SAVE", "iptables-legacy-save")
NFT_SAVE = "iptables-nft-save"
SAVE_TIMEOUT_S = 30.0


async def inspect_pod(agent, namespace: str, name: str) -> dict:
    """The report of pod `namespace/name` (ApiError 404 if the store has no such pod)."""
    from ..server.errors import ApiError
    from .report import build_report
    pod = agent.store.get("Pod", namespace, name)
    if pod is None:
        raise ApiError(404, f'pods "{name}" not found', details={"name": name, "kind": "pods"})
    base = memory_records(agent, pod)

    def work() -> dict:  # the report too: thousands of Service rules are parsed there
        return build_report(*gather(agent.paths, agent.net, agent.images, base))
    return await asyncio.to_thread(work)


def memory_records(agent, pod: dict) -> dict:
    """On the event loop: what only the agent's memory holds (no file, no syscall)."""
    md = pod["metadata"]
    uid, ns = md["uid"], md.get("namespace") or "default"
    w = agent.workers.get(uid)
    ip = (pod.get("status") or {}).get("podIP")
    endpoints = []
    for s in agent.store.list("EndpointSlice", ns):
        svc = ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name", "")
        for e in s.get("endpoints") or []:
            ref = e.get("targetRef") or {}
            if ref.get("uid") != uid and not (ip and ip in (e.get("addresses") or [])):
                continue
            for p in s.get("ports") or []:
                if p.get("port"):
                    endpoints.append({"service": f"{ns}/{svc}", "ip": (e.get("addresses") or [ip])[0],
                                      "port": p["port"], "protocol": p.get("protocol") or "TCP",
                                      "ready": bool((e.get("conditions") or {}).get("ready"))})
    return {"pod": {"namespace": ns, "name": md["name"], "uid": uid, "ip": ip},
            "cids": dict(w.cids) if w else {}, "endpoints": endpoints}


def gather(paths, net_config, images, base: dict) -> tuple[dict, dict]:
    """Blocking (a worker thread): (records, facts) as kubelet_py/inspect/report.py describes."""
    from netns import plan
    from runtime.cgroups import detect
    uid = base["pod"]["uid"]
    errors: list[str] = []
    records = {"pod": base["pod"], "endpoints": base["endpoints"], "cgroup_version": detect(),
               "bridge": net_config.bridge, "chain_prefix": net_config.chain_prefix, "uid_hash": plan.uid_hash(uid),
               "errors": errors}
    facts: dict = {"errors": []}
    records["sandbox"], status = _sandbox_records(paths, uid, errors)
    records["containers"] = _container_records(paths, images, status, base["cids"], records["sandbox"], errors)
    records["network"] = _network_record(net_config, uid, errors)
    facts["namespaces"] = {t: _pinned(p) for t, p in ((records["sandbox"] or {}).get("namespaces") or {}).items()}
    sup = (records["sandbox"] or {}).get("supervisor_pid")
    facts["supervisor"] = {"pid": sup, "alive": bool(sup) and os.path.exists(f"/proc/{sup}")}
    facts["containers"] = {c["id"]: _container_facts(c) for c in records["containers"]}
    cgroups = [c["cgroup"] for c in records["containers"]]
    if records["sandbox"]:
        cgroups.append(records["sandbox"]["cgroup_path"])
    facts["cgroups"] = {p: _cgroup_facts(p, records["cgroup_version"]) for p in cgroups if p}
    facts["links"] = _links(net_config, records["network"], records["sandbox"])
    facts["iptables"] = saved_tables()
    facts["logs"] = {c["log_path"]: _size(c["log_path"]) for c in records["containers"] if c.get("log_path")}
    return records, facts


# ---- records on disk --------------------------------------------------------------------------

def _sandbox_records(paths, uid: str, errors: list) -> tuple[dict | None, object]:
    from runtime import pod as rt
    from runtime.errors import RuntimeFailure
    try:
        sb = rt.load_sandbox(paths.run_root, uid)
    except RuntimeFailure:
        return None, None
    rec = {"dir": sb.dir, "namespaces": dict(sb.namespaces), "shm": sb.shm, "cgroup_path": sb.cgroup_path,
           "qos": sb.qos, "pid_mode": sb.pid_mode, "supervisor_pid": None}
    try:
        status = rt.pod_status(paths, uid)
        rec["supervisor_pid"] = status.sandbox.supervisor_pid
    except Exception as e:  # noqa: BLE001 - reported on its line; the rest is still inspected
        log.warning("inspect %s: pod status: %s", uid, e)
        errors.append(f"the containers' records of pod {uid}: {e}")
        status = None
    return rec, status


def _container_records(paths, images, status, cids: dict, sandbox: dict | None, errors: list) -> list[dict]:
    """The current instance of each container (the worker's ids; without a worker, the newest
    attempt of each name the supervisor knows)."""
    if status is None:
        return []
    newest: dict[str, object] = {}
    for c in status.containers:
        if c.name not in newest or c.attempt >= newest[c.name].attempt:
            newest[c.name] = c
    current = [status.container(cid) for cid in cids.values()] if cids else list(newest.values())
    out = []
    for c in sorted((c for c in current if c is not None), key=lambda c: c.name or ""):
        rec = {"name": c.name, "id": c.id, "state": c.state, "pid": c.pid, "image": c.image, "image_id": c.image_id,
               "attempt": c.attempt, "log_path": c.log_path,
               "cgroup": f"{sandbox['cgroup_path']}/{c.id}" if sandbox else None,
               "state_dir": os.path.join(paths.root, "containers", c.id), "resources": {}, "layers": []}
        try:
            with open(os.path.join(paths.run_root, "containers", c.id, "config.json")) as f:
                res = ((json.load(f).get("linux") or {}).get("resources")) or {}
            cpu, mem, pids = res.get("cpu") or {}, res.get("memory") or {}, res.get("pids") or {}
            rec["resources"] = {"cpu_shares": cpu.get("shares"), "cpu_quota": cpu.get("quota"),
                                "cpu_period": cpu.get("period"), "memory_limit": mem.get("limit"),
                                "pids_limit": pids.get("limit")}
        except FileNotFoundError:
            pass  # an exited container's bundle may be gone
        except (OSError, ValueError) as e:
            errors.append(f"container {c.id} config.json: {e}")
        try:
            im = images.image(c.image)
            rec["layers"] = [{"digest": d.digest, "diff_id": diff}
                             for d, diff in zip(im.manifest.layers, im.config.diff_ids)]
        except Exception as e:  # noqa: BLE001 - an image removed since: its lowerdirs still say what they are
            log.info("inspect: image of container %s: %s", c.id, e)
        out.append(rec)
    return out


def _network_record(net_config, uid: str, errors: list) -> dict | None:
    from netns import podrecords, state
    try:
        rec = podrecords.read(net_config, uid)
    except Exception as e:  # noqa: BLE001 - netns.StateError: named on its line
        errors.append(f"network record of pod {uid}: {e}")
        return None
    return json.loads(state.to_record(rec)) if rec is not None else None


# ---- the kernel now ------------------------------------------------------------------------------

def _pinned(path: str) -> dict:
    try:
        st = os.stat(path)
    except OSError:
        return {"path": path, "exists": False, "mounted": False, "inode": None}
    return {"path": path, "exists": True, "mounted": os.path.ismount(path), "inode": st.st_ino}


def _ns_inode(pid: int, name: str) -> int | None:
    try:
        return int(os.readlink(f"/proc/{pid}/ns/{name}").split("[")[1].rstrip("]"))
    except (OSError, IndexError, ValueError):
        return None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _proc_cgroup(pid: int) -> str | None:
    """The process's cgroup: the unified line on v2, the memory controller's on v1."""
    text = _read(f"/proc/{pid}/cgroup") or ""
    lines = [ln.split(":", 2) for ln in text.splitlines() if ln.count(":") >= 2]
    for _hid, ctrls, path in lines:
        if "memory" in ctrls.split(","):
            return path
    return next((path for _hid, ctrls, path in lines if ctrls == ""), None)


def _container_facts(c: dict) -> dict:
    from runtime.cgroups import Cgroup, CgroupError
    from .report import overlay_dirs, parse_mountinfo, root_mount
    pid = c.get("pid")
    alive = bool(pid) and c.get("state") == "running" and os.path.exists(f"/proc/{pid}")
    out: dict = {"alive": alive, "processes": [], "ns": {}, "cgroup": None, "mounts": [], "overlay": None}
    if c.get("cgroup"):
        try:
            out["processes"] = [{"pid": p, "comm": _read(f"/proc/{p}/comm")} for p in Cgroup(c["cgroup"]).pids()]
        except CgroupError as e:
            log.info("inspect: cgroup %s: %s", c["cgroup"], e)
    if not alive:
        return out
    out["ns"] = {n: _ns_inode(pid, n) for n in ("net", "ipc", "uts", "pid", "mnt", "cgroup", "user")}
    out["cgroup"] = _proc_cgroup(pid)
    mounts = parse_mountinfo(_read(f"/proc/{pid}/mountinfo") or "")
    out["mounts"] = mounts
    root = root_mount(mounts)
    if root is not None and root["fstype"] == "overlay":
        dirs = overlay_dirs(root["super"])
        base = c.get("state_dir") or "/"

        def where(d: str | None) -> str | None:
            return None if d is None else os.path.realpath(os.path.join(base, d))
        lowers = []
        for given in dirs["lowerdir"]:
            path = where(given)
            meta = {}
            try:
                with open(os.path.join(os.path.dirname(path), "layer.json")) as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                pass
            lowers.append({"given": given, "path": path, "diff_id": meta.get("diff_id"), "blobs": meta.get("blobs") or []})
        upper = where(dirs["upperdir"])
        out["overlay"] = {"lowerdirs": lowers, "upperdir": upper, "upper_exists": bool(upper) and os.path.isdir(upper),
                          "workdir": where(dirs["workdir"])}
    return out


_V1_FILES = (("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"),
             ("memory", "memory.limit_in_bytes"), ("pids", "pids.max"))
_V2_FILES = ("cpu.weight", "cpu.max", "memory.max", "pids.max")


def _cgroup_facts(path: str, version: str) -> dict:
    from runtime.cgroups import Cgroup
    cg = Cgroup(path, version)
    if not os.path.isdir(cg.dir("memory")):
        return {"exists": False, "files": {}, "usage": None}
    if version == "v2":
        files = {f: _read(f"{cg.dir('cpu')}/{f}") for f in _V2_FILES}
    else:
        files = {f: _read(f"{cg.dir(ctrl)}/{f}") for ctrl, f in _V1_FILES}
    try:
        usage = cg.stats()._asdict()
    except (OSError, KeyError, ValueError) as e:
        log.info("inspect: cgroup %s usage: %s", path, e)
        usage = None
    return {"exists": True, "files": files, "usage": usage}


def _links(net_config, net: dict | None, sandbox: dict | None) -> dict:
    from netns import netlink, nsfs
    out: dict = {"host": None, "bridge": None, "pod": None, "error": None}
    if net is None or net.get("host_network"):
        return out
    try:
        if net.get("host_veth"):
            out["host"] = _asdict(netlink.inspect_link(net["host_veth"]))
        out["bridge"] = _asdict(netlink.inspect_link(net_config.bridge))
    except Exception as e:  # noqa: BLE001 - netns.LinkError: on the report's line
        out["error"] = str(e)
    path = ((sandbox or {}).get("namespaces") or {}).get("network")
    if not path:
        out["error"] = out["error"] or "the sandbox pins no network namespace"
        return out
    try:
        fd = nsfs.open_netns(path)
    except OSError as e:
        out["error"] = f"{path}: {e.strerror or e}"
        return out
    try:
        side = netlink.inspect_pod(fd, path)
        out["pod"] = {"eth0": _asdict(side.eth0), "lo_up": side.lo_up, "routes": _routes(fd)}
    except Exception as e:  # noqa: BLE001 - netns.LinkError: on the report's line
        out["error"] = str(e)
    finally:
        nsfs.close(fd)
    return out


def _asdict(x) -> dict | None:
    return dataclasses.asdict(x) if x is not None else None


_SCOPES = {0: None, 200: "site", 253: "link", 254: "host"}


def _routes(netns_fd: int) -> list[dict]:
    """Every IPv4 route of the pod's main table (netns/netlink.py's inspect_pod has the default
    ones only), with its device by name."""
    from pyroute2 import IPRoute
    from netns import nsfs
    with nsfs.entered(netns_fd):
        ipr = IPRoute()  # the socket stays in the pod netns once this thread is back in its own
    try:
        names = {ln["index"]: ln.get_attr("IFLA_IFNAME") for ln in ipr.get_links()}
        out = []
        for r in ipr.get_routes(family=socket.AF_INET, table=254):
            dst = r.get_attr("RTA_DST")
            out.append({"dst": f"{dst}/{r['dst_len']}" if dst else "default", "gateway": r.get_attr("RTA_GATEWAY"),
                        "dev": names.get(r.get_attr("RTA_OIF")), "scope": _SCOPES.get(r["scope"], str(r["scope"]))})
        return out
    finally:
        ipr.close()


def saved_tables() -> dict:
    """{"nat": text, "filter": text} of `iptables-legacy-save` (the tables python-iptables and the
    service proxy write), followed by `iptables-nft-save`'s of the same table when iptables-nft
    is installed (the Services' rules in nft mode), or {"error": why}."""
    exe = shutil.which(IPTABLES_SAVE)
    if exe is None:
        return {"error": f"{IPTABLES_SAVE} is not installed (Debian: apt-get install iptables)"}
    nft = shutil.which(NFT_SAVE)
    out = {}
    for table in ("nat", "filter"):
        texts = []
        for name, path in ((IPTABLES_SAVE, exe), (NFT_SAVE, nft)):
            if path is None:
                continue
            try:
                p = subprocess.run([path, "-t", table], capture_output=True, timeout=SAVE_TIMEOUT_S, close_fds=True,
                                   cwd="/")
            except (OSError, subprocess.TimeoutExpired) as e:
                return {"error": f"{name} -t {table}: {e}"}
            if p.returncode != 0:
                return {"error": f"{name} -t {table} exited {p.returncode}: "
                                 f"{p.stderr.decode(errors='replace').strip()[:300]}"}
            texts.append(p.stdout.decode(errors="replace"))
        out[table] = "".join(texts)
    return out


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None
