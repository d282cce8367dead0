"""kubelet-py as users install it: fresh venvs with the project installed (a) by a plain
`pip install -e <repo>` (a modern editable install: the project is reached through an import
hook, not a path entry) and (b) from a built wheel, each running a small program that uses only
the public pod API (runtime.pod) with private roots. The supervisor is a fresh `python -S -c`
process: it must find the project however it was installed."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
import uuid

import pytest

from tests.integration.leaks import assert_no_leaks, remove_cgroup_tree

pytestmark = [pytest.mark.root]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# a user's program: nothing but the public API (and the built-in test image)
PROGRAM = textwrap.dedent('''
    import json, os, sys
    import runtime
    from runtime import pod as api
    from runtime.container import Paths
    from runtime.image.archive import import_path
    from runtime.image.build import write_oci_layout
    from runtime.image.store import ImageStore
    from runtime.image.testimages import DEFAULT_IMAGE, busybox_image
    from runtime.oci.generate import ContainerRequest

    root, run, cg, logs, layout = sys.argv[1:6]
    write_oci_layout(layout, {DEFAULT_IMAGE: busybox_image()})
    store, paths = ImageStore(root), Paths(root, run, cg)
    import_path(store, layout)
    pod = api.PodConfig(uid="pod-install", name="inst", etc_files=False)  # no pod network here
    api.run_pod_sandbox(paths, pod)
    try:
        log = api.pod_log_path(logs, pod, "hello")
        cid = api.create_container(store, paths, pod.uid, DEFAULT_IMAGE,
                                   ContainerRequest(name="hello", command=["sh", "-c", "echo hello from $(hostname)"]),
                                   log_path=log)
        api.start_container(paths, pod.uid, cid)
        st = api.wait_container(paths, pod.uid, cid, 30)
        with open(log) as f:
            text = f.read()
    finally:
        api.remove_pod_sandbox(store, paths, pod.uid)
    print(json.dumps({"exit_code": st.exit_code, "state": st.state, "log": text,
                      "runtime": runtime.__file__, "sys_path": sys.path}))
''')


def _pip(*args: str, python: str | None = None) -> None:
    """This venv's pip, acting on the interpreter `python` if given (pip --python: a venv
    without pip of its own is made in a tenth of a second, not seconds)."""
    where = ["--python", python] if python else []
    p = subprocess.run([sys.executable, "-m", "pip", *where, "--disable-pip-version-check", "-q", *args],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"pip {' '.join(args)}:\n{p.stdout}\n{p.stderr}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """(the project's wheel, a dir of wheels of its dependencies and of setuptools), built once:
    the venvs then install with --no-index. The wheel is built from a copy of this tree, so
    the build leaves nothing in it."""
    d = tmp_path_factory.mktemp("install")
    src = d / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", "vagrant", "bench"))
    _pip("wheel", "--no-deps", "-w", str(d / "dist"), str(src))
    (wheel,) = glob.glob(str(d / "dist" / "kubelet_py-*.whl"))
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    deps = project["project"]["dependencies"] + project["build-system"]["requires"]
    _pip("wheel", "-w", str(d / "deps"), *deps)
    return wheel, str(d / "deps")


def _venv(d) -> str:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d)], check=True, timeout=120, capture_output=True)
    return str(d / "bin" / "python")


def _run_program(python: str, tmp_path) -> tuple[dict, str]:
    """Run PROGRAM with the venv's interpreter in private roots; (what it printed, what it said
    otherwise); the supervisor logs it left are kept as they come (a failed pod removes them)."""
    root, run, logs = str(tmp_path / "root"), str(tmp_path / "run"), str(tmp_path / "logs")
    cg = f"kpyinst-{uuid.uuid4().hex[:8]}"
    prog = tmp_path / "prog" / "use_pod_api.py"
    prog.parent.mkdir()
    prog.write_text(PROGRAM)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}  # nothing of this test's Python
    seen: dict[str, bytes] = {}
    try:
        p = subprocess.Popen([python, str(prog), root, run, cg, logs, str(tmp_path / "layout")], cwd=prog.parent,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while p.poll() is None and time.monotonic() < deadline:
            for log in glob.glob(f"{run}/pods/*/*.log"):
                try:
                    with open(log, "rb") as f:
                        seen[log] = f.read() or seen.get(log, b"")
                except OSError:
                    pass
            time.sleep(0.002)
        if p.poll() is None:
            p.kill()
        out, err = p.communicate(timeout=30)
        said = err.decode(errors="replace") + "".join(
            f"\n---- {k} ----\n{v.decode(errors='replace')}" for k, v in seen.items() if v)
        assert p.returncode == 0, f"exit {p.returncode}:\n{said}"
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert_no_leaks(root, run, cg)
    finally:
        remove_cgroup_tree(cg)
    return result, said


def _check_ran(result: dict, said: str) -> None:
    assert result["state"] == "exited" and result["exit_code"] == 0, (result, said)
    assert " stdout F hello from inst\n" in result["log"], (result, said)


def _check_command(venv: str) -> None:
    """The kubelet-py command (bin/kubelet-py, setuptools' script-files) is installed for the
    venv's interpreter and runs."""
    cmd = os.path.join(venv, "bin", "kubelet-py")
    with open(cmd) as f:
        assert f.readline().startswith(f"#!{venv}/bin/python"), cmd
    p = subprocess.run([cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "node agent" in p.stdout, (p.stdout, p.stderr)


def test_plain_editable_install(tmp_path, wheels):
    """`pip install -e <repo>` with nothing else: setuptools' editable wheel, an import hook."""
    _wheel, deps = wheels
    python = _venv(tmp_path / "venv")
    _pip("install", "--no-index", "--find-links", deps, "-e", REPO, python=python)
    result, said = _run_program(python, tmp_path)
    assert result["runtime"] == os.path.join(REPO, "runtime", "__init__.py"), result["runtime"]
    # what this test is about: the project is not a path entry of the venv's interpreter
    assert REPO not in result["sys_path"], ("the editable install is a path entry here", result["sys_path"])
    _check_ran(result, said)
    _check_command(str(tmp_path / "venv"))


def test_wheel_install(tmp_path, wheels):
    wheel, deps = wheels
    python = _venv(tmp_path / "venv")
    _pip("install", "--no-index", "--find-links", deps, wheel, python=python)
    result, said = _run_program(python, tmp_path)
    assert result["runtime"].startswith(str(tmp_path / "venv")), result["runtime"]
    _check_ran(result, said)
    _check_command(str(tmp_path / "venv"))
