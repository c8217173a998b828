CREATE SCHEMA IF NOT EXISTS cdc_sio;
CREATE TABLE IF NOT EXISTS cdc_sio.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
