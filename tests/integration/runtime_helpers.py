"""Shared pieces of the runtime tests: a private store/run root/cgroup root with the built-in
images, `kubelet-py runtime run` as a subprocess, and an extracted busybox rootfs for bundles."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

from runtime.image.archive import import_path
from runtime.image.build import write_oci_layout
from runtime.image.store import ImageStore
from runtime.image.testimages import DEFAULT_IMAGE, LAYERED_IMAGE, busybox_image, layered_image
from tests.integration.leaks import assert_no_leaks, remove_cgroup_tree


def runtime_env(tmp_path, layered: bool = False):
    """Generator for a fixture: yields {root, run, cg, tmp}; checks for leaks afterwards."""
    root, run = str(tmp_path / "root"), str(tmp_path / "run")
    images = {DEFAULT_IMAGE: busybox_image()}
    if layered:
        images[LAYERED_IMAGE] = layered_image("gzip")
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, images)
    import_path(ImageStore(root), layout)
    cg = f"kpytest-{uuid.uuid4().hex[:8]}"
    yield {"root": root, "run": run, "cg": cg, "tmp": tmp_path}
    assert_no_leaks(root, run, cg)
    remove_cgroup_tree(cg)


def run_container(env, *args, image=DEFAULT_IMAGE, script: str | None = None, check_rc: int | None = 0):
    """`kubelet-py runtime run --image IMAGE ARGS [-- sh -c SCRIPT]` in the env's private roots."""
    cmd = [sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
           "--cgroup-root", env["cg"], "runtime", "run", "--image", image, *args]
    if script is not None:
        cmd += ["--", "sh", "-c", script]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check_rc is not None:
        assert p.returncode == check_rc, p.stderr
    return p


def busybox_rootfs(d, probe: str) -> str:
    """One extracted busybox rootfs with /probe.sh, used read-only by runc and by us."""
    layout = str(d / "layout")
    write_oci_layout(layout, {DEFAULT_IMAGE: busybox_image()})
    store = ImageStore(str(d / "root"))
    import_path(store, layout)
    r = d / "rootfs"
    shutil.copytree(store.image(DEFAULT_IMAGE).layer_dirs[0], r, symlinks=True)
    (r / "probe.sh").write_text(probe)
    return str(r)


def pod_api_env(tmp_path):
    """Generator for a fixture of runtime.pod tests: runtime_env plus its Paths, ImageStore and a
    log root; whatever a failed test left is removed by gc before the leak check."""
    from runtime.container import Paths
    from runtime.pod import gc
    gen = runtime_env(tmp_path)
    e = next(gen)
    e["paths"], e["store"] = Paths(e["root"], e["run"], e["cg"]), ImageStore(e["root"])
    e["logs"] = str(tmp_path / "logs")
    yield e
    gc(e["store"], e["paths"])
    next(gen, None)
