"""exec probes and hooks: a command in the container through a callable the caller passes (the pod
worker passes the runtime's exec_sync). The callable is blocking, so it runs in a thread of its own
per call, never in the event loop and never in a shared pool that would outlive the probes.

The callable: `run(args, timeout) -> (exit code, stdout, stderr)`, raising an error whose `kind`
is "DEADLINE_EXCEEDED" once `timeout` passed (the runtime has killed the command by then). An
async callable of the same shape is awaited instead."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Callable

from .spec import Outcome, Result, bounded

DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
# How long past its own timeout a blocking exec may take to return (the runtime kills the command
# at the timeout, then reports): past it the probe has timed out and the thread is left to finish.
EXEC_GRACE = 5.0

ExecFn = Callable[[list[str], "float | None"], "tuple[int, bytes, bytes]"]


async def call_in_thread(fn: Callable, *args, give_up: float | None = None):
    """fn(*args) in a new daemon thread; its result or exception. Past `give_up` seconds
    TimeoutError is raised and the thread is left to finish on its own. If the caller is cancelled,
    the thread is waited for (until `give_up`; not at all when None) before the cancellation goes
    on, so that stopping a prober leaves no thread behind when the callable keeps its timeout."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, even when abandoned
    end = None if give_up is None else loop.time() + give_up

    def settle(ok: bool, value) -> None:
        if not fut.done():
            (fut.set_result if ok else fut.set_exception)(value)

    def body() -> None:
        try:
            value, ok = fn(*args), True
        except BaseException as e:  # handed to the awaiting task
            value, ok = e, False
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    thread = threading.Thread(target=body, name="kpy-probe-exec", daemon=True)
    thread.start()
    try:
        # asyncio.wait, not wait_for: in 3.11 wait_for can return the result of a future that
        # completes at the instant of a cancel and swallow the cancel (a stopped prober hung)
        done, _ = await asyncio.wait({fut}, timeout=give_up)
        if not done:
            raise TimeoutError(f"still running after {give_up}s")
        return fut.result()
    except asyncio.CancelledError:
        if end is not None and not fut.done():
            await asyncio.wait({fut}, timeout=max(end - loop.time(), 0))
        raise
    finally:
        if fut.done():
            thread.join(1.0)  # it has handed its result over and is returning: a moment at most


async def run_command(run: ExecFn, args: list[str], timeout: float | None) -> tuple[int, bytes, bytes]:
    """run(args, timeout), awaited (async callable) or in a thread (blocking one). A blocking call
    that overruns timeout + EXEC_GRACE raises TimeoutError."""
    if inspect.iscoroutinefunction(run):
        return await run(args, timeout)
    return await call_in_thread(run, args, timeout, give_up=None if timeout is None else timeout + EXEC_GRACE)


def timed_out(e: BaseException) -> bool:
    return getattr(e, "kind", None) == DEADLINE_EXCEEDED


def timeout_message(args: list[str]) -> str:
    return f'command "{" ".join(args)}" timed out'


async def exec_probe(run: ExecFn, args: list[str], timeout: float) -> Outcome:
    """Exit 0 passes, another exit fails, both with stdout+stderr (10 KiB) as output; a timeout
    fails with `command "..." timed out`; any other error is a prober error (UNKNOWN)."""
    try:
        code, out, err = await run_command(run, list(args), timeout)
    except TimeoutError:
        return Outcome(Result.FAILURE, timeout_message(args))
    except Exception as e:
        if timed_out(e):
            return Outcome(Result.FAILURE, timeout_message(args))
        return Outcome(Result.UNKNOWN, "", f"exec {args[0] if args else ''!r}: {e}")
    output = bounded((out or b"") + (err or b""))
    return Outcome(Result.SUCCESS if code == 0 else Result.FAILURE, output)
