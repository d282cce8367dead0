"""Edge: the record of each pod whose network setup finished, `<state_root>/podnet/<uid>.json`
(the PodNetwork the setup returned; format in netns/state.py). Written last by setup, removed
first by teardown, so a record means "this pod's network was complete"; written atomically and
only when it changes. One pod is set up by one caller at a time, so no lock is needed."""

from __future__ import annotations

import os
from typing import Iterable

from . import state
from .atomicfile import is_temp_name, same_content, sync_dir, write_atomic
from .errors import StateError
from .plan import NetworkConfig, PodNetwork

SUFFIX = ".json"
MODE = 0o600


def path(config: NetworkConfig, pod_uid: str) -> str:
    return os.path.join(config.records_dir, pod_uid + SUFFIX)


def read(config: NetworkConfig, pod_uid: str) -> PodNetwork | None:
    """The pod's record, None if it has none; StateError if it cannot be read or parsed."""
    p = path(config, pod_uid)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(p, f"cannot read: {e.strerror}") from None
    try:
        data = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    try:
        net = state.from_record(data)
    except ValueError as e:
        raise StateError(p, f"not a pod network record: {e}") from None
    if net.pod_uid != pod_uid:
        raise StateError(p, f"the record is of pod {net.pod_uid}")
    return net


def write(config: NetworkConfig, net: PodNetwork) -> bool:
    """Record `net`; False if the same record was already there (nothing written)."""
    p = path(config, net.pod_uid)
    data = state.to_record(net)
    if same_content(p, data, MODE):
        return False
    try:
        os.makedirs(config.records_dir, mode=0o700, exist_ok=True)
        write_atomic(p, data, MODE)
    except OSError as e:
        raise StateError(p, f"cannot write: {e.strerror}") from None
    return True


def remove(config: NetworkConfig, pod_uid: str) -> bool:
    p = path(config, pod_uid)
    try:
        os.unlink(p)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise StateError(p, f"cannot remove: {e.strerror}") from None
    try:
        sync_dir(config.records_dir)
    except OSError as e:
        raise StateError(config.records_dir, f"cannot sync: {e.strerror}") from None
    return True


def owners(config: NetworkConfig) -> list[str]:
    try:
        names = os.listdir(config.records_dir)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StateError(config.records_dir, f"cannot list: {e.strerror}") from None
    return sorted(n[:-len(SUFFIX)] for n in names if n.endswith(SUFFIX) and not is_temp_name(n))


def gc(config: NetworkConfig, known_uids: Iterable[str]) -> list[str]:
    """Remove the records of pods not in `known_uids` (and leftover temporaries)."""
    known = set(known_uids)
    removed = [u for u in owners(config) if u not in known]
    for u in removed:
        remove(config, u)
    try:
        for n in os.listdir(config.records_dir):
            if is_temp_name(n):
                os.unlink(os.path.join(config.records_dir, n))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StateError(config.records_dir, f"cannot clean: {e.strerror}") from None
    return removed
