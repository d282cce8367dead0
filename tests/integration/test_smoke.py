import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def kpy(root, *args, check=True):
    return subprocess.run([sys.executable, "-m", "kubelet_py.cli", "--root", root, *args],
                          capture_output=True, text=True, check=check)


def test_demo_imports_builtin_image_and_lists_it(tmp_root):
    out = kpy(tmp_root, "demo").stdout
    assert "kubelet-py.local/busybox:1.35" in out
    rows = json.loads(kpy(tmp_root, "image", "ls", "-o", "json").stdout)
    assert [r["name"] for r in rows] == ["kubelet-py.local/busybox:1.35"]
    snap = os.path.join(tmp_root, "images", "snapshots", "sha256")
    (layer,) = os.listdir(snap)
    busybox = os.path.join(snap, layer, "fs", "bin", "busybox")
    assert os.stat(busybox).st_mode & 0o777 == 0o755
    assert os.readlink(os.path.join(snap, layer, "fs", "bin", "sh")) == "/bin/busybox"
    assert os.stat(os.path.join(tmp_root, "images")).st_mode & 0o777 == 0o700
