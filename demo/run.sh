#!/usr/bin/env bash
# The talk's demo, with cdc-sio doing the emitter's work: a legacy app that knows nothing about
# Socket.IO, a Socket.IO server with the Redis adapter, and a live page. Starts it all against the
# local PostgreSQL and Redis, prints the URLs; Ctrl-C stops it all.
# The database DEMO_DB is dropped and created again on every start.
# Settings (environment, with defaults): DEMO_PG (postgresql://postgres@127.0.0.1:5432), DEMO_DB
# (cdc_sio_demo), DEMO_REDIS_URL (redis://127.0.0.1:6379/0), DEMO_SOCKETIO_KEY (socket.io),
# DEMO_APP_PORT (8000), DEMO_SOCKETIO_PORT (3000), DEMO_LOG_DIR (.demo).
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${DEMO_PG:-postgresql://postgres@127.0.0.1:5432}"
export DEMO_DB="${DEMO_DB:-cdc_sio_demo}"
export DEMO_DSN="$PG/$DEMO_DB"
export DEMO_REDIS_URL="${DEMO_REDIS_URL:-redis://127.0.0.1:6379/0}"
export DEMO_SOCKETIO_KEY="${DEMO_SOCKETIO_KEY:-socket.io}"
APP_URL="http://127.0.0.1:${DEMO_APP_PORT:-8000}/"
LIVE_URL="http://127.0.0.1:${DEMO_SOCKETIO_PORT:-3000}/"
LOGS="${DEMO_LOG_DIR:-.demo}"
mkdir -p "$LOGS"

# Each process runs in a session of its own, so a Ctrl-C reaches only this script, which stops them
# in order (a child that handled the SIGINT itself would make bash ignore it).
children=()
stop() {
    if ((${#children[@]})); then kill -TERM "${children[@]}" 2>/dev/null || true; fi
    wait
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME READY COMMAND...: run COMMAND in the background, logging to $LOGS/NAME.log, and wait
# until that log shows READY.
start() {
    local name=$1 ready=$2
    shift 2
    setsid "$@" > "$LOGS/$name.log" 2>&1 &
    children+=($!)
    for _ in $(seq 300); do
        grep -qs -- "$ready" "$LOGS/$name.log" && return
        kill -0 "$!" 2>/dev/null || break
        sleep 0.1
    done
    echo "demo: $name did not start; $LOGS/$name.log says:" >&2
    cat "$LOGS/$name.log" >&2
    exit 1
}

echo "==> installing cdc-sio and the Socket.IO server's npm packages"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
npm ci --prefix demo/socketio --no-audit --no-fund --loglevel=error

echo "==> creating the database $DEMO_DB with the app's table, and installing cdc-sio's triggers"
psql "$PG/postgres" -q -v ON_ERROR_STOP=1 -v db="$DEMO_DB" <<'SQL'
SET client_min_messages = warning;
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
CREATE DATABASE :"db";
SQL
psql "$DEMO_DSN" -q -v ON_ERROR_STOP=1 -f demo/schema.sql
.venv/bin/cdc-sio migrate --config demo/cdc-sio.toml

echo "==> starting the Socket.IO server, the cdc-sio daemon and the app (logs in $LOGS/)"
start socketio "listening on" env PORT="${DEMO_SOCKETIO_PORT:-3000}" REDIS_URL="$DEMO_REDIS_URL" \
    SOCKETIO_KEY="$DEMO_SOCKETIO_KEY" APP_URL="${APP_URL%/}" node demo/socketio/server.js
start cdc-sio "ready role=leader" env CDC_SIO_LOG_FORMAT=text .venv/bin/cdc-sio run --config demo/cdc-sio.toml
start app "listening on" .venv/bin/python demo/app/things_app.py --dsn "$DEMO_DSN" --port "${DEMO_APP_PORT:-8000}"

cat <<EOT

The demo is running.
    live page:   $LIVE_URL
    legacy app:  $APP_URL
    psql:        psql $DEMO_DSN
Open both pages side by side and edit a Thing in the app, or in psql:
    UPDATE things SET importance = importance + 1;
Click "Get Alerts" on the live page, then delete a Thing whose importance is over 100.
Press Ctrl-C to stop.
EOT

wait -n
echo "demo: a process stopped; stopping the others (logs in $LOGS/)" >&2
exit 1
