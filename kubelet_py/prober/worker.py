"""The probes of one container: one asyncio task per probe type it defines, each on its
periodSeconds ticker, carrying out policy.decide and the threshold rules (semantics 2.3).

A pod worker uses it so:

    probes = ContainerProbes(container, results=results, on_failure=kill, pod_ip=ip,
                             exec_sync=exec_sync, pod=uid)
    probes.start()                               # in the event loop; nothing probes yet
    probes.container_started(cid, started_at)    # each new container instance (its id)
    probes.container_exited(cid)                 # it exited: results FAILURE, probes wait
    probes.pod_deleting()                        # liveness/startup record SUCCESS and stop
    probes.status()                              # started / ready now
    await probes.stop()                          # no task, socket or thread left

Results reach the pod worker through the ResultsManager's on_change (only changes); a liveness or
startup failure at its threshold calls `on_failure(kind, output, container_id)` once, and that
worker is on hold until `container_started` names a new container id.

Timing: the first probe runs initialDelaySeconds after the container's start (at once when that
has passed), then one every periodSeconds, each tick rounded up to the prober's timer grid (at
most 100 ms later, see _slot: the probes of all containers due in one slot share a wakeup);
ticks that the startup gate skips keep their place, so liveness probes on its first tick after
startup passed, readiness at once (upstream triggers it then). A probe that ends in a prober
error is retried at once, up to 3 attempts, then thrown away with an event."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, NamedTuple

from .handlers import run_probe
from .metrics import ProberMetrics
from .policy import INITIAL, KILLS, MAX_RETRIES, Action, ThresholdState, decide, event_for
from .results import ResultsManager
from .spec import Outcome, ProbeSpec, ProbeType, Result, container_probes

log = logging.getLogger(__name__)

ProbeFn = Callable[[ProbeType, ProbeSpec, str], Awaitable[Outcome]]  # (kind, spec, container id)
ExecSync = Callable[[str, list[str], "float | None"], "tuple[int, bytes, bytes]"]  # (container id, args, timeout)
OnFailure = Callable[[ProbeType, str, str], None]  # (kind, output, container id)
OnEvent = Callable[[str, str, str], None]  # (type, reason, message)


class ProbeStatus(NamedTuple):
    started: bool  # ContainerStatus.started
    ready: bool  # ContainerStatus.ready


@dataclass
class _Instance:
    id: str
    started_at: float  # wall clock, seconds since the epoch
    running: bool = True


_NOT_RUN = Outcome(Result.UNKNOWN, "", "not run")
SLOT = 0.1  # seconds: the prober's timer grid for periods of 1 s and more (see _slot)


def _slot(when: float, period: float) -> float:
    """`when` rounded up to the prober's timer grid (slots of SLOT, or a tenth of a shorter
    period): the probes of all containers that fall due within one slot run in one wakeup of the
    event loop, one burst of work, instead of a wakeup each. On a busy node that is most of the
    prober's CPU; a probe runs at most one slot late, and its period is kept (the next tick
    counts from the unrounded one)."""
    q = min(SLOT, period / 10)
    return math.ceil(when / q) * q


def _release(fut: asyncio.Future | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


class _Worker:
    def __init__(self, owner: "ContainerProbes", kind: ProbeType, spec: ProbeSpec):
        self.owner, self.kind, self.spec = owner, kind, spec
        self.state = ThresholdState(kind, spec.success_threshold, spec.failure_threshold)
        self.container_id: str | None = None
        self.poked = False  # something changed since the worker last looked
        self.waiter: asyncio.Future | None = None  # what the worker sleeps on
        self.triggered = False
        self.next_tick = 0.0  # the loop's clock
        self.task: asyncio.Task | None = None
        self.finished = False  # stopped by pod deletion

    def poke(self, trigger: bool = False) -> None:
        self.triggered = self.triggered or trigger
        self.poked = True
        _release(self.waiter)

    def _adopt(self, inst: _Instance, loop) -> None:
        o = self.owner
        if self.container_id is not None:
            o.results.remove(self.container_id, self.kind)
        self.container_id = inst.id
        self.state.reset()
        o._record(self.kind, inst.id, INITIAL[self.kind])
        delay_left = inst.started_at + self.spec.initial_delay_seconds - o.clock()
        self.next_tick = loop.time() + max(delay_left, 0.0)

    async def run(self) -> None:
        o, loop = self.owner, asyncio.get_running_loop()
        while True:
            self.poked = False
            inst = o._instance
            if inst is not None and inst.id != self.container_id:
                self._adopt(inst, loop)
            delay_left = 0.0
            if inst is not None:
                delay_left = inst.started_at + self.spec.initial_delay_seconds - o.clock()
            action = decide(self.kind, has_container=inst is not None, on_hold=self.state.on_hold,
                            running=inst is not None and inst.running, deleting=o._deleting,
                            started=inst is not None and o._started(inst.id), delay_over=delay_left <= 0)
            when: float | None = None  # the loop's clock; None: until poked
            if action not in (Action.SKIP, Action.PROBE):
                self.triggered = False  # a run asked for while the gates are shut is not kept
            if action is Action.FINISH:
                o._record(self.kind, inst.id, Result.SUCCESS)
                self.finished = True
                return
            if action is Action.NOT_RUNNING:
                o._record(self.kind, inst.id, Result.FAILURE)
            elif action is Action.DELAY:
                when = _slot(loop.time() + delay_left, self.spec.period_seconds)
            elif action in (Action.SKIP, Action.PROBE):
                now = loop.time()
                due = now >= self.next_tick
                if due or self.triggered:
                    self.triggered = False
                    if due:
                        self.next_tick = max(self.next_tick + self.spec.period_seconds, now)
                    if action is Action.PROBE:
                        await self._probe(inst.id, loop)
                        continue
                when = _slot(self.next_tick, self.spec.period_seconds)
            if not self.poked:
                await self._sleep(loop, when)

    async def _sleep(self, loop, when: float | None) -> None:
        """Until poked, or until the loop's clock reaches `when` (None: until poked). A future and
        a timer handle: no Event, no Timeout context and no exception per tick."""
        self.waiter = fut = loop.create_future()
        timer = None if when is None else loop.call_at(when, _release, fut)
        try:
            await fut
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    async def _probe(self, cid: str, loop) -> None:
        o, started = self.owner, loop.time()
        outcome = _NOT_RUN
        for _ in range(MAX_RETRIES):
            try:
                outcome = await o._probe_fn(self.kind, self.spec, cid)
            except Exception as e:  # a bug in a handler is a prober error, not the end of the probes
                log.exception("%s probe of %s raised", self.kind.value, o.name)
                outcome = Outcome(Result.UNKNOWN, "", f"{type(e).__name__}: {e}")
            if outcome.result is not Result.UNKNOWN:
                break
        o.metrics.observe(self.kind, outcome.result, loop.time() - started)
        event = event_for(self.kind, outcome.result, outcome.output, outcome.error)
        if event is not None:
            o._event(*event)
        if outcome.result is Result.UNKNOWN:
            return  # thrown away, as upstream
        inst = o._instance
        if inst is None or inst.id != cid or not inst.running or (o._deleting and self.kind in KILLS):
            return  # the instance changed while it was probed: this result is about the old one
        decision = self.state.observe(outcome.result)
        if decision.record is not None:
            o._record(self.kind, cid, decision.record)
        if decision.kill:
            o._failed(self.kind, outcome.output, cid)


class ContainerProbes:
    """The startup, liveness and readiness probes of one container of a pod.

    `container`: the manifest's container object (probes, ports by name, env for exec's $(VAR)).
    `results`: where results are kept and changes announced (one manager for the node or the pod).
    `on_failure(kind, output, container_id)`: liveness or startup reached failureThreshold; the
    caller kills that container (the probe's terminationGracePeriodSeconds is in `specs[kind]`).
    `exec_sync(container_id, args, timeout) -> (code, stdout, stderr)`: runs exec probes; blocking
    (run in a thread per call) or async; raises an error with kind DEADLINE_EXCEEDED on timeout.
    `pod`: the caller's key of the pod, passed on in results' updates. `on_event(type, reason,
    message)`: Unhealthy / ProbeWarning events. `specs`, `probe`, `clock`: for tests (probes with
    float seconds, a fake handler `probe(kind, spec, container_id) -> Outcome`, the wall clock)."""

    def __init__(self, container: dict, *, results: ResultsManager, on_failure: OnFailure | None = None,
                 pod_ip: str | None = None, exec_sync: ExecSync | None = None, pod: str = "",
                 on_event: OnEvent | None = None, metrics: ProberMetrics | None = None,
                 specs: dict[ProbeType, ProbeSpec] | None = None, probe: ProbeFn | None = None,
                 clock: Callable[[], float] = time.time):
        self.container = container
        self.name = container.get("name", "")
        self.specs = container_probes(container) if specs is None else dict(specs)
        self.results, self.on_failure, self.on_event = results, on_failure, on_event
        self.pod_ip, self.exec_sync, self.pod = pod_ip, exec_sync, pod
        self.metrics = metrics if metrics is not None else ProberMetrics()
        self._probe_fn: ProbeFn = probe if probe is not None else self._run_probe
        self.clock = clock
        self._instance: _Instance | None = None
        self._deleting = False
        self._workers = {kind: _Worker(self, kind, spec) for kind, spec in self.specs.items()}
        self._stopped = False

    # ---- the pod worker's side ----

    def start(self) -> None:
        """Start one task per probe (call from the event loop); repeating it does nothing."""
        if self._stopped:
            raise RuntimeError(f"probes of {self.name} were stopped")
        for w in self._workers.values():
            if w.task is None:
                w.task = asyncio.get_running_loop().create_task(w.run(), name=f"probe-{w.kind.value}-{self.name}")
                w.task.add_done_callback(self._task_done)

    def container_started(self, container_id: str, started_at: float | None = None) -> None:
        """A container instance is running (a new one after a restart): results start from their
        initial values, thresholds from zero, and a worker on hold resumes. `started_at`: its
        startedAt (wall clock, default now), from which initialDelaySeconds counts."""
        if self._instance is not None and self._instance.id == container_id:
            self._instance.running = True
        else:
            self._instance = _Instance(container_id, self.clock() if started_at is None else started_at)
        self._poke()

    def container_exited(self, container_id: str) -> None:
        """That instance is no longer running: its results become FAILURE; probes wait for the next."""
        if self._instance is not None and self._instance.id == container_id:
            self._instance.running = False
            self._poke()

    def pod_deleting(self) -> None:
        """The pod is being deleted: liveness and startup record SUCCESS and stop; readiness goes on."""
        self._deleting = True
        self._poke()

    def trigger(self, kind: ProbeType) -> None:
        """Run that probe now, off its ticker (if its gates allow)."""
        if kind in self._workers:
            self._workers[kind].poke(trigger=True)

    async def stop(self) -> None:
        """Cancel every task and wait for them (an exec in flight is waited for, within its
        timeout), then forget the results of the last instance."""
        self._stopped = True
        tasks = [w.task for w in self._workers.values() if w.task is not None and not w.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for w in self._workers.values():
            if w.container_id is not None:
                self.results.remove(w.container_id, w.kind)

    @property
    def container_id(self) -> str | None:
        return self._instance.id if self._instance is not None else None

    def status(self) -> ProbeStatus:
        """started and ready of the current instance, as upstream's UpdatePodStatus computes them:
        not running -> neither; started = no startup probe or it passed; ready = started and (no
        readiness probe or it passed)."""
        inst = self._instance
        if inst is None or not inst.running:
            return ProbeStatus(False, False)
        started = self._started(inst.id)
        ready = started and (ProbeType.READINESS not in self.specs
                             or self.results.get(inst.id, ProbeType.READINESS) is Result.SUCCESS)
        return ProbeStatus(started, ready)

    def tasks(self) -> list[asyncio.Task]:
        """The workers' tasks that are still running (for tests and leak checks)."""
        return [w.task for w in self._workers.values() if w.task is not None and not w.task.done()]

    # ---- the workers' side ----

    def _started(self, cid: str) -> bool:
        return ProbeType.STARTUP not in self.specs or self.results.get(cid, ProbeType.STARTUP) is Result.SUCCESS

    def _poke(self) -> None:
        for w in self._workers.values():
            w.poke()

    def _record(self, kind: ProbeType, cid: str, result: Result) -> None:
        changed = self.results.set(cid, kind, result, pod=self.pod, container=self.name)
        if changed and kind is ProbeType.STARTUP:  # the gate moved: the others look again
            for k, w in self._workers.items():
                if k is not ProbeType.STARTUP:
                    w.poke(trigger=k is ProbeType.READINESS and result is Result.SUCCESS)

    def _failed(self, kind: ProbeType, output: str, cid: str) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(kind, output, cid)
        except Exception:
            log.exception("on_failure of %s %s probe failed", self.name, kind.value)

    def _event(self, type_: str, reason: str, message: str) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(type_, reason, message)
        except Exception:
            log.exception("on_event of %s failed", self.name)

    def _task_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("probe worker %s died", task.get_name(), exc_info=task.exception())

    async def _run_probe(self, kind: ProbeType, spec: ProbeSpec, cid: str) -> Outcome:
        exec_fn = functools.partial(self.exec_sync, cid) if self.exec_sync is not None else None
        return await run_probe(spec, container=self.container, pod_ip=self.pod_ip, exec_fn=exec_fn)
