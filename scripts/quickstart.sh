#!/usr/bin/env bash
# Quickstart: install cdc-sio, create a demo table in the local PostgreSQL, migrate, start the daemon,
# a real Socket.IO server (Node, @socket.io/redis-adapter) and a socket.io-client in room "thing:1",
# then change rows with psql and watch the client receive the events. Ctrl-C stops everything.
# QUICKSTART_ONCE=1 exits after the first events instead of running on.
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${QUICKSTART_PG:-postgresql://postgres@127.0.0.1:5432}"
DB="${QUICKSTART_DB:-cdc_sio_quickstart}"
PORT="${QUICKSTART_PORT:-3000}"
WORK=.quickstart
mkdir -p "$WORK"
cleanup() { pkill -TERM -P $$ 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "==> installing cdc-sio and the Socket.IO server's npm packages"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
npm ci --prefix tests/interop/node --no-audit --no-fund --loglevel=error

echo "==> creating database $DB with a demo table 'things'"
psql "$PG/postgres" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql "$PG/$DB" -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE things (
    id serial PRIMARY KEY,
    org_id integer NOT NULL,
    name text NOT NULL,
    importance integer NOT NULL DEFAULT 0,
    secret text
);
INSERT INTO things (org_id, name, importance, secret) VALUES (1, 'first thing', 10, 'never sent');
SQL

cat > "$WORK/config.toml" <<TOML
[postgres]
dsn = "$PG/$DB"

[redis]
url = "redis://127.0.0.1:6379/0"

[[tables]]
table = "public.things"
rooms = ["thing:{id}", "org:{org_id}"]
exclude_columns = ["secret"]

[tables.events]
insert = "Thing::create"
update = "Thing::update"
delete = "Thing::delete"
TOML

echo "==> cdc-sio migrate --config $WORK/config.toml"
.venv/bin/cdc-sio migrate --config "$WORK/config.toml"

echo "==> starting a Socket.IO server on port $PORT, a client in room thing:1, and the daemon"
node tests/interop/node/server.js --port "$PORT" --redis-url redis://127.0.0.1:6379 --key socket.io \
    --namespaces / > "$WORK/server.out" &
for _ in $(seq 100); do grep -q '"ready"' "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q '"ready"' "$WORK/server.out" || { echo "the Socket.IO server did not start" >&2; exit 1; }
sleep infinity | node tests/interop/node/client.js --url "http://127.0.0.1:$PORT" --nsp / --rooms thing:1 \
    > "$WORK/client.out" &
for _ in $(seq 100); do grep -q '"joined"' "$WORK/client.out" 2>/dev/null && break; sleep 0.1; done
.venv/bin/cdc-sio run --config "$WORK/config.toml" &

echo "==> changing rows with plain SQL (the application is unchanged)"
psql "$PG/$DB" -q -v ON_ERROR_STOP=1 \
    -c "UPDATE things SET name = 'renamed by psql', importance = 150 WHERE id = 1" \
    -c "INSERT INTO things (org_id, name) VALUES (1, 'not in room thing:1')" \
    -c "DELETE FROM things WHERE id = 1"

echo "==> what the socket.io-client in room thing:1 received:"
for _ in $(seq 150); do [ "$(grep -c '"event"' "$WORK/client.out")" -ge 2 ] && break; sleep 0.1; done
grep '"event"' "$WORK/client.out"
if [ -n "${QUICKSTART_ONCE:-}" ]; then exit 0; fi

cat <<EOT

cdc-sio is running. In another terminal, change a row and watch it arrive:
    psql $PG/$DB -c "INSERT INTO things (id, org_id, name) VALUES (1, 1, 'back again')"
    .venv/bin/cdc-sio tail --config $WORK/config.toml     # every event, decoded
Press Ctrl-C to stop.
EOT
tail -n 0 -f "$WORK/client.out"
