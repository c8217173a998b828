"""The measures of issue 6, each run side by side with its baseline; every function returns raw run values."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as redis

from bench.environment import REFERENCE_CAPTURES, Bench
from cdc_sio import publish
from cdc_sio.encoding import Command, classic_commands
from cdc_sio.routing import Change, route

SINGLE_ROW_UPDATE = """\\set id random(1, {rows})
UPDATE things SET v = v + 1 WHERE id = :id;
"""
# sent_us: the moment just before the commit, read from the clock the client compares it with.
TIMED_UPDATE = """\\set id random(1, {last})
UPDATE things SET v = v + 1, sent_us = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
WHERE id BETWEEN :id AND :id + {span};
"""


@dataclass
class Runs:
    """The raw values of one line of the table: what cdc-sio did, and its baseline, per run."""

    cdc: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.extra.setdefault(name, []).append(value)


async def write_overhead(bench: Bench, runs: int, seconds: float, clients: int = 8) -> Runs:
    """pgbench single-row UPDATEs: no cdc-sio / capture with the daemon publishing / capture, daemon stopped /
    the reference captures "outbox" and "one_row"."""
    script = bench.pgbench_script("single_row_update", SINGLE_ROW_UPDATE.format(rows=bench.rows))
    result = Runs()

    async def without() -> None:
        await bench.capture(False)
        await bench.checkpoint()
        result.baseline.append((await bench.pgbench(script, clients=clients, seconds=seconds))["tps"])

    async def with_daemon() -> None:
        await bench.capture(True)
        await bench.clear_log()
        await bench.checkpoint()
        async with bench.daemon() as daemon:
            cpu_before, started = daemon.cpu_seconds(), time.perf_counter()
            result.cdc.append((await bench.pgbench(script, clients=clients, seconds=seconds))["tps"])
            result.add("daemon_cpu", (daemon.cpu_seconds() - cpu_before) / (time.perf_counter() - started))
            result.add("left_waiting", await bench.waiting())

    async def triggers_only() -> None:
        await bench.capture(True)
        await bench.clear_log()
        await bench.checkpoint()
        result.add("triggers_only", (await bench.pgbench(script, clients=clients, seconds=seconds))["tps"])

    def reference(name: str) -> Callable[[], Awaitable[None]]:
        async def variant() -> None:
            await bench.reference_capture(name)
            await bench.checkpoint()
            result.add(name, (await bench.pgbench(script, clients=clients, seconds=seconds))["tps"])

        return variant

    variants = [without, with_daemon, triggers_only, reference("outbox"), reference("one_row")]
    for run in range(runs):
        for variant in variants if run % 2 == 0 else reversed(variants):
            await variant()
    return result


async def bulk_update(bench: Bench, runs: int) -> Runs:
    """Seconds for one UPDATE of every row: without cdc-sio, with its capture, with the reference
    captures "outbox" and "new_rows"."""
    result = Runs()
    ways = ["none", "cdc", "outbox", "new_rows"]
    for run in range(runs):
        for way in ways if run % 2 == 0 else reversed(ways):
            if way in REFERENCE_CAPTURES:
                await bench.reference_capture(way)
            else:
                await bench.capture(way == "cdc")
            if way == "cdc":
                await bench.clear_log()
            # Like an application's pooled connection, which has run small statements before: the
            # capture's plan is made once per connection, for the first statement's row counts.
            await bench.db.execute("UPDATE things SET v = v + 1 WHERE id = 1")
            await bench.checkpoint()
            started = time.perf_counter()
            await bench.db.execute("UPDATE things SET v = v + 1")
            seconds = time.perf_counter() - started
            if way == "none":
                result.baseline.append(seconds)
            elif way == "cdc":
                result.cdc.append(seconds)
            else:
                result.add(way, seconds)
    return result


async def backlog_drain(bench: Bench, runs: int, backlog: int) -> Runs:
    """Changes/s: the daemon draining a waiting backlog vs raw pipelined PUBLISH of the same messages.

    The baseline is redis-py's own pipeline (``pipeline(transaction=False)``, one PUBLISH per message,
    batches of the daemon's batch size): the ordinary way to publish from Python. The same messages
    through cdc-sio's publish function are measured too.
    """
    result = Runs()
    await bench.capture(True)
    async with bench.socketio() as client:
        for run in range(runs):
            await bench.clear_log()
            await bench.load_backlog(backlog)
            messages = await _encoded_backlog(bench)
            assert len(messages) == backlog
            ways = ["cdc", "raw", "raw_cdc_publish"]
            for way in ways if run % 2 == 0 else reversed(ways):
                await client.reset()
                started = time.time()
                if way == "cdc":
                    await bench.run_in_process_once()
                    assert await bench.waiting() == 0
                elif way == "raw":
                    await _pipelined_publish(bench.redis, messages, bench.config.daemon.batch_size)
                else:
                    for start in range(0, len(messages), bench.config.daemon.batch_size):
                        await publish.execute(bench.redis, messages[start : start + bench.config.daemon.batch_size])
                finished = time.time()
                arrived = await client.arrival_of(backlog)
                rate = backlog / (finished - started)
                if way == "cdc":
                    result.cdc.append(rate)
                elif way == "raw":
                    result.baseline.append(rate)
                result.add(way, rate)
                result.add(f"client_{way}", backlog / (arrived - started))
    return result


PRIMARY_KEYS = {"public.things": ("id",)}


def _commands(bench: Bench, change: Change) -> list[Command]:
    return [command for e in route(change, bench.config, PRIMARY_KEYS) for command in classic_commands(bench.key, e)]


async def _encoded_backlog(bench: Bench) -> list[Command]:
    rows = await bench.db.fetch(
        "SELECT id, table_name, op, data::text AS data, captured_at FROM cdc_sio.changes ORDER BY id"
    )
    messages = []
    for row in rows:
        change = Change(
            row["id"], row["table_name"], row["op"], json.loads(row["data"]), row["captured_at"].isoformat()
        )
        messages += _commands(bench, change)
    return messages


async def _pipelined_publish(client: redis.Redis, messages: list[Command], batch: int) -> None:
    for start in range(0, len(messages), batch):
        async with client.pipeline(transaction=False) as pipe:
            for command in messages[start : start + batch]:
                pipe.execute_command(*command)
            await pipe.execute()


async def latency(bench: Bench, runs: int, seconds: float, rate: int) -> Runs:
    """Commit-to-socket.io-client latencies (ms) at *rate* changes/s; baseline: raw PUBLISH at the same rate.

    Above 1,000 changes/s a transaction updates rate/1,000 rows, so PostgreSQL commits 1,000 times a
    second at every rate (this machine cannot commit 10,000 single-row transactions a second while
    also running the daemon, Redis and Node).
    """
    rows_per_transaction = max(1, rate // 1000)
    transactions = rate / rows_per_transaction
    script = bench.pgbench_script(
        f"timed_update_{rate}",
        TIMED_UPDATE.format(last=bench.rows - rows_per_transaction + 1, span=rows_per_transaction - 1),
    )
    result = Runs()
    await bench.capture(True)
    await bench.clear_log()
    async with bench.socketio() as client, bench.daemon():
        await client.reset()
        warm_up = await bench.pgbench(script, clients=4, seconds=1, rate=transactions)
        await client.arrival_of(int(warm_up["transactions"]) * rows_per_transaction, timeout=60)
        for run in range(runs):
            for cdc_first in (run % 2 == 0, run % 2 == 1):
                await client.reset()
                if cdc_first:
                    done = await bench.pgbench(script, clients=4, seconds=seconds, rate=transactions)
                    expected = int(done["transactions"]) * rows_per_transaction
                else:
                    expected = await _publish_at_rate(bench, transactions, rows_per_transaction, seconds)
                await client.arrival_of(expected, timeout=60)
                latencies = sorted(await client.latencies_ms())
                assert len(latencies) == expected, (len(latencies), expected)
                name = "cdc" if cdc_first else "raw"
                result.add(f"{name}_p50", percentile(latencies, 50))
                result.add(f"{name}_p99", percentile(latencies, 99))
                (result.cdc if cdc_first else result.baseline).append(percentile(latencies, 99))
    return result


async def _publish_at_rate(bench: Bench, transactions: float, per_transaction: int, seconds: float) -> int:
    """PUBLISH pre-routed events at Poisson-distributed times like pgbench -R, stamped when sent."""
    rng = random.Random(6)
    template = await bench.db.fetchrow("SELECT to_jsonb(t) - 'secret' AS row FROM things t WHERE id = 1")
    base_row = json.loads(template["row"])
    sent = 0
    started = time.perf_counter()
    due = started
    while due - started < seconds:
        due += rng.expovariate(transactions)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_us = time.time_ns() // 1000
        messages = []
        for offset in range(per_transaction):
            row = {**base_row, "id": 1 + offset, "sent_us": sent_us}
            change = Change(sent + offset, "public.things", "update", row, "2026-01-01T00:00:00+00:00")
            messages += _commands(bench, change)
        await publish.execute(bench.redis, messages)
        sent += per_transaction
    return sent


async def memory(bench: Bench, backlog: int) -> Runs:
    """Peak RSS (bytes) of ``cdc-sio run --once`` draining *backlog* changes vs with nothing waiting."""
    result = Runs()
    await bench.capture(True)
    await bench.clear_log()
    _, idle = await bench.run_once()
    result.baseline.append(idle)
    await bench.load_backlog(backlog)
    seconds, peak = await bench.run_once()
    result.cdc.append(peak)
    result.add("drain_rate", backlog / seconds)
    assert await bench.waiting() == 0
    return result


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
