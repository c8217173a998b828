-- The oldest waiting changes, deleted in the caller's transaction: the caller publishes them and
-- commits, or rolls back and they wait again. Ordered by id, which for one row is commit order.
-- $1: batch size. $2: whether track_commit_timestamp is on.
WITH batch AS (
    DELETE FROM cdc_sio.changes
    WHERE id IN (SELECT id FROM cdc_sio.changes ORDER BY id LIMIT $1)
    RETURNING id, xid, captured_at, table_name, op, data, old, routes
)
SELECT
    id,
    table_name,
    op,
    data::text AS data,
    old::text AS old,
    routes,
    captured_at::text AS captured_at,  -- only a parked change needs it, and text costs the daemon less
    CASE WHEN $2::boolean
        THEN coalesce(pg_xact_commit_timestamp((xid::text::bigint & 4294967295)::text::xid), captured_at)
        ELSE captured_at
    END AS committed_at
FROM batch
ORDER BY id
