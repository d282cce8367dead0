"""The one line a command prints for an error (after `kubelet-py: error: `): shared by the click
CLI (kubelet_py/cli.py, kubectl.py) and the quick `apply` path (applycmd.py), which runs
without click."""

from __future__ import annotations


def server_message(e: Exception) -> str:
    """A refusal of the daemon as kubectl prints it (a ClientError with the answer's code), or
    the error itself (no daemon: code 0)."""
    code, reason = getattr(e, "code", 0), getattr(e, "reason", "")
    return f"Error from server ({reason}): {e}" if code else str(e)


def os_error_message(e: OSError) -> str:
    if isinstance(e, PermissionError):
        return f"{e.filename or ''}: permission denied (run as root?)"
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e} ({type(e).__name__})"
