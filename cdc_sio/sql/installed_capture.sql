-- What migrate recorded for each watched table, and what is really there now.
SELECT
    w.schema_name,
    w.table_name,
    w.function_name,
    w.fingerprint,
    c.oid IS NOT NULL AS table_exists,
    p.prosrc AS function_body,
    coalesce(
        array_agg(t.tgname::text ORDER BY t.tgname) FILTER (WHERE t.tgname IS NOT NULL AND t.tgenabled <> 'D'),
        '{}'
    ) AS enabled_triggers
FROM cdc_sio.watched_tables AS w
LEFT JOIN pg_proc AS p ON p.proname = w.function_name AND p.pronamespace = 'cdc_sio'::regnamespace
LEFT JOIN pg_namespace AS n ON n.nspname = w.schema_name
LEFT JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = w.table_name
LEFT JOIN pg_trigger AS t ON t.tgrelid = c.oid AND t.tgname LIKE 'cdc\_sio\_v1\_%'
GROUP BY w.schema_name, w.table_name, w.function_name, w.fingerprint, c.oid, p.prosrc
