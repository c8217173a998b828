"""Run every measure of issue 6 side by side with its baseline, print the table, write RESULTS.md.

    .venv/bin/python -m bench              # the full benchmark (5-7 minutes)
    .venv/bin/python -m bench --smoke      # tiny sizes: checks that the runner works (seconds)

Needs PostgreSQL and Redis (CDC_SIO_BENCH_ADMIN_DSN, CDC_SIO_BENCH_REDIS_URL; by default the local
services), pgbench, Node.js and ``npm ci --prefix tests/interop/node``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bench import measures
from bench.environment import bench_database, machine, server_facts
from bench.measures import Runs

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class Sizes:
    runs: int = 3
    pgbench_runs: int = 5
    pgbench_seconds: float = 6
    rows: int = 100_000
    backlog: int = 100_000
    latency_seconds: float = 10
    rates: tuple[int, ...] = (1_000, 10_000)
    memory_backlog: int = 1_000_000


SMOKE = Sizes(
    runs=1,
    pgbench_runs=1,
    pgbench_seconds=1,
    rows=2_000,
    backlog=2_000,
    latency_seconds=1,
    rates=(200, 2_000),
    memory_backlog=4_000,
)


@dataclass(frozen=True)
class Line:
    measure: str
    cdc: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


# The reference captures (bench/environment.py) measured beside cdc-sio: not cdc-sio, never "met".
REFERENCE_LINES = {
    "1": [
        ("outbox", "   reference, the issue's straightforward outbox (row trigger, row as jsonb) / no cdc-sio"),
        ("one_row", "   reference, the least a trigger can log (one constant row, no index) / no cdc-sio"),
    ],
    "2": [
        ("outbox", "   reference, the issue's straightforward outbox (row trigger, row as jsonb) / no cdc-sio"),
        ("new_rows", "   reference, each new row as json by one statement, no old rows, no index / no cdc-sio"),
    ],
}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio_line(
    measure: str, runs: Runs, unit: Callable[[float], str], target: str, check: Callable[[float, float], bool] | None
) -> Line:
    """Medians of each side, and the median of the ratios of runs made side by side (which cancels
    the slow drift of a machine shared with other work better than a ratio of medians)."""
    cdc, base = median(runs.cdc), median(runs.baseline)
    ratio = median([c / b for c, b in zip(runs.cdc, runs.baseline, strict=True) if b])
    return Line(measure, unit(cdc), unit(base), f"{ratio:.2f}x", target, None if check is None else check(cdc, ratio))


def count(n: int) -> str:
    return f"{n:,}"


async def run_all(
    sizes: Sizes, workdir: Path, only: set[str], log: Callable[[str], None]
) -> tuple[list[Line], list[tuple[str, str]]]:
    lines: list[Line] = []
    async with bench_database(sizes.rows, workdir) as bench:
        settings, redis_version = await server_facts(bench)
        facts = machine(settings, redis_version)
        started = time.perf_counter()

        if "1" in only:
            log("1. write overhead (pgbench)")
            runs = await measures.write_overhead(bench, sizes.pgbench_runs, sizes.pgbench_seconds)
            tps = "{:,.0f} tps".format
            lines.append(
                ratio_line(
                    "1. single-row UPDATE, pgbench 8 clients: capture + daemon publishing / no cdc-sio",
                    runs,
                    tps,
                    ">= 0.85x",
                    lambda _, r: r >= 0.85,
                )
            )
            daemon_stopped = Runs(runs.extra["triggers_only"], runs.baseline)
            lines.append(
                ratio_line("   same, capture installed, daemon stopped / no cdc-sio", daemon_stopped, tps, "", None)
            )
            for name, measure in REFERENCE_LINES["1"]:
                lines.append(ratio_line(measure, Runs(runs.extra[name], runs.baseline), tps, "", None))
            lines.append(
                Line(
                    "   daemon CPU while publishing (1 core = 1.00) / changes left waiting at the end",
                    f"{median(runs.extra['daemon_cpu']):.2f}",
                    "",
                    "",
                    f"{median(runs.extra['left_waiting']):,.0f} waiting",
                    None,
                )
            )

        if "2" in only:
            log("2. bulk UPDATE")
            runs = await measures.bulk_update(bench, sizes.runs)
            lines.append(
                ratio_line(
                    f"2. one UPDATE of {count(sizes.rows)} rows: capture / no cdc-sio",
                    runs,
                    "{:.3f} s".format,
                    "<= 2.5x",
                    lambda _, r: r <= 2.5,
                )
            )
            for name, measure in REFERENCE_LINES["2"]:
                lines.append(ratio_line(measure, Runs(runs.extra[name], runs.baseline), "{:.3f} s".format, "", None))

        if "3" in only:
            log("3. backlog drain")
            runs = await measures.backlog_drain(bench, sizes.runs, sizes.backlog)
            rate = "{:,.0f}/s".format
            lines.append(
                ratio_line(
                    f"3. drain {count(sizes.backlog)} waiting changes to Redis: daemon / raw pipelined PUBLISH",
                    runs,
                    rate,
                    ">= 30,000/s and >= 0.8x",
                    lambda value, r: value >= 30_000 and r >= 0.8,
                )
            )
            to_client = Runs(runs.extra["client_cdc"], runs.extra["client_raw"])
            lines.append(
                ratio_line("   same, until the socket.io-client received the last one", to_client, rate, "", None)
            )
            own = Runs(runs.cdc, runs.extra["raw_cdc_publish"])
            lines.append(
                ratio_line("   same, baseline: raw PUBLISH through cdc-sio's publish function", own, rate, "", None)
            )

        if "4" in only:
            for rate_per_s, goal in zip(sizes.rates, (10.0, 50.0), strict=True):
                log(f"4. latency at {rate_per_s}/s")
                runs = await measures.latency(bench, sizes.runs, sizes.latency_seconds, rate_per_s)
                ms = "p50 {:.1f} / p99 {:.1f} ms".format
                cdc_p99, raw_p99 = median(runs.extra["cdc_p99"]), median(runs.extra["raw_p99"])
                lines.append(
                    Line(
                        f"4. commit to socket.io-client at {count(rate_per_s)} changes/s: cdc-sio / raw PUBLISH",
                        ms(median(runs.extra["cdc_p50"]), cdc_p99),
                        ms(median(runs.extra["raw_p50"]), raw_p99),
                        f"{cdc_p99 / raw_p99:.2f}x (p99)",
                        f"p99 <= {goal:.0f} ms",
                        cdc_p99 <= goal,
                    )
                )

        if "5" in only:
            log("5. memory")
            runs = await measures.memory(bench, sizes.memory_backlog)
            mb = "{:.1f} MB".format
            peak, idle = median(runs.cdc) / 1e6, median(runs.baseline) / 1e6
            lines.append(
                Line(
                    f"5. peak RSS of the daemon draining {count(sizes.memory_backlog)} changes / with nothing waiting",
                    mb(peak),
                    mb(idle),
                    f"{peak / idle:.2f}x",
                    "<= 100 MB",
                    peak <= 100,
                )
            )
            lines.append(
                Line(
                    "   drain rate of that run (changes/s, includes start-up)",
                    "{:,.0f}/s".format(median(runs.extra["drain_rate"])),
                    "",
                    "",
                    "",
                    None,
                )
            )

        facts.append(("benchmark duration", f"{time.perf_counter() - started:.0f} s"))
    return lines, facts


def render(lines: list[Line], facts: list[tuple[str, str]], sizes: Sizes) -> str:
    header = ["measure", "cdc-sio", "baseline", "ratio", "target", "met"]
    rows = [
        [x.measure, x.cdc, x.baseline, x.ratio, x.target, {True: "yes", False: "NO", None: ""}[x.met]] for x in lines
    ]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    machine_lines = [f"- {name}: {value}" for name, value in facts]
    return "\n".join(
        [
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench`: medians of {sizes.runs} run(s)"
            f" ({sizes.pgbench_runs} of {sizes.pgbench_seconds:g} s for pgbench, one for memory); a ratio is the"
            " median of the ratios of runs made side by side.",
            "",
            *table,
            "",
            *machine_lines,
            "",
        ]
    )


def write_results(path: Path, section: str) -> None:
    """Replace the generated section of *path* (between the markers), keeping the prose around it."""
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    head, found, rest = text.partition(BEGIN)
    if not found:
        head, rest = text + "\n", f"\n{END}\n"
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{section}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run: checks the runner, measures nothing")
    parser.add_argument("--runs", type=int, help="runs per measure (default 3)")
    parser.add_argument("--only", default="12345", help="the measures to run, e.g. 35 (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"the file to update (default {RESULTS})")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else Sizes()
    if args.runs:
        sizes = replace(sizes, runs=args.runs)

    def log(text: str) -> None:
        print(f"bench: {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="cdc-sio-bench-") as workdir:
        lines, facts = asyncio.run(run_all(sizes, Path(workdir), set(args.only), log))
    section = render(lines, facts, sizes)
    print(section)
    write_results(args.results, section)


if __name__ == "__main__":
    main()
