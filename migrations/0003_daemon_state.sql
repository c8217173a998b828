-- One row per running daemon, written by the daemon itself, for `cdc-sio status`: where it runs,
-- which server process holds its worker connection (so status can see in pg_locks whether that
-- connection holds the leader lock), and what it last saw. A daemon deletes its row when it stops
-- cleanly; rows not updated for a day (a daemon that was killed) are deleted by the next one.
CREATE TABLE cdc_sio.daemons (
    host text NOT NULL,
    pid integer NOT NULL,
    backend_pid integer NOT NULL,
    role text NOT NULL,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    published bigint NOT NULL,
    lag_ms double precision,
    last_error text,
    last_error_at timestamptz,
    PRIMARY KEY (host, pid)
);

-- The fencing token of the leader lock. A daemon that takes the lock increments epoch, and every
-- PUBLISH it makes goes through a Redis script that refuses an epoch lower than the highest one
-- Redis has seen (under the key cdc-sio:leader:<deployment>). So a paused old leader that wakes
-- up after a new one published can publish nothing more. deployment keeps two databases that
-- share a Redis apart.
CREATE TABLE cdc_sio.leader (
    deployment uuid NOT NULL DEFAULT gen_random_uuid(),
    epoch bigint NOT NULL DEFAULT 0
);
INSERT INTO cdc_sio.leader DEFAULT VALUES;
