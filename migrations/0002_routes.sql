-- Routes (issue: routing, filters and payload strategies). A change row now records the old row
-- of an UPDATE when a route needs it, and the names of the routes whose filters it matched.
-- Rows written by triggers of 0001 have routes NULL, which means every route of their operation.
ALTER TABLE cdc_sio.changes ADD COLUMN old jsonb, ADD COLUMN routes text[];
ALTER TABLE cdc_sio.dead_letters ADD COLUMN old jsonb, ADD COLUMN routes text[];
