-- What capture needs to know of a table's row type.
-- has_json: the row holds the json type anywhere (a column, an array element, a domain's base
-- type, a composite's attribute). Converting such a value to jsonb parses it, and fails for
-- content jsonb refuses (\u0000, lone surrogates), so these tables are captured as JSON text.
-- has_domain: a column's type is a domain. Its constraints may refuse a null, so capture does
-- not compare rows with columns set to null (jsonb_populate_record) on such a table.
WITH RECURSIVE types(oid) AS (
    SELECT atttypid FROM pg_attribute
    WHERE attrelid = CAST(:table AS regclass) AND attnum > 0 AND NOT attisdropped
    UNION
    SELECT next.oid
    FROM types
    JOIN pg_type AS t ON t.oid = types.oid
    CROSS JOIN LATERAL (
        SELECT t.typelem WHERE t.typelem <> 0
        UNION ALL SELECT t.typbasetype WHERE t.typbasetype <> 0
        UNION ALL SELECT a.atttypid FROM pg_attribute AS a
            WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    ) AS next(oid)
)
SELECT
    EXISTS (SELECT FROM types WHERE oid = 'json'::regtype) AS has_json,
    EXISTS (
        SELECT FROM pg_attribute AS a
        JOIN pg_type AS t ON t.oid = a.atttypid
        WHERE a.attrelid = CAST(:table AS regclass) AND a.attnum > 0 AND NOT a.attisdropped AND t.typtype = 'd'
    ) AS has_domain
