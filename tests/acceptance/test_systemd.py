"""``cdc-sio run`` as systemd runs it: notifications in order, SIGHUP, SIGTERM, exit 0, nothing lost."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.support import DaemonProcess, Subscriber, make_config, migrate_database, row_of, write_config_file

ROOT = Path(__file__).parents[2]
PASSWORD = "pg-Secret-4711"  # trust auth ignores it; it must never be printed


async def test_the_daemon_speaks_sd_notify_reloads_on_sighup_and_stops_cleanly_on_sigterm(
    dsn: str, key: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    """READY=1 before any WATCHDOG=1; events flow; SIGHUP puts new event names in force; SIGTERM brings
    STOPPING=1 and exit code 0 with every change published; logs are JSON lines without the password."""
    await migrate_database(make_config(dsn, key))
    secret_dsn = dsn.replace("postgres@", f"postgres:{PASSWORD}@")
    config_path = write_config_file(tmp_path / "config.toml", secret_dsn, key, probe_interval=0.2)
    daemon = DaemonProcess(config_path, WATCHDOG_USEC="1500000")
    db = await asyncpg.connect(dsn)
    try:
        await daemon.start()
        before_ready = await daemon.notification("READY=1")
        assert not any(n.startswith("WATCHDOG=1") for n in before_ready)
        assert before_ready[-1].startswith("READY=1\nSTATUS=leader")
        await daemon.notification("WATCHDOG=1")

        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(1, 101)])
        first = await subscriber.until(lambda e: row_of(e)["id"] == 100)
        assert {e.event for e in first} == {"Thing::create"}

        write_config_file(config_path, secret_dsn, key, events="Item", probe_interval=0.2)
        daemon.send_signal(signal.SIGHUP)
        assert (await daemon.logs.wait("config_reloaded"))["changed"] == "tables"
        await db.execute("UPDATE things SET name = 'x' WHERE id = 1")
        _, emission = await subscriber.next()
        assert emission.event == "Item::update"

        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(101, 201)])
        daemon.send_signal(signal.SIGTERM)
        after_stop = await daemon.notification("STOPPING=1")
        assert after_stop[-1] == "STOPPING=1\nSTATUS=stopping"
        assert await daemon.wait() == 0
        # What the batch in flight did not take waits for the next run: run once more, and all arrived.
        rerun = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cdc_sio",
            "run",
            "--once",
            "--config",
            str(config_path),
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await asyncio.wait_for(rerun.wait(), 60) == 0
        assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0
    finally:
        await daemon.close()
        await db.close()
    published = {row_of(e)["id"] for e in await subscriber.until(lambda e: row_of(e)["id"] == 200)}
    assert set(range(101, 201)) <= published

    lines = [json.loads(line) for line in daemon.stderr]  # every line is JSON off a terminal
    events = [line["event"] for line in lines]
    for expected in ("connected", "leader_elected", "ready", "signal_received", "config_reloaded", "stopped"):
        assert expected in events
    assert PASSWORD not in "".join(daemon.stderr)
    assert "postgres:***@127.0.0.1" in next(line["postgres"] for line in lines if line["event"] == "connected")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
async def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """deploy/cdc-sio.service is a valid unit (checked with ExecStart pointed at this checkout's cdc-sio)."""
    unit = (ROOT / "deploy/cdc-sio.service").read_text()
    executable = shutil.which("cdc-sio") or str(ROOT / ".venv/bin/cdc-sio")
    unit = unit.replace("/opt/cdc-sio/bin/cdc-sio", executable)
    path = tmp_path / "cdc-sio.service"
    path.write_text(unit)
    process = await asyncio.create_subprocess_exec(
        "systemd-analyze",
        "verify",
        "--man=no",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    problems = [line for line in out.decode().splitlines() if "cdc-sio.service" in line]
    assert process.returncode == 0 and not problems, out.decode()
