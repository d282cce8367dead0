"""Pure runtime logic: the spec generator and parser, users, quantities, cgroup formulas,
device filter compilation."""

from __future__ import annotations

import pytest

from kubelet_py.quantity import QuantityError, to_bytes, to_milli
from runtime.cgroups import device_rule_line, effective_device_rules, resources_from_spec, shares_to_weight
from runtime.image.manifest import ImageConfig
from runtime.linux.devfilter import compile_rules
from runtime.oci.spec import SpecError, parse
from runtime.oci.generate import ContainerRequest, generate, merge_env, milli_to_shares, resolve_args
from runtime.oci.users import parse_group, parse_passwd

IMG = ImageConfig("amd64", "linux", (), entrypoint=("/ep",), cmd=("c1", "c2"), env=("PATH=/bin", "A=img"),
                  working_dir="/w")


@pytest.mark.parametrize("command,args,expected", [
    (None, None, ["/ep", "c1", "c2"]),
    (None, ["a"], ["/ep", "a"]),
    (["/cmd"], None, ["/cmd"]),
    (["/cmd"], ["a", "b"], ["/cmd", "a", "b"]),
])
def test_four_combinations(command, args, expected):
    assert resolve_args(command, args, IMG.entrypoint, IMG.cmd) == expected


def test_env_overlay():
    assert merge_env(IMG.env, {"A": "pod", "B": "2"}) == ["PATH=/bin", "A=pod", "B=2"]
    assert merge_env((), {}) [0].startswith("PATH=/usr/local/sbin")


@pytest.mark.parametrize("milli,shares", [(None, 2), (0, 2), (1, 2), (500, 512), (1000, 1024), (10**9, 262144)])
def test_shares(milli, shares):
    assert milli_to_shares(milli) == shares


def test_weight_formula():
    assert (shares_to_weight(2), shares_to_weight(1024), shares_to_weight(262144)) == (1, 39, 10000)


def _doc(**kw):
    return generate(ContainerRequest(name="c", **kw), IMG, "/r", "kpy/c", "v1")


def test_generated_defaults():
    d = _doc()
    p = d["process"]
    assert p["args"] == ["/ep", "c1", "c2"] and p["cwd"] == "/w" and p["noNewPrivileges"] is False
    assert len(p["capabilities"]["effective"]) == 14 and "CAP_SYS_ADMIN" not in p["capabilities"]["bounding"]
    assert "/proc/kcore" in d["linux"]["maskedPaths"] and "/proc/sys" in d["linux"]["readonlyPaths"]
    assert d["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"},  # and containerd's console
                                                  {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"}]
    assert d["hostname"] == "c" and parse(d).cgroups_path == "kpy/c"


def test_generated_limits_and_security():
    d = _doc(memory_limit=64 << 20, cpu_limit_milli=250, allow_privilege_escalation=False,
             cap_drop=["ALL"], cap_add=["net_bind_service"], read_only_rootfs=True)
    r = d["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert r["cpu"] == {"shares": 256, "quota": 25000, "period": 100000}
    assert d["process"]["capabilities"]["effective"] == ["CAP_NET_BIND_SERVICE"]
    assert d["process"]["noNewPrivileges"] is True and d["root"]["readonly"] is True
    with pytest.raises(SpecError, match="unknown capability"):
        _doc(cap_add=["NOT_A_CAP"])


def test_v2_gets_a_cgroup_namespace():
    d = generate(ContainerRequest(name="c"), IMG, "/r", "kpy/c", "v2")
    assert {"type": "cgroup"} in d["linux"]["namespaces"]
    assert d["mounts"][-1]["type"] == "cgroup2"


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["process"].update(terminal=True), "process.terminal"),
    (lambda d: d["process"].update(args=[]), "process.args"),
    (lambda d: d["process"].update(cwd="rel"), "process.cwd"),
    (lambda d: d["process"]["user"].update(uid=2**31), "process.user.uid"),
    (lambda d: d["process"]["capabilities"].update(bounding=["CAP_NOPE"]), "process.capabilities.bounding"),
    (lambda d: d["process"].update(rlimits=[{"type": "RLIMIT_NOPE"}]), "process.rlimits[0].type"),
    (lambda d: d["linux"].update(seccomp={"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock"}),
     "linux.seccomp.listenerPath"),  # seccomp is supported, seccomp agents are not
    (lambda d: d["linux"].update(uidMappings=[{}]), "linux.uidMappings"),  # without a user namespace
    (lambda d: d["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings"),  # one without mappings
    (lambda d: d["linux"].update(namespaces=[{"type": "pid"}]), "linux.namespaces"),
    (lambda d: d["linux"]["resources"].update(hugepageLimits=[{"pageSize": "2MB", "limit": 1 << 21}]),
     "linux.resources.hugepageLimits"),  # defined by the spec, not carried out: refused when set
    (lambda d: d["linux"]["resources"]["cpu"].update(cpus=1), "linux.resources.cpu.cpus"),
    (lambda d: d["linux"]["resources"]["cpu"].update(cpus="0-"), "linux.resources.cpu.cpus"),
    (lambda d: d["linux"]["resources"]["cpu"].update(mems="0\n1"), "linux.resources.cpu.mems"),
    (lambda d: d["linux"]["resources"]["cpu"].update(realtimeRuntime=1000), "linux.resources.cpu.realtimeRuntime"),
    (lambda d: d["process"].update(scheduler={"policy": "SCHED_FIFO"}), "process.scheduler"),
    (lambda d: d["linux"].update(timeOffsets={"monotonic": {"secs": 1}}), "linux.timeOffsets"),
    (lambda d: d["mounts"].append({"destination": "/m", "type": "bind", "source": "/x", "uidMappings": [{}]}),
     "mounts[7].uidMappings"),
    (lambda d: d.update(hooks={"prestart": [{"path": "/x"}]}), "hooks"),
    (lambda d: d["mounts"].append({"destination": "rel", "type": "tmpfs"}), "mounts[7].destination"),
    (lambda d: d.update(domainname="corp"), "domainname"),
    (lambda d: d["linux"].update(rootfsPropagation="sideways"), "linux.rootfsPropagation"),
    (lambda d: d["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": "lots", "hard": 2}]),
     "process.rlimits[0].soft"),
    (lambda d: d["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 2}]), "process.rlimits[0].soft"),
    (lambda d: d["linux"].update(sysctl={"kernel.core_pattern": "|/x"}), "linux.sysctl.kernel.core_pattern"),
    (lambda d: d["linux"].update(sysctl={"net.ipv4.ip_forward": "1"},  # in the host's netns (hostNetwork)
                                 namespaces=[n for n in d["linux"]["namespaces"] if n["type"] != "network"]),
     "linux.sysctl.net.ipv4.ip_forward"),
    (lambda d: d["linux"].update(sysctl={"kernel.shmmax": "1+kernel.core_pattern=|/x"}), "linux.sysctl.kernel.shmmax"),
    (lambda d: d["linux"].update(sysctl={"net/../../x": "1"}), "linux.sysctl.net/../../x"),
    (lambda d: d["linux"].update(devices=[{"path": "/etc/passwd", "type": "c"}]), "linux.devices[0].path"),
    (lambda d: d["linux"].update(devices=[{"path": "/dev/x", "type": "q"}]), "linux.devices[0].type"),
    (lambda d: d["linux"].update(devices=[{"path": "/dev/x", "type": "c", "major": "1"}]), "linux.devices[0].major"),
])
def test_parse_rejects_unsupported_fields(mutate, field):
    d = _doc()
    mutate(d)
    with pytest.raises(SpecError) as e:
        parse(d)
    assert e.value.field.startswith(field)


def test_parse_ignores_what_the_spec_says_to_ignore_with_a_warning():
    """Unknown properties anywhere, other platforms' objects, and kernel memory limits (as runc):
    ignored, each named in Spec.warnings; the rest is carried out."""
    d = _doc(memory_limit=64 << 20)
    d["futureTopLevel"] = {"x": 1}
    d["solaris"] = {"anet": []}
    d["process"]["futureProcessThing"] = True
    d["process"]["commandLine"] = "cmd.exe"
    d["linux"]["futureLinuxThing"] = "y"
    d["linux"]["resources"]["memory"].update(kernel=32 << 20, kernelTCP=16 << 20)
    d["linux"]["resources"]["futureController"] = {"a": "not an int"}
    d["linux"]["resources"]["cpu"]["futureCpu"] = "not an int either"
    d["mounts"][0]["futureMountThing"] = 1
    d["linux"]["resources"]["hugepageLimits"] = []  # defined and empty: asks for nothing
    spec = parse(d)
    assert spec.resources["memory"] == {"limit": 64 << 20, "swap": 64 << 20}  # kernel and kernelTCP dropped
    assert "futureController" not in spec.resources and "futureCpu" not in spec.resources["cpu"]
    fields = sorted(w.split(":", 1)[0] for w in spec.warnings)
    assert fields == sorted(["futureTopLevel", "solaris", "process.futureProcessThing", "process.commandLine",
                             "linux.futureLinuxThing", "linux.resources.memory.kernel",
                             "linux.resources.memory.kernelTCP", "linux.resources.futureController",
                             "linux.resources.cpu.futureCpu", "mounts[0].futureMountThing"]), spec.warnings
    assert all(w.endswith(": ignored") for w in spec.warnings)
    assert "deprecated" in next(w for w in spec.warnings if w.startswith("linux.resources.memory.kernel:"))
    assert parse(_doc()).warnings == ()


def test_passwd_and_group_parsing():
    pw = parse_passwd("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbroken\n1000:x:0:0::/:/bin/sh\n")
    assert pw["app"] == (1000, 1001) and pw["1000"] == (0, 0)  # a digit name is kept, but resolve() never uses it
    assert parse_group("wheel:x:10:app,bob\nbad\n") == [("wheel", 10, ["app", "bob"])]


@pytest.mark.parametrize("v,milli", [("500m", 500), ("1", 1000), ("0.0001", 1), ("2.5", 2500), ("1e3", 10**6)])
def test_cpu_quantities(v, milli):
    assert to_milli(v) == milli


@pytest.mark.parametrize("v,b", [("64Mi", 64 << 20), ("1G", 10**9), ("1k", 1000), ("128974848", 128974848)])
def test_memory_quantities(v, b):
    assert to_bytes(v) == b


@pytest.mark.parametrize("v", ["", "abc", "1.2.3", "5Mb", "-1"])
def test_bad_quantities(v):
    with pytest.raises(QuantityError):
        to_bytes(v)


def test_device_rules():
    rules = effective_device_rules([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10,
                                                                         "minor": 200, "access": "rw"}])
    assert device_rule_line(rules[0]) == "a *:* rwm"
    assert device_rule_line(rules[1]) == "c *:* m" and device_rule_line(rules[-1]) == "c 10:200 rw"
    assert resources_from_spec({"devices": rules[:1]}).devices[3]["minor"] == 3  # /dev/null allowed


def test_device_filter_program_shape():
    prog = compile_rules(effective_device_rules([{"allow": False, "access": "rwm"}]))
    assert len(prog) % 8 == 0
    assert prog[-8:] == bytes([0x95]) + bytes(7)  # ends in exit, with no unreachable fallback after deny-all
    with pytest.raises(Exception, match="access"):
        compile_rules([{"allow": True, "type": "c", "access": "x"}])


def test_qos_and_pod_resources():
    from runtime.sandbox import pod_resources, qos_class
    g = {"cpu_limit": 500, "memory_limit": 1 << 26}
    assert qos_class([g]) == "guaranteed"
    assert qos_class([g, {}]) == "burstable"
    assert qos_class([{}, {}]) == "besteffort"
    assert qos_class([{"cpu_request": 100, "cpu_limit": 500, "memory_limit": 1}]) == "burstable"
    r = pod_resources([g, {"cpu_request": 250}])
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit) == (768, None, None)
    r = pod_resources([g, g])
    assert (r.cpu_quota, r.memory_limit) == (100000, 1 << 27)


def test_overlay_options_name_layers_by_short_links():
    import pytest
    from runtime.rootfs import OVL_MAX_STACK, PAGE, RootfsError, overlay_options
    assert overlay_options(3) == "lowerdir=l/0:l/1:l/2,upperdir=upper,workdir=work"
    assert len(overlay_options(OVL_MAX_STACK)) < 4096 <= PAGE  # all 500 layers fit one page
    with pytest.raises(RootfsError, match="stacks 1 to 500"):
        overlay_options(501)
    with pytest.raises(RootfsError, match="stacks"):
        overlay_options(0)
    # with the state dir's whole path (mounted without a chdir) while it fits a page
    assert overlay_options(2, "/s/c1") == "lowerdir=/s/c1/l/0:/s/c1/l/1,upperdir=/s/c1/upper,workdir=/s/c1/work"
    with pytest.raises(RootfsError, match="limit 4095"):
        overlay_options(200, "/var/lib/kubelet-py/containers/kpy0123456789ab")


def test_oom_score_adj_by_qos_as_the_kubelet():
    from runtime.oci.generate import qos_oom_score_adj
    gib = 1 << 30
    assert qos_oom_score_adj("guaranteed", gib, 16 * gib) == -997
    assert qos_oom_score_adj("besteffort", None, 16 * gib) == 1000
    assert qos_oom_score_adj("burstable", 4 * gib, 16 * gib) == 750
    assert qos_oom_score_adj("burstable", 16 * gib, 16 * gib) == 3  # never down to Guaranteed's
    assert qos_oom_score_adj("burstable", None, 16 * gib) == 999  # never BestEffort's 1000


def test_generated_nofile_is_set_and_capped_by_the_host():
    from runtime.image.manifest import ImageConfig
    from runtime.oci.generate import ContainerRequest, generate
    cfg = ImageConfig("amd64", "linux", (), cmd=("true",))
    doc = generate(ContainerRequest(name="c"), cfg, "/r", "x/c", "v1", nofile_hard=20000)
    assert doc["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 20000}]
    doc = generate(ContainerRequest(name="c"), cfg, "/r", "x/c", "v1", nofile_hard=1 << 20)
    assert doc["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 524288}]


def test_namespaced_sysctls_in_their_namespaces_are_accepted():
    d = _doc()
    d["linux"]["namespaces"] = [n for n in d["linux"]["namespaces"] if n["type"] != "network"]
    d["linux"]["namespaces"].append({"type": "network", "path": "/run/x/ns/net"})  # the pod's pinned one
    d["linux"]["sysctl"] = {"kernel.shmmax": "68719476736", "fs.mqueue.msg_max": "20", "net.ipv4.ping_group_range": "0 1"}
    assert parse(d).sysctl["net.ipv4.ping_group_range"] == "0 1"


def test_memory_fields_reach_the_cgroup_plan():
    r = resources_from_spec({"memory": {"limit": 1 << 20, "reservation": 1 << 19, "swappiness": 10,
                                        "disableOOMKiller": True}})
    assert (r.memory_reservation, r.memory_swappiness, r.disable_oom_killer) == (1 << 19, 10, True)
    r = resources_from_spec({"memory": {"swappiness": -1}})
    assert r.memory_swappiness is None and r.disable_oom_killer is False


def test_which_commands_re_execute_sealed_before_start_up():
    from kubelet_py.entry import forks_containers
    assert forks_containers(["runtime", "run", "--image", "x", "--", "sh", "-d"])
    assert forks_containers(["--root", "/r", "--cgroup-root", "cg", "runtime", "run", "--bundle", "b"])
    assert forks_containers(["demo"]) and forks_containers(["--run-root", "run", "demo"])
    assert not forks_containers(["runtime", "run", "-d", "--image", "x"])
    assert not forks_containers(["runtime", "exec", "id", "--", "true"])
    assert not forks_containers(["image", "ls"]) and not forks_containers([])


def test_cpusets_reach_the_cgroup_plan():
    """linux.resources.cpu.cpus/mems (what the kubelet's static CPU manager writes) are carried
    out, as the kernel's list syntax; empty strings ask for nothing, as runc."""
    d = _doc()
    d["linux"]["resources"]["cpu"].update(cpus="0-1,3", mems="0")
    r = resources_from_spec(parse(d).resources)
    assert (r.cpuset_cpus, r.cpuset_mems) == ("0-1,3", "0")
    d["linux"]["resources"]["cpu"].update(cpus="", mems="")
    r = resources_from_spec(parse(d).resources)
    assert (r.cpuset_cpus, r.cpuset_mems) == (None, None)
    assert resources_from_spec(parse(_doc()).resources).cpuset_cpus is None


def test_no_mount_namespace_only_where_asked_and_without_host_changes():
    """The kubelet's containers always have a mount namespace; the OCI CLI (host_mounts) runs a
    config without one, as runc, but not what would change the host's mounts beyond the rootfs."""
    d = _doc()
    d["linux"]["namespaces"] = [n for n in d["linux"]["namespaces"] if n["type"] != "mount"]
    d["linux"].pop("maskedPaths", None)
    d["linux"].pop("readonlyPaths", None)
    with pytest.raises(SpecError) as e:
        parse(d)
    assert e.value.field == "linux.namespaces"
    assert "mount" not in {t for t, _ in parse(d, host_mounts=True).namespaces}
    for k, v in (("maskedPaths", ["/proc/kcore"]), ("readonlyPaths", ["/proc/sys"]), ("rootfsPropagation", "slave")):
        bad = dict(d, linux=dict(d["linux"], **{k: v}))
        with pytest.raises(SpecError) as e:
            parse(bad, host_mounts=True)
        assert e.value.field == f"linux.{k}" and "mount namespace" in e.value.why


def test_user_namespace_mappings_parsed_and_checked():
    from runtime.linux.userns import map_text
    from runtime.oci.spec import host_id
    d = _doc()
    d["linux"]["namespaces"].append({"type": "user"})
    d["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1},
                                 {"containerID": 1, "hostID": 300001, "size": 65535}]
    d["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    spec = parse(d)
    assert spec.uid_mappings == ((0, 200000, 1), (1, 300001, 65535)) and spec.gid_mappings == ((0, 200000, 65536),)
    assert map_text(spec.uid_mappings) == "0 200000 1\n1 300001 65535\n"
    assert (host_id(spec.uid_mappings, 0), host_id(spec.uid_mappings, 1000), host_id(spec.uid_mappings, 65536)) == \
        (200000, 301000, None)
    for bad, field in (({"containerID": 0, "hostID": -1, "size": 1}, "linux.uidMappings[0].hostID"),
                       ({"containerID": 0, "hostID": 1, "size": 0}, "linux.uidMappings[0].size"),
                       ({"containerID": 0, "hostID": 1, "size": True}, "linux.uidMappings[0].size"),
                       ("0 1 1", "linux.uidMappings[0]")):
        d["linux"]["uidMappings"] = [bad]
        with pytest.raises(SpecError) as e:
            parse(d)
        assert e.value.field == field
    d["linux"]["uidMappings"] = [{"containerID": i, "hostID": 1000 + i, "size": 1} for i in range(341)]
    with pytest.raises(SpecError, match="at most 340"):
        parse(d)
    # joining a user namespace by path: as it is, no mappings of ours
    d["linux"]["namespaces"][-1] = {"type": "user", "path": "/proc/1/ns/user"}
    d["linux"].pop("uidMappings")
    with pytest.raises(SpecError) as e:
        parse(d)
    assert e.value.field == "linux.gidMappings"
    d["linux"].pop("gidMappings")
    assert parse(d).uid_mappings == ()


def test_idmapped_bind_mounts_and_the_rootfs_annotation_parsed():
    d = _doc()
    d["linux"]["namespaces"].append({"type": "user"})
    d["linux"]["uidMappings"] = d["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    d["annotations"] = {"io.kubelet-py.rootfs-idmap": "true"}
    d["mounts"].append({"destination": "/v", "type": "bind", "source": "/srv/v", "options": ["rbind"],
                        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
    m = parse(d).mounts[-1]
    assert (m.uid_mappings, m.gid_mappings) == (((0, 1000, 1),), ((0, 1000, 1),))
    assert parse(d).mounts[0].uid_mappings == ()
    d["mounts"][-1]["type"] = "tmpfs"
    d["mounts"][-1]["options"] = []
    with pytest.raises(SpecError) as e:
        parse(d)
    assert e.value.field == "mounts[7].uidMappings"


def test_host_users_false_gives_a_user_namespace_idmapped():
    """hostUsers: false (the kubelet's per-pod range): a user namespace mapping the range to
    0..count-1, the rootfs (annotation) and bind mounts idmapped with it; Kubernetes' rules."""
    vol = {"destination": "/data", "type": "bind", "source": "/var/lib/v", "options": ["rbind", "rw"]}
    d = _doc(host_users=False, user_ids=(65536 * 3, 65536), extra_mounts=[vol])
    m = [{"containerID": 0, "hostID": 196608, "size": 65536}]
    assert {"type": "user"} in d["linux"]["namespaces"]
    assert d["linux"]["uidMappings"] == m and d["linux"]["gidMappings"] == m
    assert d["annotations"]["io.kubelet-py.rootfs-idmap"] == "true"
    assert d["mounts"][-1]["uidMappings"] == m and "uidMappings" not in vol  # the request is not changed
    spec = parse(d)
    assert spec.uid_mappings == ((0, 196608, 65536),) and spec.mounts[-1].uid_mappings == ((0, 196608, 65536),)
    assert "uidMappings" not in _doc()["linux"] and "io.kubelet-py.rootfs-idmap" not in _doc()["annotations"]
    for kw, field in (({}, "hostUsers"), ({"user_ids": (0, 65536)}, "hostUsers"),
                      ({"user_ids": (65536, 65536), "privileged": True}, "securityContext.privileged"),
                      ({"user_ids": (65536, 65536), "namespaces": {"pid": None, "ipc": None, "mount": None}},
                       "hostUsers")):
        with pytest.raises(SpecError) as e:
            _doc(host_users=False, **kw)
        assert e.value.field == field
    with pytest.raises(SpecError) as e:
        generate(ContainerRequest(name="c", host_users=False, user_ids=(65536, 1000)), IMG, "/r", "kpy/c", "v1",
                 uid=1000)
    assert e.value.field == "securityContext.runAsUser"
