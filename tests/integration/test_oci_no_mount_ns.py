"""A config.json without a mount namespace (issue 15, item 6e): kubelet-py-oci runs it, as runc
does. The container's mounts are then made in the caller's mount namespace (the user's
choice): kubelet-py makes them where runc makes them, below the rootfs bound on itself, and
chroots instead of pivot_root. What it does not do that runc does: change the propagation of
the caller's `/` (runc makes it rslave), and leave the mounts behind (delete detaches them).

Each runtime runs inside a private mount namespace of the test (`unshare -m`, its `/` made
shared again as systemd makes it), which stands for the host's: what either does to "the
host's" mounts is looked at there, and nothing reaches the real host. `kubelet-py runtime run`
and the pod API keep refusing such a config."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid

import pytest

from tests.conftest import need_tool
from tests.integration.leaks import cgroups_under, mounts_under, remove_cgroup_tree
from tests.integration.runtime_helpers import busybox_rootfs

pytestmark = [pytest.mark.root, pytest.mark.cgroups]

OCI = os.path.join(os.path.dirname(sys.executable), "kubelet-py-oci")
# the process only reads: who and where it is, and what it sees mounted from its root
PROBE = r"""
echo "id=$(id -u):$(id -g) host=$(hostname) cwd=$(pwd)"
ls -a / | tr '\n' ' '; echo
grep -E '^(CapEff|NoNewPrivs|Cpus_allowed_list):' /proc/self/status
awk '{o=""; for (i = 7; $i != "-"; i++) { f = $i; sub(/:[0-9]+$/, "", f); o = o " " f }
      print "mnt", $5, $6, "[" o " ]", $(i+1)}' /proc/self/mountinfo | sort
cat /probe-data
"""
# after the runtime's run, in the same mount namespace: is / still shared, what is left below the
# test's dir
AFTER = r"""
echo "---after---"
awk '$5 == "/" { print "root-shared=" ($7 ~ /^shared:/ ? "yes" : "no") }' /proc/self/mountinfo | tail -1
awk -v d="$1" 'index($5, d) == 1 { print "left", $5 }' /proc/self/mountinfo
"""


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    r = busybox_rootfs(tmp_path_factory.mktemp("nomnt"), PROBE)
    with open(os.path.join(r, "probe-data"), "w") as f:
        f.write("read from the rootfs\n")
    return r


def _doc(rootfs: str, tmp_path) -> dict:
    d = tmp_path / "spec"
    d.mkdir(exist_ok=True)
    subprocess.run([need_tool("runc"), "spec"], cwd=d, check=True)
    doc = json.loads((d / "config.json").read_text())
    doc["process"]["terminal"] = False
    doc["process"]["args"] = ["sh", "/probe.sh"]
    doc["root"] = {"path": rootfs, "readonly": True}
    doc["linux"]["namespaces"] = [n for n in doc["linux"]["namespaces"] if n["type"] != "mount"]
    # runc refuses them without a mount namespace ("unable to restrict sys entries"), and so do we
    del doc["linux"]["maskedPaths"], doc["linux"]["readonlyPaths"]
    return doc


def _in_own_mount_ns(script: str, *args: str, shared: bool = True) -> subprocess.CompletedProcess:
    """`script` in a new mount namespace whose mounts are all private to it, `/` then made
    shared (a new peer group of its own) as systemd makes the host's, or left private."""
    prep = "mount --make-rshared / && " if shared else ""
    return subprocess.run(["unshare", "-m", "sh", "-c", prep + script, "-", *args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _run(tmp_path, name: str, runtime: list[str], doc: dict, cid: str, shared: bool) -> tuple[list[str], list[str]]:
    d = dict(doc, linux=dict(doc["linux"], cgroupsPath=f"/{cid}/{name}"))
    b = tmp_path / f"bundle-{name}"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(d))
    cmd = " ".join(shlex.quote(a) for a in runtime + ["run", "--bundle", str(b), f"{cid}-{name}"])
    p = _in_own_mount_ns(f"{cmd}; echo rc=$?; {AFTER}", doc["root"]["path"], shared=shared)
    assert "---after---" in p.stdout, p.stderr
    inside, after = p.stdout.split("---after---\n")
    assert inside.splitlines()[-1] == "rc=0", (name, p.stdout, p.stderr)
    return sorted(inside.splitlines()[:-1]), after.splitlines()


@pytest.mark.parametrize("host_root", ["private", "shared"])
def test_no_mount_namespace_same_view_as_runc_and_nothing_left(tmp_path, rootfs, host_root):
    """The same view as under runc. Where the host's / is shared (systemd's), runc first makes it
    rslave (so the container's mounts show no propagation); we leave it shared, the container's
    mounts are then shared too: the one difference, and only in mountinfo's propagation tags."""
    doc = _doc(rootfs, tmp_path)
    doc["root"]["readonly"] = False  # runc ignores it without a mount namespace (see the test below)
    cid = f"kpynm-{uuid.uuid4().hex[:8]}"
    shared = host_root == "shared"
    try:
        ours, ours_after = _run(tmp_path, "ours", [OCI, "--root", str(tmp_path / "oci-state")], doc, cid, shared)
        theirs, theirs_after = _run(tmp_path, "runc", [need_tool("runc"), "--root", str(tmp_path / "runc-state")],
                                    doc, cid, shared)
    finally:
        left = cgroups_under(cid)
        remove_cgroup_tree(cid)
    if shared:
        assert all(" [ shared ] " in ln for ln in ours if ln.startswith("mnt ")), ours
        ours = [ln.replace(" [ shared ] ", " [ ] ") for ln in ours]
    assert ours == theirs, "\n".join(sorted(set(ours) ^ set(theirs)))
    assert "read from the rootfs" in ours and any(ln.startswith("mnt / ") for ln in ours), ours
    assert "probe.sh" in next(ln for ln in ours if ln.startswith(". .."))  # its root is the rootfs (chroot)
    # what each left in the namespace it ran in: runc changed / and left its mounts, we neither
    assert ours_after == [f"root-shared={'yes' if shared else 'no'}"], ours_after
    assert "root-shared=no" in theirs_after and any(ln.startswith("left ") for ln in theirs_after), theirs_after
    assert left == []
    assert mounts_under(str(tmp_path), rootfs) == []  # and nothing reached the real host


def test_a_read_only_root_without_a_mount_namespace_is_read_only(tmp_path, rootfs):
    """root.readonly is carried out (the runtime spec's MUST): the rootfs bind is read-only while
    the container runs. runc 1.1 skips it without a mount namespace (a difference kept)."""
    doc = _doc(rootfs, tmp_path)
    doc["process"]["args"] = ["sh", "-c",
                              "touch /x 2>&1; awk '$5 == \"/\" { print \"root\", $6 }' /proc/self/mountinfo"]
    cid = f"kpynm-{uuid.uuid4().hex[:8]}"
    try:
        ours, after = _run(tmp_path, "ours", [OCI, "--root", str(tmp_path / "oci-state")], doc, cid, True)
    finally:
        left = cgroups_under(cid)
        remove_cgroup_tree(cid)
    assert any("Read-only file system" in ln for ln in ours) and any(ln.startswith("root ro,") for ln in ours), ours
    assert after == ["root-shared=yes"] and left == [], (after, left)
    assert not os.path.exists(os.path.join(rootfs, "x"))


def test_create_exec_delete_without_a_mount_namespace(tmp_path, rootfs):
    """create/start/exec/delete in one mount namespace: an exec'd process is in the container's
    root too (runc's exec stays in the host's root: we chroot it), and delete detaches every
    mount the container made there, the rootfs bind included."""
    doc = _doc(rootfs, tmp_path)
    doc["process"]["args"] = ["sleep", "60"]
    cid = f"kpynm-{uuid.uuid4().hex[:8]}"
    doc["linux"]["cgroupsPath"] = f"/{cid}/c"
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    oci = " ".join(shlex.quote(a) for a in [OCI, "--root", str(tmp_path / "state")])
    script = (f"{oci} create --bundle {shlex.quote(str(b))} {cid} >/dev/null 2>&1 </dev/null; echo create=$?; "
              f"{oci} start {cid}; echo start=$?; "
              f"{oci} exec {cid} sh -c 'cat /probe-data; ls / | grep -c probe'; echo exec=$?; "
              f"awk -v d=\"$1\" 'index($5, d) == 1' /proc/self/mountinfo | wc -l | sed 's/^/during=/'; "
              f"{oci} delete --force {cid}; echo delete=$?; {AFTER}")
    try:
        p = _in_own_mount_ns(script, rootfs)
    finally:
        left = cgroups_under(cid)
        remove_cgroup_tree(cid)
    out = p.stdout.splitlines()
    for step in ("create", "start", "exec", "delete"):
        assert f"{step}=0" in out, (step, p.stdout, p.stderr)
    assert "read from the rootfs" in out and "2" in out, out  # probe.sh and probe-data: the container's /
    assert int(next(ln for ln in out if ln.startswith("during="))[7:]) > 5, out  # rootfs, proc, dev, sys, ...
    assert out[out.index("---after---") + 1:] == ["root-shared=yes"], out
    assert left == []


@pytest.mark.parametrize("field,value", [
    ("maskedPaths", ["/proc/kcore"]), ("readonlyPaths", ["/proc/sys"]), ("rootfsPropagation", "shared")])
def test_what_would_change_the_hosts_mounts_is_refused(tmp_path, rootfs, field, value):
    """Masking and read-only paths (runc refuses them too), and a propagation for `/` (runc would
    make the host's own `/` so): an error naming the field, nothing created."""
    doc = _doc(rootfs, tmp_path)
    doc["linux"][field] = value
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    p = _in_own_mount_ns(f"{shlex.quote(OCI)} --root {shlex.quote(str(tmp_path / 'state'))} run "
                         f"--bundle {shlex.quote(str(b))} refused; {AFTER}", rootfs)
    assert f"config.json: linux.{field}: " in p.stderr and "mount namespace" in p.stderr, p.stderr
    assert p.stdout.split("---after---\n")[1].splitlines() == ["root-shared=yes"], p.stdout
    assert not os.path.exists(tmp_path / "state" / "refused")


def test_the_kubelet_path_keeps_refusing_it(tmp_path, rootfs):
    doc = _doc(rootfs, tmp_path)
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    p = subprocess.run([sys.executable, "-m", "kubelet_py.cli", "runtime", "run", "--bundle", str(b), "nomnt"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "linux.namespaces: a mount namespace is required" in p.stderr, p.stderr


def test_a_failed_create_without_a_mount_namespace_leaves_no_mount(tmp_path, rootfs):
    """The init fails after its mounts (no such program): create fails, and detaches them."""
    doc = _doc(rootfs, tmp_path)
    doc["process"]["args"] = ["/no-such-program"]
    cid = f"kpynm-{uuid.uuid4().hex[:8]}"
    doc["linux"]["cgroupsPath"] = f"/{cid}/c"
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    try:
        p = _in_own_mount_ns(f"{shlex.quote(OCI)} --root {shlex.quote(str(tmp_path / 'state'))} create "
                             f"--bundle {shlex.quote(str(b))} {cid}; echo create=$?; {AFTER}", rootfs)
    finally:
        left = cgroups_under(cid)
        remove_cgroup_tree(cid)
    assert "create=1" in p.stdout and "no-such-program" in p.stderr, (p.stdout, p.stderr)
    assert p.stdout.split("---after---\n")[1].splitlines() == ["root-shared=yes"], p.stdout
    assert left == [] and not os.path.exists(tmp_path / "state" / cid)
