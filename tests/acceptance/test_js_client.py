"""The browser helper's own tests (clients/js, node's test runner) pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_es_module_helper_passes_its_node_tests() -> None:
    result = subprocess.run(
        ["node", "--test", str(ROOT / "clients/js")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
