"""sd_notify: the address and watchdog rules (pure), and the datagrams a Notifier sends,
received on a real AF_UNIX datagram socket (a path and an abstract name)."""

from __future__ import annotations

import os
import secrets
import socket

import pytest

from kubelet_py.service.notify import Notifier, message, socket_address, watchdog_interval


@pytest.mark.parametrize("value,address", [("/run/systemd/notify", "/run/systemd/notify"),
                                           ("@/org/freedesktop/systemd1/notify/1", b"\0/org/freedesktop/systemd1/notify/1"),
                                           ("", None), (None, None), ("relative", None), ("vsock:2:1234", None)])
def test_socket_address(value, address):
    assert socket_address(value) == address


@pytest.mark.parametrize("env,interval", [({"WATCHDOG_USEC": "30000000"}, 15.0),
                                          ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "42"}, 0.5),
                                          ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "43"}, None),
                                          ({"WATCHDOG_USEC": "0"}, None), ({}, None), ({"WATCHDOG_USEC": "x"}, None)])
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_pid(env, interval):
    assert watchdog_interval(env, 42) == interval


def test_message_lines():
    assert message(READY=1, STATUS="serving\nnow") == b"READY=1\nSTATUS=serving now"


def _receiver(address) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(address)
    s.settimeout(5)
    return s


def test_from_environ_sends_to_a_path_and_takes_the_variables(tmp_path):
    path = str(tmp_path / "notify")
    with _receiver(path) as rx:
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid()), "OTHER": "x"}
        n = Notifier.from_environ(env)
        assert env == {"OTHER": "x"}  # children of the daemon never see them
        assert n.watchdog == 1.0
        assert n.send(READY=1, STATUS="serving")
        assert rx.recv(4096) == b"READY=1\nSTATUS=serving"
        assert n.send(WATCHDOG=1)
        assert rx.recv(4096) == b"WATCHDOG=1"
        n.close()


def test_abstract_socket_names():
    name = f"kpy-test-{secrets.token_hex(4)}"
    with _receiver(b"\0" + name.encode()) as rx:
        n = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert n.send(STOPPING=1)
        assert rx.recv(4096) == b"STOPPING=1"
        n.close()


def test_no_manager_no_error(tmp_path):
    assert not Notifier.from_environ({}).send(READY=1)
    n = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert n.enabled and not n.send(READY=1)  # logged, never raised: the daemon serves on
