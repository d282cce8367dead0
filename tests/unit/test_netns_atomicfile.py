"""netns's one atomic write (netns/atomicfile.py): replace or create-only, mode whatever the umask,
fsync of the file and of its directory, nothing left on failure; used by the IP/hostPort entries,
the pod files and the records, and no other netns module renames or links files itself."""

from __future__ import annotations

import os
import re
import stat

import pytest

import netns
from netns import atomicfile, podfiles
from netns.ownedfiles import OwnedDir


@pytest.fixture
def fsyncs(monkeypatch):
    """(kind, path) of every fsync: 'dir' or 'file'."""
    seen = []
    real = os.fsync

    def spy(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        seen.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)
    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_replace_writes_the_whole_file_with_its_mode_and_syncs_file_and_dir(tmp_path, fsyncs):
    p = str(tmp_path / "f")
    old = os.umask(0o077)
    try:
        assert atomicfile.write_atomic(p, b"one", 0o644)
        assert atomicfile.write_atomic(p, b"two", 0o644)
    finally:
        os.umask(old)
    assert open(p, "rb").read() == b"two" and os.stat(p).st_mode & 0o777 == 0o644
    assert [k for k, _ in fsyncs] == ["file", "dir", "file", "dir"] and fsyncs[1][1] == str(tmp_path)
    assert os.listdir(tmp_path) == ["f"]


def test_create_only_never_replaces(tmp_path):
    p = str(tmp_path / "f")
    assert atomicfile.write_atomic(p, b"first", replace=False)
    assert not atomicfile.write_atomic(p, b"second", replace=False)
    assert open(p, "rb").read() == b"first" and os.listdir(tmp_path) == ["f"]


def test_not_durable_skips_the_fsyncs(tmp_path, fsyncs):
    atomicfile.write_atomic(str(tmp_path / "hint"), b"x", durable=False)
    assert fsyncs == []


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        atomicfile.write_atomic(str(tmp_path / "d"), b"x")       # rename over a directory fails
    assert sorted(os.listdir(tmp_path)) == ["d"] and os.listdir(tmp_path / "d") == []


def test_temporaries_are_recognised():
    name = os.path.basename(atomicfile.temp_path("/x/10.0.0.2"))
    assert atomicfile.is_temp_name(name) and not atomicfile.is_temp_name("10.0.0.2")


def test_same_content_checks_bytes_and_mode(tmp_path):
    p = str(tmp_path / "f")
    atomicfile.write_atomic(p, b"abc", 0o644)
    assert atomicfile.same_content(p, b"abc", 0o644)
    assert not atomicfile.same_content(p, b"abd", 0o644) and not atomicfile.same_content(p, b"abc", 0o600)
    os.symlink(p, str(tmp_path / "link"))
    assert not atomicfile.same_content(str(tmp_path / "link"), b"abc", 0o644)
    assert not atomicfile.same_content(str(tmp_path / "missing"), b"", 0o644)


def synced_files(fsyncs):
    """The final names of the files fsynced (each is fsynced as its temporary, before the rename)."""
    out = []
    for kind, p in fsyncs:
        if kind == "file":
            head, name = os.path.split(p)
            assert atomicfile.is_temp_name(name), p
            out.append(os.path.join(head, name[len(atomicfile.TMP_PREFIX):].rsplit(".", 2)[0]))
    return sorted(out)


def test_entries_and_pod_files_go_through_it(tmp_path, fsyncs):
    d = OwnedDir(str(tmp_path / "ipam"), lambda n: True)
    with d.locked():
        assert d.create("10.0.0.2", "pod-a") and not d.create("10.0.0.2", "pod-b")
    assert synced_files(fsyncs) == [str(tmp_path / "ipam" / "10.0.0.2")] * 2
    assert ("dir", str(tmp_path / "ipam")) in fsyncs
    fsyncs.clear()
    files = podfiles.write(str(tmp_path / "etc"), "hosts\n", "name\n", "nameserver 1.1.1.1\n")
    # written whole (renamed into place: the test below), never fsync'ed: they live as long as
    # the pod's sandbox, never past a reboot
    assert fsyncs == [] and open(files.hosts).read() == "hosts\n" and open(files.resolv_conf).read().endswith("1\n")


def test_unchanged_pod_files_keep_their_inode(tmp_path):
    files = podfiles.write(str(tmp_path), "h\n", "n\n", "r\n")
    before = os.stat(files.hosts).st_ino
    podfiles.write(str(tmp_path), "h\n", "n\n", "r\n")
    assert os.stat(files.hosts).st_ino == before                  # a bind mount of it stays in sync
    podfiles.write(str(tmp_path), "h2\n", "n\n", "r\n")
    assert os.stat(files.hosts).st_ino != before and open(files.hosts).read() == "h2\n"


def test_no_other_netns_module_renames_or_links_files():
    top = os.path.dirname(netns.__file__)
    users = sorted(name for name in os.listdir(top) if name.endswith(".py")
                   and re.search(r"os\.(rename|replace|link)\(", open(os.path.join(top, name)).read()))
    assert users == ["atomicfile.py"]
