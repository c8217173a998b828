-- Whether a table's row type holds the json type anywhere (a column, an array element, a domain's
-- base type, a composite's attribute). Converting such a value to jsonb parses it, and fails for
-- content jsonb refuses (\u0000, lone surrogates), so these tables are captured as JSON text.
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
SELECT EXISTS (SELECT FROM types WHERE oid = 'json'::regtype)
