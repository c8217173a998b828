"""What operators see and do: metrics, /healthz, cdc-sio status, SIGHUP reload, shutdown timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis
from prometheus_client.parser import text_string_to_metric_families

from cdc_sio import capture
from cdc_sio.config import Config
from cdc_sio.daemon import Daemon
from cdc_sio.errors import ConfigError
from cdc_sio.status import read_status
from tests.servers import RedisServer
from tests.support import LogEvents, Subscriber, free_port, make_config, migrate_database, row_of, running_daemon


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


async def test_metrics_and_healthz_describe_the_running_daemon(
    dsn: str, key: str, db: asyncpg.Connection, log_events: LogEvents
) -> None:
    """Published, captured, lag and batch histograms, no-receiver counts and health, over plain HTTP."""
    port = free_port()
    config = make_config(dsn, key, http=f"127.0.0.1:{port}", probe_interval=0.1)
    await migrate_database(config)
    subscriber = Subscriber(key)
    await subscriber.start()
    try:
        async with running_daemon(config):
            await db.executemany("INSERT INTO things (id, org_id) VALUES ($1, 1)", [(i,) for i in range(1, 6)])
            await subscriber.until(lambda e: row_of(e)["id"] == 5)
            await subscriber.close()
            await db.execute("INSERT INTO things (id) VALUES (6)")  # nobody subscribed: zero receivers
            await log_events.wait("batch_published", len(log_events.named("batch_published")) + 1)
            rounds = len(log_events.named("round_trip"))
            await log_events.wait("round_trip", rounds + 1)

            status, body = await http_get(port, "/metrics")
            assert status == 200
            values = samples(body)
            table = (("table", "public.things"),)
            assert values[("cdc_sio_changes_captured_total", table)] == 6
            assert values[("cdc_sio_changes_published_total", table)] == 6
            assert values[("cdc_sio_publish_lag_seconds_count", ())] == 6
            assert values[("cdc_sio_batch_changes_count", ())] >= 2
            assert values[("cdc_sio_publish_no_receivers_total", (("namespace", "/"),))] == 1
            assert values[("cdc_sio_backlog_changes", ())] == 0
            assert values[("cdc_sio_leader", ())] == 1
            assert values[("cdc_sio_changes_failed_total", ())] == 0

            status, body = await http_get(port, "/healthz")
            assert status == 200 and b'"role": "leader"' in body and b'"ready": true' in body
            assert (await http_get(port, "/healthz/live"))[0] == 200
            assert (await http_get(port, "/healthz/ready"))[0] == 200
            assert (await http_get(port, "/nope"))[0] == 404
    finally:
        await subscriber.close()


async def test_status_shows_leader_standby_and_the_last_error(
    dsn: str, key: str, db: asyncpg.Connection, log_events: LogEvents
) -> None:
    """cdc-sio status names the leader and the standby, and the last error a daemon recovered from."""
    fast = make_config(dsn, key, probe_interval=0.1)
    await migrate_database(fast)
    first, second = Daemon(fast), Daemon(fast)
    second.pid += 1  # two daemons of one process: tell their rows apart
    async with running_daemon(first), running_daemon(second):
        await log_events.wait("standby")
        await log_events.wait("round_trip", 4)  # both have recorded themselves
        status = await read_status(db, fast)
        assert sorted(d.state for d in status.daemons) == ["leader", "standby"]
        leader = next(d for d in status.daemons if d.state == "leader")
        assert leader.last_error is None

        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'cdc-sio:listener'"
        )
        await log_events.wait("outage_ended", 2)
        rounds = len(log_events.named("round_trip"))
        await log_events.wait("round_trip", rounds + 4)
        status = await read_status(db, fast)
        assert sorted(d.state for d in status.daemons) == ["leader", "standby"]
        assert {d.last_error for d in status.daemons} == {"ConnectionError: the LISTEN connection was closed"}
        text = status.render()
        assert "  leader   " in text and "  standby  " in text and "last error at" in text
    assert (await read_status(db, fast)).daemons == []  # both removed their rows when they stopped


async def test_reload_puts_new_routes_in_force_and_rejects_a_bad_config(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber, log_events: LogEvents
) -> None:
    """SIGHUP's reload: new routes apply to the next change; an invalid config is refused, the old one stays."""
    before = {"table": "things", "rooms": ["thing:{id}"], "events": {"insert": "Thing::create"}}
    after = {"table": "things", "rooms": ["org:{org_id}"], "events": {"insert": "Thing::created"}}
    missing = {"table": "nope", "events": {"insert": "Nope::create"}}
    configs: list[Config | ConfigError] = [make_config(dsn, key, after)]
    service = Daemon(make_config(dsn, key, before), load_config=lambda: _next(configs))
    await migrate_database(service.config)
    async with running_daemon(service):
        await db.execute("INSERT INTO things (id, org_id) VALUES (1, 10)")
        _, emission = await subscriber.next()
        assert (emission.event, emission.rooms) == ("Thing::create", ("thing:1",))

        assert await service.reload()
        assert log_events.named("config_reloaded")[-1]["changed"] == "tables"
        await db.execute("INSERT INTO things (id, org_id) VALUES (2, 20)")
        _, emission = await subscriber.next()
        assert (emission.event, emission.rooms) == ("Thing::created", ("org:20",))

        configs += [ConfigError("app.toml: tables[0].events: name an event"), make_config(dsn, key, missing)]
        assert not await service.reload()
        assert not await service.reload()
        rejected = [fields["error"] for fields in log_events.named("config_rejected")]
        assert rejected[0] == "app.toml: tables[0].events: name an event"
        assert "table public.nope does not exist" in rejected[1]
        await db.execute("INSERT INTO things (id, org_id) VALUES (3, 30)")
        _, emission = await subscriber.next()
        assert (emission.event, emission.rooms) == ("Thing::created", ("org:30",))


def _next(configs: list[Config | ConfigError]) -> Config:
    item = configs.pop(0)
    if isinstance(item, ConfigError):
        raise item
    return item


async def test_stop_finishes_the_batch_in_flight_or_leaves_it_waiting_after_the_timeout(
    dsn: str,
    key: str,
    db: asyncpg.Connection,
    spare_redis: RedisServer,
    log_events: LogEvents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch stuck in a paused Redis: finished if Redis answers within shutdown_timeout, else left in the log."""
    read = asyncio.Event()
    read_batch = capture.read_batch

    async def spy(*args: Any, **options: Any) -> list[Any]:
        records = await read_batch(*args, **options)
        if records:
            read.set()
        return records

    monkeypatch.setattr(capture, "read_batch", spy)
    admin = redis.Redis.from_url(spare_redis.url)
    subscriber = Subscriber(key, spare_redis.url)
    await subscriber.start()
    try:
        for pause_ms, timeout, published in ((300, 10.0, True), (5000, 0.3, False)):
            config = make_config(dsn, key, redis_url=spare_redis.url, shutdown_timeout=timeout)
            await migrate_database(config)
            stop = asyncio.Event()
            task = asyncio.create_task(Daemon(config).run(stop))
            await log_events.wait("ready", len(log_events.named("ready")) + 1)
            await admin.execute_command("CLIENT", "PAUSE", str(pause_ms), "WRITE")
            read.clear()
            await db.execute("INSERT INTO things (id) VALUES ($1)", pause_ms)
            await asyncio.wait_for(read.wait(), 10)  # the change is in a batch whose PUBLISH waits in Redis
            stop.set()
            await asyncio.wait_for(task, timeout + 5)
            waiting = await db.fetchval("SELECT count(*) FROM cdc_sio.changes")
            if published:
                _, emission = await subscriber.next()
                assert row_of(emission)["id"] == pause_ms and waiting == 0
            else:
                assert waiting == 1, "a batch cut off by the timeout waits for the next run"
                assert log_events.named("shutdown_timed_out")
                await admin.execute_command("CLIENT", "UNPAUSE")
    finally:
        await subscriber.close()
        await admin.aclose()


async def test_an_http_address_in_use_is_a_configuration_error(dsn: str, key: str) -> None:
    """http.listen on a port another process holds: a ConfigError naming the key (exit 78), nothing started."""
    holder = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = holder.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=rf"test.toml: http.listen: cannot listen on 127.0.0.1:{port}: "):
            await Daemon(make_config(dsn, key, http=f"127.0.0.1:{port}")).run(asyncio.Event())
    finally:
        holder.close()
        await holder.wait_closed()
