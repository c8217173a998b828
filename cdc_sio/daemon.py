"""The daemon: wire the change log to Redis, keep doing it through outages, and show how it goes.

One session = a LISTEN connection, a worker connection that holds the leader lock and reads
batches, and the Redis clients of the targets. The listener is connected (and LISTENing) before the first
read, so a change committed at any moment is either read now or announced later; polling
every ``poll_interval`` covers a notification that never arrives. Beside the session, a
watcher does the health round trip (a NOTIFY that must come back through the LISTEN
connection, and a Redis PING) and only then tells systemd's watchdog that all is well.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from redis.exceptions import RedisError

from cdc_sio import batches, capture, httpd, logs, pg, publish
from cdc_sio.batches import Outcome
from cdc_sio.catalog import TableShapes, table_shapes
from cdc_sio.config import Config
from cdc_sio.emitter import Emitter
from cdc_sio.errors import ConfigError
from cdc_sio.health import Health
from cdc_sio.metrics import Metrics
from cdc_sio.migrate import migrations, validate
from cdc_sio.pump import LogReader, Pace
from cdc_sio.supervision import RECOVERABLE, Backoff, Lost, cancel, close, refused_credentials, wait_for
from cdc_sio.systemd import Notifier

log = logs.get("cdc_sio.daemon")

QUERY_TIMEOUT = 30.0  # the watcher's backlog query and its own row
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# Each change allocates a few dozen short-lived objects; at the default threshold (700) the cyclic
# collector would run every few changes (measured: a fifth of the daemon's CPU per change).
GC_THRESHOLD = 50_000


async def run(config: Config, stop: asyncio.Event, *, once: bool = False) -> None:
    """Publish changes until *stop* is set (or, with *once*, until nothing is waiting)."""
    await Daemon(config).run(stop, once=once)


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
        self.shapes = TableShapes({}, {}, {})  # of the tables in self.config, read at each (re)connection
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
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        server = None
        if self.config.http.listen is not None:
            host, port = self.config.http.listen
            try:
                server = await httpd.serve(host, port, self._routes())
            except OSError as error:
                where = f"{self.config.source}: http.listen"
                raise ConfigError(f"{where}: cannot listen on {host}:{port}: {error}") from None
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
                log.warning(
                    "shutdown_timed_out", shutdown_timeout_s=timeout, batch="left in the log, published next run"
                )
                await cancel(work)
                return
            await work
        finally:
            for task in (stopping, reporter, work):
                await cancel(task)
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
                if (refusal := refused_credentials(error)) is not None:
                    key = "redis.url" if isinstance(error, RedisError) else "postgres.dsn"
                    raise ConfigError(f"{self.config.source}: {key}: {logs.describe_error(refusal)}") from None
                self._outage(error)
                await wait_for(stop, self.backoff.next_delay())
            finally:
                await emitter.aclose()

    async def _session(self, config: Config, emitter: Emitter, stop: asyncio.Event, *, once: bool) -> bool:
        """Connect and publish; True when done (stopped, or caught up with *once*), False to reconnect."""
        self.health.progressed()
        self.shapes = table_shapes(config, await validate(config, check_filters=False))
        listener = await pg.connect(config.postgres.dsn, "listener")
        try:
            worker = await pg.connect(config.postgres.dsn, "worker", synchronous_commit=False)
            try:
                await _check_migrated(worker)
                wake, lost = asyncio.Event(), Lost()
                listener.add_termination_listener(lambda _: lost.set(_listen_closed()))
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
                    await cancel(watcher)
                    if stop.is_set():
                        with contextlib.suppress(*RECOVERABLE):
                            await capture.forget_daemons(worker, self.host, self.pid)
            finally:
                await close(worker)
        finally:
            self.metrics.leader.set(0)
            await close(listener)

    async def _lead(
        self,
        config: Config,
        worker: asyncpg.Connection,
        emitter: Emitter,
        stop: asyncio.Event,
        wake: asyncio.Event,
        lost: Lost,
        *,
        once: bool,
    ) -> bool:
        while not await capture.try_lead(worker):
            if self.health.role != "standby":
                self._set_role("standby")
                log.info("standby", reason="another daemon holds the leader lock")
            self._working()
            self.health.progressed()
            if await wait_for(stop, config.daemon.poll_interval, lost.event):
                return True
            lost.check()
            if self._must_reconnect(config):
                return False
        fence = publish.Fence.of(*await capture.next_epoch(worker))
        log.info("leader_elected", epoch=fence.epoch)
        self._set_role("leader")
        commit_timestamps = await capture.commit_timestamps_enabled(worker)
        pace = Pace(worker, self.config.daemon.poll_interval)
        reader = LogReader(worker, commit_timestamps=commit_timestamps)

        async def read() -> int:
            outcome = await self.publish_batch(reader, emitter, fence=fence)
            self._working()
            return outcome.changes

        try:
            while not stop.is_set():
                lost.check()
                if self._must_reconnect(config):
                    return False
                self._mark_ready()
                changes = await read()
                if changes == self.config.daemon.batch_size or reader.read_on:
                    continue
                if once:
                    return True
                await pace.wait(changes, read, stop, wake, lost.event)
            return True
        finally:
            await reader.close()

    async def publish_batch(self, reader: LogReader, emitter: Emitter, *, fence: publish.Fence) -> Outcome:
        started = time.monotonic()
        outcome = Outcome()
        try:
            await batches.publish_batch(self.config, self.shapes, reader, emitter, outcome, fence=fence)
        except RECOVERABLE:
            self.metrics.failed.inc(outcome.changes)
            raise
        self._count(outcome)
        if outcome.changes:
            log.debug(
                "batch_published",
                changes=outcome.changes,
                messages=outcome.messages,
                parked=sum(outcome.parked.values()),
                lag_ms=round(max(outcome.lags, default=0.0) * 1000, 1),
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        return outcome

    def _count(self, outcome: Outcome) -> None:
        metrics = self.metrics
        for counter, counts in (
            (metrics.captured, outcome.captured),
            (metrics.published, outcome.published),
            (metrics.dead_lettered, outcome.parked),
            (metrics.no_receivers, outcome.no_receivers),
        ):
            for label, count in counts.items():
                counter.labels(label).inc(count)
        for lag, changes in outcome.lags.items():
            metrics.lag.observe(lag, changes)
        if outcome.changes:
            metrics.batch_size.observe(outcome.changes)
        if outcome.lags:
            self.health.lag = next(reversed(outcome.lags))
        self.health.published += sum(outcome.published.values())
        self.health.dead_lettered += sum(outcome.parked.values())

    async def _watch(
        self,
        listener: asyncpg.Connection,
        backend_pid: int,
        emitter: Emitter,
        probe: capture.NotifyProbe,
        lost: Lost,
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
                # A terminated LISTEN connection can fail a query (InternalClientError) and close
                # without calling its termination listeners: then the closure is the reason.
                lost.set(_listen_closed() if listener.is_closed() else error)
                return
            self.health.backlog, self.health.oldest_age = backlog.waiting, backlog.oldest_age
            self.metrics.backlog.set(backlog.waiting)
            self.metrics.oldest_age.set(backlog.oldest_age or 0.0)
            self.metrics.queue_usage.set(backlog.queue_usage)
            self.health.probed()
            log.debug("round_trip", backlog=backlog.waiting)
            if self._ready_sent and self.health.live(self._stalled_after()):
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


def _listen_closed() -> ConnectionError:
    return ConnectionError("the LISTEN connection was closed")


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
