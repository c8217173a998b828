-- The least privileges of the daemon's role. Run as the role that ran `cdc-sio migrate` (the owner
-- of the cdc_sio schema), after every migrate that adds a migration:
--     psql "$DATABASE_URL" -v daemon_role=cdc_sio_daemon -f deploy/grants.sql
-- The daemon reads and trims the change log, parks what it cannot publish, LISTENs, reads the
-- catalog, records itself for `cdc-sio status`, raises the leader epoch when it takes the lock and
-- looks at the change log's id horizon; it gets nothing on the application's tables.
GRANT USAGE ON SCHEMA cdc_sio TO :"daemon_role";
GRANT SELECT, DELETE ON cdc_sio.changes TO :"daemon_role";
GRANT SELECT, INSERT, UPDATE ON cdc_sio.dead_letters TO :"daemon_role";
GRANT SELECT ON cdc_sio.schema_migrations, cdc_sio.watched_tables TO :"daemon_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON cdc_sio.daemons TO :"daemon_role";
GRANT SELECT, UPDATE ON cdc_sio.leader TO :"daemon_role";
GRANT EXECUTE ON FUNCTION cdc_sio.id_horizon(bigint) TO :"daemon_role";
