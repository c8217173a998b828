"""The benchmark runner still runs end to end (tiny sizes: this measures nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.interop
def test_the_benchmark_runner_measures_every_line_and_updates_the_results_file(tmp_path: Path) -> None:
    """`python -m bench --smoke` fills in every line of the table and keeps the prose around it."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nprose before\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\nprose after\n")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = results.read_text()
    assert text.startswith("# Results\n\nprose before\n\n<!-- bench:begin -->\nRun ")
    assert text.endswith("<!-- bench:end -->\n\nprose after\n")
    assert "\nold\n" not in text
    table = [line for line in text.splitlines() if line.startswith("| ")][1:]
    numbered = [line for line in table if line[2].isdigit()]
    assert [line[2] for line in numbered] == ["1", "2", "3", "4", "4", "5"]
    assert not [line for line in table if "nan" in line]
