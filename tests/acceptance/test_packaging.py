"""The wheel carries everything: installed in a fresh virtual environment, cdc-sio migrates a database."""

from __future__ import annotations

import asyncio
import sys
import zipfile
from pathlib import Path

import asyncpg

ROOT = Path(__file__).parents[2]


async def run(*args: str | Path, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *map(str, args), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_the_wheel_installs_and_migrates_outside_the_checkout(tmp_path: Path, dsn: str) -> None:
    await run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ROOT, cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("cdc_sio-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "cdc_sio/migrations/0001_initial.sql" in names and "cdc_sio/sql/read_batch.sql" in names
    assert not [n for n in names if n.startswith("tests/")]

    venv = tmp_path / "venv"
    await run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    await run(venv / "bin/pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=tmp_path)
    assert "cdc-sio 0.1.0" in await run(venv / "bin/python", "-m", "cdc_sio", "--version", cwd=tmp_path)

    config = tmp_path / "c.toml"
    config.write_text(f'[postgres]\ndsn = "{dsn}"\n[[tables]]\ntable = "things"\n[tables.events]\ninsert = "c"\n')
    out = await run(venv / "bin/cdc-sio", "migrate", "--config", config, cwd=tmp_path)
    assert "apply migration 0001_initial" in out and "install capture on public.things" in out
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("INSERT INTO things (id) VALUES (1)")
        assert await connection.fetchval("SELECT count(*) FROM cdc_sio.changes") == 1
    finally:
        await connection.close()
