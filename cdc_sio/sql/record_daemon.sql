-- Upsert this daemon's row in cdc_sio.daemons (see migration 0003).
INSERT INTO cdc_sio.daemons (host, pid, backend_pid, role, started_at, published, lag_ms, last_error, last_error_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (host, pid) DO UPDATE SET
    backend_pid = excluded.backend_pid,
    role = excluded.role,
    updated_at = now(),
    published = excluded.published,
    lag_ms = excluded.lag_ms,
    last_error = excluded.last_error,
    last_error_at = excluded.last_error_at
