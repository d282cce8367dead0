"""Pod network setup, teardown, garbage collection and read-back: what CNI ADD/DEL/CHECK of bridge
+ host-local + portmap do, as plain functions over NetworkConfig.

Every edge is called by module attribute (netlink.create_veth, ipam.IPStore, ...), so that a test
can stop a process between any two steps (tests/integration/netns_helpers.py) or put the
recording double of netns/fake.py in their place.

Setup order (each step undone, in reverse, if a later one fails; a kill at any point is cleaned by
`gc` or by a repeated `teardown`):
  validate everything (pure) -> claim hostPorts -> bridge + sysctls -> allocate IP
  -> veth pair (peer made inside the pod netns as eth0) -> eth0 address/route -> iptables (one nat
  commit, one filter commit the first time a hostPort exists) -> /etc files -> record
Each step first looks at what is there and changes only what is not right yet, so setup repeated
on a complete pod changes nothing, and on a partial one (killed half-way, a link or rule removed
by someone) makes only what is missing. The record, written last, is what `pod_network` reads back.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from . import dnsfiles, hostports, ipam, iptables, netlink, nsfs, plan, podfiles, podrecords, rules, state, sysctl
from .errors import LinkError, NetnsError, NetworkInconsistent, NetworkNotFound, PodSpecError
from .plan import NetworkConfig, PodFiles, PodNetwork, PortMapping

DEFAULT_CONFIG = NetworkConfig()
log = logging.getLogger(__name__)


def _pod_files(config: NetworkConfig, pod: dnsfiles.PodDNS, ip: str, host_network: bool,
               files_dir: str) -> tuple[PodFiles, tuple[str, ...]]:
    host_resolv = dnsfiles.parse_resolv_conf(podfiles.read_text(config.host_resolv_conf))
    resolv, warnings = dnsfiles.resolv_conf(pod, host_resolv, config.cluster_dns, config.cluster_domain,
                                            host_network)
    if host_network:
        hosts = dnsfiles.host_network_hosts_file(pod, podfiles.read_text(config.host_hosts_file))
        hostname = socket.gethostname()
    else:
        hosts = dnsfiles.hosts_file(pod, (ip,), config.cluster_domain)
        hostname = dnsfiles.pod_hostname(pod)
    files = podfiles.write(files_dir, hosts, dnsfiles.hostname_file(hostname), resolv.render())
    return files, warnings


def _open_netns(pod_uid: str, netns_path: str | None) -> int:
    if not netns_path:
        raise PodSpecError(pod_uid, "netns_path", netns_path, "required unless hostNetwork")
    try:
        return nsfs.open_netns(netns_path)
    except OSError as e:
        raise PodSpecError(pod_uid, "netns_path", netns_path, e.strerror or str(e)) from None


class _Undo:
    """What this call made, undone in reverse order if a later step fails. An undo that fails is
    logged and the others still run: the original error matters more, and gc or a repeated
    teardown removes what is left."""

    def __init__(self, pod_uid: str):
        self.pod_uid = pod_uid
        self.steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, fn: Callable[[], object]) -> None:
        self.steps.append((what, fn))

    def run(self) -> None:
        for what, fn in reversed(self.steps):
            try:
                fn()
            except Exception:
                log.exception("netns: undo of %s for pod %s failed", what, self.pod_uid)


def _claim(undo: _Undo, claims, pod_uid: str, mappings: tuple[PortMapping, ...]) -> None:
    previous = claims.claim(pod_uid, mappings)
    if set(previous) == {m.key for m in mappings}:
        return
    if previous:
        before = tuple(plan.parse_key(k) for k in previous)
        undo.push("hostPort claims", lambda: claims.claim(pod_uid, before))
    else:
        undo.push("hostPort claims", lambda: claims.release(pod_uid))


def _files(undo: _Undo, config: NetworkConfig, pod: dnsfiles.PodDNS | None, ip: str, host_network: bool,
           files_dir: str | None) -> tuple[PodFiles, tuple[str, ...]]:
    if files_dir is None:
        return PodFiles(), ()
    if not podfiles.present(files_dir):
        undo.push("pod files", lambda: podfiles.remove(files_dir))
    return _pod_files(config, pod, ip, host_network, files_dir)


def _previous(config: NetworkConfig, pod_uid: str) -> PodNetwork | None:
    """The pod's last finished setup: its IP is kept if the allocation was lost, and its rules
    are put back if changing them fails."""
    try:
        rec = podrecords.read(config, pod_uid)
    except NetnsError as e:      # rewritten at the end of this setup
        log.warning("netns: ignoring the record of pod %s: %s", pod_uid, e)
        return None
    return rec if rec is not None and not rec.host_network else None


def setup_pod_network(pod_uid: str, netns_path: str | None, ports: Iterable[Mapping | PortMapping] = (), *,
                      config: NetworkConfig = DEFAULT_CONFIG, pod: dnsfiles.PodDNS | None = None,
                      files_dir: str | None = None, host_network: bool = False,
                      on_files: Callable[[str], None] | None = None) -> PodNetwork:
    """Plug the pod's pinned network namespace into the bridge (or, with hostNetwork, only claim
    its ports) and write its /etc files into `files_dir` when given (with `pod`). Bad input
    raises PodSpecError/PortConflict before anything exists; any later failure undoes what this
    call made, in reverse order. `on_files(ip)` is called as soon as the pod's IP is allocated
    and its files are written, before its veth exists (the kubelet creates the containers,
    which bind-mount those files, while the rest is set up); if it raises, the setup is undone.

    Repeatable: called again for a pod whose network is complete and as asked, it changes nothing
    (same IP, same veth, no iptables commit) and returns an equal PodNetwork; called on a partial
    one, it makes what is missing and keeps the rest; with other ports, it changes the claims and
    rules. One pod is set up by one caller at a time (the kubelet's pod worker); different pods may
    be set up concurrently from any number of threads and processes."""
    plan.check_uid(pod_uid)
    mappings = plan.parse_ports(pod_uid, ports, host_network)
    if pod is not None:
        dnsfiles.validate(pod_uid, pod)
    if files_dir is not None and pod is None:
        raise PodSpecError(pod_uid, "pod", None, "the pod's DNS fields are needed to write files")
    claims = hostports.PortClaims(config)
    undo = _Undo(pod_uid)

    if host_network:
        try:
            _claim(undo, claims, pod_uid, mappings)
            ip = config.node_ip or netlink.node_ip() or "127.0.0.1"
            files, warnings = _files(undo, config, pod, ip, True, files_dir)
            if on_files is not None:
                on_files(ip)
            net = PodNetwork(pod_uid, ip, None, None, host_network=True, ifname=None, ports=mappings,
                             files=files, warnings=warnings)
            podrecords.write(config, net)
        except BaseException:
            undo.run()
            raise
        return net

    fd = _open_netns(pod_uid, netns_path)
    store = ipam.IPStore(config)
    try:
        _claim(undo, claims, pod_uid, mappings)
        bridge = netlink.ensure_bridge(config)
        sysctl.ip_forward()
        sysctl.bridge_nf_call_iptables()
        if mappings:
            sysctl.route_localnet(config.bridge)
        previous = _previous(config, pod_uid)
        ip, new_ip = store.ensure(pod_uid, prefer=previous.ip if previous else None)
        if new_ip:
            undo.push("IP allocation", lambda: store.release(pod_uid))
        files, warnings = _files(undo, config, pod, ip, False, files_dir)
        if on_files is not None:
            on_files(ip)

        veth = plan.host_veth_name(config, pod_uid)
        seen = netlink.inspect_link(veth)
        pod_side = None
        if seen is not None and not state.veth_problems(config, pod_uid, seen, bridge):
            pod_side = netlink.inspect_pod(fd, netns_path)
        if pod_side is None or pod_side.eth0 is None or pod_side.eth0.peer != seen.index:
            # no usable pair into this netns: make it (a stale host end of the pod goes first)
            netlink.create_veth(config, pod_uid, bridge, fd, netns_path)
            undo.push("veth", lambda: netlink.delete_link(veth))
            netlink.configure_pod(fd, netns_path, ip, config.prefixlen, str(config.gateway_ip))
        elif state.pod_side_problems(config, ip, seen, pod_side):
            netlink.configure_pod(fd, netns_path, ip, config.prefixlen, str(config.gateway_ip))

        # a new address cannot have its rules yet: apply without reading the tables first
        if new_ip or iptables.unmet(rules.pod_expectations(config, pod_uid, ip, mappings)):
            if previous is not None and previous.ip == ip:     # other ports, or a repair: back to the record
                undo.push("iptables rules", lambda: iptables.apply(
                    rules.setup_changes(config, pod_uid, ip, previous.ports)))
            else:
                undo.push("iptables rules", lambda: iptables.apply(rules.teardown_changes(config, pod_uid)))
            iptables.apply(rules.setup_changes(config, pod_uid, ip, mappings))
        net = PodNetwork(pod_uid, ip, str(config.gateway_ip), config.prefixlen, host_veth=veth,
                         mtu=bridge.mtu, ports=mappings, files=files, warnings=warnings)
        podrecords.write(config, net)
    except BaseException:
        undo.run()
        raise
    finally:
        nsfs.close(fd)
    return net


def pod_network(pod_uid: str, *, config: NetworkConfig = DEFAULT_CONFIG) -> PodNetwork:
    """What setup_pod_network returned for the pod, read back without changing anything (a
    restarted daemon learns its pods' networks this way): the record of the finished setup,
    checked against the IP and hostPort entries on disk, the bridge and the pod's veth, and its
    iptables rules. Raises NetworkNotFound (kind NOT_FOUND) when the pod has no network here, and
    NetworkInconsistent (FAILED_PRECONDITION) naming each missing or wrong part when only part of
    it is there (setup_pod_network repairs that, teardown_pod_network removes it)."""
    plan.check_uid(pod_uid)
    rec = podrecords.read(config, pod_uid)
    ip = ipam.IPStore(config).lookup(pod_uid)
    claimed = hostports.PortClaims(config).held(pod_uid)
    veth_name = plan.host_veth_name(config, pod_uid)
    veth = netlink.inspect_link(veth_name)
    if rec is None:
        if ip is None and not claimed and veth is None:
            raise NetworkNotFound(pod_uid)
        there = ([f"IP {ip} is allocated"] if ip else []) + [f"hostPort {k} is claimed" for k in claimed] \
            + ([f"veth {veth_name} exists"] if veth is not None else [])
        raise NetworkInconsistent(pod_uid, [("record", f"the record of a finished setup "
                                                       f"({podrecords.path(config, pod_uid)}) is missing, "
                                                       f"yet {', '.join(there)}")])
    problems = state.record_problems(config, rec, ip, claimed)
    if not rec.host_network:
        br = netlink.inspect_link(config.bridge)
        problems += state.bridge_problems(config, br)
        if br is not None:
            problems += state.veth_problems(config, pod_uid, veth, state.Bridge(br.name, br.index, br.mtu))
        if veth is not None and veth.mtu != rec.mtu:
            problems.append(("mtu", f"host veth {veth_name} has mtu {veth.mtu}, {rec.mtu} is recorded"))
        problems += [("rules", what) for what in iptables.unmet(rules.pod_expectations(config, pod_uid, rec.ip,
                                                                                        rec.ports))]
    if problems:
        raise NetworkInconsistent(pod_uid, problems)
    return rec


def teardown_pod_network(pod_uid: str, *, config: NetworkConfig = DEFAULT_CONFIG, wait: bool = True) -> None:
    """Remove the pod's record, rules, veth, IP and hostPort claims (the record first: from then
    on the pod's network no longer counts as complete). Idempotent: anything already gone is fine,
    so it is safe after a half-done setup, a crash, or twice. Every step is tried; the first error
    is raised at the end. With wait=False the veth is detached from the bridge at once and deleted
    by a background thread (the kernel's RCU barrier on delete is most of the cost)."""
    plan.check_uid(pod_uid)
    first: NetnsError | None = None
    for step in (lambda: podrecords.remove(config, pod_uid),
                 lambda: iptables.apply(rules.teardown_changes(config, pod_uid))):
        try:
            step()
        except NetnsError as e:
            first = first or e
    name = plan.host_veth_name(config, pod_uid)
    try:
        if wait:
            netlink.wait_deleted(name)
            netlink.delete_link(name)
        else:
            netlink.delete_later(name)
    except LinkError as e:
        first = first or e
    for release in (ipam.IPStore(config).release, hostports.PortClaims(config).release):
        try:
            release(pod_uid)
        except NetnsError as e:
            first = first or e
    if first is not None:
        raise first


@dataclass(frozen=True)
class GCReport:
    veths: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    hostports: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()
    records: tuple[str, ...] = ()     # pod uids whose record of a finished setup was removed

    @property
    def empty(self) -> bool:
        return not (self.veths or self.ips or self.hostports or self.chains or self.records)


def gc(known_uids: Iterable[str], *, config: NetworkConfig = DEFAULT_CONFIG) -> GCReport:
    """Remove the records, veths, IP allocations, hostPort claims and pod chains of this network
    that belong to no pod in `known_uids` (run at daemon start, after reading the checkpoints)."""
    known = set(known_uids)
    records = podrecords.gc(config, known)
    known_links = {plan.host_veth_name(config, u) for u in known}
    veths = []
    for name, owner in sorted(netlink.our_veths(config).items()):
        if name in known_links or (owner is not None and owner in known):
            continue
        netlink.delete_link(name)
        veths.append(name)
    nat_chains = iptables.chains(rules.NAT)
    changes = rules.gc_changes(config, nat_chains, known)
    stale = changes[0].remove if changes else ()
    iptables.apply(changes)
    ips = ipam.IPStore(config).gc(known)
    ports = hostports.PortClaims(config).gc(known)
    return GCReport(tuple(veths), tuple(ips), tuple(ports), tuple(stale), tuple(records))


def remove_network(config: NetworkConfig = DEFAULT_CONFIG) -> GCReport:
    """Uninstall: every pod of this network (as gc with no known pod), the Services' chains
    (servicesync), then the base chains, the jumps to them and the bridge. For tests and a node
    reset; never part of pod teardown."""
    from . import services, servicesync
    from .errors import ConfigError
    report = gc((), config=config)
    try:
        services.check_prefix(config)
    except ConfigError:
        pass  # no Service chain fits under this prefix: none was ever made
    else:
        servicesync.ServiceProxy(config).teardown()
    netlink.wait_deleted()
    iptables.apply(rules.uninstall_changes(config, {t: iptables.chains(t) for t in (rules.NAT, rules.FILTER)}))
    netlink.delete_bridge(config)
    return report
