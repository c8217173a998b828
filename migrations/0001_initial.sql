-- The change log: one row per captured row change, written by the capture triggers inside the
-- application's transaction and deleted by the daemon once published.
-- Identity columns use CACHE 1, so ids follow write order (and so commit order for one row).
CREATE TABLE cdc_sio.changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    captured_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    table_name text NOT NULL,
    op text NOT NULL,
    data jsonb NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);

-- The capture triggers that migrate installed, with the fingerprint of the DDL that made them.
CREATE TABLE cdc_sio.watched_tables (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    function_name text NOT NULL,
    fingerprint text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);

-- Called by every capture trigger. The payload is constant, so PostgreSQL sends one
-- notification per transaction, and it carries no data: the change log is the truth.
-- A nearly full notification queue (a stuck listener somewhere) would make the application's
-- commit fail, so then it sends nothing and the daemon's polling finds the change instead.
CREATE FUNCTION cdc_sio.wake_v1() RETURNS void
    LANGUAGE sql
    AS $$ SELECT pg_notify('cdc_sio_v1', '') WHERE pg_notification_queue_usage() < 0.5 $$;

-- Changes that could not be turned into events (a room value that cannot be rendered, a value
-- that cannot be encoded), parked with the reason instead of stopping the stream.
CREATE TABLE cdc_sio.dead_letters (
    change_id bigint PRIMARY KEY,
    captured_at timestamptz NOT NULL,
    table_name text NOT NULL,
    op text NOT NULL,
    data jsonb NOT NULL,
    reason text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
