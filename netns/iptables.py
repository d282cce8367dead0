"""Edge: apply rules.TableChange values with python-iptables (the legacy tables, through libiptc).

Each TableChange is ONE libiptc transaction: refresh the table, make every change in memory, commit
once (libiptc replaces the whole table atomically), or commit nothing when nothing changed. Rules
are never committed one by one. `commits` counts the commits per table (the benchmark reads it).

libiptc is read-modify-write on the whole table, so every transaction holds a process lock
(python-iptables' Table objects are process-wide singletons and not thread-safe) and the
`/run/xtables.lock` flock that iptables-legacy itself takes, so no other writer's change is lost."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import Iterable, Iterator

import iptc

from .errors import RuleError
from .rules import BUILTIN, Expect, Rule, TableChange

XTABLES_LOCK = os.environ.get("XTABLES_LOCKFILE", "/run/xtables.lock")
LOCK_WAIT_S = 5.0          # iptables -w 5
COMMIT_TRIES = 3
_EAGAIN = os.strerror(errno.EAGAIN)

commits: Counter = Counter()
_lock = threading.RLock()
_warm = False


@contextmanager
def locked() -> Iterator[None]:
    """The process lock and the xtables flock, as `iptables -w` takes it."""
    with _lock:
        fd = os.open(XTABLES_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RuleError("*", "*", f"another app holds {XTABLES_LOCK} for more than {LOCK_WAIT_S:g} s") from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)


def _table(name: str) -> iptc.Table:
    t = iptc.Table(name, autocommit=False)
    t.refresh()
    return t


def _set(obj, opt: str, value: str | None) -> None:
    # parse(), not setattr: an option may share a name with an attribute (recent's --name)
    neg = opt.startswith("!")
    obj.parse(opt.lstrip("!"), ("!" if neg else "") + (value or ""))


def to_iptc(rule: Rule) -> iptc.Rule:
    r = iptc.Rule()
    if rule.src:
        r.src = rule.src
    if rule.dst:
        r.dst = rule.dst
    if rule.protocol:
        r.protocol = rule.protocol
    for m in rule.matches:
        im = r.create_match(m.name)
        for opt, val in m.args:
            _set(im, opt, val)
    t = r.create_target(rule.target)
    for opt, val in rule.target_args:
        _set(t, opt, val)
    return r


def warm() -> None:
    """Load the xtables extensions once (the first Rule built costs about 0.1 s of dlopen)."""
    global _warm
    if _warm:
        return
    with _lock:
        from .rules import Match
        for rule in (
            Rule("X", "MASQUERADE", src="10.0.0.1/32", dst="!224.0.0.0/4", protocol="tcp", matches=(
                Match("tcp", (("dport", "1"),)), Match("comment", (("comment", "w"),)),
                Match("addrtype", (("dst-type", "LOCAL"),)), Match("mark", (("mark", "0x1/0x1"),)),
                Match("conntrack", (("!ctstate", "DNAT"),)))),
            Rule("X", "DNAT", protocol="udp", matches=(Match("udp", (("dport", "1"),)),),
                 target_args=(("to-destination", "10.0.0.1:1"),)),
            Rule("X", "MARK", target_args=(("set-xmark", "0x1/0x1"),)),
            Rule("X", "RETURN"), Rule("X", "DROP"),
        ):
            to_iptc(rule)
        _warm = True


def _targets(t: iptc.Table, chain: str) -> list[str]:
    """Target names of a chain's rules, read from the raw entries (no rule decoding)."""
    out = []
    e = t.first_rule(chain)
    while e:
        name = t.get_target(e)
        out.append(name.decode() if name else "")
        e = t.next_rule(e)
    return out


def _delete_jumps(t: iptc.Table, chain: str, target: str) -> bool:
    changed = False
    for i in reversed([i for i, name in enumerate(_targets(t, chain)) if name == target]):
        if t._iptc.iptc_delete_num_entry(chain.encode(), i, t._handle) != 1:
            raise RuleError(t.name, chain, f"cannot delete rule {i + 1} (jump to {target}): {t.strerror()}")
        changed = True
    return changed


def _exists(t: iptc.Table, chain: str) -> bool:
    return chain in BUILTIN.get(t.name, ()) or t.is_chain(chain)


def _apply_one(ch: TableChange) -> bool:
    t = _table(ch.table)
    changed = False
    where = ch.table
    try:
        for spec in ch.replace:
            where = spec.name
            if not t.is_chain(spec.name):
                t.create_chain(spec.name)
        for spec in ch.replace:
            where = spec.name
            t.flush_entries(spec.name)
            c = iptc.Chain(t, spec.name)
            for r in spec.rules:
                c.append_rule(to_iptc(r))
            changed = True
        for spec in ch.ensure:
            where = spec.name
            if not t.is_chain(spec.name):
                t.create_chain(spec.name)
                for r in spec.rules:
                    iptc.Chain(t, spec.name).append_rule(to_iptc(r))
                changed = True
        for j in ch.jumps:
            where = j.chain
            if j.target not in _targets(t, j.chain):
                iptc.Chain(t, j.chain).insert_rule(to_iptc(j), 0)
                changed = True
        for name in ch.remove:
            where = name
            if not t.is_chain(name):
                continue
            for ref in ch.referrers:
                if ref != name and _exists(t, ref):
                    changed |= _delete_jumps(t, ref, name)
            t.flush_entries(name)
            t.delete_chain(name)
            changed = True
        for spec in ch.add:
            where = spec.name
            t.create_chain(spec.name)
            for r in spec.rules:
                iptc.Chain(t, spec.name).append_rule(to_iptc(r))
            changed = True
        for r in ch.append:
            where = r.chain
            iptc.Chain(t, r.chain).append_rule(to_iptc(r))
            changed = True
        if changed:
            where = "COMMIT"
            t.commit()
            commits[ch.table] += 1
    except iptc.IPTCError as e:
        t.refresh()   # drop the half-made in-memory table
        raise RuleError(ch.table, where, str(e)) from None
    except RuleError:
        t.refresh()
        raise
    return changed


def apply(changes: Iterable[TableChange]) -> int:
    """Apply each change in its own single commit; returns how many commits were made."""
    changes = [c for c in changes if not c.empty]
    if not changes:
        return 0
    warm()
    n = 0
    with locked():
        for ch in changes:
            for attempt in range(COMMIT_TRIES):
                try:
                    n += _apply_one(ch)
                    break
                except RuleError as e:
                    # the kernel refuses a table replaced under us (a writer that skipped the
                    # xtables lock): the whole transaction is redone on a fresh copy
                    if e.chain != "COMMIT" or _EAGAIN not in e.why or attempt == COMMIT_TRIES - 1:
                        raise
    return n


def _chain_names(t: iptc.Table) -> list[str]:
    """Names straight from libiptc (Table.chains makes a Chain object for each)."""
    out = []
    name = t._iptc.iptc_first_chain(t._handle)
    while name:
        out.append(name.decode())
        name = t._iptc.iptc_next_chain(t._handle)
    return out


def chains(table: str) -> list[str]:
    with locked():
        return _chain_names(_table(table))


def snapshot(table: str, builtins: Iterable[str] = ()) -> tuple[list[str], dict[str, list[str]]]:
    """(every chain name, the targets of each of `builtins`' rules) from ONE read of the table."""
    with locked():
        t = _table(table)
        return _chain_names(t), {b: _targets(t, b) if _exists(t, b) else [] for b in builtins}


def targets(table: str, chain: str) -> list[str]:
    with locked():
        t = _table(table)
        return _targets(t, chain) if _exists(t, chain) else []


def _live(t: iptc.Table, chain: str, target: str | None) -> list[iptc.Rule]:
    """The chain's rules (only those jumping to `target`, when given), decoded."""
    c = iptc.Chain(t, chain)
    out = []
    e = t.first_rule(chain)
    while e:
        name = t.get_target(e)
        if target is None or (name.decode() if name else "") == target:
            out.append(t.create_rule(e, c))
        e = t.next_rule(e)
    return out


def unmet(expects: Iterable[Expect]) -> list[str]:
    """What of `expects` the live tables do not hold, one line each (empty: all there). Reads
    only; compares the rules as libiptc would commit them."""
    expects = list(expects)
    if not expects:
        return []
    warm()
    out = []
    with locked():
        tables: dict[str, iptc.Table] = {}
        for x in expects:
            t = tables.get(x.table) or tables.setdefault(x.table, _table(x.table))
            where = f"iptables {x.table}/{x.chain}"
            if not _exists(t, x.chain):
                if x.present:
                    out.append(f"{where}: chain missing")
                continue
            if not x.present:
                out.append(f"{where}: chain should not exist")
                continue
            what = f"rules to {x.target}" if x.target else "rules"
            live = _live(t, x.chain, x.target)
            want = []
            try:
                for r in x.rules:
                    w = to_iptc(r)
                    w.final_check()      # what a commit would store (MASQUERADE's range count, ...)
                    want.append(w)
            except iptc.XTablesError as e:   # a jump to a chain that is gone: it cannot be there
                out.append(f"{where}: {what} missing: {e}")
                continue
            if len(live) != len(want) or any(a != b for a, b in zip(want, live)):
                out.append(f"{where}: {what} differ from the plan ({len(live)} live, {len(want)} planned)")
    return out
