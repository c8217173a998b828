"""sd_notify over a real datagram socket, as systemd would receive it."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdc_sio.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    receiver.bind(path)
    receiver.settimeout(5)
    yield receiver, path
    receiver.close()


def test_messages_arrive_as_systemd_reads_them(notify_socket: tuple[socket.socket, str]) -> None:
    """READY, STATUS, WATCHDOG and STOPPING are newline-separated assignments, one datagram per call."""
    receiver, path = notify_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"})
    assert notifier.watchdog_interval == 3.0
    notifier.ready("leader: backlog 0")
    notifier.status("two\nlines")
    notifier.watchdog()
    notifier.stopping()
    received = [receiver.recv(4096).decode() for _ in range(4)]
    notifier.close()
    assert received == [
        "READY=1\nSTATUS=leader: backlog 0",
        "STATUS=two lines",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_abstract_socket_names_start_with_at() -> None:
    """``@name`` in NOTIFY_SOCKET is a Linux abstract socket (a leading NUL byte)."""
    name = f"cdc-sio-test-{os.getpid()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    receiver.settimeout(5)
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        notifier.ready("standby")
        notifier.close()
        assert receiver.recv(4096) == b"READY=1\nSTATUS=standby"
    finally:
        receiver.close()


def test_watchdog_is_off_without_usec_or_for_another_pid(notify_socket: tuple[socket.socket, str]) -> None:
    """No WATCHDOG_USEC, or a WATCHDOG_PID of another process: WATCHDOG=1 is never sent."""
    receiver, path = notify_socket
    assert Notifier.from_environ({"NOTIFY_SOCKET": path}).watchdog_interval is None
    other = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, pid=2)
    assert other.watchdog_interval is None
    other.watchdog()
    other.status("still here")
    other.close()
    assert receiver.recv(4096) == b"STATUS=still here"
    mine = Notifier.from_environ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "42"}, pid=42)
    assert mine.watchdog_interval == 1.0


def test_without_notify_socket_nothing_is_sent() -> None:
    """Outside systemd every call is a no-op."""
    notifier = Notifier.from_environ({})
    notifier.ready("x")
    notifier.stopping()
    assert notifier._socket is None


def test_a_vanished_socket_is_logged_once_and_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """systemd's socket going away must not stop the daemon; the problem is logged once, not per message."""
    notifier = Notifier(str(tmp_path / "missing"))
    with caplog.at_level(logging.WARNING, logger="cdc_sio.systemd"):
        for _ in range(3):
            notifier.status("x")
    notifier.close()
    assert [r.msg for r in caplog.records] == ["sd_notify_failed"]
