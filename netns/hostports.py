"""Edge: hostPort claims on disk, so that two pods never get the same hostPort (the second one
fails with PortConflict before anything of it exists) across threads, processes and restarts.
`<state_root>/hostports/<proto>-<port>-<hostIP>` holds the owning pod uid; 0.0.0.0 stands for
every node address and overlaps any hostIP (plan.PortMapping.overlaps)."""

from __future__ import annotations

import os
from typing import Iterable

from . import plan
from .errors import PortConflict
from .ownedfiles import OwnedDir


def _is_claim(name: str) -> bool:
    return plan.parse_key(name) is not None


class PortClaims:
    def __init__(self, config: plan.NetworkConfig):
        self.config = config
        self.dir = OwnedDir(config.hostports_dir, _is_claim)

    def claim(self, pod_uid: str, mappings: Iterable[plan.PortMapping]) -> tuple[str, ...]:
        """Hold exactly `mappings` for the pod (claims it held before and no longer asks for are
        released). All or nothing: on a conflict no claim of this call is made. Returns the keys
        the pod held before (to undo with claim(pod_uid, map(plan.parse_key, previous)))."""
        mappings = tuple(mappings)
        with self.dir.locked():
            held = self.dir.entries()
            hit = plan.find_conflict(mappings, held, pod_uid)
            if hit is not None:
                i, m, owner = hit
                raise PortConflict(pod_uid, f"{m.source or f'ports[{i}]'}.hostPort", str(m), owner)
            want = {m.key for m in mappings}
            for key, owner in held.items():
                if owner == pod_uid and key not in want:
                    self.dir.remove(key)
            for m in mappings:
                if held.get(m.key) != pod_uid:
                    self.dir.create(m.key, pod_uid)
            self.dir.sync()
        return tuple(sorted(k for k, owner in held.items() if owner == pod_uid))

    def held(self, pod_uid: str) -> tuple[str, ...]:
        """Keys of the claims the pod holds (read-only: creates no file)."""
        return tuple(sorted(k for k, owner in self.dir.snapshot().items() if owner == pod_uid))

    def release(self, pod_uid: str) -> list[str]:
        if not self._exists():
            return []
        with self.dir.locked():
            return self.dir.remove_owned_by(lambda owner: owner != pod_uid)

    def gc(self, known_uids: Iterable[str]) -> list[str]:
        known = set(known_uids)
        if not self._exists():
            return []
        with self.dir.locked():
            return self.dir.remove_owned_by(lambda owner: owner in known)

    def claims(self) -> dict[str, str]:
        if not self._exists():
            return {}
        with self.dir.locked():
            return self.dir.entries()

    def _exists(self) -> bool:
        return os.path.isdir(self.dir.path)
