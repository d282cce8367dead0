"""Configs runc accepts that kubelet-py-oci must accept too, run side by side with Debian's runc
(`runc run` and `kubelet-py-oci run` on the same config.json, from `runc spec`):

- properties the runtime spec does not define (top level and inside objects) are ignored, as the
  spec says, with a warning in our log;
- linux.resources.memory.kernel/kernelTCP are ignored with a warning, the rest of memory applied;
- linux.rootfsPropagation shared/rshared/slave work, also with the rootfs on a shared mount, and
  give the container the propagation runc gives it;
- linux.resources.cpu.cpus/mems (cpusets) limit the container as runc limits it, and a cpu the
  host lacks fails both."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.conftest import need_tool
from tests.integration.leaks import cgroups_under, mounts_under, remove_cgroup_tree
from tests.integration.runtime_helpers import busybox_rootfs

pytestmark = [pytest.mark.root, pytest.mark.cgroups]

OCI = os.path.join(os.path.dirname(sys.executable), "kubelet-py-oci")
PROBE = r"""
echo ok
for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes memory.max memory.swap.max \
         cpuset/cpuset.cpus cpuset/cpuset.mems cpuset.cpus cpuset.mems cpuset.cpus.effective; do
  [ -f /sys/fs/cgroup/$f ] && echo "cg $f=$(cat /sys/fs/cgroup/$f)"
done
grep -E '^(Cpus|Mems)_allowed_list:' /proc/self/status
# mount point and propagation (peer group numbers dropped), the cgroup hierarchies included
awk '{o=""; for (i = 7; $i != "-"; i++) { f = $i; sub(/:[0-9]+$/, "", f); o = o " " f }; print "mnt", $5, "[" o " ]"}' \
    /proc/self/mountinfo | sort
"""


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return busybox_rootfs(tmp_path_factory.mktemp("compat"), PROBE)


def _runc_spec(tmp_path, rootfs: str) -> dict:
    d = tmp_path / "spec"
    d.mkdir(exist_ok=True)
    subprocess.run([need_tool("runc"), "spec"], cwd=d, check=True)
    doc = json.loads((d / "config.json").read_text())
    doc["process"]["terminal"] = False
    doc["process"]["args"] = ["sh", "/probe.sh"]
    doc["root"]["path"] = rootfs
    return doc


class Both:
    """The same document run once by runc and once by kubelet-py-oci."""

    def __init__(self, tmp_path, doc: dict):
        self.tmp, self.cid = tmp_path, f"kpyrc-{uuid.uuid4().hex[:8]}"
        self.log = tmp_path / "oci.log"
        self.results = {}
        for name, cmd in (("runc", [need_tool("runc"), "--root", str(tmp_path / "runc-state")]),
                          ("ours", [OCI, "--root", str(tmp_path / "oci-state"), "--log", str(self.log),
                                    "--log-format", "json"])):
            d = copy.deepcopy(doc)
            d["linux"]["cgroupsPath"] = f"/{self.cid}/{name}"
            b = tmp_path / f"bundle-{name}"
            b.mkdir()
            (b / "config.json").write_text(json.dumps(d))
            self.results[name] = subprocess.run(cmd + ["run", "--bundle", str(b), f"{self.cid}-{name}"],
                                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        left = cgroups_under(self.cid)
        remove_cgroup_tree(self.cid)
        assert left == [], left

    def ok(self) -> tuple[list[str], list[str]]:
        ours, runc = self.results["ours"], self.results["runc"]
        assert runc.returncode == 0, runc.stderr
        assert ours.returncode == 0, ours.stderr
        return sorted(ours.stdout.splitlines()), sorted(runc.stdout.splitlines())

    def warnings(self) -> list[str]:
        if not self.log.exists():
            return []
        lines = [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.strip()]
        return [ln["msg"] for ln in lines if ln.get("level") == "warning"]


def test_unknown_properties_are_ignored_as_runc_ignores_them(tmp_path, rootfs):
    doc = _runc_spec(tmp_path, rootfs)
    doc["org.example.futureTopLevel"] = {"anything": [1, 2]}
    doc["windows"] = {"layerFolders": ["C:\\x"]}  # another platform's object
    doc["process"]["futureProcessField"] = "x"
    doc["linux"]["futureLinuxField"] = {"a": 1}
    doc["linux"].setdefault("resources", {})["futureController"] = {"limit": "not a number"}
    doc["mounts"][0]["futureMountField"] = True
    both = Both(tmp_path, doc)
    ours, theirs = both.ok()
    assert ours == theirs and "ok" in ours
    warned = " ".join(both.warnings())
    for field in ("org.example.futureTopLevel", "windows", "process.futureProcessField", "linux.futureLinuxField",
                  "linux.resources.futureController", "mounts[0].futureMountField"):
        assert f"config.json: {field}: " in warned, (field, both.warnings())


def test_kernel_memory_is_ignored_with_a_warning_and_the_limit_applied(tmp_path, rootfs):
    doc = _runc_spec(tmp_path, rootfs)
    doc["linux"].setdefault("resources", {})["memory"] = {"limit": 64 << 20, "kernel": 32 << 20, "kernelTCP": 16 << 20}
    both = Both(tmp_path, doc)
    ours, theirs = both.ok()
    assert ours == theirs
    assert any(ln.startswith("cg ") and ln.endswith(f"={64 << 20}") for ln in ours), ours  # the limit applied
    warned = both.warnings()
    assert any("linux.resources.memory.kernel: kernel memory limits are deprecated" in w for w in warned), warned
    assert any("linux.resources.memory.kernelTCP:" in w for w in warned), warned


@pytest.mark.parametrize("propagation", ["shared", "rshared", "slave", "private", "rslave"])
def test_rootfs_propagation_as_runc(tmp_path, rootfs, propagation):
    doc = _runc_spec(tmp_path, rootfs)
    doc["linux"]["rootfsPropagation"] = propagation
    ours, theirs = Both(tmp_path, doc).ok()
    assert ours == theirs, "\n".join(sorted(set(ours) ^ set(theirs)))
    assert "mnt / [ ]" in ours  # the container's root is private, whatever / was made
    assert mounts_under(str(tmp_path)) == []


@pytest.fixture
def shared_dir(tmp_path):
    """A tmpfs of the host's, shared (as systemd makes every mount), holding the rootfs: the
    mount pivot_root sees as the new root's parent."""
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], check=True)
    subprocess.run(["mount", "--make-shared", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-R", str(d)], check=True)


@pytest.mark.parametrize("propagation", ["slave", "shared", None])
def test_a_rootfs_on_a_shared_mount_works_and_nothing_reaches_the_host(tmp_path, rootfs, shared_dir, propagation):
    import shutil
    on_shared = str(shared_dir / "rootfs")
    shutil.copytree(rootfs, on_shared, symlinks=True)
    doc = _runc_spec(tmp_path, on_shared)
    if propagation:
        doc["linux"]["rootfsPropagation"] = propagation
    ours, theirs = Both(tmp_path, doc).ok()
    assert ours == theirs, "\n".join(sorted(set(ours) ^ set(theirs)))
    # the rootfs's bind on itself stayed in the container's namespace: the host's only mount
    # below the test dir is the shared tmpfs itself
    assert mounts_under(str(tmp_path)) == [str(shared_dir)]


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _cpu_list(cpus: list[int]) -> str:
    """The kernel's list format (`0-3,6,8-9`), as Cpus_allowed_list and cpuset.cpus write it."""
    runs: list[list[int]] = []
    for c in cpus:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


@pytest.mark.parametrize("cpus", ["0", "last", "all"])
def test_cpusets_as_runc(tmp_path, rootfs, cpus):
    """linux.resources.cpu.cpus and mems: the container runs on those cpus only, and its
    cgroup says so (v1: the cpuset hierarchy's own dir, its parents' copied; v2: cpuset enabled
    along the path), as under runc."""
    have = _cpus()
    want = {"0": str(have[0]), "last": str(have[-1]), "all": _cpu_list(have)}[cpus]
    doc = _runc_spec(tmp_path, rootfs)
    doc["linux"].setdefault("resources", {})["cpu"] = {"cpus": want, "mems": "0"}
    ours, theirs = Both(tmp_path, doc).ok()
    assert ours == theirs, "\n".join(sorted(set(ours) ^ set(theirs)))
    assert f"Cpus_allowed_list:\t{want}" in ours and "Mems_allowed_list:\t0" in ours, ours
    assert any(ln.startswith("cg ") and "cpuset.cpus=" in ln and ln.endswith(f"={want}") for ln in ours), ours


def test_a_cpuset_the_host_lacks_fails_as_under_runc(tmp_path, rootfs):
    doc = _runc_spec(tmp_path, rootfs)
    doc["linux"].setdefault("resources", {})["cpu"] = {"cpus": f"{_cpus()[-1] + 64}"}
    both = Both(tmp_path, doc)
    assert both.results["runc"].returncode != 0, both.results["runc"]
    ours = both.results["ours"]
    assert ours.returncode == 1 and "linux.resources.cpu.cpus: writing" in ours.stderr, ours.stderr
    assert not os.path.exists(tmp_path / "oci-state" / f"{both.cid}-ours")


def test_known_fields_that_cannot_be_carried_out_are_still_refused(tmp_path, rootfs):
    doc = _runc_spec(tmp_path, rootfs)
    doc["linux"].setdefault("resources", {})["hugepageLimits"] = [{"pageSize": "2MB", "limit": 1 << 21}]
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    p = subprocess.run([OCI, "--root", str(tmp_path / "state"), "run", "--bundle", str(b), "refused"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and re.search(r"linux\.resources\.hugepageLimits: huge page limits: not supported",
                                           p.stderr), p.stderr
    assert not os.path.exists(tmp_path / "state" / "refused")
