"""The executor's errors carry the kind a CRI face maps to a gRPC code, and the field they
concern: bad input is INVALID_ARGUMENT with the spec path, a missing name NOT_FOUND, a host
that lacks something FAILED_PRECONDITION, a kernel refusal INTERNAL."""

from __future__ import annotations

import sys

import pytest

from runtime.errors import FAILED_PRECONDITION, INTERNAL, INVALID_ARGUMENT, NOT_FOUND, RuntimeFailure
from runtime.linux import seccomp as kseccomp
from runtime.linux.devfilter import DeviceFilterError, compile_rules
from runtime.oci import users
from runtime.oci.bundle import read_config
from runtime.oci.errors import RunError
from runtime.oci.seccomp_profile import ProfileError, validate
from runtime.oci.spec import SpecError, parse
from runtime.podinit import PodInitError


def _raised(fn, *a, **kw) -> RuntimeFailure:
    with pytest.raises(RuntimeFailure) as e:
        fn(*a, **kw)
    return e.value


def _doc(**process) -> dict:
    return {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]},
            "process": {"args": ["true"], "cwd": "/", **process}}


@pytest.mark.parametrize("process,field", [
    ({"args": []}, "process.args"),
    ({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]}, "process.rlimits[0].soft"),
    ({"user": {"uid": -1}}, "process.user.uid"),
])
def test_spec_errors_are_invalid_argument_with_the_field(process, field):
    e = _raised(parse, _doc(**process))
    assert isinstance(e, SpecError) and (e.kind, e.field) == (INVALID_ARGUMENT, field)
    assert e.to_wire()["field"] == field


def test_a_bad_seccomp_profile_names_its_field():
    e = _raised(validate, {"defaultAction": "SCMP_ACT_MAYBE"})
    assert isinstance(e, ProfileError) and (e.kind, e.field) == (INVALID_ARGUMENT, "linux.seccomp.defaultAction")
    doc = _doc()
    doc["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "NOPE"}]}
    e = _raised(parse, doc)  # through the spec parser: a SpecError with the full path
    assert (type(e), e.kind, e.field) == (SpecError, INVALID_ARGUMENT, "linux.seccomp.syscalls[0].action")


def test_user_errors_unknown_name_is_not_found_bad_id_invalid(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\n")
    e = _raised(users.resolve, str(tmp_path), "nobody-here")
    assert (type(e), e.kind, e.field, e.obj) == (users.UserError, NOT_FOUND, "process.user", "user nobody-here")
    assert _raised(users.resolve, str(tmp_path), "root:nogroup").kind == NOT_FOUND
    e = _raised(users.resolve, str(tmp_path), str(2**31))
    assert (e.kind, e.field) == (INVALID_ARGUMENT, "process.user")
    (tmp_path / "etc" / "passwd").unlink()
    (tmp_path / "etc" / "passwd").mkdir()  # an image whose passwd cannot be read
    assert _raised(users.resolve, str(tmp_path), "root").kind == FAILED_PRECONDITION


def test_bundle_errors(tmp_path):
    e = _raised(read_config, str(tmp_path / "nope"))
    assert (type(e), e.kind) == (RunError, NOT_FOUND)
    assert _raised(read_config, str(tmp_path)).kind == NOT_FOUND  # no config.json
    (tmp_path / "config.json").write_text("{not json")
    e = _raised(read_config, str(tmp_path))
    assert (e.kind, e.field) == (INVALID_ARGUMENT, "(document)")


def test_failures_of_the_machinery_are_internal():
    assert RunError("mounting proc on /proc: EPERM").kind == INTERNAL
    assert PodInitError("the pod's init failed").kind == INTERNAL
    assert kseccomp.SeccompError("x").kind == INTERNAL


def test_device_rule_errors_name_the_resources_field():
    e = _raised(compile_rules, [{"allow": True, "type": "c", "access": "x"}])
    assert (type(e), e.kind, e.field) == (DeviceFilterError, INVALID_ARGUMENT, "linux.resources.devices")


def test_seccomp_program_too_long_is_invalid():
    e = _raised(kseccomp.Filter, b"\0" * 8 * (kseccomp.BPF_MAXINSNS + 1), 0, [], [])
    assert (e.kind, e.field) == (INVALID_ARGUMENT, "linux.seccomp")


def test_a_compiler_error_keeps_its_kind_across_the_pipe(monkeypatch):
    """The profile is compiled in a forked child; its SeccompError comes back with its kind."""
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # the child's `import pyseccomp` fails
    prof = validate({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                                                                      "errnoRet": 77}]})
    e = _raised(kseccomp.compile_filter, prof)
    assert (type(e), e.kind) == (kseccomp.SeccompError, FAILED_PRECONDITION) and "libseccomp is not usable" in str(e)
