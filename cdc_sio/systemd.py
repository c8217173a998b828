"""sd_notify(3) without libsystemd: datagrams to ``$NOTIFY_SOCKET`` (READY, STATUS, WATCHDOG, STOPPING).

Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing. A send that fails is logged once
and never stops the daemon.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from cdc_sio import logs

log = logs.get("cdc_sio.systemd")


class Notifier:
    def __init__(self, address: str | None, watchdog_interval: float | None = None) -> None:
        """*address*: a socket path, or ``@name`` for an abstract socket. *watchdog_interval*: seconds, or None."""
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_interval = watchdog_interval
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: int | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` (ignored when ``WATCHDOG_PID`` names another process)."""
        interval = None
        usec = environ.get("WATCHDOG_USEC", "")
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        mine = not watchdog_pid or watchdog_pid == str(os.getpid() if pid is None else pid)
        if usec.isdigit() and int(usec) > 0 and mine:
            interval = int(usec) / 1_000_000
        return cls(environ.get("NOTIFY_SOCKET") or None, interval)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        if self.watchdog_interval is not None:
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def send(self, *assignments: str) -> None:
        if self.address is None:
            return
        message = "\n".join(a.replace("\n", " ") for a in assignments).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)
            self._socket.sendto(message, self.address)
            self._failed = False
        except OSError as error:
            if not self._failed:
                log.warning("sd_notify_failed", error=logs.describe_error(error))
            self._failed = True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
