"""Pull progress against a real registry (Debian's docker-registry, tests/integration/registry_fixture.py):
the runtime's hook reports every byte of every layer (its total is the blob's size), and
`kubelet-py image pull` shows it as plain lines when stderr is a pipe and as bars (each layer's
digest, a percentage) when stderr is a terminal (a pty); `run -f` of a pod whose image is
missing pulls it with the same lines before the pod runs."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time

import pytest

from runtime.image.build import write_oci_layout
from runtime.image.registries import load_registries
from runtime.image.registry import pull
from runtime.image.store import ImageStore
from runtime.image.testimages import layered_image
from tests.conftest import need_tool
from tests.integration.registry_fixture import Registry

pytestmark = pytest.mark.root
REF = "kpy/layered:1.0"
LINE = re.compile(r"^([0-9a-f]{12}): (downloaded|unpacked) (\d+) bytes$")


@pytest.fixture(scope="module")
def image():
    return layered_image()


@pytest.fixture(scope="module")
def registry(tmp_path_factory, image):
    for t in ("docker-registry", "skopeo"):
        need_tool(t)
    layout = str(tmp_path_factory.mktemp("layout"))
    write_oci_layout(layout, {"layered": image})
    reg = Registry(str(tmp_path_factory.mktemp("registry"))).start()
    try:
        reg.push_layout(layout, "layered", REF)
        yield reg
    finally:
        reg.stop()


def _kpy(root: str, regfile: str, *args: str, **kw) -> list[str]:
    return [sys.executable, "-m", "kubelet_py.cli", "--root", root, "--registries", regfile, *args]


def test_the_hook_reports_every_byte_of_every_layer(tmp_path, registry, image):
    calls = []
    store = ImageStore(str(tmp_path / "root"))
    rec = pull(store, f"{registry.host}/{REF}", load_registries(registry.registries_yaml(str(tmp_path / "r.yaml"))),
               progress=lambda *a: calls.append(a))
    assert rec.digest == image.manifest_digest
    layers = {ly.digest: ly for ly in image.layers}
    assert len(layers) == 3 and {c[0] for c in calls} == set(layers)
    for digest, ly in layers.items():
        size = os.path.getsize(store.blob_path(digest))
        mine = [c for c in calls if c[0] == digest]
        downloads = [c for c in mine if c[1] == "download"]
        assert downloads and all(c[3] == size for c in downloads)  # each call's total is the blob's size
        dones = [c[2] for c in downloads]
        assert dones == sorted(dones) and dones[-1] == size  # bytes so far, rising to all of them
        assert [c[1] for c in mine if c[1] != "download"] == ["downloaded", "unpack", "done"]
        assert [c for c in mine if c[1] == "downloaded"][0][2:] == (size, size)


def test_image_pull_off_a_terminal_writes_plain_lines(tmp_path, registry, image):
    root = str(tmp_path / "root")
    r = subprocess.run(_kpy(root, registry.registries_yaml(str(tmp_path / "r.yaml")), "image", "pull",
                            f"{registry.host}/{REF}"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"{registry.host}/{REF}", image.manifest_digest]  # stdout: the result only
    lines = r.stderr.splitlines()
    assert all(LINE.match(ln) for ln in lines), r.stderr
    store = ImageStore(root)
    want = sorted((ly.digest.split(":")[1][:12], phase, os.path.getsize(store.blob_path(ly.digest)))
                  for ly in image.layers for phase in ("downloaded", "unpacked"))
    got = sorted((m.group(1), m.group(2), int(m.group(3))) for m in map(LINE.match, lines))
    assert got == want


def test_image_pull_on_a_terminal_draws_bars(tmp_path, registry, image):
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    try:
        p = subprocess.Popen(_kpy(str(tmp_path / "root"), registry.registries_yaml(str(tmp_path / "r.yaml")),
                                  "image", "pull", f"{registry.host}/{REF}"),
                             stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the pty
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        assert p.wait(30) == 0
        text = out.decode(errors="replace")
    finally:
        os.close(master)
    for ly in image.layers:
        assert ly.digest.split(":")[1][:12] in text, text
    assert "100%" in text and "\x1b[" in text, text
    assert not LINE.search(text)  # bars, not the plain lines


def test_run_f_pulls_a_missing_image_with_progress_first(tmp_path, registry, image):
    """Without a daemon (an embedded agent, as tests/e2e/test_pods.py runs it): the pod's image,
    absent from --root, is pulled with the plain lines before the pod is applied, and the pod
    then runs on it."""
    from tests.e2e.daemon import Daemon
    d = Daemon(tmp_path)  # its roots and network names, not started
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pulled"},
           "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": f"{registry.host}/{REF}", "command": ["sh", "-c", "echo ran"]}]}}
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(pod))
    cmd = d.base() + ["--registries", registry.registries_yaml(str(tmp_path / "r.yaml")), "run", "-f", str(manifest),
                      "--bridge", d.bridge, "--pod-cidr", str(d.subnet)]
    store = ImageStore(d.root)  # the built-in busybox is there: the image's base layer is not fetched again
    missing = sorted(ly.digest.split(":")[1][:12] for ly in image.layers if not store.has_blob(ly.digest))
    assert missing
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout == "ran\n"
        err = r.stderr.splitlines()
        assert err[0] == f"pulling {registry.host}/{REF}", r.stderr
        plain = [ln for ln in err if LINE.match(ln)]
        assert sorted(LINE.match(ln).group(1) for ln in plain) == sorted(missing * 2), r.stderr
        assert err.index(plain[-1]) < err.index("pod/pulled created")  # pulled before the pod was applied
    finally:
        leaks = d.cleanup()
    assert leaks == []
