"""Secure layer unpack against the malicious-layer corpus of security.md 1.3-1.7, with real files
as root. Every attack asserts the host canary is untouched and that nothing is left behind."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import time

import pytest

from runtime.image.build import TarEntry, compress, make_tar
from runtime.image.errors import DigestMismatch, LayerError, LimitExceeded
from runtime.image.store import ImageStore
from runtime.image.unpack import UnpackLimits

pytestmark = pytest.mark.root
CAP_NET_RAW = "\x01\x00\x00\x02\x00\x20" + "\x00" * 14  # vfs_cap_data v2: cap_net_raw+ep


@pytest.fixture
def store(tmp_root):
    return ImageStore(tmp_root)


@pytest.fixture
def canary():
    import tempfile
    d = tempfile.mkdtemp(prefix="kpy-canary-", dir="/var/tmp")
    f = os.path.join(d, "file")
    with open(f, "w") as fh:
        fh.write("canary\n")
    os.chmod(f, 0o400)
    before = os.stat(f)
    yield d
    after = os.stat(f)
    try:
        assert sorted(os.listdir(d)) == ["file"], "something was created in the host canary dir"
        assert (after.st_mode, after.st_uid, after.st_nlink, after.st_mtime_ns) == \
               (before.st_mode, before.st_uid, before.st_nlink, before.st_mtime_ns), "canary file changed"
        with open(f) as fh:
            assert fh.read() == "canary\n"
    finally:
        import shutil
        shutil.rmtree(d)


def unpack(store: ImageStore, tar: bytes, compression: str | None = "gzip", diff_id: str | None = None,
           lowers: list[str] | None = None) -> str:
    blob = compress(tar, compression)
    digest = store.put_blob("test layer", blob)
    diff_id = diff_id or "sha256:" + hashlib.sha256(tar).hexdigest()
    store.unpack(digest, diff_id, lowers or [])
    return os.path.join(store.snapshot_dir(diff_id), "fs")


def assert_nothing_left(store: ImageStore) -> None:
    assert os.listdir(store.snapshots) == []
    assert os.listdir(store.tmp) == []


def raw_tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


# ---- correct behaviour ----------------------------------------------------------------------

def test_metadata_is_preserved(store):
    tar = make_tar([
        TarEntry("bin/", "dir"),
        TarEntry("bin/suid", data=b"x", mode=0o4755, uid=0, gid=0, mtime=1_000_000),
        TarEntry("home/u/", "dir", mode=0o750, uid=1000, gid=1001),
        TarEntry("home/u/f", data=b"hello", mode=0o600, uid=1000, gid=1001, mtime=12345,
                 xattrs={"user.note": "v", "security.capability": CAP_NET_RAW}),
        TarEntry("dev/null", "char", mode=0o666, devmajor=1, devminor=3),
        TarEntry("dev/sda", "block", mode=0o660, devmajor=8, devminor=0),
        TarEntry("run/fifo", "fifo", mode=0o644),
        TarEntry("lnk", "symlink", linkname="/bin/suid", uid=5, gid=6),
        TarEntry("hard", "hardlink", linkname="home/u/f"),
    ])
    fs = unpack(store, tar)
    st = os.stat(f"{fs}/bin/suid")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_mtime == 1_000_000
    st = os.stat(f"{fs}/home/u/f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime, st.st_nlink) == (0o600, 1000, 1001, 12345, 2)
    assert os.getxattr(f"{fs}/home/u/f", "user.note") == b"v"
    assert os.getxattr(f"{fs}/home/u/f", "security.capability") == CAP_NET_RAW.encode()
    assert os.stat(f"{fs}/home/u").st_uid == 1000 and stat.S_IMODE(os.stat(f"{fs}/home/u").st_mode) == 0o750
    st = os.lstat(f"{fs}/dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(f"{fs}/dev/sda").st_mode)
    assert stat.S_ISFIFO(os.lstat(f"{fs}/run/fifo").st_mode)
    assert os.readlink(f"{fs}/lnk") == "/bin/suid" and os.lstat(f"{fs}/lnk").st_uid == 5
    assert os.stat(f"{fs}/hard").st_ino == os.stat(f"{fs}/home/u/f").st_ino
    assert os.stat(os.path.dirname(fs)).st_mode & 0o777 == 0o700  # host users cannot reach setuid files


def test_whiteouts_become_overlay_whiteouts(store):
    tar = make_tar([TarEntry("etc/", "dir"), TarEntry("etc/.wh.gone", uid=3, gid=4), TarEntry("opt/old/", "dir"),
                    TarEntry("opt/old/.wh..wh..opq"), TarEntry("opt/old/new", data=b"n"),
                    TarEntry("keep"), TarEntry(".wh.keep"), TarEntry(".wh..wh.plnk")])
    fs = unpack(store, tar)
    st = os.lstat(f"{fs}/etc/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and (st.st_uid, st.st_gid) == (3, 4)
    assert os.getxattr(f"{fs}/opt/old", "trusted.overlay.opaque") == b"y"
    assert os.path.isfile(f"{fs}/opt/old/new")  # same-layer children survive an opaque marker
    assert stat.S_ISREG(os.lstat(f"{fs}/keep").st_mode)  # x and .wh.x in one layer: x stays
    assert not os.path.lexists(f"{fs}/.wh..wh.plnk") and not os.path.lexists(f"{fs}/.wh.keep")


def test_root_opaque_is_recorded(store):
    tar = make_tar([TarEntry(".wh..wh..opq"), TarEntry("only", data=b"x")])
    unpack(store, tar)
    diff = "sha256:" + hashlib.sha256(tar).hexdigest()
    assert store.snapshot_meta(diff)["root_opaque"] is True


def test_implicit_parent_takes_lower_layer_metadata(store):
    low = make_tar([TarEntry("tmp/", "dir", mode=0o1777), TarEntry("srv/", "dir", mode=0o711, uid=7)])
    unpack(store, low)
    low_id = "sha256:" + hashlib.sha256(low).hexdigest()
    fs = unpack(store, make_tar([TarEntry("tmp/x", data=b"x"), TarEntry("srv/a/b", data=b"y"), TarEntry("new/f")]),
                lowers=[low_id])
    assert stat.S_IMODE(os.stat(f"{fs}/tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(f"{fs}/srv").st_mode) == 0o711 and os.stat(f"{fs}/srv").st_uid == 7
    assert stat.S_IMODE(os.stat(f"{fs}/srv/a").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(f"{fs}/new").st_mode) == 0o755


def test_last_entry_wins(store):
    fs = unpack(store, make_tar([TarEntry("a/", "dir"), TarEntry("a/child", data=b"1"), TarEntry("a", data=b"file"),
                                 TarEntry("b", data=b"file"), TarEntry("b/", "dir"), TarEntry("b/c", data=b"2"),
                                 TarEntry("c", data=b"old"), TarEntry("c", data=b"new")]))
    assert open(f"{fs}/a").read() == "file"
    assert open(f"{fs}/b/c").read() == "2"
    assert open(f"{fs}/c").read() == "new"


@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
def test_every_compression(store, compression):
    fs = unpack(store, make_tar([TarEntry("f", data=b"z" * 100_000)]), compression)
    assert os.path.getsize(f"{fs}/f") == 100_000


def test_gzip_with_trailing_padding_and_multiple_members(store):
    tar = make_tar([TarEntry("f", data=b"abc" * 1000)])
    blob = gzip.compress(tar[:5000], mtime=0) + gzip.compress(tar[5000:], mtime=0) + b"\0" * 1024
    digest = store.put_blob("t", blob)
    diff = "sha256:" + hashlib.sha256(tar).hexdigest()
    store.unpack(digest, diff, [])
    assert os.path.getsize(os.path.join(store.snapshot_dir(diff), "fs", "f")) == 3000


def test_symlink_in_path_resolves_inside_root(store, canary):
    fs = unpack(store, make_tar([TarEntry("evil", "symlink", linkname=canary), TarEntry("evil/kpy", data=b"x"),
                                 TarEntry("rel", "symlink", linkname="../../../../../../" + canary.lstrip("/")),
                                 TarEntry("rel/kpy2", data=b"y")]))
    assert open(f"{fs}{canary}/kpy").read() == "x"  # clamped into the snapshot, as containerd does
    assert open(f"{fs}{canary}/kpy2").read() == "y"


# ---- attacks ----------------------------------------------------------------------------------

def _ti(name, kind=tarfile.REGTYPE, size=0, **kw) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size = kind, size
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


@pytest.mark.parametrize("entries,needle", [
    ([TarEntry("lnk", "hardlink", linkname="../../../../../../etc/passwd")], "escapes"),  # CVE-2014-6407
    ([TarEntry("../../../../tmp/kpy-evil", data=b"x")], "escapes"),
    ([TarEntry("a/../../b", data=b"x")], "escapes"),
    ([TarEntry(".wh..")], "invalid whiteout"),
    ([TarEntry("d/.wh...")], "invalid whiteout"),
    ([TarEntry(".wh.")], "invalid whiteout"),
    ([TarEntry(".wh.etc/file")], "whiteout prefix"),
    ([TarEntry("f", data=b"x"), TarEntry("h", "hardlink", linkname=".wh.f")], "whiteout"),
    ([TarEntry("h", "hardlink", linkname="nothere")], "not in this layer"),
    ([TarEntry("d/", "dir"), TarEntry("h", "hardlink", linkname="d")], "directory"),
    ([TarEntry("f", data=b"x", uid=2**32, mode=0o4755)], "out of range"),  # would truncate to root
    ([TarEntry("f", data=b"x", gid=2**32 - 1)], "out of range"),
    ([TarEntry("f", data=b"x"), TarEntry("f/g", data=b"y")], "not a directory"),
])
def test_bad_entries_are_rejected(store, canary, entries, needle):
    with pytest.raises(LayerError, match=needle):
        unpack(store, make_tar(entries))
    assert_nothing_left(store)
    assert not os.path.exists("/tmp/kpy-evil")


@pytest.mark.parametrize("name", [".", "./", "/"])
def test_root_cannot_become_a_symlink(store, canary, name):  # CVE-2021-29136
    tar = raw_tar([(_ti(name, tarfile.SYMTYPE, linkname=canary), b""), (_ti("pwn", size=1), b"x")])
    with pytest.raises(LayerError, match="root"):
        unpack(store, tar)
    assert_nothing_left(store)


def test_absolute_names_are_rerooted(store):
    fs = unpack(store, raw_tar([(_ti("/etc/kpy-evil-abs", size=1), b"x")]))
    assert os.path.isfile(f"{fs}/etc/kpy-evil-abs")
    assert not os.path.exists("/etc/kpy-evil-abs")


def test_hardlink_to_outside_symlink_never_chmods_host(store, canary):  # CVE-2021-32760
    f = os.path.join(canary, "file")
    fs = unpack(store, make_tar([TarEntry("tmp/kpy/outside", "symlink", linkname=f),
                                 TarEntry("sketchy", "hardlink", linkname="tmp/kpy/outside", mode=0o777)]))
    assert os.readlink(f"{fs}/sketchy") == f  # the link is to the symlink itself
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o400


def test_dir_swapped_for_symlink_between_entries(store, canary):  # CVE-2025-47290 analogue
    fs = unpack(store, make_tar([TarEntry("d/", "dir"), TarEntry("d", "symlink", linkname=canary),
                                 TarEntry("d/pwn", data=b"1"), TarEntry("d/", "dir"), TarEntry("d/pwn2", data=b"2")]))
    assert os.path.isdir(f"{fs}/d") and os.listdir(f"{fs}/d") == ["pwn2"]


def test_whiteout_under_symlinked_parent_stays_inside(store):
    fs = unpack(store, make_tar([TarEntry("L", "symlink", linkname="/etc"), TarEntry("L/.wh.passwd")]))
    st = os.lstat(f"{fs}/etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.path.isfile("/etc/passwd") and os.path.getsize("/etc/passwd") > 0


def test_injected_overlay_xattrs_are_dropped(store):
    fs = unpack(store, make_tar([TarEntry("d/", "dir", xattrs={"trusted.overlay.opaque": "y",
                                                               "trusted.overlay.redirect": "/x"})]))
    assert "trusted.overlay.opaque" not in os.listxattr(f"{fs}/d")
    assert "trusted.overlay.redirect" not in os.listxattr(f"{fs}/d")


def test_realpath_bypass_chain_stays_inside(store, canary):  # CPython CVE-2025-4517 shape
    entries, path = [], ""
    for i in range(16):
        long = chr(ord("a") + i) * 247
        entries.append(TarEntry(f"{path}{long}/", "dir"))
        entries.append(TarEntry(f"{path}{chr(ord('a') + i)}", "symlink", linkname=long))
        path += f"{chr(ord('a') + i)}/"
    up = "../" * 40 + canary.lstrip("/")
    entries.append(TarEntry(f"{path}" + "l" * 254, "symlink", linkname=up))
    entries.append(TarEntry(f"{path}" + "l" * 254 + "/pwn", data=b"x"))
    fs = unpack(store, make_tar(entries))
    assert os.path.isfile(f"{fs}{canary}/pwn")


def test_gzip_bomb_stops_at_limit(tmp_root):
    store = ImageStore(tmp_root, UnpackLimits(max_bytes=8 << 20))
    tar = make_tar([TarEntry("zeros", data=bytes(32 << 20))])
    with pytest.raises(LimitExceeded, match="uncompressed size exceeds the max-layer-size limit"):
        unpack(store, tar)
    assert_nothing_left(store)


def test_zero_padding_bomb_stops_at_limit(tmp_root):
    store = ImageStore(tmp_root, UnpackLimits(max_bytes=4 << 20))
    tar = make_tar([TarEntry("f", data=b"x")]) + bytes(16 << 20)
    with pytest.raises(LimitExceeded, match="uncompressed size exceeds the max-layer-size limit"):
        unpack(store, tar)
    assert_nothing_left(store)


def test_huge_pax_header_is_refused_before_reading(store):
    hdr = _ti("././@PaxHeader", tarfile.XHDTYPE, size=2**31).tobuf(format=tarfile.USTAR_FORMAT)
    t0 = time.monotonic()
    with pytest.raises(LayerError, match="special tar header"):
        unpack(store, hdr + b"30 path=" + b"a" * 4096)
    assert time.monotonic() - t0 < 5
    assert_nothing_left(store)


def test_sparse_members_are_refused(store):
    ti = _ti("sparse", tarfile.GNUTYPE_SPARSE, size=0)
    tar = ti.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024)
    with pytest.raises(LayerError, match="sparse"):
        unpack(store, tar)
    assert_nothing_left(store)


def test_random_bytes_in_gzip_are_not_a_tar(store):  # CVE-2021-20291 shape
    t0 = time.monotonic()
    with pytest.raises(LayerError):
        unpack(store, os.urandom(1 << 20))
    assert time.monotonic() - t0 < 10
    assert_nothing_left(store)


def test_tar_truncated_mid_entry(store):
    tar = make_tar([TarEntry("big", data=os.urandom(100_000))])
    with pytest.raises(LayerError, match="unexpected end|truncated"):
        unpack(store, tar[:50_000], diff_id="sha256:" + hashlib.sha256(tar).hexdigest())
    assert_nothing_left(store)


def test_truncated_gzip(store):
    tar = make_tar([TarEntry("big", data=os.urandom(100_000))])
    blob = gzip.compress(tar)[:-100]
    digest = store.put_blob("t", blob)
    with pytest.raises(LayerError, match="truncated gzip"):
        store.unpack(digest, "sha256:" + hashlib.sha256(tar).hexdigest(), [])
    assert_nothing_left(store)


def test_unsupported_compression_is_an_error(store):
    digest = store.put_blob("t", b"\xfd7zXZ\x00" + bytes(100))
    with pytest.raises(LayerError, match="unsupported compression xz"):
        store.unpack(digest, "sha256:" + "0" * 64, [])
    assert_nothing_left(store)


def test_diff_id_mismatch_leaves_no_snapshot(store):
    with pytest.raises(DigestMismatch, match="diff_id"):
        unpack(store, make_tar([TarEntry("f", data=b"x")]), diff_id="sha256:" + "1" * 64)
    assert_nothing_left(store)


def test_false_claim_of_existing_diff_id_is_caught(store):  # CVE-2014-8178
    real = make_tar([TarEntry("f", data=b"real")])
    fs = unpack(store, real)
    diff = "sha256:" + hashlib.sha256(real).hexdigest()
    evil = store.put_blob("evil", compress(make_tar([TarEntry("f", data=b"evil")]), "gzip"))
    with pytest.raises(DigestMismatch):
        store.unpack(evil, diff, [])
    assert open(f"{fs}/f").read() == "real"


def test_many_opaque_markers_stay_linear(store):  # GHSA-rp3h-jf77-q9p4 shape, scaled down
    files = [TarEntry("big/", "dir")] + [TarEntry(f"big/f{i:06d}") for i in range(5000)]
    plain = make_tar(files)
    t0 = time.monotonic()
    unpack(store, plain)
    base = time.monotonic() - t0
    marked = make_tar(files + [TarEntry("big/.wh..wh..opq") for _ in range(2000)])
    t0 = time.monotonic()
    unpack(store, marked)
    assert time.monotonic() - t0 < 2 * base + 1.0
