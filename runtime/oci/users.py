"""Users and groups of an image, from its own /etc/passwd and /etc/group (never NSS, never the
host's files): parsed as text, read inside the rootfs, regular files only, size-capped."""

from __future__ import annotations

from ..errors import FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, RuntimeFailure

from dataclasses import dataclass

from ..linux.paths import read_file_in_root

MAX_ID = 2**31 - 1  # containerd rejects ids above MaxInt32 (CVE-2024-40635)


class UserError(RuntimeFailure):
    """A user the image cannot give: INVALID_ARGUMENT (field process.user) for a malformed or
    out-of-range id, NOT_FOUND for a user or group name the image's files do not have (what is
    asked for is not there: CRI's runAsUserName/USER name), FAILED_PRECONDITION for an image
    whose /etc/passwd or /etc/group cannot be read."""

    def __init__(self, user: str, why: str, kind: str = INVALID_ARGUMENT):
        super().__init__(f"user {user!r}: {why}", kind=kind, obj=f"user {user}", field="process.user")
        self.user = user


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups from /etc/group


def _id(s: str, user: str) -> int:
    v = int(s)
    if not 0 <= v <= MAX_ID:
        raise UserError(user, f"id {v} out of range 0..{MAX_ID}")
    return v


def parse_passwd(text: str) -> dict[str, tuple[int, int]]:
    out = {}
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit() and f[0] not in out:
            out[f[0]] = (int(f[2]), int(f[3]))
    return out


def parse_group(text: str) -> list[tuple[str, int, list[str]]]:
    out = []
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[2].isdigit():
            out.append((f[0], int(f[2]), [m for m in f[3].split(",") if m]))
    return out


def _read(rootfs: str, path: str, user: str) -> str:
    try:
        return read_file_in_root(rootfs, path).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise UserError(user, f"cannot read {path} of the image: {e.strerror}", FAILED_PRECONDITION) from None


def resolve(rootfs: str, user: str, extra_groups: list[int] | None = None) -> ResolvedUser:
    """`user` as Docker's USER: `name`, `uid`, `name:group`, `uid:gid`. A name that is all digits
    is an id, never looked up (CVE-2016-3697)."""
    spec = user or "0"
    name, _, group = spec.partition(":")
    passwd = None
    if name.isdigit():
        uid = _id(name, spec)
        gid = 0
        passwd = parse_passwd(_read(rootfs, "/etc/passwd", spec))
        uname = next((n for n, (u, _g) in passwd.items() if u == uid), None)
        if uname is not None:
            gid = passwd[uname][1]
    else:
        passwd = parse_passwd(_read(rootfs, "/etc/passwd", spec))
        if name not in passwd:
            raise UserError(spec, "not found in the image's /etc/passwd", NOT_FOUND)
        uid, gid = passwd[name]
        uname = name
    groups_db = None
    if group:
        if group.isdigit():
            gid = _id(group, spec)
        else:
            groups_db = parse_group(_read(rootfs, "/etc/group", spec))
            hit = [g for n, g, _m in groups_db if n == group]
            if not hit:
                raise UserError(spec, f"group {group!r} not found in the image's /etc/group", NOT_FOUND)
            gid = hit[0]
    sup: list[int] = []
    if uname is not None:
        groups_db = groups_db if groups_db is not None else parse_group(_read(rootfs, "/etc/group", spec))
        sup = [g for _n, g, members in groups_db if uname in members]
    sup += list(extra_groups or [])
    for g in sup:
        if not 0 <= g <= MAX_ID:
            raise UserError(spec, f"group id {g} out of range")
    return ResolvedUser(uid, gid, tuple(sorted(set(sup) - {gid})))
