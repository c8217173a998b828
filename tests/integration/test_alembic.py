"""A generated Alembic revision installs and removes exactly what cdc-sio migrate does."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg

from cdc_sio.catalog import sqlalchemy_url
from tests.support import REDIS_URL

ALEMBIC = Path(sys.executable).with_name("alembic")


async def run(*args: str | Path, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *map(str, args), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_alembic_upgrade_installs_capture_and_downgrade_removes_it(tmp_path: Path, dsn: str, key: str) -> None:
    await run(ALEMBIC, "init", "-t", "async", "migrations", cwd=tmp_path)
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text().replace("driver://user:pass@localhost/dbname", sqlalchemy_url(dsn)))
    config = tmp_path / "cdc-sio.toml"
    config.write_text(
        f'[postgres]\ndsn = "{dsn}"\n[redis]\nurl = "{REDIS_URL}"\n[socketio]\nkey = "{key}"\n'
        '[[tables]]\ntable = "things"\nrooms = ["thing:{id}"]\n[tables.events]\nupdate = "u"\ntruncate = "t"\n'
    )
    versions = tmp_path / "migrations" / "versions"
    (versions / "0001_app.py").write_text(
        'revision = "app0001"\ndown_revision = None\n\ndef upgrade() -> None: ...\n\ndef downgrade() -> None: ...\n'
    )
    out = await run(
        sys.executable, "-m", "cdc_sio", "alembic-revision", "--config", config, "--directory", versions, cwd=tmp_path
    )
    [written] = [p for p in versions.glob("*.py") if p.name != "0001_app.py"]
    assert f"wrote {written}" in out
    assert "down_revision = 'app0001'" in written.read_text()

    await run(ALEMBIC, "upgrade", "head", cwd=tmp_path)
    connection = await asyncpg.connect(dsn)
    try:
        triggers = await connection.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'things'::regclass AND NOT tgisinternal ORDER BY 1"
        )
        assert [r[0] for r in triggers] == ["cdc_sio_v1_truncate", "cdc_sio_v1_update"]
        applied = await connection.fetch("SELECT version FROM cdc_sio.schema_migrations ORDER BY 1")
        assert [r[0] for r in applied] == [1, 2, 3, 4, 5]
        code = await asyncio.create_subprocess_exec(sys.executable, "-m", "cdc_sio", "check", "--config", str(config))
        assert await asyncio.wait_for(code.wait(), 60) == 0  # the same install as migrate: no drift

        await connection.execute("INSERT INTO things (id) VALUES (1)")
        await connection.execute("UPDATE things SET v = 1")
        assert await connection.fetchval("SELECT count(*) FROM cdc_sio.changes") == 1

        await run(ALEMBIC, "downgrade", "app0001", cwd=tmp_path)
        assert await connection.fetchval("SELECT to_regnamespace('cdc_sio')") is None
        assert await connection.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'cdc_sio%'") == 0
        await connection.execute("UPDATE things SET v = 2")  # the application's writes still work
    finally:
        await connection.close()
