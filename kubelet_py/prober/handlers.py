"""One probe attempt or one lifecycle hook, whatever its handler (semantics 2.2 and 1.6).

`run_probe` never raises for what the probed side does: it returns an Outcome. A probe that cannot
be run as written (a port name the container does not have, no pod IP yet, no exec runner) is a
prober error: Result.UNKNOWN with the reason. `run_hook` returns when the hook succeeded and raises
HookError (its message as upstream's events word it) when it failed."""

from __future__ import annotations

import asyncio
import json

from .execprobe import ExecFn, exec_probe, run_command, timed_out, timeout_message
from .httpprobe import HTTPError, http_hook, http_probe
from .spec import (ExecAction, GRPCAction, HookHandler, HTTPGetAction, Outcome, ProbeSpec, Result, SleepAction,
                   SpecError, TCPSocketAction, bounded, expand_command, parse_hook, resolve_port)
from .tcpprobe import tcp_probe


def _q(s: str) -> str:
    """A quoted string, as Go's %q writes one."""
    return json.dumps(s, ensure_ascii=False)


def _host(given: str, pod_ip: str | None) -> str:
    host = given or pod_ip
    if not host:
        raise SpecError("host", "the pod has no IP yet and the probe names no host")
    return host


async def run_probe(spec: ProbeSpec, *, container: dict, pod_ip: str | None, exec_fn: ExecFn | None = None) -> Outcome:
    """One attempt of `spec` against the container (its ports and env come from `container`, the
    manifest's container object) at `pod_ip`, within spec.timeout_seconds."""
    h, timeout = spec.handler, spec.timeout_seconds
    try:
        if isinstance(h, ExecAction):
            if exec_fn is None:
                raise SpecError("exec", "no way to run a command in this container")
            return await exec_probe(exec_fn, expand_command(h.command, container), timeout)
        if isinstance(h, HTTPGetAction):
            port = resolve_port(h.port, container)
            return await http_probe(h.scheme, _host(h.host, pod_ip), port, h.path, h.headers, timeout)
        if isinstance(h, TCPSocketAction):
            port = resolve_port(h.port, container)
            return await tcp_probe(_host(h.host, pod_ip), port, timeout)
        if isinstance(h, GRPCAction):
            from .grpcprobe import grpc_probe  # grpcio loads only for grpc probes
            return await grpc_probe(_host("", pod_ip), resolve_port(h.port, container), h.service, timeout)
    except SpecError as e:
        return Outcome(Result.UNKNOWN, "", str(e))
    return Outcome(Result.UNKNOWN, "", f"no handler in {spec!r}")


class HookError(Exception):
    """A postStart or preStop hook failed; str() is the event's message."""


async def run_hook(handler: HookHandler | dict, *, container: dict, pod_ip: str | None, exec_fn: ExecFn | None = None,
                   timeout: float | None = None, pod: str = "") -> None:
    """Run a lifecycle handler (semantics 1.6): exec fails on a non-zero exit; httpGet (User-Agent
    kube-lifecycle/...) fails only when no response comes, whatever its status; sleep sleeps.
    `timeout` bounds exec and httpGet (give the time left of the grace period to a preStop);
    without one they run until done or until the caller cancels. `pod` names the pod in messages."""
    if isinstance(handler, dict):
        try:
            handler = parse_hook(handler)
        except SpecError as e:
            raise HookError(f"invalid handler: {e}") from None
    name = container.get("name", "")
    if isinstance(handler, SleepAction):
        await asyncio.sleep(handler.seconds)
        return
    if isinstance(handler, ExecAction):
        args = list(handler.command)
        where = f"Exec lifecycle hook ([{' '.join(args)}]) for Container {_q(name)} in Pod {_q(pod)} failed"
        if exec_fn is None:
            raise HookError(f"{where} - error: no way to run a command in this container")
        try:
            code, out, err = await run_command(exec_fn, args, timeout)
        except TimeoutError:
            raise HookError(f"{where} - error: {timeout_message(args)}") from None
        except Exception as e:
            raise HookError(f"{where} - error: {timeout_message(args) if timed_out(e) else e}") from None
        if code != 0:
            error = f"command '{' '.join(args)}' exited with {code}: {bounded(err or b'')}"
            raise HookError(f"{where} - error: {error}, message: {_q(bounded((out or b'') + (err or b'')))}")
        return
    if isinstance(handler, HTTPGetAction):
        where = f"HTTP lifecycle hook ({handler.path}) for Container {_q(name)} in Pod {_q(pod)} failed"
        try:
            port = resolve_port(handler.port, container)
            await http_hook(handler.scheme, _host(handler.host, pod_ip), port, handler.path, handler.headers, timeout)
        except (SpecError, HTTPError) as e:
            raise HookError(f"{where} - error: {e}") from None
        return
    raise HookError(f"invalid handler: {handler!r}")
