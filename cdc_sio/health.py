"""What the daemon knows about its own health (pure state): role, outage, last round trip, backlog, lag.

The daemon updates it; ``/healthz``, systemd's ``STATUS=`` and ``cdc-sio status`` read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cdc_sio.logs import redact


@dataclass(frozen=True, slots=True)
class Outage:
    service: str  # "postgres" | "redis"
    error: str
    since: float  # monotonic seconds


class Health:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.role = "starting"  # "starting" | "standby" | "leader" | "reconnecting" | "stopping"
        self.connected = False
        self.outage: Outage | None = None
        self.probed_at: float | None = None  # the last successful health round trip
        self.progress_at = clock()  # the last turn of the daemon's loops
        self.backlog: int | None = None
        self.oldest_age: float | None = None
        self.lag: float | None = None  # seconds from commit to publish, last change published
        self.published = 0
        self.dead_lettered = 0
        self.last_error: str | None = None

    def progressed(self) -> None:
        self.progress_at = self.clock()

    def probed(self) -> None:
        self.probed_at = self.clock()

    def start_outage(self, service: str, error: str) -> Outage | None:
        """Record an outage; return it when it is new (to be logged once)."""
        self.connected = False
        self.last_error = redact(error)
        if self.outage is not None:
            return None
        self.outage = Outage(service, self.last_error, self.clock())
        return self.outage

    def end_outage(self) -> Outage | None:
        outage, self.outage = self.outage, None
        return outage

    def ready(self, probe_interval: float) -> bool:
        """Connected, no outage, and a health round trip succeeded recently."""
        fresh = self.probed_at is not None and self.clock() - self.probed_at <= 3 * probe_interval
        return self.connected and self.outage is None and fresh and self.role in ("leader", "standby")

    def live(self, stalled_after: float) -> bool:
        """The daemon's loops still turn (an outage being retried is alive; a hung call is not)."""
        return self.clock() - self.progress_at <= stalled_after

    def summary(self) -> str:
        """One line for systemd's ``STATUS=``."""
        backlog = "backlog unknown" if self.backlog is None else f"backlog {self.backlog}"
        if self.oldest_age is not None and self.backlog:
            backlog += f" (oldest {self.oldest_age:.1f} s)"
        if self.outage is not None:
            duration = self.clock() - self.outage.since
            return f"outage: {self.outage.service} unavailable for {duration:.0f} s ({self.outage.error}); {backlog}"
        if self.role == "leader":
            lag = "" if self.lag is None else f", lag {self.lag * 1000:.0f} ms"
            return f"leader: {backlog}{lag}, published {self.published}"
        if self.role == "standby":
            return f"standby: another daemon holds the leader lock; {backlog}"
        return self.role

    def report(self, probe_interval: float, stalled_after: float) -> dict[str, Any]:
        return {
            "ready": self.ready(probe_interval),
            "live": self.live(stalled_after),
            "role": self.role,
            "outage": None if self.outage is None else {"service": self.outage.service, "error": self.outage.error},
            "backlog": self.backlog,
            "oldest_age_s": self.oldest_age,
            "lag_s": self.lag,
            "published": self.published,
            "dead_lettered": self.dead_lettered,
            "last_error": self.last_error,
            "status": self.summary(),
        }
