#!/usr/bin/env bash
# Run the whole test suite: installs the Python and npm dependencies it needs, then lint, types, tests.
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, role postgres) and Redis on 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
npm ci --prefix tests/interop/node --no-audit --no-fund --loglevel=error

.venv/bin/ruff check cdc_sio tests bench
.venv/bin/ruff format --check cdc_sio tests bench
.venv/bin/mypy
exec .venv/bin/pytest "$@"
