-- The daemons that recorded themselves, with what pg_locks and pg_stat_activity say about them now.
-- $1: the leader lock's key.
SELECT
    d.host,
    d.pid,
    d.role,
    d.started_at,
    extract(epoch FROM now() - d.updated_at)::float8 AS seen_ago,
    d.published,
    d.lag_ms,
    d.last_error,
    d.last_error_at,
    EXISTS (
        SELECT FROM pg_locks l
        WHERE l.pid = d.backend_pid AND l.locktype = 'advisory' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND (l.classid::bigint << 32 | l.objid::bigint) = $1 AND l.objsubid = 1
    ) AS holds_lock,
    EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = d.backend_pid) AS connected
FROM cdc_sio.daemons d
ORDER BY d.host, d.pid
