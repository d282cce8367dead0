"""A container's record: what the supervisor knows of it, written atomically at every change
of state, so that it is known after the supervisor is gone.

States (CRI's ContainerState): created -> running -> exited, and `unknown` for a container that
was running when its supervisor died (its exit cannot be learned; it may still run), or whose
init was prepared at create (`prepared`) and waits for a start nobody can give it now. A record
is a plain dict (JSON on disk and on the wire)."""

from __future__ import annotations

import json
import logging
import os

from ..atomicfile import is_temp_name, write_json_atomic
from .wire import STATES_DIR

CREATED, RUNNING, EXITED, UNKNOWN = "created", "running", "exited", "unknown"
STATES = (CREATED, RUNNING, EXITED, UNKNOWN)
UNKNOWN_EXIT_CODE = 255  # containerd's, for a container whose exit was not seen
FIELDS = ("id", "name", "image", "image_id", "attempt", "labels", "bundle", "log_path", "log_max_size",
          "log_max_files", "stop_signal", "state", "pid", "created_at", "started_at", "finished_at", "exit_code",
          "signal", "reason", "message", "oom_killed", "prepared")

log = logging.getLogger("kubelet_py.supervisor")


def new_record(req: dict, created_at: str) -> dict:
    """The record of a container the supervisor was told of (op `create`)."""
    rec = dict.fromkeys(FIELDS)
    rec.update({k: req.get(k) for k in FIELDS if k in req})
    rec.update(state=CREATED, created_at=created_at, attempt=int(req.get("attempt") or 0),
               labels=dict(req.get("labels") or {}), oom_killed=False, prepared=False)
    return rec


def path_of(pod_dir: str, cid: str) -> str:
    return os.path.join(pod_dir, STATES_DIR, f"{cid}.json")


def save(pod_dir: str, rec: dict) -> None:
    """Never torn (a restarted daemon reads it), not fsync'ed: what runs does not outlive the
    host, and an fsync per state change would stall the supervisor's loop (1-3 ms here)."""
    write_json_atomic(path_of(pod_dir, rec["id"]), rec, durable=False)


def drop(pod_dir: str, cid: str) -> None:
    try:
        os.unlink(path_of(pod_dir, cid))
    except FileNotFoundError:
        pass


def load_all(pod_dir: str, supervisor_alive: bool) -> dict[str, dict]:
    """Every record of the pod, as written. Without a live supervisor, a container recorded as
    running is reported `unknown`: nobody saw it exit, and nobody will."""
    d = os.path.join(pod_dir, STATES_DIR)
    out = {}
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if is_temp_name(name) or not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(d, name)) as f:
                rec = json.load(f)
        except (OSError, ValueError) as e:
            log.warning("container record %s/%s unreadable: %s", d, name, e)
            continue
        if not isinstance(rec, dict) or rec.get("state") not in STATES or rec.get("id") != name[:-5]:
            log.warning("container record %s/%s is not a record: ignored", d, name)
            continue
        if rec["state"] == RUNNING and not supervisor_alive:
            rec = {**rec, "state": UNKNOWN, "message": "its supervisor died while it ran: its exit is not known"}
        elif rec["state"] == CREATED and rec.get("prepared") and not supervisor_alive:
            rec = {**rec, "state": UNKNOWN, "message": "its supervisor died while its init waited to start"}
        out[rec["id"]] = rec
    return out
