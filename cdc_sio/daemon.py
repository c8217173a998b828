"""The daemon: wire the change log to Redis, keep doing it through outages, and show how it goes.

One session = a LISTEN connection, a worker connection that holds the leader lock and claims
batches, and the Redis client. The listener is connected (and LISTENing) before the first
read, so a change committed at any moment is either read now or announced later; polling
every ``poll_interval`` covers a notification that never arrives. Beside the session, a
watcher does the health round trip (a NOTIFY that must come back through the LISTEN
connection, and a Redis PING) and only then tells systemd's watchdog that all is well.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import sqlalchemy.exc
from redis.exceptions import RedisError

from cdc_sio import capture, httpd, logs, pg, publish
from cdc_sio.catalog import TableShapes, table_shapes
from cdc_sio.config import Config
from cdc_sio.emitter import Batch, Emitter, Encoded
from cdc_sio.errors import ConfigError, EncodingError
from cdc_sio.health import Health
from cdc_sio.metrics import Metrics
from cdc_sio.migrate import migrations, validate
from cdc_sio.routing import Change, Emission, route, too_large
from cdc_sio.systemd import Notifier
from cdc_sio.templates import TemplateError

log = logs.get("cdc_sio.daemon")

RECOVERABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a connection whose protocol state broke (it was killed mid-query)
    sqlalchemy.exc.DBAPIError,  # from migrate.validate's reflection
    RedisError,
)
QUERY_TIMEOUT = 30.0  # the watcher's backlog query and its own row
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Backoff:
    """Capped exponential delays with jitter, so a fleet of daemons does not retry in step."""

    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self.first, self.cap, self.attempt = first, cap, 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * (1 << min(self.attempt, 30)))
        self.attempt += 1
        jitter: float = random.uniform(0.5, 1.0)
        return delay * jitter

    def reset(self) -> None:
        self.attempt = 0


async def run(config: Config, stop: asyncio.Event, *, once: bool = False) -> None:
    """Publish changes until *stop* is set (or, with *once*, until nothing is waiting)."""
    await Daemon(config).run(stop, once=once)


@dataclasses.dataclass
class Outcome:
    """What one claimed batch became."""

    changes: int = 0
    messages: int = 0
    published: Counter[str] = dataclasses.field(default_factory=Counter)  # table -> changes
    parked: Counter[str] = dataclasses.field(default_factory=Counter)  # table -> changes
    no_receivers: Counter[str] = dataclasses.field(default_factory=Counter)  # namespace -> messages
    lags: list[float] = dataclasses.field(default_factory=list)  # seconds from commit to publish


class _Lost:
    """Why the session must end: the LISTEN connection closed, or a health round trip failed."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.error: BaseException | None = None

    def set(self, error: BaseException) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()

    def check(self) -> None:
        if self.error is not None:
            raise self.error


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier | None = None,
        load_config: Callable[[], Config] | None = None,
    ) -> None:
        """*load_config* reads the configuration again for :meth:`reload` (SIGHUP)."""
        self.config = config
        self.shapes = TableShapes({}, {})  # of the tables in self.config, read at each (re)connection
        self.notifier = notifier or Notifier(None)
        self.load_config = load_config
        self.metrics = Metrics()
        self.health = Health()
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.started_at = datetime.now(UTC)
        self.last_error_at: datetime | None = None
        self.backoff = Backoff()
        self._ready_sent = False
        self._reload_lock = asyncio.Lock()
        logs.add_secrets(logs.url_secrets(config.postgres.dsn, config.redis.url))

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Publish until *stop* is set; then finish the batch in flight within ``shutdown_timeout``."""
        server = None
        if self.config.http.listen is not None:
            server = await httpd.serve(*self.config.http.listen, self._routes())
        reporter = asyncio.create_task(self._report())
        work = asyncio.create_task(self._supervise(stop, once))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
            self.notifier.stopping()
            timeout = self.config.daemon.shutdown_timeout
            if not work.done():
                self.health.role = "stopping"
                log.info("stopping", shutdown_timeout_s=timeout)
                await asyncio.wait({work}, timeout=timeout)
            if not work.done():
                log.warning("shutdown_timed_out", shutdown_timeout_s=timeout, batch="rolled back, published next run")
                await _cancel(work)
                return
            await work
        finally:
            for task in (stopping, reporter, work):
                await _cancel(task)
            if server is not None:
                server.close()
            log.info("stopped", published=self.health.published)

    async def reload(self) -> bool:
        """Read and check the configuration again; put it in force, or keep the old one and log why not."""
        if self.load_config is None:
            return False
        async with self._reload_lock:
            try:
                new = self.load_config()
                shapes = table_shapes(new, await validate(new, check_filters=False))
            except ConfigError as error:
                log.error("config_rejected", error=str(error), keeping=self.config.source)
                return False
            except RECOVERABLE as error:
                reason = f"cannot check it against the database: {logs.describe_error(error)}"
                log.error("config_rejected", error=reason, keeping=self.config.source)
                return False
            logs.add_secrets(logs.url_secrets(new.postgres.dsn, new.redis.url))
            changed = _changed_sections(self.config, new)
            if "http" in changed:
                log.warning("config_needs_restart", key="http.listen")
            self.config, self.shapes = new, shapes
            log.info("config_reloaded", changed=",".join(changed) or "nothing", tables=len(new.tables))
            return True

    async def _supervise(self, stop: asyncio.Event, once: bool) -> None:
        while not stop.is_set():
            emitter = Emitter.from_config(self.config.socketio)
            try:
                if await self._session(self.config, emitter, stop, once=once):
                    return
            except RECOVERABLE as error:
                self._outage(error)
                await _wait_for(stop, self.backoff.next_delay())
            finally:
                await emitter.aclose()

    async def _session(self, config: Config, emitter: Emitter, stop: asyncio.Event, *, once: bool) -> bool:
        """Connect and publish; True when done (stopped, or caught up with *once*), False to reconnect."""
        self.health.progressed()
        self.shapes = table_shapes(config, await validate(config, check_filters=False))
        listener = await pg.connect(config.postgres.dsn, "listener")
        try:
            worker = await pg.connect(config.postgres.dsn, "worker")
            try:
                await _check_migrated(worker)
                wake, lost = asyncio.Event(), _Lost()
                closed = ConnectionError("the LISTEN connection was closed")
                listener.add_termination_listener(lambda _: lost.set(closed))
                await capture.listen(listener, wake)
                probe = capture.NotifyProbe(listener)
                await probe.start()
                await emitter.ping()
                self.health.connected = True
                redis_urls = " ".join(dict.fromkeys(t.redis.url for t in config.socketio.targets))
                log.info("connected", postgres=config.postgres.dsn, redis=redis_urls, tables=len(config.tables))
                watcher = asyncio.create_task(self._watch(listener, worker.get_server_pid(), emitter, probe, lost))
                try:
                    return await self._lead(config, worker, emitter, stop, wake, lost, once=once)
                finally:
                    await _cancel(watcher)
                    if stop.is_set():
                        with contextlib.suppress(*RECOVERABLE):
                            await capture.forget_daemons(worker, self.host, self.pid)
            finally:
                await _close(worker)
        finally:
            self.metrics.leader.set(0)
            await _close(listener)

    async def _lead(
        self,
        config: Config,
        worker: asyncpg.Connection,
        emitter: Emitter,
        stop: asyncio.Event,
        wake: asyncio.Event,
        lost: _Lost,
        *,
        once: bool,
    ) -> bool:
        while not await capture.try_lead(worker):
            if self.health.role != "standby":
                self._set_role("standby")
                log.info("standby", reason="another daemon holds the leader lock")
            self._working()
            self.health.progressed()
            if await _wait_for(stop, config.daemon.poll_interval, lost.event):
                return True
            lost.check()
            if self._must_reconnect(config):
                return False
        fence = publish.Fence.of(*await capture.next_epoch(worker))
        log.info("leader_elected", epoch=fence.epoch)
        self._set_role("leader")
        commit_timestamps = await capture.commit_timestamps_enabled(worker)
        while not stop.is_set():
            lost.check()
            if self._must_reconnect(config):
                return False
            wake.clear()
            self._mark_ready()
            batch = await self.publish_batch(worker, emitter, commit_timestamps=commit_timestamps, fence=fence)
            self._working()
            if batch.changes == self.config.daemon.batch_size:
                continue
            if once:
                return True
            await _wait_for(stop, self.config.daemon.poll_interval, wake, lost.event)
        return True

    async def publish_batch(
        self, worker: asyncpg.Connection, emitter: Emitter, *, commit_timestamps: bool, fence: publish.Fence
    ) -> Outcome:
        """Claim one batch, publish it, and commit; on any error the batch waits to be retried."""
        config, shapes = self.config, self.shapes
        started = time.monotonic()
        batch = Outcome()
        try:
            async with worker.transaction():
                limit = config.daemon.batch_size
                records = await capture.claim_batch(worker, limit, commit_timestamps=commit_timestamps)
                batch.changes = len(records)
                published = []
                messages = emitter.batch()
                namespaces: dict[int, list[str]] = defaultdict(list)  # per Redis client, as its commands go
                for record in records:
                    try:
                        change = capture.to_change(record, shapes.binary_columns.get(record["table_name"], ()))
                        emissions = route(change, config, shapes.keys)
                        encoded = [encode(config, messages, emission, change, shapes) for emission in emissions]
                    except Exception as error:  # one bad row must never stop the stream: park it, with the reason
                        reason = (
                            str(error)
                            if isinstance(error, TemplateError | EncodingError)
                            else f"{type(error).__name__}: {error}"
                        )
                        log.error("change_parked", id=record["id"], table=record["table_name"], reason=reason)
                        await capture.park(worker, record, reason)
                        batch.parked[record["table_name"]] += 1
                        continue
                    published.append(record)
                    messages.extend(encoded)
                    for emission, operation in zip(emissions, encoded, strict=True):
                        for index, _ in operation.commands:
                            namespaces[index].append(emission.namespace)
                batch.messages = len(messages)
                replies = await messages.send(fence)
        except RECOVERABLE:
            self.metrics.failed.inc(batch.changes)
            raise
        now = datetime.now(UTC)
        batch.published.update(record["table_name"] for record in published)
        for index, client_replies in enumerate(replies):
            pairs = zip(namespaces[index], client_replies, strict=True)
            batch.no_receivers.update(namespace for namespace, reply in pairs if reply == 0)
        batch.lags = [(now - record["committed_at"]).total_seconds() for record in published]
        self._count(batch, records)
        if batch.changes:
            log.debug(
                "batch_published",
                changes=batch.changes,
                messages=batch.messages,
                parked=sum(batch.parked.values()),
                lag_ms=round(max(batch.lags, default=0.0) * 1000, 1),
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        return batch

    def _count(self, batch: Outcome, records: list[asyncpg.Record]) -> None:
        metrics = self.metrics
        for table, count in Counter(record["table_name"] for record in records).items():
            metrics.captured.labels(table).inc(count)
        for table, count in batch.published.items():
            metrics.published.labels(table).inc(count)
        for table, count in batch.parked.items():
            metrics.dead_lettered.labels(table).inc(count)
        for namespace, count in batch.no_receivers.items():
            metrics.no_receivers.labels(namespace).inc(count)
        for lag in batch.lags:
            metrics.lag.observe(lag)
        if batch.changes:
            metrics.batch_size.observe(batch.changes)
            self.health.lag = batch.lags[-1] if batch.lags else self.health.lag
        self.health.published += sum(batch.published.values())
        self.health.dead_lettered += sum(batch.parked.values())

    async def _watch(
        self,
        listener: asyncpg.Connection,
        backend_pid: int,
        emitter: Emitter,
        probe: capture.NotifyProbe,
        lost: _Lost,
    ) -> None:
        """The health round trip, then WATCHDOG=1; on failure, end the session (it reconnects)."""
        while True:
            interval = self._probe_interval()
            try:
                async with asyncio.timeout(max(interval, 5.0)):
                    await probe.round_trip()
                    await emitter.ping()
                async with asyncio.timeout(QUERY_TIMEOUT):
                    backlog = await capture.backlog(listener)
                    await capture.record_daemon(listener, self._record(backend_pid))
            except RECOVERABLE as error:
                log.debug("round_trip_failed", error=logs.describe_error(error))
                lost.set(error)
                return
            self.health.backlog, self.health.oldest_age = backlog.waiting, backlog.oldest_age
            self.metrics.backlog.set(backlog.waiting)
            self.metrics.oldest_age.set(backlog.oldest_age or 0.0)
            self.metrics.queue_usage.set(backlog.queue_usage)
            self.health.probed()
            log.debug("round_trip", backlog=backlog.waiting)
            if self.health.live(self._stalled_after()):
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _report(self) -> None:
        """STATUS= and the ready gauge every probe interval; an info summary every summary interval."""
        last_summary, published, parked = time.monotonic(), 0, 0
        while True:
            self.notifier.status(self.health.summary())
            self.metrics.ready.set(1 if self.health.ready(self._probe_interval()) else 0)
            if time.monotonic() - last_summary >= self.config.daemon.summary_interval:
                log.info(
                    "summary",
                    role=self.health.role,
                    published=self.health.published - published,
                    dead_lettered=self.health.dead_lettered - parked,
                    backlog=self.health.backlog,
                    lag_ms=None if self.health.lag is None else round(self.health.lag * 1000, 1),
                    outage=None if self.health.outage is None else self.health.outage.service,
                )
                last_summary, published, parked = time.monotonic(), self.health.published, self.health.dead_lettered
            await asyncio.sleep(min(self._probe_interval(), self.config.daemon.summary_interval))

    def _routes(self) -> httpd.Routes:
        def health(*keys: str) -> Callable[[], httpd.Response]:
            def respond() -> httpd.Response:
                report = self.health.report(self._probe_interval(), self._stalled_after())
                ok = all(report[key] for key in keys)
                body = json.dumps(report).encode() + b"\n"
                return httpd.Response(200 if ok else 503, "application/json", body)

            return respond

        return {
            "/metrics": lambda: httpd.Response(200, METRICS_CONTENT_TYPE, self.metrics.exposition()),
            "/healthz": health("ready", "live"),
            "/healthz/ready": health("ready"),
            "/healthz/live": health("live"),
        }

    def _record(self, backend_pid: int) -> capture.DaemonRecord:
        lag = self.health.lag
        return capture.DaemonRecord(
            host=self.host,
            pid=self.pid,
            backend_pid=backend_pid,
            role=self.health.role,
            started_at=self.started_at,
            published=self.health.published,
            lag_ms=None if lag is None else lag * 1000,
            last_error=self.health.last_error,
            last_error_at=self.last_error_at,
        )

    def _working(self) -> None:
        """The session did real work (a batch published, a standby turn): an outage, if any, is over."""
        self._mark_ready()
        self.health.progressed()
        outage = self.health.end_outage()
        if outage is not None:
            self.backoff.reset()
            log.info("outage_ended", service=outage.service, duration_s=round(time.monotonic() - outage.since, 1))
            self.metrics.reconnects.labels(outage.service).inc()
            self.notifier.status(self.health.summary())

    def _outage(self, error: BaseException) -> None:
        service = "redis" if isinstance(error, RedisError) else "postgres"
        self.last_error_at = datetime.now(UTC)
        self.health.role = "starting" if self.health.role == "starting" else "reconnecting"
        outage = self.health.start_outage(service, logs.describe_error(error))
        if outage is not None:
            log.warning("outage_started", service=service, error=outage.error)
            self.notifier.status(self.health.summary())
        else:
            log.debug("retry_failed", service=service, error=logs.describe_error(error))
        self.health.progressed()

    def _set_role(self, role: str) -> None:
        self.health.role = role
        self.metrics.leader.set(1 if role == "leader" else 0)
        self.notifier.status(self.health.summary())

    def _mark_ready(self) -> None:
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready(self.health.summary())
            log.info("ready", role=self.health.role)

    def _must_reconnect(self, config: Config) -> bool:
        """A new DSN or new Socket.IO targets (their Redis, key or adapter) take a new session."""
        return self.config.postgres != config.postgres or self.config.socketio != config.socketio

    def _probe_interval(self) -> float:
        interval = self.config.daemon.probe_interval
        if self.notifier.watchdog_interval is not None:
            interval = min(interval, self.notifier.watchdog_interval / 3)
        return interval

    def _stalled_after(self) -> float:
        daemon = self.config.daemon
        return max(30.0, 3 * daemon.poll_interval, 3 * self._probe_interval())


def encode(config: Config, messages: Batch, emission: Emission, change: Change, shapes: TableShapes) -> Encoded:
    """The emission's commands; an event over ``max_event_bytes`` for any target becomes a marker with the row's key."""
    encoded = messages.encode(emission)
    if encoded.size > config.daemon.max_event_bytes:
        log.warning("event_too_large", id=change.id, table=change.table, bytes=encoded.size)
        encoded = messages.encode(too_large(emission, change, shapes.keys.get(change.table, ()), encoded.size))
    return encoded


def _changed_sections(old: Config, new: Config) -> list[str]:
    names = [field.name for field in dataclasses.fields(Config) if field.name != "source"]
    return [name for name in names if getattr(old, name) != getattr(new, name)]


async def _check_migrated(connection: asyncpg.Connection) -> None:
    applied: set[int] = set()
    if await connection.fetchval("SELECT to_regclass('cdc_sio.schema_migrations') IS NOT NULL"):
        applied = {r["version"] for r in await connection.fetch("SELECT version FROM cdc_sio.schema_migrations")}
    missing = [m for m in migrations() if m.version not in applied]
    if missing:
        raise ConfigError(
            f"the database lacks cdc-sio migration {missing[0].version:04d}_{missing[0].name}: "
            "run 'cdc-sio migrate --config FILE' first"
        )


async def _wait_for(stop: asyncio.Event, timeout: float, *events: asyncio.Event) -> bool:
    """Wait until *stop* or any of *events* is set, or *timeout* passes; return whether stop is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (stop, *events)]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return stop.is_set()


async def _cancel(task: asyncio.Task[object], timeout: float = 5.0) -> None:
    """Cancel *task* and wait for it to end, cancelling again if a library swallowed the cancellation."""
    deadline = time.monotonic() + timeout
    while not task.done() and time.monotonic() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: an error after the cancellation is of no interest any more


async def _close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), timeout=5)
    except RECOVERABLE:
        connection.terminate()
