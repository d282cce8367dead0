"""netns error kinds: the same strings as runtime.errors (by value: netns never imports runtime),
one usual kind per class, and `obj` and `field` on every error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netns import errors
from netns.errors import (AddressExhausted, ConfigError, LinkError, NetnsError, NetworkInconsistent, NetworkNotFound,
                          PodSpecError, PortConflict, RuleError, ServiceSpecError, ServiceSyncError, StateError)
from netns.plan import NetworkConfig

CASES = [
    (ConfigError("gateway", "x", "bad"), errors.INVALID_ARGUMENT, "network config", "gateway"),
    (PodSpecError("u1", "ports[0].hostPort", 0, "bad"), errors.INVALID_ARGUMENT, "pod u1", "ports[0].hostPort"),
    (PortConflict("u1", "ports[1].hostPort", "80/tcp", "u2"), errors.ALREADY_EXISTS, "pod u1", "ports[1].hostPort"),
    (AddressExhausted("u1", "10.0.0.0/30", 1), errors.RESOURCE_EXHAUSTED, "pod u1", None),
    (LinkError("eth0", "configure", "gone", 19, "/run/netns/p"), errors.INTERNAL, "link eth0 in netns /run/netns/p",
     None),
    (RuleError("nat", "KPY-HOSTPORTS", "refused"), errors.INTERNAL, "iptables nat/KPY-HOSTPORTS", None),
    (StateError("/var/lib/x/ipam", "cannot lock"), errors.INTERNAL, "network state /var/lib/x/ipam", None),
    (NetworkNotFound("u1"), errors.NOT_FOUND, "pod u1", None),
    (NetworkInconsistent("u1", [("host_veth", "host veth kpyab is missing"), ("rules", "chain missing")]),
     errors.FAILED_PRECONDITION, "pod u1", "host_veth"),
    (ServiceSpecError("ns/web", "ports[http].node_port", 1, "bad"), errors.INVALID_ARGUMENT, "service ns/web",
     "ports[http].node_port"),
    (ServiceSyncError("nat", "KPY-SERVICES", "refused"), errors.UNAVAILABLE, "iptables nat/KPY-SERVICES", None),
]


@pytest.mark.parametrize("err, kind, obj, field", CASES, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "")
def test_each_error_has_its_kind_object_and_field(err, kind, obj, field):
    assert isinstance(err, NetnsError)
    assert (err.kind, err.obj, err.field) == (kind, obj, field)
    assert type(err).kind == kind            # the class's usual kind, not only this instance's
    assert "\n" not in str(err) and str(err)


def test_every_error_class_is_covered():
    classes = {c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, NetnsError) and c is not NetnsError}
    assert classes == {type(e) for e, *_ in CASES}


def test_the_kinds_are_the_runtimes_strings():
    from runtime import errors as rt
    assert errors.KINDS == rt.KINDS
    for name in rt.KINDS:
        assert getattr(errors, name) == getattr(rt, name) == name


def test_netns_errors_do_not_import_the_runtime():
    code = "import sys, netns.errors; print('runtime' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_a_raise_may_override_the_kind_but_only_with_a_known_one():
    e = NetnsError("x", kind=errors.UNAVAILABLE, obj="pod u", field="f")
    assert (e.kind, e.obj, e.field) == (errors.UNAVAILABLE, "pod u", "f")
    assert NetnsError("plain").kind == errors.INTERNAL and NetnsError("plain").obj is None
    with pytest.raises(ValueError):
        NetnsError("x", kind="NOPE")


def test_inconsistent_lists_every_problem():
    e = NetworkInconsistent("u1", [("ip", "IP 10.0.0.2 is recorded but not allocated"), ("host_veth", "veth gone")])
    assert str(e) == "pod u1: pod network is inconsistent: IP 10.0.0.2 is recorded but not allocated; veth gone"
    assert e.problems == (("ip", "IP 10.0.0.2 is recorded but not allocated"), ("host_veth", "veth gone"))


def test_a_config_error_is_raised_with_its_field():
    with pytest.raises(ConfigError) as e:
        NetworkConfig(gateway="10.0.0.1/31")
    assert (e.value.kind, e.value.field, e.value.obj) == (errors.INVALID_ARGUMENT, "gateway", "network config")
