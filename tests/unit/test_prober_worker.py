"""ContainerProbes with a scripted fake handler and periods of a few milliseconds: the policy of
semantics 2.3 as it plays out over time, and stopping without leftovers."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubelet_py.prober import ContainerProbes, Outcome, ProbeSpec, ProbeType, Result, ResultsManager
from kubelet_py.prober.spec import TCPSocketAction

L, R, S = ProbeType.LIVENESS, ProbeType.READINESS, ProbeType.STARTUP
OK, FAIL, UNK = Result.SUCCESS, Result.FAILURE, Result.UNKNOWN
P = 0.02  # seconds between probes in these tests


def spec(period=P, delay=0.0, fail=3, succ=1) -> ProbeSpec:
    return ProbeSpec(TCPSocketAction(1), initial_delay_seconds=delay, timeout_seconds=1, period_seconds=period,
                     success_threshold=succ, failure_threshold=fail)


class Script:
    """The fake handler: each kind answers its current result (or the next of a list)."""

    def __init__(self, **plan):
        self.plan = {ProbeType(k): v for k, v in plan.items()}
        self.calls: list[tuple[ProbeType, str, float]] = []
        self.gate: asyncio.Event | None = None

    def set(self, kind, result):
        self.plan[kind] = result

    def count(self, kind=None, cid=None):
        return sum(1 for k, c, _ in self.calls if (kind is None or k is kind) and (cid is None or c == cid))

    async def __call__(self, kind, spec, cid):
        self.calls.append((kind, cid, time.monotonic()))
        if self.gate is not None:
            await self.gate.wait()
        r = self.plan.get(kind, OK)
        if isinstance(r, list):
            r = r.pop(0) if len(r) > 1 else r[0]
        if isinstance(r, Exception):
            raise r
        return Outcome(r, f"{kind.value} said {r.value}", "it broke" if r is UNK else None)


class Harness:
    def __init__(self, specs, script, **kw):
        self.updates = []
        self.failures = []
        self.events = []
        self.results = ResultsManager(self.updates.append)
        self.script = script
        self.probes = ContainerProbes({"name": "web"}, results=self.results, specs=specs, probe=script, pod="uid1",
                                      on_failure=lambda k, out, cid: self.failures.append((k, out, cid)),
                                      on_event=lambda *e: self.events.append(e), **kw)

    def result(self, kind, cid="c1"):
        return self.results.get(cid, kind)


async def until(cond, within=3.0):
    end = time.monotonic() + within
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.003)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_starting_values_for_a_new_container():
    async def t():
        h = Harness({L: spec(delay=60), R: spec(delay=60), S: spec(delay=60)}, Script())
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: len(h.results) == 3)
        assert (h.result(R), h.result(L), h.result(S)) == (FAIL, OK, UNK)
        assert h.script.calls == []  # all still in their initial delay
        assert {(u.kind, u.result, u.pod, u.container) for u in h.updates} == \
            {(R, FAIL, "uid1", "web"), (L, OK, "uid1", "web"), (S, UNK, "uid1", "web")}
        await h.probes.stop()
    run(t())


def test_nothing_probes_before_a_container_is_given():
    async def t():
        h = Harness({R: spec()}, Script())
        h.probes.start()
        await asyncio.sleep(5 * P)
        assert h.script.calls == [] and len(h.results) == 0
        await h.probes.stop()
    run(t())


def test_readiness_becomes_ready_and_not_ready_by_thresholds():
    async def t():
        script = Script(readiness=OK)
        h = Harness({R: spec(fail=3, succ=2)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: h.result(R) is OK)
        assert script.count(R) >= 2 and h.probes.status().ready
        n = script.count(R)
        script.set(R, FAIL)
        await until(lambda: h.result(R) is FAIL)
        assert script.count(R) - n >= 3  # three failures in a row were needed
        assert h.failures == []  # readiness never kills
        assert [u.result for u in h.updates] == [FAIL, OK, FAIL]  # changes only
        await h.probes.stop()
    run(t())


def test_intermittent_failures_below_the_threshold_never_kill():
    async def t():
        script = Script(liveness=[FAIL, FAIL, OK] * 6 + [OK])
        h = Harness({L: spec(fail=3)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: script.count(L) >= 19)
        assert h.failures == [] and h.result(L) is OK
        await h.probes.stop()
    run(t())


def test_liveness_failure_kills_once_then_holds_until_a_new_container():
    async def t():
        script = Script(liveness=FAIL)
        h = Harness({L: spec(fail=3)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: h.failures)
        assert h.failures == [(L, "liveness said failure", "c1")] and h.result(L) is FAIL
        assert script.count(L) == 3
        await asyncio.sleep(10 * P)
        assert script.count(L) == 3 and len(h.failures) == 1  # on hold
        script.set(L, OK)
        h.probes.container_started("c2")
        await until(lambda: script.count(L, "c2") >= 1)
        assert h.result(L, "c2") is OK and h.result(L, "c1") is None  # the old instance is forgotten
        await h.probes.stop()
    run(t())


def test_unhealthy_events_carry_the_output():
    async def t():
        h = Harness({L: spec(fail=2)}, Script(liveness=FAIL))
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: h.failures)
        assert h.events[0] == ("Warning", "Unhealthy", "Liveness probe failed: liveness said failure")
        await h.probes.stop()
    run(t())


def test_startup_gates_liveness_and_readiness_then_stops():
    async def t():
        script = Script(startup=FAIL, liveness=OK, readiness=OK)
        h = Harness({S: spec(fail=1000), L: spec(period=0.05), R: spec(period=60)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: script.count(S) >= 5)
        assert script.count(L) == script.count(R) == 0
        assert h.probes.status() == (False, False) and h.result(S) is UNK
        script.set(S, OK)
        await until(lambda: h.result(S) is OK)
        # readiness runs at once (its period is a minute), liveness on its own next tick
        await until(lambda: h.result(R) is OK and script.count(L) >= 1)
        assert h.probes.status().started and h.probes.status().ready
        n = script.count(S)
        await asyncio.sleep(10 * P)
        assert script.count(S) == n  # startup does not probe once started
        await h.probes.stop()
    run(t())


def test_startup_failure_kills_and_a_new_container_starts_over():
    async def t():
        script = Script(startup=FAIL, liveness=OK)
        h = Harness({S: spec(fail=2), L: spec()}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: h.failures)
        assert h.failures == [(S, "startup said failure", "c1")] and script.count(L) == 0
        script.set(S, OK)
        h.probes.container_started("c2")
        await until(lambda: h.result(S, "c2") is OK and script.count(L, "c2") >= 1)
        await h.probes.stop()
    run(t())


def test_a_new_container_restarts_startup_gating():
    async def t():
        script = Script(startup=OK, readiness=OK)
        h = Harness({S: spec(fail=1000), R: spec()}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: h.result(R) is OK)
        script.set(S, FAIL)
        h.probes.container_started("c2")
        await until(lambda: script.count(S, "c2") >= 3)
        assert script.count(R, "c2") == 0 and h.result(R, "c2") is FAIL and h.result(S, "c2") is UNK
        await h.probes.stop()
    run(t())


def test_period_is_kept():
    async def t():
        script = Script(readiness=OK)
        h = Harness({R: spec(period=0.05)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: script.count(R) >= 6)
        times = [t for _, _, t in script.calls]
        gaps = [b - a for a, b in zip(times, times[1:])]
        # never early; late only by what a loaded machine adds (the median stays near the period)
        assert all(g >= 0.04 for g in gaps) and sorted(gaps)[len(gaps) // 2] < 0.15, gaps
        await h.probes.stop()
    run(t())


def test_initial_delay_counts_from_the_container_start():
    async def t():
        script = Script()
        h = Harness({R: spec(delay=0.2)}, script)
        h.probes.start()
        t0 = time.monotonic()
        h.probes.container_started("c1")
        await until(lambda: script.count(R) >= 1)
        assert script.calls[0][2] - t0 >= 0.19
        await h.probes.stop()
        # a container that started a while ago is probed at once
        script2 = Script()
        h2 = Harness({R: spec(delay=0.5, period=60)}, script2)
        h2.probes.start()
        t0 = time.monotonic()
        h2.probes.container_started("c1", started_at=time.time() - 1)
        await until(lambda: script2.count(R) >= 1)
        assert script2.calls[0][2] - t0 < 0.1
        await h2.probes.stop()
    run(t())


def test_exited_container_is_not_probed_and_reads_failure():
    async def t():
        script = Script(readiness=OK, liveness=OK)
        h = Harness({R: spec(), L: spec()}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: h.result(R) is OK)
        h.probes.container_exited("c1")
        await until(lambda: h.result(R) is FAIL and h.result(L) is FAIL)
        n = len(script.calls)
        await asyncio.sleep(5 * P)
        assert len(script.calls) == n and h.failures == [] and h.probes.status() == (False, False)
        h.probes.container_started("c2")
        await until(lambda: h.result(R, "c2") is OK)
        await h.probes.stop()
    run(t())


def test_pod_deletion_makes_liveness_and_startup_succeed_and_stop():
    async def t():
        script = Script(liveness=FAIL, startup=OK, readiness=OK)
        h = Harness({L: spec(fail=1000), S: spec(), R: spec()}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: script.count(L) >= 2)
        h.probes.pod_deleting()
        await until(lambda: len(h.probes.tasks()) == 1)
        assert h.result(L) is OK and h.result(S) is OK
        n, m = script.count(L), script.count(R)
        await asyncio.sleep(5 * P)
        assert script.count(L) == n and script.count(R) > m  # readiness goes on
        assert h.failures == []
        await h.probes.stop()
    run(t())


def test_a_result_about_a_replaced_container_is_thrown_away():
    async def t():
        script = Script(liveness=FAIL)
        script.gate = asyncio.Event()
        h = Harness({L: spec(fail=1)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: script.count(L) == 1)
        h.probes.container_started("c2")  # restarted while the probe of c1 is in flight
        script.plan[L] = [FAIL, OK]  # the call in flight (about c1) says FAIL, c2 says OK
        script.gate.set()
        await until(lambda: script.count(L, "c2") >= 1)
        assert h.failures == [] and h.result(L, "c2") is not FAIL
        await h.probes.stop()
    run(t())


def test_prober_errors_are_retried_three_times_then_thrown_away():
    async def t():
        script = Script(readiness=UNK)
        h = Harness({R: spec(period=60)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: script.count(R) == 3 and h.events)
        await asyncio.sleep(5 * P)
        assert script.count(R) == 3  # one tick, three attempts
        assert h.result(R) is FAIL  # still the starting value
        assert h.events == [("Warning", "Unhealthy", "Readiness probe errored and resulted in unknown state: it broke")]
        assert h.probes.metrics.probe_total == {("readiness", "unknown"): 1}
        await h.probes.stop()
    run(t())


def test_an_error_then_a_result_counts_the_result():
    async def t():
        script = Script(readiness=[UNK, OK])
        h = Harness({R: spec(period=60)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: h.result(R) is OK)
        assert script.count(R) == 2 and h.probes.metrics.probe_total == {("readiness", "successful"): 1}
        await h.probes.stop()
    run(t())


def test_a_handler_that_raises_does_not_end_the_probes():
    async def t():
        script = Script(readiness=[RuntimeError("bug"), RuntimeError("bug"), RuntimeError("bug"), OK])
        h = Harness({R: spec()}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: h.result(R) is OK)
        assert "RuntimeError: bug" in h.events[0][2]
        await h.probes.stop()
    run(t())


def test_a_broken_on_failure_does_not_end_the_probes():
    async def t():
        def boom(*a):
            raise RuntimeError("kill failed")

        results = ResultsManager()
        script = Script(liveness=FAIL)
        probes = ContainerProbes({"name": "c"}, results=results, specs={L: spec(fail=1)}, probe=script,
                                 on_failure=boom)
        probes.start()
        probes.container_started("c1")
        await until(lambda: results.get("c1", L) is FAIL)
        script.set(L, OK)
        probes.container_started("c2")
        await until(lambda: script.count(L, "c2") >= 1)
        assert len(probes.tasks()) == 1
        await probes.stop()
    run(t())


def test_trigger_runs_a_probe_off_its_ticker():
    async def t():
        script = Script(readiness=OK)
        h = Harness({R: spec(period=60)}, script)
        h.probes.start()
        h.probes.container_started("c1")
        await until(lambda: script.count(R) == 1)
        h.probes.trigger(R)
        await until(lambda: script.count(R) == 2)
        await h.probes.stop()
    run(t())


def test_status_without_probes_follows_running():
    async def t():
        h = Harness({}, Script())
        h.probes.start()
        assert h.probes.status() == (False, False)
        h.probes.container_started("c1")
        assert h.probes.status() == (True, True)
        h.probes.container_exited("c1")
        assert h.probes.status() == (False, False)
        await h.probes.stop()
    run(t())


def test_stop_cancels_a_probe_in_flight_and_forgets_results():
    async def t():
        cancelled = []

        async def hang(kind, spec, cid):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(kind)
                raise

        results = ResultsManager()
        probes = ContainerProbes({"name": "c"}, results=results, specs={L: spec(), R: spec()}, probe=hang)
        probes.start()
        probes.container_started("c1")
        await until(lambda: len(results) == 2)
        await asyncio.sleep(3 * P)
        await probes.stop()
        assert sorted(k.value for k in cancelled) == ["liveness", "readiness"]
        assert probes.tasks() == [] and len(results) == 0
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("probe-")] == []
        with pytest.raises(RuntimeError):
            probes.start()
    run(t())


def test_probes_from_a_manifest_container():
    container = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}],
                 "livenessProbe": {"httpGet": {"port": "http"}, "periodSeconds": 5},
                 "readinessProbe": {"tcpSocket": {"port": 8080}}}
    probes = ContainerProbes(container, results=ResultsManager())
    assert set(probes.specs) == {L, R}
    assert probes.specs[L].period_seconds == 5 and probes.specs[R].period_seconds == 10
