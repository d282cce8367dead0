"""Edge: host-local style IP allocation on disk. `<state_root>/ipam/<ip>` holds the owning pod uid;
`lock` serialises allocations across threads and processes; `last_reserved_ip` makes allocation
round-robin (an address just released is not handed out again at once). The arithmetic is pure
(plan.next_free)."""

from __future__ import annotations

import ipaddress
import os
from typing import Iterable

from . import plan
from .errors import AddressExhausted
from .ownedfiles import OwnedDir

LAST = "last_reserved_ip"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


class IPStore:
    def __init__(self, config: plan.NetworkConfig):
        self.config = config
        self.dir = OwnedDir(config.ipam_dir, _is_ip)

    def allocate(self, pod_uid: str) -> str:
        """The pod's address: the one it already holds (a repeated setup keeps its IP), else the
        next free one. Raises AddressExhausted."""
        return self.ensure(pod_uid)[0]

    def ensure(self, pod_uid: str, prefer: str | None = None) -> tuple[str, bool]:
        """allocate(), and whether this call made the allocation (False: the pod held it). A pod
        that holds none gets `prefer` if that is free (the address its network had before the
        allocation was lost), else the next free one."""
        with self.dir.locked():
            entries = self.dir.entries()
            mine = [ip for ip, owner in entries.items() if owner == pod_uid]
            for ip in mine:
                if plan.in_range(self.config, ip):
                    return ip, False
            for ip in mine:          # held in a CIDR that is no longer ours
                self.dir.remove(ip)
            if prefer is not None and prefer not in entries and plan.in_range(self.config, prefer) \
                    and self.dir.create(prefer, pod_uid):
                return prefer, True
            while True:
                ip = plan.next_free(self.config, entries, self.dir.read_hint(LAST))
                if ip is None:
                    raise AddressExhausted(pod_uid, str(self.config.cidr), len(entries))
                if self.dir.create(ip, pod_uid):
                    break
                entries[ip] = "?"    # not ours: taken by something that bypassed the lock
            self.dir.write_hint(LAST, ip)
            return ip, True

    def lookup(self, pod_uid: str) -> str | None:
        """The address the pod holds, if any (read-only: creates no file)."""
        mine = sorted(ip for ip, owner in self.dir.snapshot().items() if owner == pod_uid)
        return mine[0] if mine else None

    def release(self, pod_uid: str) -> list[str]:
        if not os.path.isdir(self.dir.path):
            return []
        with self.dir.locked():
            return self.dir.remove_owned_by(lambda owner: owner != pod_uid)

    def gc(self, known_uids: Iterable[str]) -> list[str]:
        known = set(known_uids)
        if not os.path.isdir(self.dir.path):
            return []
        with self.dir.locked():
            return self.dir.remove_owned_by(lambda owner: owner in known)

    def allocations(self) -> dict[str, str]:
        with self.dir.locked():
            return self.dir.entries()
