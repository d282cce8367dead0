"""The executor's pure parts change none of their inputs: the same document, Spec or request run
twice gives the same result and is left as it was, and a result shares nothing it could change
through with the input (a Spec is "immutable": a changed value is a new one)."""

from __future__ import annotations

import copy
import json

from runtime.cgroups import resources_from_spec
from runtime.image.manifest import ImageConfig
from runtime.oci.bundle import env_with_home, spec_from
from runtime.oci.generate import ContainerRequest, generate
from runtime.oci.mounts import mount_flags
from runtime.oci.seccomp_profile import default_profile, validate
from runtime.oci.spec import parse

IMG = ImageConfig("amd64", "linux", (), entrypoint=("/ep",), cmd=("c1",), env=("PATH=/bin", "A=img"), working_dir="/w")


def _request() -> ContainerRequest:
    return ContainerRequest(
        name="c", command=["/bin/sh"], args=["-c", "true"], env={"B": "2"}, supplemental_groups=[7],
        cap_add=["NET_ADMIN"], memory_limit=64 << 20, cpu_limit_milli=250, pids_limit=10,
        extra_mounts=[{"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]}],
        annotations={"x": "y"}, seccomp="RuntimeDefault")


def _doc() -> dict:
    d = generate(_request(), IMG, "rootfs", "kpy/c", "v1", uid=1000, gid=1000, groups=[5, 7], nofile_hard=4096)
    d["process"]["env"].append("HOME=/elsewhere")  # env_with_home's other branch is tested below
    d["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    d["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    d["process"]["rlimits"].append({"type": "RLIMIT_CORE", "soft": 0, "hard": 0})
    return d


def test_parse_twice_leaves_the_document_as_it_was():
    doc = _doc()
    before = copy.deepcopy(doc)
    a, b = parse(doc), parse(doc)
    assert doc == before and a == b
    # the Spec's lists and dicts are its own: changing one never reaches the document
    a.env.append("X=1")
    a.args.append("more")
    a.additional_gids.append(99)
    a.resources["cpu"]["shares"] = 1
    a.resources["devices"].append({"allow": True})
    a.devices[0]["major"] = 1
    a.masked.append("/x")
    a.mounts[0].options.append("ro")
    assert doc == before
    assert parse(doc) == b


def test_spec_from_twice_leaves_document_and_spec_alone(tmp_path):
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    doc = _doc()
    before = copy.deepcopy(doc)
    (spec1, root1), (spec2, root2) = spec_from(doc, str(tmp_path)), spec_from(doc, str(tmp_path))
    assert doc == before and (spec1, root1) == (spec2, root2) == (spec1, str(tmp_path / "rootfs"))
    data = next(m for m in spec1.mounts if m.destination == "/data")
    assert data.source == str(tmp_path / "data")  # a relative bind source is the bundle's
    assert next(m for m in doc["mounts"] if m["destination"] == "/data")["source"] == "data"


def test_home_is_a_new_env_never_the_callers(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n")
    env = ["PATH=/bin"]
    assert env_with_home(env, 1000, str(tmp_path)) == env_with_home(env, 1000, str(tmp_path)) == ["PATH=/bin", "HOME=/home/u"]
    assert env_with_home(env, 4242, str(tmp_path)) == ["PATH=/bin", "HOME=/"]  # not in passwd: "/", as runc
    assert env == ["PATH=/bin"]
    has = ["HOME=/x"]
    out = env_with_home(has, 0, str(tmp_path))
    assert out == has and out is not has


def test_spec_values_survive_the_pure_helpers(tmp_path):
    (tmp_path / "rootfs").mkdir()
    spec, _root = spec_from(_doc(), str(tmp_path))
    before = copy.deepcopy(spec)
    for _ in range(2):
        env_with_home(spec.env, spec.uid, str(tmp_path / "rootfs"))
        for m in spec.mounts:
            mount_flags(m.options)
        resources_from_spec(spec.resources)
    assert spec == before


def test_generate_twice_leaves_the_request_alone():
    req = _request()
    before = copy.deepcopy(req)
    a = generate(req, IMG, "/r", "kpy/c", "v1", host_devices=None)
    b = generate(req, IMG, "/r", "kpy/c", "v1", host_devices=None)
    assert req == before and a == b and IMG == ImageConfig("amd64", "linux", (), entrypoint=("/ep",), cmd=("c1",),
                                                           env=("PATH=/bin", "A=img"), working_dir="/w")
    a["mounts"][-1]["options"].append("noexec")  # the request's own mount, as the document holds it
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["annotations"]["z"] = "1"
    assert req == before
    assert a["process"]["capabilities"]["effective"] == b["process"]["capabilities"]["effective"]


def test_generate_privileged_shares_no_host_device_entry():
    devices = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]
    before = copy.deepcopy(devices)
    d = generate(ContainerRequest(name="p", command=["true"], privileged=True), IMG, "/r", "kpy/p", "v1",
                 host_devices=devices)
    d["linux"]["devices"][0]["minor"] = 0
    assert devices == before


def test_validate_seccomp_twice_leaves_the_profile_alone():
    prof = default_profile(["CAP_CHOWN"], "x86_64")
    before = json.dumps(prof, sort_keys=True)
    assert validate(prof) == validate(prof)
    out = validate(prof)
    out["syscalls"][0]["names"].append("reboot")
    assert json.dumps(prof, sort_keys=True) == before
