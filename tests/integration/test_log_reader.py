"""Batches read ahead, while the one before is published, and deleted only once published."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import pytest

from cdc_sio import capture, daemon, publish
from tests.support import Subscriber, make_config, meta_of, migrate_database, row_of

ROWS, ROUNDS = 20, 30


async def test_batches_read_ahead_keep_each_rows_order_and_publish_every_change_once(
    dsn: str, key: str, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In batches of 7, every full batch makes the daemon read the next one while it publishes; 20
    inserts and 600 updates of 20 rows still arrive once each, in each row's order, and the log is
    empty once the daemon stops."""
    reads: list[dict[str, Any]] = []
    read_batch = capture.read_batch

    async def spy(connection: asyncpg.Connection, limit: int, **options: Any) -> list[Any]:
        records = await read_batch(connection, limit, **options)
        reads.append({"pass_over": (), "delete": (), **options, "read": [record["id"] for record in records]})
        return records

    monkeypatch.setattr(capture, "read_batch", spy)
    config = make_config(dsn, key, batch_size=7)
    await migrate_database(config)
    db = await asyncpg.connect(dsn)
    try:
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(1, ROWS + 1)])
        for _ in range(ROUNDS):
            await db.execute("UPDATE things SET v = v + 1")
        await asyncio.wait_for(daemon.run(config, asyncio.Event(), once=True), timeout=60)
        assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0
    finally:
        await db.close()

    published = [emission for _, emission in [await subscriber.next() for _ in range(ROWS * (ROUNDS + 1))]]
    assert subscriber.received.empty()
    ids = [meta_of(e)["id"] for e in published]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    for row in range(1, ROWS + 1):
        versions = [row_of(e)["v"] for e in published if row_of(e)["id"] == row]
        assert versions == list(range(ROUNDS + 1))
    ahead = [read for read in reads if read["pass_over"]]
    assert len(ahead) >= ROWS * (ROUNDS + 1) // 7 - 1
    for before, read in itertools.pairwise(reads):
        if read["pass_over"]:  # read while the batch before was being published: passed over, not deleted
            assert read["pass_over"] == before["read"] and not set(read["read"]) & set(before["read"])
        assert not set(read["delete"]) & set(read["pass_over"])


async def test_the_delete_of_a_published_batch_reads_the_changes_that_came_meanwhile(
    dsn: str, key: str, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a backlog, the statement that deletes a published batch also reads the next one: changes
    committed while a batch was published go out next, without a read of their own (or a pause)."""
    reads: list[dict[str, Any]] = []
    read_batch, execute = capture.read_batch, publish.execute
    config = make_config(dsn, key, batch_size=5)
    await migrate_database(config)
    db = await asyncpg.connect(dsn)

    async def spy(connection: asyncpg.Connection, limit: int, **options: Any) -> list[Any]:
        records = await read_batch(connection, limit, **options)
        reads.append({"delete": (), **options, "read": [record["id"] for record in records]})
        return records

    async def meanwhile(*args: Any) -> list[Any]:
        if len(reads) == 1:
            await db.executemany("INSERT INTO things (id) VALUES ($1)", [(4,), (5,)])
        return await execute(*args)

    monkeypatch.setattr(capture, "read_batch", spy)
    monkeypatch.setattr(publish, "execute", meanwhile)
    try:
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(1,), (2,), (3,)])
        await asyncio.wait_for(daemon.run(config, asyncio.Event(), once=True), timeout=60)
        assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0
    finally:
        await db.close()

    published = [row_of(emission)["id"] for _, emission in [await subscriber.next() for _ in range(5)]]
    assert published == [1, 2, 3, 4, 5] and subscriber.received.empty()
    first, second, third = reads
    assert len(first["read"]) == 3 and second["delete"] == first["read"]
    assert len(second["read"]) == 2 and third["delete"] == second["read"] and third["read"] == []
