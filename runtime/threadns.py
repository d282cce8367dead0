"""Kernel state private to one short-lived thread: a daemon's other threads never see it.

A thread that unshares CLONE_FS has a cwd of its own (an overlay mount with relative layer
paths needs one); a thread that unshares net/ipc/uts namespaces is in new ones, which can be
bind-mounted from /proc/thread-self/ns before it ends. No fork: safe from any thread."""

from __future__ import annotations

import threading

from .linux import sys as ksys

CLONE_FS = 0x00000200


def in_own_thread(fn, unshare_flags: int = 0):
    """Run `fn()` in a new OS thread that first unshares `unshare_flags`; its result, or its
    exception raised here. The thread ends with `fn`, and what it changed with it."""
    out: dict = {}

    def body():
        try:
            if unshare_flags:
                ksys.unshare(unshare_flags)
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            out["error"] = e

    t = threading.Thread(target=body, name="kpy-private-ns")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")
