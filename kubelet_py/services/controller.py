"""The daemon's Services loop: what the EndpointSlice controllers, kube-proxy and CoreDNS do on a
cluster, for this node, driven by the object store.

Any change to a Service, Pod, EndpointSlice or Endpoints marks the state dirty; one task then
(at most every MIN_SYNC_INTERVAL, as kube-proxy's minSyncPeriod batches events):
1. reconciles the EndpointSlices and Endpoints the controllers own (services.endpoints), writing
   only those that differ;
2. syncs the iptables rules (netns.ServiceProxy, in a worker thread) from the Services and their
   slices; a failed sync is retried after RETRY_DELAY, and a full one runs every RESYNC_PERIOD
   to repair what others changed;
3. swaps the cluster DNS server's records (kubelet_py.dns) for a snapshot of the same objects.

The pure part (`proxy_inputs`) turns Services and slices into netns's values."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Mapping

from .endpoints import LABEL_SERVICE_NAME, differs, reconcile

log = logging.getLogger("kubelet_py.services")
MIN_SYNC_INTERVAL = 0.1  # seconds between two syncs: events in between are batched
RETRY_DELAY = 1.0
RESYNC_PERIOD = 300.0
DEFAULT_AFFINITY_TIMEOUT = 10800
KINDS = ("Service", "Pod", "EndpointSlice", "Endpoints")
# serve --services-iptables -> netns.ServiceProxy's backend: the legacy tables through one
# iptables-legacy-restore run, or nf_tables through iptables-nft-restore (what the host's
# `iptables` shows on Debian 12; one change costs ~10 ms there, the legacy API replaces the table)
IPTABLES_BACKENDS = {"legacy": "restore", "nft": "nft"}


@dataclass(frozen=True)
class ServiceNetwork:
    """The node's service network: where ClusterIPs come from, the cluster DNS address (made a
    local address on the bridge and served by the daemon; None: no DNS server) and domain."""
    cidr: str = "10.96.0.0/12"
    dns_ip: str | None = "10.96.0.10"
    domain: str = "cluster.local"
    dns_port: int = 53
    iptables: str = "legacy"  # serve --services-iptables: the tables the Services' rules go to (IPTABLES_BACKENDS)

    def alloc_config(self):
        from .alloc import AllocConfig
        return AllocConfig(cidr=ipaddress.IPv4Network(self.cidr))


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def proxy_inputs(services: Iterable[Mapping], slices: Iterable[Mapping]):
    """(service ports, endpoints by ServicePort.key) for netns.ServiceProxy.sync: every port of
    every Service with a ClusterIP (headless and ExternalName ones have no rules), its backends
    from the Service's EndpointSlices (the slice port of the same name and protocol)."""
    from netns import Endpoint, ServicePort
    by_service: dict[tuple[str, str], list[Mapping]] = {}
    for s in slices:
        name = (_meta(s).get("labels") or {}).get(LABEL_SERVICE_NAME)
        if name and s.get("addressType", "IPv4") == "IPv4":
            by_service.setdefault((_meta(s).get("namespace") or "default", name), []).append(s)
    ports, eps = [], {}
    for svc in services:
        md, spec = _meta(svc), svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or spec.get("type") == "ExternalName":
            continue
        ns, name = md.get("namespace") or "default", md["name"]
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            affinity = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds") \
                or DEFAULT_AFFINITY_TIMEOUT
        for p in spec.get("ports") or []:
            proto = p.get("protocol") or "TCP"
            sp = ServicePort(ns, name, p.get("name") or "", proto, ip, int(p["port"]), p.get("nodePort"), affinity,
                             tuple(spec.get("externalIPs") or ()))
            ports.append(sp)
            backends = []
            for sl in by_service.get((ns, name), []):
                target = next((q.get("port") for q in sl.get("ports") or []
                               if (q.get("name") or "") == sp.port_name and (q.get("protocol") or "TCP") == proto), None)
                if target is None:
                    continue
                for ep in sl.get("endpoints") or []:
                    cond = ep.get("conditions") or {}
                    ready = cond.get("ready") is not False  # unset means ready, as upstream reads it
                    for addr in (ep.get("addresses") or [])[:1]:
                        backends.append(Endpoint(addr, int(target), ready, cond.get("serving", ready) is not False,
                                                 bool(cond.get("terminating"))))
            eps[sp.key] = backends
    return ports, eps


class ServicesController:
    """Owned by the daemon (kubelet_py.node): `start()` on its loop, `stop()` when it stops
    serving. `agent` gives `store`, `net` (the pod network's NetworkConfig) and `node_name`."""

    def __init__(self, agent, network: ServiceNetwork):
        self.agent, self.network = agent, network
        self.proxy = None
        self.dns = None
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.last_sync: float | None = None  # monotonic time of the last successful sync

    async def start(self) -> None:
        import netns
        self.proxy = netns.ServiceProxy(self.agent.net, backend=IPTABLES_BACKENDS[self.network.iptables])
        if self.network.dns_ip:
            await self._start_dns()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch(k), name=f"services: watch {k}") for k in KINDS]
        self._tasks.append(loop.create_task(self._loop(), name="services: sync"))
        self._dirty.set()

    async def stop(self) -> None:
        """Stop syncing and serving DNS; the rules stay (kube-proxy leaves them on exit)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.dns is not None:
            await self.dns.close()

    async def _start_dns(self) -> None:
        import netns
        from kubelet_py.dns import DNSServer, Resolver, host_upstreams
        # the address is the bridge's (pods reach it through their default route, the host
        # directly); answering there, not on a wildcard, leaves the host's own port 53 alone
        await asyncio.to_thread(netns.ensure_bridge, self.agent.net)
        await asyncio.to_thread(netns.ensure_local_address, self.agent.net.bridge, self.network.dns_ip)
        self.dns = DNSServer(Resolver.build(zone=self.network.domain, dns_ip=self.network.dns_ip),
                             host_upstreams(self.agent.net.host_resolv_conf))
        await self.dns.start(self.network.dns_ip, self.network.dns_port)

    async def _watch(self, kind: str) -> None:
        watch = self.agent.store.watch(kind)
        while True:
            await watch.queue.get()
            self._dirty.set()

    async def _loop(self) -> None:
        next_full = time.monotonic() + RESYNC_PERIOD
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=max(0.0, next_full - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            self._dirty.clear()
            full = time.monotonic() >= next_full
            try:
                await self.sync(full=full)
                if full:
                    next_full = time.monotonic() + RESYNC_PERIOD
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - logged and retried: the rules stay as they were
                log.warning("services sync failed (retried in %.0f s): %s", RETRY_DELAY, e)
                self.agent.metrics.error("ServicesSyncFailed")
                await asyncio.sleep(RETRY_DELAY)
                self._dirty.set()
                continue
            await asyncio.sleep(MIN_SYNC_INTERVAL)

    async def sync(self, full: bool = False) -> None:
        """One pass: slices, rules, DNS records."""
        store = self.agent.store
        services = store.list("Service")
        pods = store.list("Pod")
        self._write_endpoints(reconcile(services, pods, store.list("EndpointSlice"), store.list("Endpoints")))
        slices = store.list("EndpointSlice")
        ports, eps = proxy_inputs(services, slices)
        if full:
            res = await asyncio.to_thread(self.proxy.resync)
        else:
            res = await asyncio.to_thread(self.proxy.sync, ports, eps)
        self.agent.metrics.proxy_synced(res)  # kubeproxy_sync_proxy_rules_duration_seconds
        if self.dns is not None:
            from kubelet_py.dns import Resolver
            namespaces = [n["metadata"]["name"] for n in store.list("Namespace")]
            self.dns.set_resolver(Resolver.build(services, slices, pods, namespaces, zone=self.network.domain,
                                                 dns_ip=self.network.dns_ip))
        self.last_sync = time.monotonic()

    def _write_endpoints(self, rec) -> None:
        from kubelet_py.api.update import create
        store = self.agent.store
        for kind, desired, gone in (("EndpointSlice", rec.slices, rec.delete),
                                    ("Endpoints", rec.endpoints, rec.delete_endpoints)):
            for obj in desired:
                md = obj["metadata"]
                ns = md.get("namespace") or "default"
                stored = store.get(kind, ns, md["name"])
                if stored is None:
                    store.put(create(obj, time.time(), lambda: str(uuid.uuid4())))
                elif differs(stored, obj):
                    keep = {k: stored["metadata"][k] for k in ("uid", "creationTimestamp", "generation")
                            if k in stored["metadata"]}
                    store.put({**obj, "metadata": {**md, **keep}})
            for ns, name in gone:
                store.remove(kind, ns, name)
