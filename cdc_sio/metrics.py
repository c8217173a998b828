"""The daemon's Prometheus metrics, in a registry of its own (two daemons in one process stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.captured = Counter(
            "cdc_sio_changes_captured", "Changes read from the change log", ["table"], registry=registry
        )
        self.published = Counter(
            "cdc_sio_changes_published", "Changes whose events Redis accepted", ["table"], registry=registry
        )
        self.failed = Counter(
            "cdc_sio_changes_failed",
            "Changes in batches that failed to publish and wait to be retried",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "cdc_sio_changes_dead_lettered", "Changes parked in cdc_sio.dead_letters", ["table"], registry=registry
        )
        self.no_receivers = Counter(
            "cdc_sio_publish_no_receivers",
            "Redis PUBLISH calls that reached no subscriber (no Socket.IO server listening)",
            ["namespace"],
            registry=registry,
        )
        self.backlog = Gauge("cdc_sio_backlog_changes", "Changes waiting in the change log", registry=registry)
        self.oldest_age = Gauge(
            "cdc_sio_backlog_oldest_age_seconds", "Age of the oldest waiting change", registry=registry
        )
        self.lag = Histogram(
            "cdc_sio_publish_lag_seconds", "From commit to publish, per change", buckets=LAG_BUCKETS, registry=registry
        )
        self.batch_size = Histogram(
            "cdc_sio_batch_changes", "Changes per published batch", buckets=BATCH_BUCKETS, registry=registry
        )
        self.reconnects = Counter(
            "cdc_sio_reconnects", "Sessions re-established after an outage", ["service"], registry=registry
        )
        self.queue_usage = Gauge(
            "cdc_sio_notification_queue_usage",
            "PostgreSQL's pg_notification_queue_usage(), 0 to 1",
            registry=registry,
        )
        self.leader = Gauge("cdc_sio_leader", "1 while this daemon holds the leader lock", registry=registry)
        self.ready = Gauge("cdc_sio_ready", "1 while connected and healthy", registry=registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
