"""The README's first command works: a new user sees events reach a socket.io-client."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from pathlib import Path

import asyncpg

from tests.support import ADMIN_DSN, database_dsn, forget_fencing_key, free_port

ROOT = Path(__file__).parents[2]


async def test_quickstart_shows_events_flowing_to_the_client() -> None:
    database = f"cdc_sio_quickstart_{secrets.token_hex(4)}"
    environment = {**os.environ, "QUICKSTART_ONCE": "1", "QUICKSTART_DB": database, "QUICKSTART_PORT": str(free_port())}
    process = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / "scripts/quickstart.sh"), env=environment, stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 240)
    finally:
        await forget_fencing_key(database_dsn(database))
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    assert process.returncode == 0, out.decode()
    received = [json.loads(line) for line in out.decode().splitlines() if line.startswith('{"event"')]
    assert [r["event"] for r in received] == ["Thing::update", "Thing::delete"]
    assert received[0]["args"][0] == {"id": 1, "org_id": 1, "name": "renamed by psql", "importance": 150}
