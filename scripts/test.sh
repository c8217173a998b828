#!/usr/bin/env bash
# Run the whole test suite: installs the Python and npm dependencies it needs, then lint, types, tests.
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, role postgres) and Redis on 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
for package in tests/interop/node demo/socketio tests/acceptance/browser; do
    npm ci --prefix "$package" --no-audit --no-fund --loglevel=error
done

.venv/bin/ruff check cdc_sio tests demo
.venv/bin/ruff format --check cdc_sio tests demo
.venv/bin/mypy
exec .venv/bin/pytest "$@"
