"""Edge: apply the service rule plan (netns/services.py) to the iptables tables (legacy, or nf_tables
through iptables-nft), keep the last applied plan, and flush the conntrack entries of removed UDP
endpoints.

A sync is ONE batched commit per table. Three appliers write the same TableDelta values:
- "restore" (the default): the deltas as one `iptables-legacy-restore -w 5 --noflush` input,
  as kube-proxy does (each `*table` ... `COMMIT` is one atomic table replacement). It is a
  separate process, spawned (never a fork of the daemon's interpreter state) from the calling
  thread: the kubelet calls `ServiceProxy.sync` from a worker thread, never from its event loop.
- "iptc": python-iptables (netns/iptables.py, the library the pod network uses): one libiptc
  transaction per table. Same result; it builds each rule through ctypes (about 0.7 ms a rule
  here), so a full sync of 1,000 Services x 10 endpoints takes tens of seconds
  (tests/bench/bench_services.py measures both; README "Services (iptables)").
- "nft": the same restore input loaded by `iptables-nft-restore -w 5 --noflush` into the nf_tables
  `ip nat` / `ip filter` tables iptables-nft keeps (what the host's `iptables` shows on Debian 12,
  and what kube-proxy writes on such a host). The live chains are read from `iptables-nft-save`,
  and with them the live rules: a full sync rewrites only the chains that differ from the plan
  (rewriting all of them takes seconds in nf_tables; the legacy tables are replaced whole anyway).
  The kernel's legacy API replaces a whole table on every commit (a one-endpoint change of
  1,000 Services x 10 endpoints costs 150+ ms however little is written); nf_tables applies
  just the delta (tens of ms for that change; a full load is slower than legacy's). The pod
  network's chains stay in the legacy tables: both families' hooks see every packet (NAT: the
  first table that binds a connection wins; filter: each family's verdict must be ACCEPT), and
  the Services plan depends on none of them.

A proxy's first sync also removes our chains from the other family (a daemon switched from one
mode to the other must not leave the old rules acting on traffic); `teardown()` removes them
from both.

Full sync (the first call, `resync()`, and the call after any failure): every chain of ours is
written, live chains of ours the plan lacks (Services deleted while we were away) are removed,
missing jumps from the built-in chains inserted. Then each sync writes only the chains whose
rules changed and removes those that are gone. The pod network's chains (P-POSTROUTING,
P-HOSTPORTS, P-FIREWALL, P-MASQ-*, P-HP-*) are never written or removed
(services.owned_chain).

Conntrack: through pyroute2's conntrack netlink socket (no `conntrack` tool): when a UDP endpoint
leaves a Service, the entries NATed to it are deleted, so clients move to a live endpoint; when
a UDP Service gets its first endpoint, the entries to its ClusterIP and NodePort are deleted
(their datagrams were refused and the entries would keep the refusal)."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Mapping

from . import iptables, services, sysctl
from .errors import NetnsError, RuleError, ServiceSyncError
from .plan import NetworkConfig
from .rules import BUILTIN, FILTER, NAT, ChainSpec, TableChange
from .services import Endpoint, ServicePort, ServiceRules, TableDelta

log = logging.getLogger(__name__)

RESTORE = os.environ.get("KPY_IPTABLES_RESTORE", "iptables-legacy-restore")
NFT_RESTORE = "iptables-nft-restore"
NFT_SAVE = "iptables-nft-save"
RESTORE_TIMEOUT_S = 60.0
BACKENDS = ("restore", "iptc", "nft")


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: `full` or incremental, the chains written and removed per table
    ("nat/KPY-SVC-..."), the conntrack entries deleted and the wall time."""

    full: bool
    written: tuple[str, ...]
    deleted: tuple[str, ...]
    conntrack_deleted: int
    seconds: float


# ---- reading the live tables (python-iptables, no process; iptables-nft-save for "nft") ------------

def live_state(config: NetworkConfig) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """(table -> chain names, table -> built-in chain -> targets of its rules) of the legacy
    tables (the nft backend reads them, with the rules, from one iptables-nft-save: _sync)."""
    chains: dict[str, list[str]] = {}
    targets: dict[str, dict[str, list[str]]] = {}
    for table in (FILTER, NAT):
        chains[table], targets[table] = iptables.snapshot(table, BUILTIN[table])
    return chains, targets


def nft_tables() -> dict[str, services.SavedTable]:
    """iptables-nft's tables as `iptables-nft-save` prints them (one run, every table)."""
    p = _tool(NFT_SAVE, [])
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().replace("\n", "; ")
        raise ServiceSyncError("*", "*", f"{NFT_SAVE} exited {p.returncode}: {err[:500]}")
    return services.parse_save(p.stdout.decode(errors="replace"))


# ---- appliers -----------------------------------------------------------------------------------

def _tool(name: str, args: list[str], text: str | None = None) -> subprocess.CompletedProcess:
    """Run an iptables tool (a separate process, from the calling thread), `text` on its stdin."""
    path = shutil.which(name)
    if path is None:
        raise ServiceSyncError("*", "*", f"{name} is not installed (Debian: apt-get install iptables)")
    try:
        return subprocess.run([path, *args], input=None if text is None else text.encode(), capture_output=True,
                              timeout=RESTORE_TIMEOUT_S, close_fds=True, cwd="/")
    except subprocess.TimeoutExpired:
        raise ServiceSyncError("*", "*", f"{name} ran past {RESTORE_TIMEOUT_S:g} s") from None
    except OSError as e:
        raise ServiceSyncError("*", "*", f"cannot run {name}: {e.strerror or e}") from None


def apply_restore(deltas: Iterable[TableDelta], restore: str = RESTORE) -> None:
    """All deltas as one `restore -w 5 --noflush` run (iptables-legacy-restore, or
    iptables-nft-restore): one commit per table. On failure nothing of the failing table was
    committed (tables before it in the input were)."""
    deltas = [d for d in deltas if not d.empty]
    if not deltas:
        return
    with _gc_paused():
        text = services.restore_text(deltas)
    _restore_text(text, restore)


def _restore_text(text: str, restore: str) -> None:
    p = _tool(restore, ["-w", "5", "--noflush"], text)
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().replace("\n", "; ")
        table, chain = services.restore_error_location(text, err)
        raise ServiceSyncError(table, chain, f"{restore} exited {p.returncode}: {err[:500]}")


def table_changes(deltas: Iterable[TableDelta]) -> tuple[TableChange, ...]:
    """The deltas as rules.TableChange values for netns/iptables.py (one commit each). Stale
    chains are flushed with the writes (they may jump to one another), then deleted."""
    return tuple(TableChange(d.table, replace=d.write + tuple(ChainSpec(c) for c in d.delete), jumps=d.jumps,
                             remove=d.delete)
                 for d in deltas if not d.empty)


def apply_iptc(deltas: Iterable[TableDelta]) -> None:
    try:
        iptables.apply(table_changes(deltas))
    except ServiceSyncError:
        raise
    except RuleError as e:
        raise ServiceSyncError(e.table, e.chain, e.why) from None
    except Exception as e:        # python-iptables' XTablesError (a match it cannot build), ...
        log.exception("services: python-iptables refused the sync")
        raise ServiceSyncError("*", "*", f"python-iptables: {type(e).__name__}: {e}") from None


# ---- conntrack (pyroute2) -------------------------------------------------------------------------

def flush_conntrack(gone_endpoints: set, new_services: set) -> int:
    """Delete UDP conntrack entries NATed to a gone endpoint (reply source = that ip:port, the
    original destination another address) and entries to a service that got its first endpoint.
    Returns how many were deleted. A failure is logged: the rules are already right, only
    clients of a removed endpoint may wait for their entry to time out."""
    if not gone_endpoints and not new_services:
        return 0
    from pyroute2 import Conntrack
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple
    n = 0
    ct = Conntrack()
    try:
        for ip, port in sorted(gone_endpoints):
            for e in list(ct.dump_entries(tuple_reply=NFCTAttrTuple(saddr=ip, proto=socket.IPPROTO_UDP))):
                if e.tuple_reply.sport == port and e.tuple_orig.daddr != ip:
                    n += _delete(ct, e)
        for ip, port in sorted(new_services, key=lambda t: (t[0] or "", t[1])):
            match = NFCTAttrTuple(daddr=ip, proto=socket.IPPROTO_UDP) if ip else NFCTAttrTuple(proto=socket.IPPROTO_UDP)
            for e in list(ct.dump_entries(tuple_orig=match)):
                if e.tuple_orig.dport == port:
                    n += _delete(ct, e)
    except (OSError, NetnsError) as e:
        log.warning("services: conntrack flush failed (clients of removed UDP endpoints wait for "
                    "their entries to expire): %s", e)
    finally:
        ct.close()
    return n


def _delete(ct, entry) -> int:
    try:
        ct.delete(entry)
        return 1
    except OSError as e:          # gone meanwhile (ENOENT): fine
        log.debug("services: conntrack delete of %s: %s", entry, e)
        return 0


@contextmanager
def _gc_paused():
    """No cyclic garbage collection while a plan is built: a full sync makes some 200,000 small
    acyclic objects, whose allocation would otherwise trigger full collections of the whole
    daemon heap (on this VM: 0.2 s of planning becomes 0.5-0.7 s). Only collection pauses;
    reference counting frees as always. ServiceProxy's lock keeps one pause at a time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# ---- the proxy ----------------------------------------------------------------------------------

class ServiceProxy:
    """kube-proxy for this node: `sync(services, endpoints)` makes the tables hold exactly the
    rules of these service ports; it keeps the last applied plan and writes only what changed.
    Blocking (an iptables commit, a process for "restore"): call it from a worker thread. Calls
    are serialised. Raises ServiceSpecError (bad input, nothing applied) or ServiceSyncError
    (nothing of the failing table applied; the next call is a full sync: retry it)."""

    def __init__(self, config: NetworkConfig, *, backend: str = "restore", restore: str | None = None,
                 conntrack: bool = True):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        services.check_prefix(config)
        self.config = config
        self.backend = backend
        self.restore = restore      # None: iptables-legacy-restore ("restore"), iptables-nft-restore ("nft")
        self.conntrack = conntrack
        self._other_family_clean = False     # our chains removed from the family this backend does not write
        self._lock = threading.Lock()
        self._applied: ServiceRules | None = None
        self._cache: dict = {}          # services.plan's per service port memo
        self._desired: tuple[tuple[ServicePort, ...], dict[str, tuple[Endpoint, ...]]] = ((), {})

    @property
    def applied(self) -> ServiceRules | None:
        """The plan the tables hold (None before the first sync and after a failure)."""
        return self._applied

    def sync(self, service_ports: Iterable[ServicePort],
             endpoints: Mapping[str, Iterable[Endpoint]]) -> SyncResult:
        service_ports = tuple(service_ports)
        endpoints = {k: tuple(v) for k, v in endpoints.items()}
        with self._lock:
            t0 = time.monotonic()
            with _gc_paused():
                new = services.plan(self.config, service_ports, endpoints, self._cache)   # ServiceSpecError: nothing done
            self._desired = (service_ports, endpoints)
            return self._sync(new, t0)

    def resync(self) -> SyncResult:
        """A full sync of the last desired state (as kube-proxy's periodic one): repairs rules
        removed or changed by someone else."""
        with self._lock:
            t0 = time.monotonic()
            self._applied = None
            sp, eps = self._desired
            with _gc_paused():
                new = services.plan(self.config, sp, eps, self._cache)
            return self._sync(new, t0)

    def _sync(self, new: ServiceRules, t0: float) -> SyncResult:
        old = self._applied
        full = old is None
        live_chains = live_jumps = live_rules = None
        try:
            if full and self.backend == "nft":       # one save: chains, jumps and rules
                tables = nft_tables()
                live_chains, live_jumps = services.save_state(tables, {t: BUILTIN[t] for t in (FILTER, NAT)})
                live_rules = services.saved_rule_lines(tables)
            elif full:
                live_chains, live_jumps = live_state(self.config)
            with _gc_paused():
                deltas = services.delta(self.config, new, old, live_chains, live_jumps, live_rules)
            self._applied = None            # unknown until the commit is through
            if self.backend == "restore":
                apply_restore(deltas, self.restore or RESTORE)
            elif self.backend == "nft":
                apply_restore(deltas, self.restore or NFT_RESTORE)
            else:
                apply_iptc(deltas)
        except RuleError as e:
            if not isinstance(e, ServiceSyncError):
                e = ServiceSyncError(e.table, e.chain, e.why)
            log.warning("services: %s sync failed, the next one is full: %s", "full" if full else "incremental", e)
            raise e from None
        self._applied = new
        if not self._other_family_clean:
            self._clean_other_family()
        if new.node_ports:
            self._route_localnet()
        n_ct = flush_conntrack(*services.conntrack_flush_targets(old, new)) if self.conntrack else 0
        return SyncResult(full, tuple(f"{d.table}/{c.name}" for d in deltas for c in d.write),
                          tuple(f"{d.table}/{c}" for d in deltas for c in d.delete), n_ct,
                          time.monotonic() - t0)

    def _route_localnet(self) -> None:
        """127.0.0.1:NodePort from the node: the DNATed packet leaves through the bridge with
        source 127.0.0.1 (masqueraded after), which the kernel only routes with route_localnet on
        that interface (upstream sets it on all interfaces; ours is on the bridge only, as the
        pod network does for hostPorts; P-PROXY-FIREWALL is the guard)."""
        if os.path.isdir(f"/proc/sys/net/ipv4/conf/{self.config.bridge}"):
            try:
                sysctl.route_localnet(self.config.bridge)
            except NetnsError as e:     # the rules are in; only 127.0.0.1:NodePort stays unreachable
                log.warning("services: %s", e)
        else:
            log.debug("services: bridge %s not there yet: route_localnet left for a later sync", self.config.bridge)

    def _clean_other_family(self) -> None:
        """After the first sync: our chains left in the family this backend does not write (a
        previous run in the other mode) go, else both would act on traffic. A failure is logged
        and retried after the next full sync; the rules just written are in place either way."""
        try:
            if self.backend == "nft":
                remove_legacy(self.config)
            else:
                remove_nft(self.config)
        except Exception as e:      # noqa: BLE001 - python-iptables' XTablesError too: the sync itself is done
            log.warning("services: cannot remove our chains from the %s tables (a previous run's; they still act "
                        "on traffic): %s", "legacy" if self.backend == "nft" else "iptables-nft", e)
            return
        self._other_family_clean = True

    def teardown(self) -> None:
        """Remove every chain of ours and the jumps to them (the pod network's chains stay), from
        the legacy tables and from iptables-nft's. Repeatable; the next sync is full."""
        with self._lock:
            self._applied = None
            self._other_family_clean = False
            failed = []
            for remove in (remove_legacy, remove_nft):      # the second even when the first failed
                try:
                    remove(self.config)
                except ServiceSyncError as e:
                    failed.append(e)
            if failed:
                raise failed[0]


def remove_legacy(config: NetworkConfig) -> None:
    """Our chains and the jumps to them out of the legacy tables (python-iptables)."""
    changes = []
    for table in (FILTER, NAT):
        ours = services.teardown_order(config, table, iptables.chains(table))
        if ours:
            refs = BUILTIN[table] + tuple(services.fixed_chains(config)[table])
            changes.append(TableChange(table, remove=ours, referrers=refs))
    try:
        iptables.apply(changes)
    except RuleError as e:
        raise ServiceSyncError(e.table, e.chain, e.why) from None


def remove_nft(config: NetworkConfig) -> None:
    """Our chains and the jumps to them out of iptables-nft's tables, in one iptables-nft-restore
    run; nothing to do (and no process run but the save) when they hold none or iptables-nft is
    not installed. Tables it cannot read (a kernel without nf_tables) are left with a warning: a
    legacy-only host must still tear down."""
    if shutil.which(NFT_SAVE) is None:
        return
    try:
        tables = nft_tables()
    except ServiceSyncError as e:
        log.warning("services: cannot read iptables-nft's tables, any chains of ours there are left: %s", e)
        return
    text = services.removal_text(config, tables)
    if text:
        _restore_text(text, NFT_RESTORE)
