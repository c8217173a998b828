"""The daemon's health state, on a clock the test moves."""

from __future__ import annotations

from cdc_sio.health import Health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_needs_a_connection_a_role_and_a_recent_round_trip() -> None:
    """Ready only while connected, outside an outage, as leader or standby, with a round trip in 3 intervals."""
    clock = Clock()
    health = Health(clock)
    assert not health.ready(5)
    health.connected, health.role = True, "leader"
    assert not health.ready(5)  # no round trip yet
    health.probed()
    assert health.ready(5)
    clock.now += 16
    assert not health.ready(5)
    health.probed()
    health.role = "stopping"
    assert not health.ready(5)


def test_an_outage_is_reported_once_and_shown_until_it_ends() -> None:
    """The first failure starts the outage (to be logged once); later ones only update the last error."""
    clock = Clock()
    health = Health(clock)
    health.connected, health.role, health.backlog = True, "leader", 12
    health.probed()
    first = health.start_outage("redis", "ConnectionError: refused")
    assert first is not None and first.service == "redis"
    assert health.start_outage("redis", "ConnectionError: reset") is None
    assert not health.ready(5)
    clock.now += 42
    assert health.summary() == "outage: redis unavailable for 42 s (ConnectionError: refused); backlog 12"
    assert health.last_error == "ConnectionError: reset"
    ended = health.end_outage()
    assert ended is first and health.end_outage() is None


def test_status_lines_for_each_role() -> None:
    """STATUS= says the role, the backlog and its age, the lag and what was published."""
    health = Health(Clock())
    assert health.summary() == "starting"
    health.role, health.backlog, health.oldest_age, health.lag, health.published = "leader", 3, 1.25, 0.0123, 9
    assert health.summary() == "leader: backlog 3 (oldest 1.2 s), lag 12 ms, published 9"
    health.role = "standby"
    assert health.summary() == "standby: another daemon holds the leader lock; backlog 3 (oldest 1.2 s)"


def test_live_means_the_loops_still_turn() -> None:
    """A daemon whose loop has not turned for the stall limit is not live."""
    clock = Clock()
    health = Health(clock)
    clock.now += 29
    assert health.live(30)
    clock.now += 2
    assert not health.live(30)
    health.progressed()
    assert health.live(30)


def test_errors_in_the_health_report_are_masked() -> None:
    """An outage's error text goes through the log redaction before STATUS= and /healthz show it."""
    health = Health(Clock())
    health.start_outage("postgres", "cannot connect to postgresql://app:pw-123@db/app")
    assert health.report(5, 30)["outage"] == {
        "service": "postgres",
        "error": "cannot connect to postgresql://app:***@db/app",
    }
