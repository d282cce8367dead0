"""Pod network setup, teardown and garbage collection: what CNI ADD/DEL of bridge + host-local +
portmap do, as plain functions over NetworkConfig. The steps call the edge modules by attribute
(netlink.create_veth, ...) so that a test can stop a process between any two of them.

Setup order (each step undone, in reverse, if a later one fails; a kill at any point is cleaned by
`gc` or by a repeated `teardown`):
  validate everything (pure) -> claim hostPorts -> bridge + sysctls -> allocate IP
  -> veth pair (peer made inside the pod netns as eth0) -> eth0 address/route -> iptables (one nat
  commit, one filter commit the first time a hostPort exists) -> /etc files
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Iterable, Mapping

from . import dnsfiles, iptables, netlink, nsfs, plan, podfiles, rules, sysctl
from .errors import LinkError, NetnsError, PodSpecError
from .hostports import PortClaims
from .ipam import IPStore
from .plan import NetworkConfig, PodFiles, PodNetwork, PortMapping

DEFAULT_CONFIG = NetworkConfig()


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
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PodSpecError(pod_uid, "netns_path", netns_path, e.strerror or str(e)) from None
    why = ("is not a network namespace" if not nsfs.is_netns(fd)
           else "is the host's own network namespace" if nsfs.same_netns(fd) else None)
    if why:
        os.close(fd)
        raise PodSpecError(pod_uid, "netns_path", netns_path, why)
    return fd


def setup_pod_network(pod_uid: str, netns_path: str | None, ports: Iterable[Mapping | PortMapping] = (), *,
                      config: NetworkConfig = DEFAULT_CONFIG, pod: dnsfiles.PodDNS | None = None,
                      files_dir: str | None = None, host_network: bool = False) -> PodNetwork:
    """Plug the pod's pinned network namespace into the bridge (or, with hostNetwork, only claim
    its ports) and write its /etc files into `files_dir` when given (with `pod`). Bad input
    raises PodSpecError/PortConflict before anything exists; any later failure undoes what this
    call made. Calling it again for the same pod rebuilds the pod's network with the same IP (if
    that repeated call fails, the pod is left as after teardown). One pod is set up by one caller
    at a time (the kubelet's pod worker); different pods may be set up concurrently from any
    number of threads and processes."""
    plan.check_uid(pod_uid)
    mappings = plan.parse_ports(pod_uid, ports, host_network)
    if pod is not None:
        dnsfiles.validate(pod_uid, pod)
    if files_dir is not None and pod is None:
        raise PodSpecError(pod_uid, "pod", None, "the pod's DNS fields are needed to write files")
    claims = PortClaims(config)

    if host_network:
        claims.claim(pod_uid, mappings)
        try:
            ip = config.node_ip or netlink.node_ip() or "127.0.0.1"
            files, warnings = (_pod_files(config, pod, ip, True, files_dir)
                               if files_dir is not None else (PodFiles(), ()))
        except BaseException:
            claims.release(pod_uid)
            raise
        return PodNetwork(pod_uid, ip, None, None, host_network=True, ifname=None, ports=mappings,
                          files=files, warnings=warnings)

    fd = _open_netns(pod_uid, netns_path)
    ipam = IPStore(config)
    undo: list = []
    try:
        claims.claim(pod_uid, mappings)
        undo.append(lambda: claims.release(pod_uid))
        bridge = netlink.ensure_bridge(config)
        sysctl.ip_forward()
        sysctl.bridge_nf_call_iptables()
        if mappings:
            sysctl.route_localnet(config.bridge)
        ip = ipam.allocate(pod_uid)
        undo.append(lambda: ipam.release(pod_uid))
        veth = netlink.create_veth(config, pod_uid, bridge, fd, netns_path)
        undo.append(lambda: netlink.delete_link(veth))
        netlink.configure_pod(fd, netns_path, ip, config.prefixlen, str(config.gateway_ip))
        undo.append(lambda: iptables.apply(rules.teardown_changes(config, pod_uid)))
        iptables.apply(rules.setup_changes(config, pod_uid, ip, mappings))
        files, warnings = (_pod_files(config, pod, ip, False, files_dir)
                           if files_dir is not None else (PodFiles(), ()))
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception as e:   # the original error matters more; gc cleans what is left
                os.write(2, f"netns: undo for pod {pod_uid} failed: {e}\n".encode())
        raise
    finally:
        os.close(fd)
    return PodNetwork(pod_uid, ip, str(config.gateway_ip), config.prefixlen, host_veth=veth,
                      mtu=bridge.mtu, ports=mappings, files=files, warnings=warnings)


def teardown_pod_network(pod_uid: str, *, config: NetworkConfig = DEFAULT_CONFIG, wait: bool = True) -> None:
    """Remove the pod's rules, veth, IP and hostPort claims. Idempotent: anything already gone is
    fine, so it is safe after a half-done setup, a crash, or twice. Every step is tried; the first
    error is raised at the end. With wait=False the veth is detached from the bridge at once and
    deleted by a background thread (the kernel's RCU barrier on delete is most of the cost)."""
    plan.check_uid(pod_uid)
    first: NetnsError | None = None
    try:
        iptables.apply(rules.teardown_changes(config, pod_uid))
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
    for release in (IPStore(config).release, PortClaims(config).release):
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

    @property
    def empty(self) -> bool:
        return not (self.veths or self.ips or self.hostports or self.chains)


def gc(known_uids: Iterable[str], *, config: NetworkConfig = DEFAULT_CONFIG) -> GCReport:
    """Remove the veths, IP allocations, hostPort claims and pod chains of this network that
    belong to no pod in `known_uids` (run at daemon start, after reading the checkpoints)."""
    known = set(known_uids)
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
    ips = IPStore(config).gc(known)
    ports = PortClaims(config).gc(known)
    return GCReport(tuple(veths), tuple(ips), tuple(ports), tuple(stale))


def remove_network(config: NetworkConfig = DEFAULT_CONFIG) -> GCReport:
    """Uninstall: every pod of this network (as gc with no known pod), then the base chains, the
    jumps to them and the bridge. For tests and a node reset; never part of pod teardown."""
    report = gc((), config=config)
    netlink.wait_deleted()
    iptables.apply(rules.uninstall_changes(config, {t: iptables.chains(t) for t in (rules.NAT, rules.FILTER)}))
    netlink.delete_bridge(config)
    return report
