"""The daemon's Prometheus metrics, in a registry of its own (two daemons in one process stay apart)."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.captured = self._counter("cdc_sio_changes_captured", "Changes read from the change log", "table")
        self.published = self._counter("cdc_sio_changes_published", "Changes whose events Redis accepted", "table")
        self.failed = self._counter("cdc_sio_changes_failed", "Changes in failed batches, waiting to be retried")
        self.dead_lettered = self._counter("cdc_sio_changes_dead_lettered", "Changes parked as dead letters", "table")
        self.no_receivers = self._counter(
            "cdc_sio_publish_no_receivers", "PUBLISH commands that no subscriber received", "namespace"
        )
        self.reconnects = self._counter("cdc_sio_reconnects", "Sessions re-established after an outage", "service")
        self.backlog = self._gauge("cdc_sio_backlog_changes", "Changes waiting in the change log")
        self.oldest_age = self._gauge("cdc_sio_backlog_oldest_age_seconds", "Age of the oldest waiting change")
        self.queue_usage = self._gauge("cdc_sio_notification_queue_usage", "pg_notification_queue_usage(), 0 to 1")
        self.leader = self._gauge("cdc_sio_leader", "1 while this daemon holds the leader lock")
        self.ready = self._gauge("cdc_sio_ready", "1 while connected and healthy")
        self.lag = CountedHistogram(
            "cdc_sio_publish_lag_seconds", "From commit to publish, per change", LAG_BUCKETS, self.registry
        )
        self.batch_size = self._histogram("cdc_sio_batch_changes", "Changes per published batch", BATCH_BUCKETS)

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, registry=self.registry)

    def _histogram(self, name: str, documentation: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, documentation, buckets=buckets, registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class CountedHistogram:
    """A histogram that records a value for many observations at once: the changes of one
    transaction share their lag, and observing each through prometheus_client cost 1.6 µs."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: above every bound
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float, count: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += count  # a bucket's bound is inclusive
        self.sum += value * count

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative = list(itertools.accumulate(self.counts))
        bounds = [*map(floatToGoString, self.bounds), "+Inf"]
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=list(zip(bounds, cumulative, strict=True)), sum_value=self.sum
        )
