"""The runtime's sandbox and container orchestration (sandbox.py, rootfs.py, container.py) against
the recording double of its kernel edge (runtime/fake.py), no root: the order of create_sandbox's
steps, that a failure at each step leaves nothing, that remove_sandbox undoes exactly what was made
with the record gone last and can be repeated or run after a half-done create or remove, and the
same for bundle_for/remove_bundle. The integration tests prove the same against the kernel."""

from __future__ import annotations

import copy
import json
import os

import pytest

from runtime import container, rootfs, sandbox
from runtime.cgroups import CgroupError, Resources
from runtime.container import ContainerError, Paths, bundle_for, remove_bundle
from runtime.errors import ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, RuntimeFailure
from runtime.fake import HOST_HOSTNAME, FakeKernel
from runtime.image.errors import ImageError
from runtime.image.store import ImageStore
from runtime.linux import sys as ksys
from runtime.oci.generate import ContainerRequest
from runtime.oci.spec import SpecError
from runtime.oci.users import UserError
from runtime.sandbox import POD_NET_SYSCTLS, SHM_SIZE, SandboxError, create_sandbox, load_sandbox, remove_sandbox

UID = "pod-a"
CG = "kpy"
POD_CG = f"{CG}/kubepods/besteffort/pod{UID}"
EMPTY = {"files": [], "mounts": [], "namespaces": [], "cgroups": []}

# what a fresh create_sandbox changes, in order (all namespaces, a /dev/shm, besteffort)
FRESH = ["fs.write_json", "ksys.unshare", "ksys.sethostname", "net.lo_up", "sysctl.write", "sysctl.write",
         "ksys.mount", "ksys.mount", "ksys.mount", "ksys.mount", "cgroup.create", "cgroup.apply"]
# each step as (call name, which call of that name)
STEPS = [(n, FRESH[:i + 1].count(n)) for i, n in enumerate(FRESH)]
STEP_IDS = [f"{n}#{nth}" for n, nth in STEPS]
# what remove_sandbox changes after a full create: the cgroup (and every process in it) first,
# then the pins and the shm; the record goes after all of them (checked with `seen`)
REMOVE = ["cgroup.remove_tree", "ksys.umount2", "ksys.umount2", "ksys.umount2", "ksys.umount2"]
# every call remove_sandbox makes, changing or not (the QoS classes are all tried: a crash may
# have left any of them)
REMOVE_ALL = ["supervisor.kill", "cgroup.remove_tree", "cgroup.remove_tree", "cgroup.remove_tree"] + REMOVE[1:]


class Crash(BaseException):
    """A process that dies at this point (what SIGKILL would do): no cleanup runs after it."""


@pytest.fixture
def kernel(tmp_path):
    k = FakeKernel(str(tmp_path / "kernel"))
    with k.installed():
        yield k


@pytest.fixture
def run_root(tmp_path):
    return str(tmp_path / "run")


def pod_dir(run_root: str) -> str:
    return os.path.join(run_root, "pods", UID)


def record(run_root: str) -> str:
    return os.path.join(pod_dir(run_root), "sandbox.json")


def create(run_root: str, **kw):
    return create_sandbox(run_root, UID, "web-0", cgroup_root=CG, **kw)


def host_untouched(k: FakeKernel) -> None:
    assert k.host_namespace("uts").hostname == HOST_HOSTNAME
    net = k.host_namespace("net")
    assert not net.lo_up and net.sysctls == {} and k.world.sysctls == {}


# ---- create_sandbox ---------------------------------------------------------------------------------

def test_create_sandbox_makes_the_record_first_then_namespaces_shm_and_cgroup(kernel, run_root):
    cwd = os.getcwd()
    kernel.watch(record(run_root))
    sb = create(run_root)
    assert kernel.names(changed_only=True) == FRESH
    assert kernel.names() == FRESH                               # no call that changed nothing
    assert all(record(run_root) in c.seen for c in kernel.calls[1:])  # written before anything else
    assert load_sandbox(run_root, UID) == sb

    unshare = kernel.calls[1]
    assert unshare.args == (ksys.CLONE_NEWNET | ksys.CLONE_NEWIPC | ksys.CLONE_NEWUTS,)
    ns = {n.kind: n for n in kernel.alive_namespaces()}
    assert sorted(ns) == ["ipc", "net", "uts"]                   # the thread's, kept by their pins only
    assert ns["uts"].hostname == "web-0"
    assert ns["net"].lo_up and ns["net"].sysctls == POD_NET_SYSCTLS
    host_untouched(kernel)                                       # all of it in the new namespaces

    d = pod_dir(run_root)
    assert [(m.target, m.fstype, m.ns) for m in kernel.world.mounts] == [
        (f"{d}/ns/net", None, ns["net"].id), (f"{d}/ns/ipc", None, ns["ipc"].id), (f"{d}/ns/uts", None, ns["uts"].id),
        (f"{d}/shm", "tmpfs", None)]
    assert all(m.flags == ksys.MS_BIND for m in kernel.world.mounts[:3])
    shm = kernel.world.mounts[3]
    assert (shm.source, shm.flags, shm.data) == ("shm", ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC,
                                                 f"mode=1777,size={SHM_SIZE}")
    assert sb.namespaces == {"network": f"{d}/ns/net", "ipc": f"{d}/ns/ipc", "uts": f"{d}/ns/uts"}
    assert sb.shm == f"{d}/shm" and sb.cgroup_path == POD_CG
    assert kernel.world.cgroups[POD_CG] == Resources(cpu_shares=2)
    assert kernel.pod_objects(run_root, UID) == {
        "files": [".", "etc", "ns", "ns/ipc", "ns/net", "ns/uts", "sandbox.json", "shm"],
        "mounts": [("ns/net", None), ("ns/ipc", None), ("ns/uts", None), ("shm", "tmpfs")],
        "namespaces": ["ipc", "net", "uts"], "cgroups": [POD_CG]}
    assert os.getcwd() == cwd


@pytest.mark.parametrize("kw, steps, kinds", [
    ({"host_network": True}, ["fs.write_json", "ksys.unshare", "ksys.mount", "ksys.mount", "cgroup.create",
                              "cgroup.apply"], ["ipc"]),
    ({"host_ipc": True}, ["fs.write_json", "ksys.unshare", "ksys.sethostname", "net.lo_up", "sysctl.write",
                          "sysctl.write", "ksys.mount", "ksys.mount", "cgroup.create", "cgroup.apply"], ["net", "uts"]),
    ({"host_network": True, "host_ipc": True}, ["fs.write_json", "cgroup.create", "cgroup.apply"], []),
], ids=["hostNetwork", "hostIPC", "both"])
def test_host_namespaces_are_neither_made_nor_pinned(kernel, run_root, kw, steps, kinds):
    sb = create(run_root, **kw)
    assert kernel.names(changed_only=True) == steps
    assert kernel.pod_objects(run_root, UID)["namespaces"] == kinds
    assert sorted(n.kind for n in kernel.alive_namespaces()) == kinds
    assert (sb.shm is None) == bool(kw.get("host_ipc"))
    host_untouched(kernel)
    remove_sandbox(run_root, UID, CG)
    assert kernel.pod_objects(run_root, UID) == EMPTY


def test_the_pod_cgroup_has_the_qos_class_and_resources_asked_for(kernel, run_root):
    r = Resources(cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_limit=1 << 30)
    create(run_root, qos="guaranteed", resources=r)
    assert kernel.pod_objects(run_root, UID)["cgroups"] == [f"{CG}/kubepods/pod{UID}"]
    assert kernel.calls[-1].args == (f"{CG}/kubepods/pod{UID}", r)
    remove_sandbox(run_root, UID, CG)
    assert kernel.pod_objects(run_root, UID) == EMPTY


@pytest.mark.parametrize("step, nth", STEPS, ids=STEP_IDS)
def test_a_failure_at_each_step_of_create_leaves_nothing(kernel, run_root, step, nth):
    cwd = os.getcwd()
    kernel.watch(record(run_root))
    kernel.fail(step, nth=nth)
    with pytest.raises((OSError, RuntimeFailure)) as e:
        create(run_root)
    assert "injected failure" in str(e.value)
    if isinstance(e.value, SandboxError):
        assert e.value.pod_uid == UID and "creating namespaces" in str(e.value)
    names = kernel.names()
    failed_at = names.index(step + "!")
    made = [c for c in kernel.calls[:failed_at] if c.changed]
    assert [c.name for c in made] == FRESH[:FRESH.index(step) + nth - 1]
    undo = kernel.calls[failed_at + 1:]
    mounts = [c.name for c in made].count("ksys.mount")
    assert [c.name for c in undo] == REMOVE_ALL[:4] + ["ksys.umount2"] * mounts   # every QoS class is tried
    expected = (["cgroup.remove_tree"] if "cgroup.create" in [c.name for c in made] else []) + ["ksys.umount2"] * mounts
    assert [c.name for c in undo if c.changed] == expected       # exactly what was made
    assert [c.args[0] for c in undo if c.name == "ksys.umount2" and c.changed] == \
           [c.args[1] for c in made if c.name == "ksys.mount"]
    if made:                                                     # the record was written: it goes last
        assert all(record(run_root) in c.seen for c in undo)
    assert kernel.pod_objects(run_root, UID) == EMPTY
    assert kernel.alive_namespaces() == [] and kernel.world.mounts == []
    assert not os.path.exists(pod_dir(run_root))
    host_untouched(kernel)
    assert os.getcwd() == cwd


@pytest.mark.parametrize("step, nth", STEPS, ids=STEP_IDS)
def test_a_create_that_died_at_each_step_is_removed_by_remove_sandbox(kernel, run_root, step, nth):
    kernel.fail(step, Crash(), nth=nth)
    kernel.fail("supervisor.kill", Crash())                      # its own cleanup dies at once too
    with pytest.raises(Crash):
        create(run_root)
    left = kernel.pod_objects(run_root, UID)
    if left["mounts"] or left["cgroups"]:                        # anything made is findable by its record
        assert "sandbox.json" in left["files"]
    assert len(left["mounts"]) == FRESH[:FRESH.index(step) + nth - 1].count("ksys.mount")
    kernel.calls.clear()
    remove_sandbox(run_root, UID, CG)
    assert kernel.pod_objects(run_root, UID) == EMPTY
    assert kernel.alive_namespaces() == [] and kernel.world.mounts == []
    assert not os.path.exists(pod_dir(run_root))
    kernel.calls.clear()
    remove_sandbox(run_root, UID, CG)
    assert kernel.names(changed_only=True) == []


def test_bad_input_touches_nothing(kernel, run_root):
    for kw, kind, field in [({"pod_uid": "Bad_Uid"}, INVALID_ARGUMENT, "uid"),
                            ({"qos": "gold"}, INVALID_ARGUMENT, "qos"),
                            ({"host_pid": True, "share_pid": True}, INVALID_ARGUMENT, "shareProcessNamespace")]:
        args = {"pod_uid": UID, **kw}
        with pytest.raises(SandboxError) as e:
            create_sandbox(run_root, args.pop("pod_uid"), "web-0", cgroup_root=CG, **args)
        assert (e.value.kind, e.value.field) == (kind, field)
    assert kernel.calls == [] and not os.path.exists(run_root)


def test_a_second_create_of_the_same_pod_leaves_the_first_alone(kernel, run_root):
    create(run_root)
    before = kernel.pod_objects(run_root, UID)
    kernel.calls.clear()
    with pytest.raises(SandboxError) as e:
        create(run_root)
    assert e.value.kind == ALREADY_EXISTS
    assert kernel.calls == [] and kernel.pod_objects(run_root, UID) == before


# ---- remove_sandbox ---------------------------------------------------------------------------------

def test_remove_sandbox_undoes_everything_and_removes_the_record_last(kernel, run_root):
    create(run_root)
    made = [c for c in kernel.calls if c.name == "ksys.mount"]
    kernel.calls.clear()
    kernel.watch(record(run_root))
    remove_sandbox(run_root, UID, CG)
    assert kernel.names() == REMOVE_ALL
    assert kernel.names(changed_only=True) == REMOVE
    assert kernel.calls[0].args == (pod_dir(run_root),)          # the supervisor before what it uses
    assert [c.args[0] for c in kernel.calls if c.changed][1:] == [c.args[1] for c in made]
    assert all(record(run_root) in c.seen for c in kernel.calls)  # the record outlives every step
    assert kernel.pod_objects(run_root, UID) == EMPTY
    assert kernel.alive_namespaces() == []
    assert not os.path.exists(pod_dir(run_root))
    assert sorted(kernel.world.cgroups) == [CG, f"{CG}/kubepods", f"{CG}/kubepods/besteffort"]  # the node's


def test_remove_sandbox_twice_or_of_no_pod_changes_nothing(kernel, run_root):
    remove_sandbox(run_root, UID, CG)
    assert kernel.names(changed_only=True) == []
    create(run_root)
    remove_sandbox(run_root, UID, CG)
    kernel.calls.clear()
    remove_sandbox(run_root, UID, CG)
    assert kernel.names() == ["supervisor.kill"] + ["cgroup.remove_tree"] * 3
    assert kernel.names(changed_only=True) == []


def test_remove_sandbox_unmounts_a_pin_mounted_twice(kernel, run_root):
    create(run_root)
    net = os.path.join(pod_dir(run_root), "ns", "net")
    kernel.ksys.mount("/proc/self/task/1/ns/net", net, None, ksys.MS_BIND)   # a second pin on the same file
    remove_sandbox(run_root, UID, CG)
    assert kernel.pod_objects(run_root, UID) == EMPTY and kernel.world.mounts == []


@pytest.mark.parametrize("step, nth", [(n, REMOVE_ALL[:i + 1].count(n)) for i, n in enumerate(REMOVE_ALL)],
                         ids=[f"{n}#{REMOVE_ALL[:i + 1].count(n)}" for i, n in enumerate(REMOVE_ALL)])
def test_a_remove_that_fails_at_each_step_keeps_the_record_and_a_second_one_finishes(kernel, run_root, step, nth):
    sb = create(run_root)
    kernel.fail(step, nth=nth)
    with pytest.raises((OSError, RuntimeFailure)):
        remove_sandbox(run_root, UID, CG)
    assert load_sandbox(run_root, UID) == sb                     # still found (by a gc) with its owner
    remove_sandbox(run_root, UID, CG)
    assert kernel.pod_objects(run_root, UID) == EMPTY
    assert kernel.alive_namespaces() == [] and kernel.world.mounts == []


def test_remove_sandbox_removes_what_the_supervisor_and_network_layer_left(kernel, run_root):
    from runtime.supervisor.wire import LOG_FILE, PID_FILE, SOCKET, STATES_DIR
    create(run_root)
    d = pod_dir(run_root)
    for name in (SOCKET, PID_FILE, LOG_FILE, "etc/hosts", "etc/resolv.conf", "etc/hostname.tmp.1",
                 f"{STATES_DIR}/c1.json", "shm/segment"):
        os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
        open(os.path.join(d, name), "w").close()
    remove_sandbox(run_root, UID, CG)
    assert kernel.pod_objects(run_root, UID) == EMPTY


def test_remove_sandbox_never_deletes_a_file_it_does_not_know_and_keeps_the_record(kernel, run_root):
    from runtime.errors import FAILED_PRECONDITION
    from runtime.sandbox import SandboxError
    create(run_root)
    open(os.path.join(pod_dir(run_root), "someone-elses"), "w").close()
    with pytest.raises(SandboxError, match="someone-elses") as e:
        remove_sandbox(run_root, UID, CG)
    assert e.value.kind == FAILED_PRECONDITION
    assert kernel.pod_objects(run_root, UID) == {**EMPTY, "files": [".", "sandbox.json", "someone-elses"]}
    os.unlink(os.path.join(pod_dir(run_root), "someone-elses"))
    remove_sandbox(run_root, UID, CG)  # the record was kept: a second removal finishes
    assert kernel.pod_objects(run_root, UID) == EMPTY


# ---- bundle_for / remove_bundle ------------------------------------------------------------------------

PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n"
CID = "c1"
BUNDLE = ["store.image", "store.add_lease", "ksys.mount", "fs.write_json"]
BUNDLE_CHANGED = ["store.add_lease", "ksys.mount", "fs.write_json"]
NOTHING = {"bundle": [], "state": [], "mounts": [], "lease": None}


@pytest.fixture
def paths(tmp_path):
    return Paths(root=str(tmp_path / "root"), run_root=str(tmp_path / "run"), cgroup_root=CG)


@pytest.fixture
def image(kernel):
    return kernel.store.add_image("img", [{"etc/passwd": PASSWD, "etc/group": GROUP, "bin/sh": b"#!", "tmp/": b""},
                                          {"etc/layer2": b"2\n"}], cmd=["sh"], user="app", working_dir="/work")


def request(**kw) -> ContainerRequest:
    return ContainerRequest("web", env={"A": "1"}, extra_mounts=[{"destination": "/v", "type": "bind",
                                                                  "source": "/tmp", "options": ["rbind"]}], **kw)


def layer_files(image) -> list[list[str]]:
    return [sorted(os.listdir(d)) for d in image.layer_dirs]


def test_bundle_for_leases_mounts_and_writes_the_config_in_order(kernel, paths, image):
    req = request()
    before = copy.deepcopy(req)
    cwd = os.getcwd()
    bundle = bundle_for(kernel.store, "img", req, paths, CID)
    assert kernel.names() == BUNDLE and kernel.names(changed_only=True) == BUNDLE_CHANGED
    rootfs_dir = os.path.join(bundle, "rootfs")
    state = os.path.abspath(os.path.join(paths.root, "containers", CID))
    assert kernel.calls[1].args == (CID, (image.record.digest,))
    # the layers by the state dir's whole path (no thread with a cwd of its own: the path fits)
    assert kernel.calls[2].args == ("overlay", rootfs_dir, "overlay", 0,
                                    f"lowerdir={state}/l/0:{state}/l/1,upperdir={state}/upper,workdir={state}/work")
    assert os.getcwd() == cwd
    assert [os.readlink(os.path.join(state, "l", str(i))) for i in range(2)] == list(image.layer_dirs)
    with open(os.path.join(bundle, "config.json")) as f:
        doc = json.load(f)
    assert doc["root"]["path"] == rootfs_dir and doc["process"]["cwd"] == "/work"
    # from the image's files, the primary gid first (containerd's ensureAdditionalGids)
    assert doc["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50]}
    assert doc["linux"]["cgroupsPath"] == f"{CG}/{CID}"
    assert os.path.isdir(os.path.join(rootfs_dir, "work")) and os.path.isfile(os.path.join(rootfs_dir, "etc/layer2"))
    objs = kernel.container_objects(paths, CID)
    assert objs["mounts"] == [(rootfs_dir, "overlay")] and objs["lease"] == (image.record.digest,)
    assert "config.json" in objs["bundle"] and "upper" in objs["state"]
    assert req == before


def test_bundle_for_in_a_sandbox_adds_the_pod_to_a_copy_of_the_request(kernel, paths, image):
    sb = create_sandbox(paths.run_root, UID, "web-0", cgroup_root=CG)
    req = request(read_only_rootfs=True)
    before = copy.deepcopy(req)
    kernel.calls.clear()
    with pytest.raises(ContainerError) as e:                     # the network layer has not written /etc yet
        bundle_for(kernel.store, "img", req, paths, CID, sandbox=sb)
    assert e.value.kind == FAILED_PRECONDITION and kernel.calls == []
    for name in ("hosts", "hostname", "resolv.conf"):
        open(os.path.join(sb.files_dir, name), "w").close()
    bundle = bundle_for(kernel.store, "img", req, paths, CID, sandbox=sb)
    assert kernel.names(changed_only=True) == BUNDLE_CHANGED
    with open(os.path.join(bundle, "config.json")) as f:
        doc = json.load(f)
    ns = {n["type"]: n.get("path") for n in doc["linux"]["namespaces"]}
    assert ns["network"] == sb.namespaces["network"] and ns["ipc"] == sb.namespaces["ipc"] and ns["pid"] is None
    assert doc["hostname"] == "web-0" and doc["linux"]["cgroupsPath"] == f"{POD_CG}/{CID}"
    assert doc["annotations"][container.SANDBOX_ANNOTATION] == UID
    etc = [m for m in doc["mounts"] if m["destination"].startswith("/etc/")]
    assert [(m["destination"], m["options"][-1]) for m in etc] == [("/etc/hosts", "ro"), ("/etc/hostname", "ro"),
                                                                   ("/etc/resolv.conf", "ro")]
    assert next(m for m in doc["mounts"] if m["destination"] == "/dev/shm")["source"] == sb.shm
    assert req == before
    remove_bundle(kernel.store, paths, CID)
    remove_sandbox(paths.run_root, UID, CG)
    assert kernel.container_objects(paths, CID) == NOTHING and kernel.pod_objects(paths.run_root, UID) == EMPTY


def _fail_lookup(k, kw):
    k.fail("store.image")


def _fail_lease(k, kw):
    k.fail("store.add_lease")


def _fail_mount(k, kw):
    k.fail("ksys.mount")


def _no_such_user(k, kw):
    kw["user"] = "nosuch"


def _root_but_non_root(k, kw):
    kw["req"] = request(uid=0, run_as_non_root=True)


def _no_command(k, kw):
    k.store.add_image("nocmd", [{"etc/passwd": PASSWD}])
    kw["ref"] = "nocmd"


def _fail_config_write(k, kw):
    k.fail("fs.write_json")


@pytest.mark.parametrize("how, error, last", [
    (_fail_lookup, ImageError, "store.image!"),
    (_fail_lease, ImageError, "store.add_lease!"),
    (_fail_mount, OSError, "ksys.mount!"),
    (_no_such_user, UserError, "ksys.mount"),
    (_root_but_non_root, UserError, "ksys.mount"),
    (_no_command, SpecError, "ksys.mount"),
    (_fail_config_write, OSError, "fs.write_json!"),
], ids=["image-lookup", "lease", "mount", "user", "runAsNonRoot", "config", "config-write"])
def test_bundle_for_failing_at_each_step_leaves_no_mount_lease_or_dir(kernel, paths, image, how, error, last):
    kw = {"req": request(), "ref": "img", "user": None}
    how(kernel, kw)
    before = copy.deepcopy(kw["req"])
    with pytest.raises(error):
        bundle_for(kernel.store, kw["ref"], kw["req"], paths, CID, kw["user"])
    names = kernel.names()
    end = names.index(last) + 1
    made = [c.name for c in kernel.calls[:end] if c.changed]
    undone = [c.name for c in kernel.calls[end:] if c.changed]
    assert undone == [{"ksys.mount": "ksys.umount2", "store.add_lease": "store.remove_lease"}[n]
                      for n in reversed(made)]
    assert kernel.container_objects(paths, CID) == NOTHING
    assert kernel.world.mounts == []
    assert layer_files(image) == [["etc"], ["bin", "etc", "tmp"]]   # nothing deleted through the mount
    assert kw["req"] == before


def test_remove_bundle_unmounts_before_it_deletes_and_can_be_repeated(kernel, paths, image):
    bundle_for(kernel.store, "img", request(), paths, CID)
    kernel.calls.clear()
    remove_bundle(kernel.store, paths, CID)
    assert kernel.names(changed_only=True) == ["ksys.umount2", "store.remove_lease"]
    assert kernel.container_objects(paths, CID) == NOTHING
    assert layer_files(image) == [["etc"], ["bin", "etc", "tmp"]]
    kernel.calls.clear()
    remove_bundle(kernel.store, paths, CID)
    assert kernel.names(changed_only=True) == []


def test_a_rootfs_that_will_not_unmount_is_not_deleted_through(kernel, paths, image):
    bundle_for(kernel.store, "img", request(), paths, CID)
    before = kernel.container_objects(paths, CID)
    kernel.fail("ksys.umount2")
    with pytest.raises(OSError):
        remove_bundle(kernel.store, paths, CID)
    assert kernel.container_objects(paths, CID) == before        # mount, upper dir, bundle, lease: all kept
    remove_bundle(kernel.store, paths, CID)
    assert kernel.container_objects(paths, CID) == NOTHING


def test_a_bundle_for_an_unknown_image_touches_nothing(kernel, paths, image):
    with pytest.raises(ImageError) as e:
        bundle_for(kernel.store, "other", request(), paths, CID)
    assert e.value.kind == NOT_FOUND
    assert kernel.names(changed_only=True) == [] and kernel.container_objects(paths, CID) == NOTHING


# ---- the double itself ---------------------------------------------------------------------------------

def test_the_double_stands_in_and_steps_out(tmp_path):
    import runtime.atomicfile
    import runtime.cgroups
    import runtime.supervisor.launch
    import runtime.threadns
    k = FakeKernel(str(tmp_path))
    with k.installed():
        assert sandbox.ksys is k.ksys and rootfs.ksys is k.ksys and sandbox.Cgroup is k.Cgroup
        assert sandbox.ismount == k.ismount and runtime.supervisor.launch.kill_supervisor == k.kill_supervisor
        assert k.ksys.MS_BIND == ksys.MS_BIND
        with pytest.raises(AttributeError, match="the double has no ksys.pivot_root"):
            k.ksys.pivot_root                                    # nothing real slips through
    assert sandbox.ksys is ksys and rootfs.ksys is ksys and sandbox.Cgroup is runtime.cgroups.Cgroup
    assert sandbox.in_own_thread is runtime.threadns.in_own_thread and sandbox.ismount is os.path.ismount
    assert container.write_json_atomic is runtime.atomicfile.write_json_atomic


def test_the_fake_store_and_the_real_one_agree_on_leases_and_lookups(tmp_path):
    k = FakeKernel(str(tmp_path / "k"))
    fake, real = k.store, ImageStore(str(tmp_path / "store"))
    digest = "sha256:" + "a" * 64

    def leased(store) -> bool:
        if store is fake:
            return CID in k.world.leases
        return os.path.exists(os.path.join(real.leases, f"{CID}.json"))

    for store in (fake, real):
        store.add_lease(CID, [digest])
        assert leased(store)
        store.remove_lease(CID)
        store.remove_lease(CID)                                  # already gone: fine
        assert not leased(store)
        with pytest.raises(ImageError) as e:
            store.add_lease("../x", [digest])
        assert (e.value.kind, e.value.field) == (INVALID_ARGUMENT, "holder")
        with pytest.raises(ImageError) as e:
            store.image("nothing:here")
        assert e.value.kind == NOT_FOUND


def test_a_cgroup_of_the_double_refuses_what_the_real_one_refuses(kernel):
    with pytest.raises(CgroupError):
        kernel.Cgroup("../escape")
    with pytest.raises(CgroupError):
        kernel.Cgroup("not/made").apply(Resources(cpu_shares=2))
