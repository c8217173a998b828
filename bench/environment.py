"""What the benchmark runs on: its own database and Redis key, the daemon, pgbench and Node processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as redis

from cdc_sio import daemon, migrate, publish
from cdc_sio.config import Config, load_config
from tests.interop.harness import NODE_DIR, ServerSpec, SocketServer, _Process, start_server

ADMIN_DSN = os.environ.get("CDC_SIO_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CDC_SIO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CLIENT_SCRIPT = Path(__file__).resolve().parent / "node" / "client.js"
ORGS = 10

TABLE_DDL = """
CREATE TABLE things (
    id integer PRIMARY KEY,
    org_id integer NOT NULL,
    name text NOT NULL,
    secret text,
    v integer NOT NULL DEFAULT 0,
    sent_us bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO things (id, org_id, name, secret)
SELECT g, g % {orgs}, 'thing number ' || g, md5(g::text) FROM generate_series(1, {rows}) g
"""

# Captures that are not cdc-sio, measured beside it so that a run shows what any trigger capture
# costs on its machine. Each is installed alone, on the table without cdc-sio, as schema bench_ref.
REFERENCE_CAPTURES = {
    # The "straightforward implementation": a row trigger writing the row as jsonb to an outbox.
    "outbox": """
CREATE TABLE bench_ref.outbox (id bigserial PRIMARY KEY, payload jsonb NOT NULL);
CREATE FUNCTION bench_ref.capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_ref.outbox (payload) VALUES (to_jsonb(NEW) - 'secret'); RETURN NULL; END $$;
CREATE TRIGGER bench_ref AFTER UPDATE ON things FOR EACH ROW EXECUTE FUNCTION bench_ref.capture()
""",
    # The least a trigger can do to log a change: one constant row, in a table without index.
    "one_row": """
CREATE TABLE bench_ref.log (n integer);
CREATE FUNCTION bench_ref.capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_ref.log VALUES (1); RETURN NULL; END $$;
CREATE TRIGGER bench_ref AFTER UPDATE ON things FOR EACH ROW EXECUTE FUNCTION bench_ref.capture()
""",
    # The least a capture of bulk statements can do: each new row as json (cheaper than jsonb),
    # no old rows, in a table without index, by one statement per statement.
    "new_rows": """
CREATE TABLE bench_ref.log (row json);
CREATE FUNCTION bench_ref.capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_ref.log SELECT row_to_json(n) FROM new_rows AS n; RETURN NULL; END $$;
CREATE TRIGGER bench_ref AFTER UPDATE ON things REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_ref.capture()
""",
}

PEAK_RSS_WRAPPER = """
import atexit, re, runpy, sys
def peak():
    status = open("/proc/self/status").read()
    print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), flush=True)
atexit.register(peak)
sys.argv = ["cdc-sio", *sys.argv[1:]]
runpy.run_module("cdc_sio", run_name="__main__")
"""

CONFIG_TOML = """
[postgres]
dsn = "{dsn}"
[redis]
url = "{redis_url}"
[socketio]
key = "{key}"
[[tables]]
table = "public.things"
rooms = ["thing:{{id}}", "org:{{org_id}}"]
exclude_columns = ["secret"]
[tables.events]
insert = "Thing::create"
update = "Thing::update"
delete = "Thing::delete"
"""


def pgbench_path() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    raise SystemExit("bench: pgbench not found (it comes with the PostgreSQL server package)")


@dataclass
class Bench:
    """One benchmark database with the things table, its config file, and a Redis key of its own."""

    dsn: str
    config: Config
    config_path: Path
    rows: int
    admin: asyncpg.Connection
    db: asyncpg.Connection
    redis: redis.Redis
    workdir: Path
    key: str  # the Socket.IO adapter key of this run

    async def capture(self, installed: bool) -> None:
        """Install cdc-sio (schema and triggers) or remove it entirely: the baseline has no trace of it.
        Either way, no reference capture stays installed."""
        await self.db.execute("DROP SCHEMA IF EXISTS bench_ref CASCADE")
        if installed:
            await migrate.migrate(self.db, self.config)
        else:
            await self.forget_fencing_key()
            await migrate.uninstall(self.db)

    async def reference_capture(self, name: str) -> None:
        """Install one of REFERENCE_CAPTURES alone: cdc-sio's capture is removed."""
        await self.capture(False)
        await self.db.execute("CREATE SCHEMA bench_ref;" + REFERENCE_CAPTURES[name])

    async def forget_fencing_key(self) -> None:
        """The daemon's fencing key in Redis belongs to the install (its deployment id) it fenced."""
        with contextlib.suppress(asyncpg.UndefinedTableError):  # not installed
            deployment = await self.db.fetchval("SELECT deployment::text FROM cdc_sio.leader")
            await self.redis.delete(publish.Fence.of(deployment, 0).key)

    async def clear_log(self) -> None:
        await self.db.execute("TRUNCATE cdc_sio.changes")

    async def checkpoint(self) -> None:
        """Start each measured run at the same point of the checkpoint cycle."""
        await self.db.execute("VACUUM things")
        await self.db.execute("CHECKPOINT")

    async def waiting(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM cdc_sio.changes"))

    async def load_backlog(self, changes: int) -> None:
        """Make *changes* waiting changes with UPDATE statements of up to all rows (daemon stopped)."""
        remaining = changes
        while remaining > 0:
            step = min(self.rows, remaining)
            await self.db.execute("UPDATE things SET v = v + 1 WHERE id <= $1", step)
            remaining -= step

    def pgbench_script(self, name: str, text: str) -> Path:
        path = self.workdir / f"{name}.sql"
        path.write_text(text)
        return path

    async def pgbench(
        self, script: Path, *, clients: int, seconds: float, rate: float | None = None
    ) -> dict[str, float]:
        """Run pgbench; return its tps and the number of transactions it processed."""
        args = [pgbench_path(), "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(max(1, round(seconds)))]
        if rate is not None:
            args += ["-R", str(rate)]
        args += ["-f", str(script), self.dsn]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        text = out.decode()
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}): {err.decode()}{text}")
        tps = re.search(r"^tps = ([0-9.]+)", text, re.M)
        processed = re.search(r"number of transactions actually processed: (\d+)", text)
        failed = re.search(r"number of failed transactions: (\d+)", text)
        if tps is None or processed is None:
            raise RuntimeError(f"cannot read pgbench's output:\n{text}")
        if failed is not None and int(failed.group(1)):
            raise RuntimeError(f"pgbench had failed transactions:\n{text}")
        return {"tps": float(tps.group(1)), "transactions": float(processed.group(1))}

    @contextlib.asynccontextmanager
    async def daemon(self) -> AsyncIterator[DaemonProcess]:
        """``cdc-sio run`` as a subprocess, from the moment it leads until SIGTERM stopped it."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cdc_sio",
            "run",
            "--config",
            str(self.config_path),
            stderr=asyncio.subprocess.PIPE,
        )
        running = DaemonProcess(proc)
        try:
            await running.ready()
            yield running
        finally:
            await running.stop()

    async def run_in_process_once(self) -> None:
        """The daemon's ``run --once`` in this process: publish everything waiting, then return."""
        await daemon.run(self.config, asyncio.Event(), once=True)

    async def run_once(self) -> tuple[float, int]:
        """``cdc-sio run --once`` as a subprocess: (wall seconds, its peak RSS in bytes).

        The peak is read by the process itself (VmHWM at exit): a forked child's rusage would count
        the pages of this benchmark process that it shared before exec.
        """
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PEAK_RSS_WRAPPER,
            "run",
            "--once",
            "--config",
            str(self.config_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"cdc-sio run --once exited with {proc.returncode}")
        peak_kb = int(out.decode().split()[-1])
        return time.perf_counter() - started, peak_kb * 1024

    @contextlib.asynccontextmanager
    async def socketio(self) -> AsyncIterator[BenchClient]:
        """A real Node Socket.IO server on this key and one client in every org room."""
        os.environ["NODE_PATH"] = str(NODE_DIR / "node_modules")
        server: SocketServer = await start_server(ServerSpec("redis", self.key, REDIS_URL), ["/"])
        try:
            process = await _Process.spawn(
                "bench client",
                [
                    "node",
                    str(CLIENT_SCRIPT),
                    f"--url={server.url}",
                    "--nsp=/",
                    f"--rooms={','.join(f'org:{org}' for org in range(ORGS))}",
                ],
            )
            await process.read_startup_line("joined")
            client = BenchClient(process)
            try:
                yield client
            finally:
                await process.stop()
        finally:
            await server.stop()


class DaemonProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._leading = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if '"event": "ready"' in line and '"role": "leader"' in line:
                self._leading.set()

    async def ready(self) -> None:
        waiter = asyncio.ensure_future(self._leading.wait())
        await asyncio.wait([waiter, self._reader], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not self._leading.is_set():
            raise RuntimeError("the daemon did not start leading:\n" + "\n".join(self.lines[-20:]))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await self._reader
        if self.proc.returncode != 0:
            raise RuntimeError(f"the daemon exited with {self.proc.returncode}:\n" + "\n".join(self.lines[-20:]))


class BenchClient:
    """The socket.io-client of bench/node/client.js: counts arrivals and measures latencies."""

    def __init__(self, process: _Process) -> None:
        self.process = process

    async def _ask(self, command: str, answer_key: str, timeout: float) -> dict[str, Any]:
        await self.process.send(command)
        async with asyncio.timeout(timeout):
            while answer_key not in (message := await self.process.read()):
                pass
        return message

    async def reset(self) -> None:
        await self._ask("reset", "reset", 10)

    async def arrival_of(self, count: int, timeout: float = 120) -> float:
        """Wall-clock time (s) at which the client had received *count* events since the last reset."""
        message = await self._ask(f"expect {count}", "reached", timeout)
        return float(message["last_us"]) / 1e6

    async def latencies_ms(self) -> list[float]:
        message = await self._ask("report", "count", 30)
        return [value / 1000 for value in message["latencies_us"] if value is not None]


@contextlib.asynccontextmanager
async def bench_database(rows: int, workdir: Path) -> AsyncIterator[Bench]:
    name = f"cdc_sio_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
        db = await asyncpg.connect(dsn, server_settings={"application_name": "cdc-sio-bench"})
        try:
            await db.execute(TABLE_DDL.format(orgs=ORGS, rows=rows))
            await db.execute("VACUUM ANALYZE things")
            config_path = workdir / "bench.toml"
            key = f"cdc-sio-bench-{secrets.token_hex(4)}"
            config_path.write_text(CONFIG_TOML.format(dsn=dsn, redis_url=REDIS_URL, key=key))
            bench = Bench(dsn, load_config(config_path, {}), config_path, rows, admin, db, client, workdir, key)
            yield bench
            await bench.forget_fencing_key()
        finally:
            await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        await client.aclose()


def machine(db_settings: dict[str, str], redis_version: str) -> list[tuple[str, str]]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    settings = ", ".join(f"{k}={v}" for k, v in sorted(db_settings.items()))
    return [
        ("cpu", f"{cpu}, {os.cpu_count()} cores"),
        ("memory", f"{memory_kb / 1024 / 1024:.1f} GiB"),
        ("os", f"{platform.system()} {platform.release()}"),
        ("postgresql", settings),
        ("redis", redis_version),
        ("python", platform.python_version()),
        ("node", node),
        ("cdc-sio", commit or "unknown"),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


async def server_facts(bench: Bench) -> tuple[dict[str, str], str]:
    rows = await bench.db.fetch(
        "SELECT name, setting FROM pg_settings WHERE name IN "
        "('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'track_commit_timestamp', 'work_mem')"
    )
    info = await bench.redis.info("server")
    return {r["name"]: r["setting"] for r in rows}, str(info.get("redis_version", "?"))
