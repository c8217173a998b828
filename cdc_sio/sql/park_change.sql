INSERT INTO cdc_sio.dead_letters (change_id, captured_at, table_name, op, data, old, routes, reason)
VALUES ($1, $2::text::timestamptz, $3, $4, $5::json, $6::json, $7, $8)
ON CONFLICT (change_id) DO UPDATE SET reason = excluded.reason, failed_at = now()
