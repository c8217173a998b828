"""Batches claimed ahead, on a second connection, while the one before is published."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from cdc_sio import capture, daemon
from tests.support import Subscriber, make_config, meta_of, migrate_database, row_of

ROWS, ROUNDS = 20, 30


async def test_batches_claimed_ahead_keep_each_rows_order_and_publish_every_change_once(
    dsn: str, key: str, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In batches of 7, every full batch makes the daemon claim the next one ahead (SKIP LOCKED) while
    it publishes; 20 inserts and 600 updates of 20 rows still arrive once each, in each row's order."""
    skip_locked_claims: list[bool] = []
    claim_batch = capture.claim_batch

    async def spy(connection: asyncpg.Connection, limit: int, **options: Any) -> list[Any]:
        skip_locked_claims.append(options.get("skip_locked", False))
        return await claim_batch(connection, limit, **options)

    monkeypatch.setattr(capture, "claim_batch", spy)
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
    assert skip_locked_claims.count(True) >= ROWS * (ROUNDS + 1) // 7 - 1
