"""Edge: links, addresses and routes through pyroute2 (rtnetlink). Creates are `ensure_*` or fail
with a LinkError naming the link; deletes treat "already gone" as success.

One IPRoute socket per thread in the host namespace (pyroute2 sockets are not shared between
threads); a pod-side socket is opened inside the pod's namespace with setns (netns/nsfs.py) for the
few calls that configure eth0, then closed.

Deleting a veth costs the kernel an RCU barrier (about 15-20 ms here, whatever the tool), so
`delete_later` hands it to one background thread after detaching the link from the bridge; the
link keeps its IFLA_IFALIAS, so gc finds it if the process dies first."""

from __future__ import annotations

import atexit
import errno
import logging
import os
import queue
import socket
import threading
import weakref

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import nsfs, plan
from .errors import LinkError
from .state import Bridge, LinkState, PodSide

IFF_UP = 0x1
log = logging.getLogger(__name__)
_local = threading.local()


def _host() -> IPRoute:
    ipr = getattr(_local, "ipr", None)
    if ipr is None:
        ipr = IPRoute()
        _local.ipr = ipr
        weakref.finalize(threading.current_thread(), ipr.close)
    return ipr


def _fail(link: str, op: str, e: BaseException, netns: str | None = None) -> LinkError:
    code = getattr(e, "code", None) or getattr(e, "errno", None)
    why = os.strerror(code) if isinstance(code, int) and code > 0 else str(e)
    return LinkError(link, op, why, code, netns)


_bridges: dict[tuple, int] = {}
_bridges_lock = threading.Lock()


def _link(ipr: IPRoute, **kw):
    links = ipr.get_links(**kw)
    return links[0] if links else None


def _kind(msg) -> str | None:
    info = msg.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def _sysfs_check(name: str, index: int) -> Bridge | None:
    """The bridge as already ensured by this process, if sysfs still shows it with the same
    index and up: three small reads instead of a netlink round trip and its decoding."""
    base = f"/sys/class/net/{name}/"
    try:
        with open(base + "ifindex") as f:
            if int(f.read()) != index:
                return None
        with open(base + "flags") as f:
            if not int(f.read(), 16) & IFF_UP:
                return None
        with open(base + "mtu") as f:
            return Bridge(name, index, int(f.read()))
    except (OSError, ValueError):
        return None


def ensure_bridge(config: plan.NetworkConfig) -> Bridge:
    """The bridge, up, with the gateway address (and config.mtu if set); created when missing and
    never removed by pod teardown. A link of that name that is not a bridge is an error."""
    ipr = _host()
    key = (config.bridge, config.gateway, config.mtu)
    name = config.bridge
    try:
        cached = _bridges.get(key)
        if cached is not None:
            fast = _sysfs_check(name, cached)
            if fast is not None:
                return fast
        msg = _link(ipr, ifname=name)
        if msg is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", **({"mtu": config.mtu} if config.mtu else {}))
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
            msg = _link(ipr, ifname=name)
        if msg is None:
            raise LinkError(name, "create bridge", "vanished right after creation")
        if _kind(msg) != "bridge":
            raise LinkError(name, "ensure bridge", f"exists but is a {_kind(msg) or 'physical'} link, not a bridge")
        index = msg["index"]
        if config.mtu and msg.get_attr("IFLA_MTU") != config.mtu:
            ipr.link("set", index=index, mtu=config.mtu)
        _ensure_addr(ipr, index, str(config.gateway_ip), config.prefixlen)
        if not msg["flags"] & IFF_UP:
            ipr.link("set", index=index, state="up")
        msg = _link(ipr, index=index)
        with _bridges_lock:
            _bridges[key] = index
        return Bridge(name, index, msg.get_attr("IFLA_MTU"))
    except NetlinkError as e:
        raise _fail(name, "ensure bridge", e) from None


def ensure_local_address(ifname: str, ip: str) -> bool:
    """`ip`/32 on link `ifname` (a node-local address, e.g. the cluster DNS server's on the bridge,
    which pods reach through their default route); True if it was added now."""
    ipr = _host()
    try:
        msg = _link(ipr, ifname=ifname)
        if msg is None:
            raise LinkError(ifname, f"add address {ip}", "no such link")
        return _ensure_addr(ipr, msg["index"], ip, 32)
    except NetlinkError as e:
        raise _fail(ifname, f"add address {ip}", e) from None


def _ensure_addr(ipr: IPRoute, index: int, ip: str, prefixlen: int) -> bool:
    """`ip`/`prefixlen` on link `index`; True if it was added now (already there: False)."""
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=socket.AF_INET)}
    if (ip, prefixlen) in have:
        return False
    try:
        ipr.addr("add", index=index, address=ip, prefixlen=prefixlen)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise
        return False
    return True


def delete_bridge(config: plan.NetworkConfig) -> bool:
    with _bridges_lock:
        for k in [k for k in _bridges if k[0] == config.bridge]:
            del _bridges[k]
    return delete_link(config.bridge)


def create_veth(config: plan.NetworkConfig, pod_uid: str, bridge: Bridge, netns_fd: int,
                netns_path: str) -> str:
    """The pod's veth pair: host end `kpy<hash>` on the bridge (hairpin on, up, alias naming the
    pod), peer created directly inside the pod netns as eth0. A stale host end of the same pod
    (a setup repeated after a crash) is deleted first."""
    ipr = _host()
    name = plan.host_veth_name(config, pod_uid)
    wait_deleted(name)
    for attempt in (1, 2):
        try:
            ipr.link("add", ifname=name, kind="veth", master=bridge.index, mtu=bridge.mtu,
                     peer={"ifname": plan.POD_IFNAME, "net_ns_fd": netns_fd, "mtu": bridge.mtu})
            break
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise _fail(name, "create veth", e) from None
            if _link(ipr, ifname=name) is None:
                raise LinkError(plan.POD_IFNAME, "create veth peer", "the pod network namespace already has eth0",
                                errno.EEXIST, netns_path) from None
            if attempt == 2:
                raise _fail(name, "create veth", e) from None
            delete_link(name)
    try:
        ipr.link("set", ifname=name, state="up", ifalias=plan.link_alias(config, pod_uid))
        with open(f"/sys/class/net/{name}/brport/hairpin_mode", "w") as f:
            f.write("1")
    except (NetlinkError, OSError) as e:
        raise _fail(name, "set up veth", e) from None
    return name


def configure_pod(netns_fd: int, netns_path: str, ip: str, prefixlen: int, gateway: str) -> None:
    """Inside the pod netns: lo up, eth0 up with the pod IP as its only IPv4 address, the default
    route via the gateway. Repeatable: what is already right is left as it is."""
    ns = _pod_socket(netns_fd, netns_path)
    try:
        ns.link("set", ifname="lo", state="up")
        found = ns.link_lookup(ifname=plan.POD_IFNAME)
        if not found:
            raise LinkError(plan.POD_IFNAME, "configure", "not in the pod network namespace", errno.ENODEV, netns_path)
        index = found[0]
        ns.link("set", index=index, state="up")
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ns.get_addr(index=index, family=socket.AF_INET)}
        for address, plen in have - {(ip, prefixlen)}:
            ns.addr("del", index=index, address=address, prefixlen=plen)
        if (ip, prefixlen) not in have:
            ns.addr("add", index=index, address=ip, prefixlen=prefixlen)
        ns.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)
    except NetlinkError as e:
        raise _fail(plan.POD_IFNAME, "configure", e, netns_path) from None
    finally:
        ns.close()


def _pod_socket(netns_fd: int, netns_path: str) -> IPRoute:
    try:
        with nsfs.entered(netns_fd):
            return IPRoute()
    except OSError as e:
        raise _fail(plan.POD_IFNAME, "enter netns", e, netns_path) from None


def _state(ipr: IPRoute, msg, sysfs: bool) -> LinkState:
    index = msg["index"]
    name = msg.get_attr("IFLA_IFNAME")
    master = msg.get_attr("IFLA_MASTER")
    hairpin = None
    if sysfs and master:
        try:
            with open(f"/sys/class/net/{name}/brport/hairpin_mode") as f:
                hairpin = f.read().strip() == "1"
        except OSError:
            hairpin = None
    addrs = tuple(sorted(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                         for a in ipr.get_addr(index=index, family=socket.AF_INET)))
    return LinkState(name, index, _kind(msg), bool(msg["flags"] & IFF_UP), msg.get_attr("IFLA_MTU"),
                     master=master or None, peer=msg.get_attr("IFLA_LINK"), alias=msg.get_attr("IFLA_IFALIAS"),
                     addresses=addrs, hairpin=hairpin)


def inspect_link(name: str) -> LinkState | None:
    """A link of the host namespace as it is now (None if there is none of that name)."""
    if not os.path.exists(f"/sys/class/net/{name}"):
        # sysfs lists every link of this namespace from its registration to its removal: no
        # netlink round trip (pyroute2's answer for a missing name took ~2 ms: a pod's setup)
        return None
    ipr = _host()
    try:
        msg = _link(ipr, ifname=name)
        return _state(ipr, msg, sysfs=True) if msg is not None else None
    except NetlinkError as e:
        if e.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise _fail(name, "inspect", e) from None


def inspect_pod(netns_fd: int, netns_path: str) -> PodSide:
    """eth0, lo and the default routes inside the pod netns, as they are now."""
    ns = _pod_socket(netns_fd, netns_path)
    try:
        msg = _link(ns, ifname=plan.POD_IFNAME)
        eth0 = _state(ns, msg, sysfs=False) if msg is not None else None
        lo = _link(ns, ifname="lo")
        routes = tuple(sorted(((r.get_attr("RTA_GATEWAY"), r.get_attr("RTA_OIF"))
                               for r in ns.get_routes(family=socket.AF_INET, table=254) if r["dst_len"] == 0),
                              key=str))
        return PodSide(eth0, lo is not None and bool(lo["flags"] & IFF_UP), routes)
    except NetlinkError as e:
        raise _fail(plan.POD_IFNAME, "inspect", e, netns_path) from None
    finally:
        ns.close()


def delete_link(name: str) -> bool:
    """Delete a link (a veth takes its peer with it); False if it was already gone."""
    try:
        _host().link("del", ifname=name)
        return True
    except NetlinkError as e:
        if e.code in (errno.ENODEV, errno.ENOENT):
            return False
        raise _fail(name, "delete", e) from None


def detach_link(name: str) -> bool:
    """Take a host veth down and off the bridge (cheap; the pod IP is unreachable from then on)."""
    try:
        _host().link("set", ifname=name, state="down", master=0)
        return True
    except NetlinkError as e:
        if e.code in (errno.ENODEV, errno.ENOENT):
            return False
        raise _fail(name, "detach", e) from None


def link_exists(name: str) -> bool:
    return bool(_host().link_lookup(ifname=name))


def our_veths(config: plan.NetworkConfig) -> dict[str, str | None]:
    """Host veths of this network: name -> owning pod uid (from the alias; None if unknown).
    A veth counts as ours when its name has our prefix and it is on our bridge or its alias names
    our bridge, so another instance's veths (other bridge) are never touched."""
    ipr = _host()
    br = _link(ipr, ifname=config.bridge)
    br_index = br["index"] if br is not None else None
    out: dict[str, str | None] = {}
    for msg in ipr.get_links():
        name = msg.get_attr("IFLA_IFNAME") or ""
        if not name.startswith(config.veth_prefix) or _kind(msg) != "veth":
            continue
        owner = plan.parse_link_alias(msg.get_attr("IFLA_IFALIAS"))
        on_bridge = br_index is not None and msg.get_attr("IFLA_MASTER") == br_index
        if on_bridge or (owner is not None and owner[0] == config.bridge):
            out[name] = owner[1] if owner is not None and owner[0] == config.bridge else None
    return out


def node_ip() -> str | None:
    """The node's primary IPv4 address: the source of its default route (a FIB lookup; nothing
    is sent), else its first global address."""
    ipr = _host()
    try:
        r = ipr.route("get", dst="198.51.100.1")
        src = r[0].get_attr("RTA_PREFSRC") if r else None
        if src:
            return src
    except NetlinkError:
        pass
    for a in ipr.get_addr(family=socket.AF_INET):
        if a["scope"] == 0 and not a.get_attr("IFA_ADDRESS", "").startswith("127."):
            return a.get_attr("IFA_ADDRESS")
    return None


# ---- background deletion --------------------------------------------------------------------------

_pending: set[str] = set()
_pending_cv = threading.Condition()
_queue: "queue.Queue[str]" = queue.Queue()
_worker: threading.Thread | None = None


def _run_deleter() -> None:
    while True:
        name = _queue.get()
        try:
            delete_link(name)
        except LinkError as e:  # gc removes it later
            log.warning("netns: background delete of %s failed: %s", name, e)
        finally:
            with _pending_cv:
                _pending.discard(name)
                _pending_cv.notify_all()


def delete_later(name: str) -> bool:
    """Detach now, delete in the background. False if the link did not exist."""
    global _worker
    if not detach_link(name):
        return False
    with _pending_cv:
        if name in _pending:
            return True
        _pending.add(name)
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_run_deleter, name="netns-deleter", daemon=True)
            _worker.start()
    _queue.put(name)
    return True


def wait_deleted(name: str | None = None, timeout: float | None = 30.0) -> bool:
    """Wait until the background deletion of `name` (or of all links) is done."""
    with _pending_cv:
        return _pending_cv.wait_for(lambda: (name not in _pending) if name else not _pending, timeout)


@atexit.register
def _drain() -> None:   # a process that exits normally leaves no half-deleted link behind
    wait_deleted(timeout=10.0)


def pending_deletions() -> set[str]:
    with _pending_cv:
        return set(_pending)
