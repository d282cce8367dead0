"""exec probes and exec/sleep hooks through a callable shaped as the runtime's exec_sync: (args,
timeout) -> (code, stdout, stderr), an error with kind DEADLINE_EXCEEDED on timeout. The stand-in
runs real commands on the host with subprocess, so timeouts and output are real."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time

import pytest

from kubelet_py.prober import (MAX_OUTPUT, ContainerProbes, HookError, ProbeType, Result, ResultsManager,
                               parse_probe, run_hook, run_probe)
from kubelet_py.prober import execprobe
from kubelet_py.prober.execprobe import exec_probe


class ExecError(Exception):
    def __init__(self, msg, kind):
        super().__init__(msg)
        self.kind = kind


class HostExec:
    """exec_sync's shape over subprocess; records each call and the thread it ran in."""

    def __init__(self):
        self.calls: list[tuple[list[str], float | None, str]] = []

    def __call__(self, args, timeout):
        self.calls.append((list(args), timeout, threading.current_thread().name))
        try:
            p = subprocess.run(args, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ExecError(f"exec {args[0]!r}: timed out after {timeout:g}s (killed)", "DEADLINE_EXCEEDED") from None
        except FileNotFoundError as e:
            raise ExecError(str(e), "NOT_FOUND") from None
        return p.returncode, p.stdout, p.stderr


@pytest.fixture
def host_exec():
    return HostExec()


def test_exit_0_passes_with_stdout_and_stderr(host_exec):
    out = asyncio.run(exec_probe(host_exec, ["sh", "-c", "echo out; echo err >&2"], 2))
    assert out.result is Result.SUCCESS and out.output == "out\nerr\n"
    args, timeout, thread = host_exec.calls[0]
    assert timeout == 2 and thread != threading.main_thread().name


def test_non_zero_exit_fails_with_its_output(host_exec):
    out = asyncio.run(exec_probe(host_exec, ["sh", "-c", "echo not yet; exit 3"], 2))
    assert out.result is Result.FAILURE and out.output == "not yet\n"


def test_timeout_fails_with_command_timed_out(host_exec):
    t = time.monotonic()
    out = asyncio.run(exec_probe(host_exec, ["sleep", "5"], 0.3))
    assert out.result is Result.FAILURE and out.output == 'command "sleep 5" timed out'
    assert time.monotonic() - t < 2


def test_runtime_error_is_a_prober_error(host_exec):
    out = asyncio.run(exec_probe(host_exec, ["/no/such/program"], 1))
    assert out.result is Result.UNKNOWN and "/no/such/program" in out.error


def test_output_is_bounded_at_10_KiB(host_exec):
    out = asyncio.run(exec_probe(host_exec, ["sh", "-c", "head -c 50000 /dev/zero | tr '\\0' x"], 2))
    assert out.result is Result.SUCCESS and out.output == "x" * MAX_OUTPUT


def test_a_callable_that_overruns_its_timeout_is_given_up(monkeypatch):
    monkeypatch.setattr(execprobe, "EXEC_GRACE", 0.2)
    release = threading.Event()

    def stuck(args, timeout):
        release.wait(5)
        return 0, b"", b""

    t = time.monotonic()
    out = asyncio.run(exec_probe(stuck, ["true"], 0.2))
    assert out.result is Result.FAILURE and out.output == 'command "true" timed out'
    assert time.monotonic() - t < 1.5
    release.set()


def test_the_event_loop_runs_while_a_command_does(host_exec):
    async def scenario():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.ensure_future(ticker())
        out = await exec_probe(host_exec, ["sleep", "0.3"], 2)
        t.cancel()
        return out, ticks

    out, ticks = asyncio.run(scenario())
    assert out.result is Result.SUCCESS and ticks >= 10


def test_async_callable_is_awaited():
    seen = []

    async def aexec(args, timeout):
        seen.append(threading.current_thread() is threading.main_thread())
        return 1, b"async", b""

    out = asyncio.run(exec_probe(aexec, ["x"], 1))
    assert out.result is Result.FAILURE and out.output == "async" and seen == [True]


def test_cancelled_exec_waits_for_its_thread(host_exec):
    threads = threading.active_count()

    async def scenario():
        task = asyncio.ensure_future(exec_probe(host_exec, ["sleep", "0.4"], 1))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return threading.active_count()

    t = time.monotonic()
    after = asyncio.run(scenario())
    assert after == threads  # the command returned and its thread ended before the cancel went on
    assert time.monotonic() - t >= 0.35


def test_run_probe_expands_literal_env_only(host_exec):
    container = {"env": [{"name": "GREETING", "value": "hi"},
                         {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
    spec = parse_probe({"exec": {"command": ["echo", "$(GREETING)", "$(FROM_FIELD)", "$$(GREETING)", "$(NONE"]}})
    out = asyncio.run(run_probe(spec, container=container, pod_ip=None, exec_fn=host_exec))
    assert host_exec.calls[0][0] == ["echo", "hi", "$(FROM_FIELD)", "$(GREETING)", "$(NONE"]
    assert out.output == "hi $(FROM_FIELD) $(GREETING) $(NONE\n"


def test_run_probe_exec_without_a_runner_is_a_prober_error():
    spec = parse_probe({"exec": {"command": ["true"]}})
    assert asyncio.run(run_probe(spec, container={}, pod_ip=None)).result is Result.UNKNOWN


def test_container_probes_exec_with_the_current_container_id(host_exec):
    calls = []

    def exec_sync(cid, args, timeout):
        calls.append(cid)
        return host_exec(args, timeout)

    container = {"name": "c", "livenessProbe": {"exec": {"command": ["false"]}, "failureThreshold": 1}}
    killed = []

    async def scenario():
        probes = ContainerProbes(container, results=ResultsManager(), exec_sync=exec_sync,
                                 on_failure=lambda kind, output, cid: killed.append((kind, cid)))
        probes.start()
        probes.container_started("abc")
        for _ in range(200):
            if killed:
                break
            await asyncio.sleep(0.01)
        await probes.stop()

    asyncio.run(scenario())
    assert calls == ["abc"] and killed == [(ProbeType.LIVENESS, "abc")]


# ---- hooks ----

def test_exec_hook_passes_on_exit_0_and_gets_the_timeout(host_exec):
    asyncio.run(run_hook({"exec": {"command": ["true"]}}, container={"name": "c"}, pod_ip=None, exec_fn=host_exec,
                         timeout=7))
    assert host_exec.calls[0][:2] == (["true"], 7)


def test_exec_hook_fails_on_a_non_zero_exit_with_upstreams_message(host_exec):
    with pytest.raises(HookError) as e:
        asyncio.run(run_hook({"exec": {"command": ["sh", "-c", "echo bye >&2; exit 2"]}}, container={"name": "web"},
                             pod_ip=None, exec_fn=host_exec, pod="p_ns(uid)"))
    assert str(e.value) == ('Exec lifecycle hook ([sh -c echo bye >&2; exit 2]) for Container "web" in Pod '
                            '"p_ns(uid)" failed - error: command \'sh -c echo bye >&2; exit 2\' exited with 2: bye\n, '
                            'message: "bye\\n"')


def test_exec_hook_timeout_fails(host_exec):
    with pytest.raises(HookError, match='command "sleep 5" timed out'):
        asyncio.run(run_hook({"exec": {"command": ["sleep", "5"]}}, container={}, pod_ip=None, exec_fn=host_exec,
                             timeout=0.3))


def test_sleep_hook_sleeps_and_can_be_cut_short():
    t = time.monotonic()
    asyncio.run(run_hook({"sleep": {"seconds": 1}}, container={}, pod_ip=None))
    assert 1.0 <= time.monotonic() - t < 1.5

    async def cut():
        task = asyncio.ensure_future(run_hook({"sleep": {"seconds": 30}}, container={}, pod_ip=None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t = time.monotonic()
    asyncio.run(cut())
    assert time.monotonic() - t < 0.5


def test_hook_with_two_handlers_fails_as_an_invalid_handler():
    with pytest.raises(HookError, match="invalid handler: lifecycle.hook: exactly one handler"):
        asyncio.run(run_hook({"exec": {"command": ["true"]}, "sleep": {"seconds": 1}}, container={}, pod_ip=None))
