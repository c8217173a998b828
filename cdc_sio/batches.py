"""One batch: read the oldest changes, route and encode them, publish them under the leader's fence.

A row that cannot be routed or encoded is parked with its reason; on any other error the batch's
changes stay in the change log, to be published again (at least once).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, datetime

from cdc_sio import capture, logs, publish
from cdc_sio.catalog import TableShapes
from cdc_sio.config import Config
from cdc_sio.emitter import Batch, Emitter, Encoded
from cdc_sio.errors import EncodingError
from cdc_sio.pump import LogReader
from cdc_sio.routing import Change, Emission, Router, too_large
from cdc_sio.templates import TemplateError

log = logs.get("cdc_sio.daemon")

YIELD_EVERY = 128  # changes encoded between two turns of the event loop


@dataclasses.dataclass
class Outcome:
    """What one batch became; filled in as it goes, so a failed batch still says what it read."""

    changes: int = 0
    messages: int = 0
    captured: Counter[str] = dataclasses.field(default_factory=Counter)  # table -> changes read
    published: Counter[str] = dataclasses.field(default_factory=Counter)  # table -> changes
    parked: Counter[str] = dataclasses.field(default_factory=Counter)  # table -> changes
    no_receivers: Counter[str] = dataclasses.field(default_factory=Counter)  # namespace -> PUBLISH commands
    lags: dict[float, int] = dataclasses.field(default_factory=dict)  # seconds from commit to publish -> changes


async def publish_batch(
    config: Config,
    shapes: TableShapes,
    reader: LogReader,
    emitter: Emitter,
    outcome: Outcome,
    *,
    fence: publish.Fence,
) -> None:
    """Read one batch and publish it; on any error its changes wait in the log to be retried."""
    records = await reader.next(config.daemon.batch_size)
    outcome.changes = len(records)
    outcome.captured.update(record["table_name"] for record in records)
    published = []
    messages = emitter.batch()
    route = Router(config, shapes.keys)
    for number, record in enumerate(records, 1):
        if number % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # let a read ahead reach PostgreSQL meanwhile
        try:
            table = record["table_name"]
            change = capture.to_change(record, shapes.binary_columns.get(table, ()), shapes.excluded.get(table, ()))
            emissions = route(change)
            encoded = [encode(config, messages, emission, change, shapes) for emission in emissions]
        except Exception as error:  # one bad row must never stop the stream: park it, with the reason
            reason = (
                str(error) if isinstance(error, TemplateError | EncodingError) else f"{type(error).__name__}: {error}"
            )
            log.error("change_parked", id=record["id"], table=record["table_name"], reason=reason)
            await reader.park(record, reason)
            outcome.parked[record["table_name"]] += 1
            continue
        published.append(record)
        messages.extend(encoded)
    outcome.messages = len(messages)
    replies = await messages.send(fence)
    await reader.published()
    now = datetime.now(UTC)
    outcome.published.update(record["table_name"] for record in published)
    outcome.no_receivers.update(namespace for namespace, reply in replies if reply == 0)
    commits = Counter(record["committed_at"] for record in published)  # a statement's changes share one
    outcome.lags = {(now - capture.commit_time(moment)).total_seconds(): n for moment, n in commits.items()}


def encode(config: Config, messages: Batch, emission: Emission, change: Change, shapes: TableShapes) -> Encoded:
    """The emission's commands; an event over ``max_event_bytes`` for any target becomes a marker with the row's key."""
    encoded = messages.encode(emission)
    if encoded.size > config.daemon.max_event_bytes:
        log.warning("event_too_large", id=change.id, table=change.table, bytes=encoded.size)
        encoded = messages.encode(too_large(emission, change, shapes.keys.get(change.table, ()), encoded.size))
    return encoded
