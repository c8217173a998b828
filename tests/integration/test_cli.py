"""The cdc-sio command, run as users run it: exit codes, printed SQL, status, run --once, tail."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncpg

from tests.support import REDIS_URL, forget_fencing_key

EX_CONFIG = 78


def write_config(path: Path, dsn: str, key: str, rooms: str = '["thing:{id}"]') -> Path:
    path.write_text(
        f"""
[postgres]
dsn = "{dsn}"
[redis]
url = "{REDIS_URL}"
[socketio]
key = "{key}"
[[tables]]
table = "things"
rooms = {rooms}
[tables.events]
update = "Thing::update"
"""
    )
    return path


async def cdc_sio(*args: str | Path, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdc_sio", *map(str, args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_config_errors_exit_78_with_one_clear_line(tmp_path: Path, dsn: str, key: str) -> None:
    bad = write_config(tmp_path / "bad.toml", dsn, key, rooms='["thing:{nope}"]')
    for command in ("check", "migrate", "run"):
        code, _, err = await cdc_sio(command, "--config", bad)
        assert code == EX_CONFIG, err
        assert "template 'thing:{nope}' names column 'nope'" in err
    code, _, err = await cdc_sio("check", "--config", tmp_path / "missing.toml")
    assert (code, err.strip()) == (
        EX_CONFIG,
        f"cdc-sio: configuration error: {tmp_path / 'missing.toml'}: file not found",
    )


async def test_run_before_migrate_says_what_to_do(tmp_path: Path, dsn: str, key: str) -> None:
    code, _, err = await cdc_sio("run", "--once", "--config", write_config(tmp_path / "c.toml", dsn, key))
    assert code == EX_CONFIG
    assert "run 'cdc-sio migrate --config FILE' first" in err


async def test_migrate_sql_status_run_once_and_tail(tmp_path: Path, dsn: str, key: str) -> None:
    config = write_config(tmp_path / "c.toml", dsn, key)
    code, sql, _ = await cdc_sio("migrate", "--sql", "--config", config)
    assert code == 0 and sql.startswith("BEGIN;") and "CREATE TRIGGER cdc_sio_v1_update" in sql
    code, out, _ = await cdc_sio("status", "--config", config)
    assert "public.things: not installed" in out

    code, out, _ = await cdc_sio("migrate", "--config", config)
    assert code == 0 and "install capture on public.things" in out
    code, out, _ = await cdc_sio("check", "--config", config)
    assert code == 0 and "fits the database" in out

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("INSERT INTO things (id, name) VALUES (7, 'x')")
        await connection.execute("UPDATE things SET name = 'y' WHERE id = 7")
    finally:
        await connection.close()
    code, out, _ = await cdc_sio("status", "--config", config)
    assert "public.things: up to date" in out and "changes waiting: 1," in out

    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdc_sio", "tail", "--config", str(config), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert tail.stdout is not None
        banner = await asyncio.wait_for(tail.stdout.readline(), 30)
        assert banner.startswith(b"# listening on")
        code, _, err = await cdc_sio("run", "--once", "--config", config)
        assert code == 0, err
        line = json.loads(await asyncio.wait_for(tail.stdout.readline(), 30))
    finally:
        tail.terminate()
        await asyncio.wait_for(tail.wait(), 10)
    assert line["namespace"] == "/" and line["rooms"] == ["thing:7"] and line["event"] == "Thing::update"
    assert line["args"][0]["name"] == "y"

    await forget_fencing_key(dsn)  # uninstall drops the deployment id that names it
    code, out, _ = await cdc_sio("migrate", "--uninstall", "--config", config)
    assert code == 0 and "drop schema cdc_sio" in out
