"""The documented minimum grants are enough, and no more: the daemon cannot read the application's tables,
and nothing another role sends can make cdc-sio publish an event that did not come from a committed change."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio

from cdc_sio import daemon
from tests.support import (
    ADMIN_DSN,
    THINGS_DDL,
    Subscriber,
    make_config,
    migrate_database,
    new_database,
    publish_sentinel,
    row_of,
)

ROOT = Path(__file__).parents[2]


def as_role(dsn: str, role: str) -> str:
    scheme, _, rest = dsn.partition("://")
    return f"{scheme}://{role}@{rest.partition('@')[2]}"


@pytest.fixture
async def roles() -> AsyncIterator[dict[str, str]]:
    suffix = secrets.token_hex(4)
    names = {kind: f"cdc_sio_test_{kind}_{suffix}" for kind in ("app", "owner", "daemon", "mallory")}
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        for name in names.values():
            await admin.execute(f'CREATE ROLE "{name}" LOGIN')
        yield names
    finally:
        for name in names.values():
            await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        await admin.close()


async def test_minimum_grants_capture_and_publish_and_nothing_more(
    roles: dict[str, str], key: str, subscriber: Subscriber
) -> None:
    async with new_database("SELECT 1") as dsn:
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'GRANT CREATE ON DATABASE "{dsn.rpartition("/")[2]}" TO "{roles["owner"]}"')
        await admin.execute(f'GRANT CREATE ON SCHEMA public TO "{roles["app"]}"')
        await admin.close()

        app = await asyncpg.connect(as_role(dsn, roles["app"]))
        await app.execute(THINGS_DDL)
        await app.execute(f'GRANT TRIGGER ON things TO "{roles["owner"]}"')  # all that migrate needs on it

        owner_config = make_config(as_role(dsn, roles["owner"]), key)
        await migrate_database(owner_config)
        psql = await asyncio.create_subprocess_exec(
            "psql", as_role(dsn, roles["owner"]), "-q", "-v", "ON_ERROR_STOP=1",
            "-v", f"daemon_role={roles['daemon']}", "-f", str(ROOT / "deploy/grants.sql"),
        )  # fmt: skip
        assert await asyncio.wait_for(psql.wait(), 30) == 0

        await app.execute("INSERT INTO things (id, org_id, secret) VALUES (7, 1, 's')")
        await app.execute("UPDATE things SET name = 'written by the app role' WHERE id = 7")

        mallory = await asyncpg.connect(as_role(dsn, roles["mallory"]))
        await mallory.execute(
            """NOTIFY cdc_sio_v1, '{"table": "public.things", "op": "insert", "data": {"id": 666}}'"""
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await mallory.execute(
                "INSERT INTO cdc_sio.changes (table_name, op, data) VALUES ('public.things', 'insert', '{}')"
            )
        await mallory.close()

        daemon_config = make_config(as_role(dsn, roles["daemon"]), key)
        await asyncio.wait_for(daemon.run(daemon_config, asyncio.Event(), once=True), timeout=60)
        client = redis.asyncio.Redis.from_url(daemon_config.redis.url)
        await publish_sentinel(client, key, "/")
        await client.aclose()
        published = await subscriber.until(lambda e: e.event == "sentinel")
        assert [(e.event, row_of(e).get("name")) for e in published[:-1]] == [
            ("Thing::create", None),
            ("Thing::update", "written by the app role"),
        ]

        reader = await asyncpg.connect(as_role(dsn, roles["daemon"]))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch("SELECT * FROM things")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute("INSERT INTO cdc_sio.changes (table_name, op, data) VALUES ('x', 'insert', '{}')")
        finally:
            await reader.close()
        await app.close()
