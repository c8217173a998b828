-- The change log's id horizon, for the daemon's reads. The daemon deletes changes as it publishes
-- them, and until autovacuum removes them (once a minute at most) every read that starts at the
-- lowest id walks the index over them: at 10,000 changes/s, hundreds of thousands of entries. A
-- read can start above the ids that can no longer appear, which this function tells: every change
-- with an id up to last_id was written by a transaction that took its transaction id before
-- xact (a capture trigger runs after its statement changed the table, which took one). Once the
-- oldest transaction still running is newer than xact, no change with an id up to last_id can
-- appear any more. xact is taken only when ids were handed out since known_last_id (an idle
-- daemon's looks write nothing), and filenode changes when the sequence is restarted.
CREATE FUNCTION cdc_sio.id_horizon(
    known_last_id bigint,
    OUT last_id bigint,
    OUT xact xid8,
    OUT oldest_running xid8,
    OUT filenode oid
)
    LANGUAGE sql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT
            seq.last_id,
            -- Evaluated after the sequence was read: a later transaction id than its writers'.
            CASE WHEN seq.last_id IS DISTINCT FROM known_last_id THEN pg_current_xact_id() END,
            pg_snapshot_xmin(pg_current_snapshot()),
            pg_relation_filenode('cdc_sio.changes_id_seq')
        FROM (
            SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS last_id
            FROM cdc_sio.changes_id_seq
            OFFSET 0
        ) AS seq
    $$;
REVOKE EXECUTE ON FUNCTION cdc_sio.id_horizon(bigint) FROM PUBLIC;
