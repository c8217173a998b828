-- Delete the changes already published ($4), and return the oldest waiting changes but those and
-- the ones being published ($3). Ordered by id, which for one row is commit order. It needs no
-- transaction: it reads only committed changes, and deletes only changes that Redis accepted.
-- $1: batch size. $2: whether track_commit_timestamp is on. $3, $4: change ids. $5: every change
-- with an id up to this one was deleted or is passed over (see cdc_sio.id_horizon).
WITH published AS (
    DELETE FROM cdc_sio.changes WHERE id = ANY ($4::bigint[])
)
SELECT
    id,
    table_name,
    op,
    data::text AS data,
    old::text AS old,
    routes,
    captured_at::text AS captured_at,  -- only a parked change needs it, and text costs the daemon less
    (CASE WHEN $2::boolean
        THEN coalesce(pg_xact_commit_timestamp((xid::text::bigint & 4294967295)::text::xid), captured_at)
        ELSE captured_at
    END)::text AS committed_at  -- a statement's changes share it: the daemon parses each text once
FROM cdc_sio.changes AS c
-- The statement does not see its own delete, so it passes over the deleted changes too.
WHERE c.id > $5 AND NOT EXISTS (SELECT FROM unnest($3::bigint[] || $4::bigint[]) AS passed(id) WHERE passed.id = c.id)
ORDER BY id
LIMIT $1
