-- Put parked changes back into the change log, in their original order, for the daemon to route
-- again with the current configuration. They get new change ids. $1: change ids, or NULL for all.
WITH moved AS (
    DELETE FROM cdc_sio.dead_letters
    WHERE $1::bigint[] IS NULL OR change_id = ANY ($1::bigint[])
    RETURNING change_id, captured_at, table_name, op, data, old, routes
), requeued AS (
    INSERT INTO cdc_sio.changes (captured_at, table_name, op, data, old, routes)
    SELECT captured_at, table_name, op, data, old, routes FROM moved ORDER BY change_id
    RETURNING 1
)
SELECT count(*) FROM requeued
