"""Probe and hook specs (pure): defaults, handler choice, named ports, $(VAR), URLs and headers."""

from __future__ import annotations

import pytest

from kubelet_py.prober import (LIFECYCLE_USER_AGENT, PROBE_USER_AGENT, ProbeSpec, ProbeType, SpecError,
                               container_probes, parse_hook, parse_probe, resolve_port)
from kubelet_py.prober.httpprobe import HTTPError, canonical_header, probe_url, request_headers
from kubelet_py.prober.spec import (ExecAction, GRPCAction, HTTPGetAction, SleepAction, TCPSocketAction, bounded,
                                    expand_command, join_host_port)


def test_user_agents_name_one_release():
    assert PROBE_USER_AGENT == "kube-probe/1.34" and LIFECYCLE_USER_AGENT == "kube-lifecycle/1.34"


def test_defaults_of_semantics_2_1():
    p = parse_probe({"tcpSocket": {"port": 80}})
    assert (p.initial_delay_seconds, p.timeout_seconds, p.period_seconds, p.success_threshold,
            p.failure_threshold, p.termination_grace_period_seconds) == (0, 1, 10, 1, 3, None)


def test_zero_takes_the_default_as_api_defaulting_does():
    p = parse_probe({"tcpSocket": {"port": 80}, "periodSeconds": 0, "timeoutSeconds": 0, "failureThreshold": 0,
                     "successThreshold": 0})
    assert (p.period_seconds, p.timeout_seconds, p.failure_threshold, p.success_threshold) == (10, 1, 3, 1)


def test_given_values_are_kept():
    p = parse_probe({"exec": {"command": ["true"]}, "initialDelaySeconds": 5, "timeoutSeconds": 2,
                     "periodSeconds": 3, "successThreshold": 2, "failureThreshold": 7,
                     "terminationGracePeriodSeconds": 9})
    assert p == ProbeSpec(ExecAction(("true",)), 5, 2, 3, 2, 7, 9)


def test_http_get_defaults_path_and_scheme_and_keeps_headers():
    p = parse_probe({"httpGet": {"port": "web", "httpHeaders": [{"name": "X-A", "value": "1"}]}})
    assert p.handler == HTTPGetAction(port="web", path="/", host="", scheme="HTTP", headers=(("X-A", "1"),))
    assert parse_probe({"httpGet": {"port": 1, "scheme": "https"}}).handler.scheme == "HTTPS"


def test_each_handler_kind():
    assert parse_probe({"tcpSocket": {"port": 5, "host": "h"}}).handler == TCPSocketAction(5, "h")
    assert parse_probe({"grpc": {"port": 9}}).handler == GRPCAction(9, "")
    assert parse_probe({"grpc": {"port": 9, "service": "s"}}).handler == GRPCAction(9, "s")
    assert parse_hook({"sleep": {"seconds": 3}}) == SleepAction(3)
    assert parse_hook({"httpGet": {"port": 8}}) == HTTPGetAction(8)


@pytest.mark.parametrize("probe,field", [
    ({}, "probe"),
    ({"exec": {"command": ["a"]}, "tcpSocket": {"port": 1}}, "probe"),
    ({"exec": {"command": []}}, "probe.exec.command"),
    ({"exec": {"command": "true"}}, "probe.exec.command"),
    ({"httpGet": {}}, "probe.httpGet.port"),
    ({"httpGet": {"port": 1, "scheme": "FTP"}}, "probe.httpGet.scheme"),
    ({"httpGet": {"port": 1, "httpHeaders": [{"value": "x"}]}}, "probe.httpGet.httpHeaders[0]"),
    ({"grpc": {"port": "named"}}, "probe.grpc.port"),
    ({"tcpSocket": {"port": True}}, "probe.tcpSocket.port"),
    ({"tcpSocket": {"port": 1}, "periodSeconds": -1}, "probe.periodSeconds"),
    ({"tcpSocket": {"port": 1}, "terminationGracePeriodSeconds": "x"}, "probe.terminationGracePeriodSeconds"),
])
def test_bad_probes_name_the_field(probe, field):
    with pytest.raises(SpecError) as e:
        parse_probe(probe)
    assert e.value.field == field


def test_sleep_is_a_hook_not_a_probe():
    with pytest.raises(SpecError):
        parse_probe({"sleep": {"seconds": 1}})
    with pytest.raises(SpecError):
        parse_hook({"tcpSocket": {"port": 1}})


def test_container_probes_by_type_with_field_paths():
    c = {"livenessProbe": {"tcpSocket": {"port": 1}}, "startupProbe": {"exec": {"command": ["x"]}}}
    assert set(container_probes(c)) == {ProbeType.LIVENESS, ProbeType.STARTUP}
    with pytest.raises(SpecError) as e:
        container_probes({"readinessProbe": {}}, "spec.containers[0]")
    assert e.value.field == "spec.containers[0].readinessProbe"


def test_resolve_port():
    c = {"ports": [{"name": "web", "containerPort": 8080}, {"name": "zero", "containerPort": 0}]}
    assert resolve_port(80, c) == 80
    assert resolve_port("web", c) == 8080
    assert resolve_port("8443", c) == 8443  # a number written as a string
    with pytest.raises(SpecError, match="port nope not found"):
        resolve_port("nope", c)
    for bad in (0, 65536, -1, "zero", "70000"):
        with pytest.raises(SpecError, match="invalid port number"):
            resolve_port(bad, c)


def test_expand_command():
    c = {"env": [{"name": "A", "value": "1"}, {"name": "E", "value": ""},
                 {"name": "R", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    assert expand_command(["$(A)", "x$(A)y", "$$(A)", "$(R)", "$(E)", "$(Q", "$", "a$b", "$$"], c) == \
        ["1", "x1y", "$(A)", "$(R)", "$(E)", "$(Q", "$", "a$b", "$"]


def test_bounded_output():
    assert bounded(b"x" * 20000) == "x" * 10240
    assert bounded(b"\xff ok") == "\ufffd ok"
    assert bounded("é" * 6000).encode() == ("é" * 5120).encode()


def test_join_host_port():
    assert join_host_port("10.0.0.1", 80) == "10.0.0.1:80"
    assert join_host_port("fd00::1", 80) == "[fd00::1]:80"


def test_probe_url():
    assert probe_url("HTTP", "10.0.0.1", 80, "/healthz") == "http://10.0.0.1:80/healthz"
    assert probe_url("HTTPS", "fd00::1", 443, "healthz?x=1") == "https://[fd00::1]:443/healthz?x=1"
    assert probe_url("HTTP", "h", 1, "") == "http://h:1/"


def test_canonical_header():
    assert canonical_header("x-custom-thing") == "X-Custom-Thing"
    assert canonical_header("USER-AGENT") == "User-Agent"
    assert canonical_header("bad name") == "bad name"


def test_request_headers_defaults_and_overrides():
    hdrs, host = request_headers([], PROBE_USER_AGENT)
    assert hdrs == [("User-Agent", "kube-probe/1.34"), ("Accept", "*/*")] and host is None
    hdrs, host = request_headers([("accept", ""), ("host", "svc"), ("user-agent", "me")], PROBE_USER_AGENT)
    assert hdrs == [("User-Agent", "me")] and host == "svc"
    hdrs, _ = request_headers([("Accept", "text/plain"), ("Accept", "")], PROBE_USER_AGENT)
    assert hdrs == [("Accept", "text/plain"), ("Accept", ""), ("User-Agent", "kube-probe/1.34")]


@pytest.mark.parametrize("headers", [[("Bad Name", "x")], [("X", "a\nb")], [("Host", "a b")]])
def test_request_headers_refuse_injection(headers):
    with pytest.raises(HTTPError):
        request_headers(headers, PROBE_USER_AGENT)
