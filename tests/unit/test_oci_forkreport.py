"""The one fork-and-report protocol (runtime/linux/forkreport.py) on its own: no root needed,
the cgroup step is the caller's callable. The final process is a grandchild: this process is
its subreaper while a test runs, so it can reap it."""

from __future__ import annotations

import os

import pytest

from runtime.errors import RuntimeFailure
from runtime.linux import forkreport
from runtime.linux import sys as ksys


class Boom(RuntimeFailure):
    pass


@pytest.fixture(autouse=True)
def subreaper():
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
    yield
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 0)
    while True:  # nothing of a test may be left behind
        try:
            assert os.waitpid(-1, os.WNOHANG)[0] == 0, "a process of the test was left unreaped"
            return
        except ChildProcessError:
            return


def _joined(log: list):
    return lambda pid: log.append(pid)


def test_the_final_process_is_reported_and_its_own_lines_come_through():
    joined: list[int] = []

    def final(rep, go):
        os.write(rep, f"Xfrom {os.getpid()}\n".encode())
        if os.read(go, 1) == b"k":
            os._exit(3)
        os._exit(4)

    with forkreport.spawn(lambda: None, final, _joined(joined), Boom, "test") as proc:
        lines = []
        for line in proc.reports():
            lines.append(line)
            if line.startswith("X"):
                proc.go(b"k")
        child = proc.child_pid()
    assert joined == [proc.pid]  # the intermediate was put in the "cgroup" before it went on
    assert f"P{child}" in lines and f"Xfrom {child}" in lines  # in either order: two writers
    assert forkreport.reap(child) == 3


def test_an_error_of_the_final_process_is_raised_as_the_callers_type_in_one_line():
    def final(_rep, _go):
        raise ValueError("boom\nsecond line")

    with pytest.raises(Boom, match=r"^starting: ValueError: boom second line$"):
        with forkreport.spawn(lambda: None, final, lambda pid: None, Boom, "starting") as proc:
            proc.wait()


def test_an_error_of_enter_comes_back_before_any_final_process():
    def enter():
        raise OSError(1, "setns: Operation not permitted")

    ran = []
    with pytest.raises(Boom, match=r"x failed: \[Errno 1\] setns: Operation not permitted") as e:
        with forkreport.spawn(enter, lambda r, g: ran.append(1), lambda pid: None, Boom, "x failed") as proc:
            proc.wait()
    assert proc.child is None and e.value.kind == "INTERNAL"


def test_a_final_process_that_reports_nothing_vanished():
    with forkreport.spawn(lambda: os._exit(0), lambda r, g: None, lambda pid: None, Boom, "gone") as proc:
        with pytest.raises(Boom, match="gone: the process vanished"):
            proc.wait()


def test_when_joining_the_cgroup_fails_the_intermediate_never_goes_on(tmp_path):
    marker = tmp_path / "entered"

    def join(pid):
        raise OSError(13, "cgroup.procs: Permission denied")

    with pytest.raises(OSError, match="Permission denied"):
        forkreport.spawn(lambda: marker.write_text("x"), lambda r, g: None, join, Boom, "x")
    assert not marker.exists()
    # killed and reaped: no child of this process is left (but the supervisors' zygote, if an
    # earlier test in this process started it)
    from runtime.supervisor.launch import ZYGOTE
    from tests.integration.leaks import own_children
    assert own_children(but=(ZYGOTE.pid(),)) == []


def test_reap_reports_signals_as_a_shell_does():
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), 9)
    assert forkreport.reap(pid) == 137
    assert forkreport.reap(pid) == 255  # not ours (any more)
