"""Batches read ahead, while the one before is published, and deleted only once published."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import pytest

from cdc_sio import capture, daemon, publish, pump
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


async def read_all(reader: pump.LogReader, reads: int = 3) -> list[int]:
    """The ids of *reads* batches, each published (deleted) before the next read."""
    ids = []
    for _ in range(reads):
        ids += [record["id"] for record in await reader.next(100)]
        await reader.published()
    return ids


async def test_reads_start_above_the_ids_that_can_no_longer_appear_and_never_skip_an_open_writer(dsn: str) -> None:
    """A change written before others but committed after them is still read (the "id > last seen"
    gap), and the floor that the reads start above rises only to ids whose writers all ended."""
    await migrate_database(make_config(dsn, "unused"))
    db, writer, worker = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(1, 4)])
        reader = pump.LogReader(worker, commit_timestamps=False, horizon_interval=0)  # a look before each read
        first = await read_all(reader)
        assert len(first) == 3 and reader.floor == first[-1]

        open_writer = writer.transaction()
        await open_writer.start()
        await writer.execute("INSERT INTO things (id) VALUES (10)")
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(11, 14)])
        later = await read_all(reader)
        assert len(later) == 3 and reader.floor == first[-1]
        await open_writer.commit()
        [late] = await read_all(reader)
        assert first[-1] < late < later[0]
        await read_all(reader)
        assert reader.floor == later[-1]
    finally:
        for connection in (db, writer, worker):
            await connection.close()


async def test_ids_that_start_over_bring_the_floor_down(dsn: str) -> None:
    await migrate_database(make_config(dsn, "unused"))
    db, worker = [await asyncpg.connect(dsn) for _ in range(2)]
    try:
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(1, 4)])
        reader = pump.LogReader(worker, commit_timestamps=False, horizon_interval=0)
        assert len(await read_all(reader)) == 3 and reader.floor == 3
        await db.execute("TRUNCATE cdc_sio.changes RESTART IDENTITY")
        await db.execute("INSERT INTO things (id) VALUES (4)")
        assert await read_all(reader) == [1] and reader.floor == 1
    finally:
        for connection in (db, worker):
            await connection.close()


async def test_a_look_at_the_id_horizon_takes_a_transaction_id_only_when_ids_were_handed_out(dsn: str) -> None:
    """An idle daemon's looks write nothing; once the writers of the ids seen have ended, they settle."""
    await migrate_database(make_config(dsn, "unused"))
    connection = await asyncpg.connect(dsn)
    try:
        first = await capture.id_horizon(connection, None)
        assert first.last_id == 0 and first.xact is not None
        assert (await capture.id_horizon(connection, first.last_id)).xact is None
        await connection.execute("INSERT INTO things (id) VALUES (1)")
        later = await capture.id_horizon(connection, first.last_id)
        assert later.last_id == 1 and later.xact is not None and later.xact > first.xact
        assert later.oldest_running > first.xact
    finally:
        await connection.close()
