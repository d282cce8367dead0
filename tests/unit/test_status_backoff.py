"""Back-off arithmetic (kubelet-semantics 1.4): crash loop and image pull, keys, messages, QoS."""

from __future__ import annotations

import pytest

from kubelet_py.status import Backoff, BackoffPolicy, crashloop_policy, image_pull_key, qos_class, stable_key
from kubelet_py.status.backoff import BackoffConfigError, container_hash
from kubelet_py.status.reasons import crashloop_message, image_pull_backoff_message

POD = {"metadata": {"name": "web", "namespace": "prod", "uid": "1234-abcd"},
       "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["false"]}]}}


def crash_sequence(b: Backoff, key: str, runs: list[float], t0: float = 1000.0) -> list[float]:
    """A container that runs `runs[i]` seconds, exits, and is restarted as soon as the back-off
    allows; returns the wait before each restart."""
    now, waits = t0, []
    for run in runs:
        now += run
        finished = now
        wait = b.should_wait(key, now, finished)
        waits.append(wait)
        now += wait
        assert b.should_wait(key, now, finished) == 0
        b.next(key, now, finished)
    return waits


def test_first_exit_restarts_at_once_then_doubles_to_the_cap():
    b = Backoff()
    assert crash_sequence(b, "k", [1.0] * 9) == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    assert b.get("k") == 300


def test_entry_created_at_ten_seconds_by_the_first_exit():
    b = Backoff()
    assert b.get("k") == 0 and b.should_wait("k", 5.0, 4.0) == 0
    assert b.next("k", 5.0, 4.0) == 10
    assert b.should_wait("k", 6.0, 5.5) == pytest.approx(9.5)


def test_should_wait_counts_from_the_exit():
    b = Backoff()
    b.next("k", 100.0, 100.0)
    b.next("k", 200.0, 190.0)                   # delay 20 now
    assert b.should_wait("k", 300.0, 295.0) == pytest.approx(15.0)
    assert b.should_wait("k", 315.0, 295.0) == 0
    assert b.should_wait("k", 400.0, None) == 0  # no exit time: nothing to wait for


def test_reset_after_twice_the_cap_without_an_exit():
    b = Backoff()
    crash_sequence(b, "k", [1.0] * 5)                         # delay 80
    last_update = b.entry("k").last_update
    # exit 600 s after the last restart: still in back-off arithmetic (not more than 2 x cap)
    assert b.should_wait("k", last_update + 600, last_update + 600) == pytest.approx(b.get("k"))
    # an exit more than 600 s after it: stable, restart at once and start over at 10 s
    assert b.should_wait("k", last_update + 601, last_update + 601) == 0
    assert b.next("k", last_update + 601, last_update + 601) == 10


@pytest.mark.parametrize("cap,expected", [
    (60, [0, 10, 20, 40, 60, 60]),
    (15, [0, 10, 15, 15, 15, 15]),
    (5, [0, 5, 5, 5, 5, 5]),                   # the initial delay never exceeds the cap
    (1, [0, 1, 1, 1, 1, 1]),
])
def test_configurable_cap(cap, expected):
    assert crash_sequence(Backoff(crashloop_policy(cap)), "k", [0.5] * 6) == expected


def test_configurable_cap_resets_after_twice_it():
    b = Backoff(crashloop_policy(10))
    b.next("k", 0.0, 0.0)
    b.next("k", 10.0, 5.0)
    assert b.get("k") == 10
    assert b.should_wait("k", 31.0, 31.0) == 0 and b.next("k", 31.0, 31.0) == 10


@pytest.mark.parametrize("value", [0, 0.5, 301, -1])
def test_crashloop_max_range(value):
    with pytest.raises(BackoffConfigError) as e:
        crashloop_policy(value)
    assert e.value.field == "crashloop-max"


def test_policy_validation():
    with pytest.raises(BackoffConfigError):
        BackoffPolicy(cap=0)
    with pytest.raises(BackoffConfigError):
        BackoffPolicy(initial=-1)
    assert BackoffPolicy(initial=30, cap=20).initial == 20
    assert crashloop_policy(None) == BackoffPolicy(10, 300)


def test_rfc3339_exit_times():
    b = Backoff()
    b.next("k", 0.0, "1970-01-01T00:00:00Z")
    b.next("k", 100.0, "1970-01-01T00:01:30Z")               # 20 s now
    assert b.should_wait("k", 100.0, "1970-01-01T00:01:35Z") == pytest.approx(15.0)


def test_image_pull_backoff_counts_from_the_last_failure():
    b = Backoff()
    key = image_pull_key(POD, "nope:1")
    assert key == "1234-abcd_nope:1"
    assert b.pull_wait(key, 0.0) == 0
    b.next(key, 0.0)                              # ErrImagePull
    assert b.pull_wait(key, 4.0) == pytest.approx(6.0)
    assert b.pull_wait(key, 10.0) == 0
    b.next(key, 10.0)                             # failed again: 20 s
    assert b.pull_wait(key, 25.0) == pytest.approx(5.0)
    b.next(key, 30.0)
    assert b.get(key) == 40
    assert b.pull_wait(key, 30.0 + 601) == 0      # stable: start over
    assert b.next(key, 631.0) == 10


def test_gc_and_reset():
    b = Backoff()
    b.next("old", 0.0)
    b.next("new", 500.0)
    b.gc(601.0)
    assert b.entry("old") is None and b.get("new") == 10 and len(b) == 1
    b.reset("new")
    assert len(b) == 0


def test_stable_key_changes_with_the_spec():
    key = stable_key(POD, POD["spec"]["containers"][0])
    assert key.startswith("web_prod_1234-abcd_c_")
    changed = {**POD["spec"]["containers"][0], "command": ["true"]}
    assert stable_key(POD, changed) != key
    resized = {**POD["spec"]["containers"][0], "resources": {"limits": {"cpu": "1"}}}
    assert stable_key(POD, resized) == key
    assert container_hash({"b": 1, "a": 2}) == container_hash({"a": 2, "b": 1})


@pytest.mark.parametrize("delay,text", [(10, "10s"), (40, "40s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s")])
def test_crashloop_message(delay, text):
    assert crashloop_message(delay, "c", POD) == f"back-off {text} restarting failed container=c pod=web_prod(1234-abcd)"


def test_image_pull_backoff_message():
    assert image_pull_backoff_message("registry.local/app:v1") == 'Back-off pulling image "registry.local/app:v1"'
    assert image_pull_backoff_message("x", "ErrImagePull: not found") == 'Back-off pulling image "x": ErrImagePull: not found'


# -- QoS class (kubelet-semantics 3.3) --

def _pod(*resources, init=()):
    return {"spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)],
                     "initContainers": [{"name": f"i{i}", "resources": r} for i, r in enumerate(init)]}}


G = {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "0.5", "memory": "67108864"}}


@pytest.mark.parametrize("p,expected", [
    (_pod({}), "BestEffort"),
    (_pod({"limits": {"nvidia.com/gpu": "1"}}), "BestEffort"),           # only cpu and memory count
    (_pod({"requests": {"cpu": "0"}}), "BestEffort"),                    # zero is no request
    (_pod(G), "Guaranteed"),
    (_pod({"limits": {"cpu": "1", "memory": "1Gi"}}), "Guaranteed"),     # requests default to limits
    (_pod(G, G), "Guaranteed"),
    (_pod(G, {}), "Burstable"),
    (_pod({"requests": {"cpu": "100m"}}), "Burstable"),
    (_pod({"limits": {"cpu": "1"}}), "Burstable"),                       # no memory limit
    (_pod({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}), "Burstable"),
    (_pod(G, init=[{}]), "Burstable"),                                   # init containers count too
    (_pod(G, init=[G]), "Guaranteed"),
    (_pod({}, init=[{"requests": {"memory": "1Mi"}}]), "Burstable"),
])
def test_qos_class(p, expected):
    assert qos_class(p) == expected
