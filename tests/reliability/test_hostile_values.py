"""Hostile values are delivered or parked with a reason: never a crash, never a stuck stream."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from cdc_sio import daemon, deadletters
from tests.support import Subscriber, make_config, meta_of, migrate_database, row_of

DDL = "CREATE TABLE docs (id int PRIMARY KEY, body text, doc jsonb, numbers int[], ratio float8)"


async def test_huge_deep_and_odd_values_never_stop_the_stream(dsn: str, key: str, subscriber: Subscriber) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(DDL)
        config = make_config(dsn, key, {"table": "docs", "payload": "row", "events": {"insert": "doc"}})
        await migrate_database(config)
        control = "".join(chr(c) for c in range(1, 32)) + "\u2028\u2029\ufeff\U0010ffff"
        deep = "[" * 2000 + "]" * 2000  # deeper than Python's json decoder goes
        await connection.execute("INSERT INTO docs (id, body) VALUES (1, $1)", "x" * 10 * 2**20)
        await connection.execute("INSERT INTO docs (id, doc) VALUES (2, $1::jsonb)", deep)
        await connection.execute("INSERT INTO docs (id, numbers) VALUES (3, $1)", list(range(200_000)))
        await connection.execute("INSERT INTO docs (id, body, ratio) VALUES (4, $1, 'NaN')", control)
        await connection.execute("INSERT INTO docs (id, ratio) VALUES (5, '-Infinity')")
        await connection.execute("INSERT INTO docs (id, doc) VALUES (6, $1::jsonb)", json.dumps({"k": ["v"] * 3}))
        await asyncio.wait_for(daemon.run(config, asyncio.Event(), once=True), timeout=120)

        published = {}
        while not subscriber.received.empty():
            _, emission = subscriber.received.get_nowait()
            published[meta_of(emission)["id"]] = emission
        rows = {row_of(e)["id"]: e for e in published.values()}
        assert sorted(rows) == [1, 3, 4, 5, 6]
        assert row_of(rows[1]) == {"id": 1} and meta_of(rows[1])["too_large"] is True  # over max_event_bytes
        assert row_of(rows[3])["numbers"] == list(range(200_000))
        assert row_of(rows[4])["body"] == control and row_of(rows[4])["ratio"] == "NaN"
        assert row_of(rows[5])["ratio"] == "-Infinity"
        assert row_of(rows[6])["doc"] == {"k": ["v", "v", "v"]}
        [parked] = await deadletters.list_dead_letters(connection)
        assert "\tpublic.docs\tinsert\t" in parked and "RecursionError" in parked
        assert await connection.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0
    finally:
        await connection.close()
