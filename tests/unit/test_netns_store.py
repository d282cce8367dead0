"""IP allocations and hostPort claims on disk (files + flock), without root: persistence across
instances, round-robin, exhaustion, release and gc by owner, concurrent processes, crash debris."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from netns.errors import AddressExhausted, PortConflict
from netns.hostports import PortClaims
from netns.ipam import IPStore
from netns.plan import NetworkConfig, PortMapping


@pytest.fixture
def cfg(tmp_path):
    return NetworkConfig(state_root=str(tmp_path), gateway="10.250.7.1/24")


def files(d):
    return sorted(n for n in os.listdir(d) if n not in ("lock", "last_reserved_ip"))


def test_allocation_is_a_file_naming_the_pod_and_survives_a_restart(cfg):
    ip = IPStore(cfg).allocate("pod-a")
    assert ip == "10.250.7.2"
    path = os.path.join(cfg.ipam_dir, ip)
    assert open(path).read() == "pod-a\n" and os.stat(path).st_mode & 0o777 == 0o600
    again = IPStore(cfg)                       # a new process/instance reads the same state
    assert again.allocate("pod-a") == ip       # idempotent for the same pod
    assert again.allocate("pod-b") == "10.250.7.3"
    assert again.allocations() == {"10.250.7.2": "pod-a", "10.250.7.3": "pod-b"}


def test_round_robin_after_release(cfg):
    s = IPStore(cfg)
    a = s.allocate("a")
    s.release("a")
    assert s.allocate("b") != a                # not the address just released
    assert files(cfg.ipam_dir) == ["10.250.7.3"]


def test_exhaustion_is_a_clear_error(tmp_path):
    cfg = NetworkConfig(state_root=str(tmp_path), gateway="10.250.7.1/29")   # .2-.6 usable
    s = IPStore(cfg)
    got = {s.allocate(f"p{i}") for i in range(5)}
    assert len(got) == 5
    with pytest.raises(AddressExhausted) as e:
        s.allocate("p5")
    assert e.value.cidr == "10.250.7.0/29" and e.value.pod_uid == "p5" and e.value.allocated == 5
    assert len(files(cfg.ipam_dir)) == 5


def test_release_and_gc_by_owner_and_crash_debris(cfg):
    s = IPStore(cfg)
    for p in ("a", "b", "c"):
        s.allocate(p)
    open(os.path.join(cfg.ipam_dir, ".tmp-10.250.7.9.123.4"), "w").close()    # killed mid-write
    open(os.path.join(cfg.ipam_dir, "10.250.7.10"), "w").close()               # empty: owner unknown
    assert s.release("b") == ["10.250.7.3"]
    assert s.release("b") == []
    assert s.gc(known_uids={"a"}) == ["10.250.7.10", "10.250.7.4"]
    assert files(cfg.ipam_dir) == ["10.250.7.2"]
    assert not [n for n in os.listdir(cfg.ipam_dir) if n.startswith(".tmp")]


def test_allocation_outside_a_changed_cidr_is_replaced(tmp_path):
    old = NetworkConfig(state_root=str(tmp_path), gateway="10.250.7.1/24")
    new = NetworkConfig(state_root=str(tmp_path), gateway="10.250.8.1/24")
    IPStore(old).allocate("a")
    assert IPStore(new).allocate("a") == "10.250.8.2"
    assert files(new.ipam_dir) == ["10.250.8.2"]


def _worker(cfg, prefix, n, q):
    s = IPStore(cfg)
    q.put([s.allocate(f"{prefix}-{i}") for i in range(n)])


def test_concurrent_processes_never_share_an_address(cfg):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(cfg, f"w{k}", 20, q)) for k in range(4)]
    for p in procs:
        p.start()
    got = [ip for _ in procs for ip in q.get(timeout=60)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(got) == 80 and len(set(got)) == 80
    assert len(files(cfg.ipam_dir)) == 80


def test_hostport_claims(cfg):
    c = PortClaims(cfg)
    web = PortMapping("tcp", 8080, 80, source="ports[0]")
    c.claim("a", [web])
    assert c.claims() == {"tcp-8080-0.0.0.0": "a"}
    c.claim("a", [web])                                    # repeated: fine
    with pytest.raises(PortConflict) as e:
        c.claim("b", [PortMapping("udp", 53, 53), PortMapping("tcp", 8080, 81, "10.0.0.1", source="ports[3]")])
    assert e.value.owner == "a" and e.value.field == "ports[3].hostPort" and e.value.mapping == "10.0.0.1:8080/tcp"
    assert c.claims() == {"tcp-8080-0.0.0.0": "a"}          # all or nothing: b's udp/53 not claimed
    c.claim("b", [PortMapping("tcp", 8081, 80)])
    c.claim("a", [PortMapping("tcp", 9090, 80)])           # a's ports changed: 8080 released
    assert c.claims() == {"tcp-8081-0.0.0.0": "b", "tcp-9090-0.0.0.0": "a"}
    assert c.release("a") == ["tcp-9090-0.0.0.0"]
    assert c.gc(known_uids=()) == ["tcp-8081-0.0.0.0"]
    assert files(cfg.hostports_dir) == []


def test_ensure_says_whether_it_allocated_and_keeps_a_preferred_free_address(cfg):
    s = IPStore(cfg)
    assert s.ensure("a") == ("10.250.7.2", True)
    assert s.ensure("a") == ("10.250.7.2", False)
    assert s.ensure("b", prefer="10.250.7.40") == ("10.250.7.40", True)       # its address before the loss
    assert s.ensure("c", prefer="10.250.7.40") == ("10.250.7.3", True)        # taken: the next free one
    assert s.ensure("d", prefer="10.250.7.1") == ("10.250.7.4", True)         # the gateway: never
    assert s.ensure("e", prefer="10.250.9.9") == ("10.250.7.5", True)         # outside the CIDR: never


def test_lookups_read_without_creating_anything(tmp_path):
    cfg = NetworkConfig(state_root=str(tmp_path / "state"), gateway="10.250.7.1/24")
    assert IPStore(cfg).lookup("a") is None and PortClaims(cfg).held("a") == ()
    assert not os.path.exists(cfg.state_root)
    IPStore(cfg).allocate("a")
    PortClaims(cfg).claim("a", [PortMapping("tcp", 8080, 80)])
    assert IPStore(cfg).lookup("a") == "10.250.7.2" and IPStore(cfg).lookup("b") is None
    assert PortClaims(cfg).held("a") == ("tcp-8080-0.0.0.0",) and PortClaims(cfg).held("b") == ()


def test_claim_returns_what_the_pod_held_before(cfg):
    c = PortClaims(cfg)
    assert c.claim("a", [PortMapping("tcp", 8080, 80)]) == ()
    assert c.claim("a", [PortMapping("tcp", 9090, 80), PortMapping("udp", 53, 53)]) == ("tcp-8080-0.0.0.0",)
    assert c.claim("a", []) == ("tcp-9090-0.0.0.0", "udp-53-0.0.0.0")
    assert c.claims() == {}
