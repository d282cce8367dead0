"""The host ids of a `hostUsers: false` pod (pure): one range of 65536 per pod, as the kubelet's
user-namespace manager hands out (pkg/kubelet/userns), the same for every container of the pod.

The scheme kubelet-py uses: the host ids from 2^16 to 2^31 are cut into 32767 slots of 65536
(slot s is ids s*65536 .. s*65536+65535; slot 0, the host's own users, is never given). A pod
starts looking at the slot its uid hashes to (sha256, stable across restarts of the daemon), and
takes the first slot after it that no live pod holds and that overlaps no range of the host's
/etc/subuid or /etc/subgid (those ids belong to the host's users' own containers). Which slots
are held is the sandboxes' business (runtime/sandbox.py claims them on disk)."""

from __future__ import annotations

import hashlib

IDS_PER_POD = 65536
FIRST_SLOT, SLOTS = 1, 32767  # slot 32767 ends at 2^31 - 1


class IdRangeError(ValueError):
    pass


def slot_range(slot: int) -> tuple[int, int]:
    """(first host id, count) of a slot."""
    return slot * IDS_PER_POD, IDS_PER_POD


def preferred_slot(pod_uid: str) -> int:
    h = int.from_bytes(hashlib.sha256(pod_uid.encode()).digest()[:8], "big")
    return FIRST_SLOT + h % SLOTS


def parse_subid(text: str) -> list[tuple[int, int]]:
    """(first, count) of each `name:first:count` line of /etc/subuid or /etc/subgid; lines that
    are not that are ignored (as shadow's tools do)."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return out


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def candidate_slots(pod_uid: str, taken: set[int], reserved: list[tuple[int, int]] = ()):
    """The slots `pod_uid` may take, best first: from its preferred slot on, around the ring,
    skipping `taken` slots and those overlapping a `reserved` (first, count) range."""
    start = preferred_slot(pod_uid)
    for k in range(SLOTS):
        s = FIRST_SLOT + (start - FIRST_SLOT + k) % SLOTS
        if s in taken or any(_overlaps(slot_range(s), r) for r in reserved):
            continue
        yield s


def pick_slot(pod_uid: str, taken: set[int], reserved: list[tuple[int, int]] = ()) -> int:
    for s in candidate_slots(pod_uid, taken, reserved):
        return s
    raise IdRangeError(f"no free range of {IDS_PER_POD} host ids is left for pod {pod_uid} "
                       f"({len(taken)} pods hold one)")
