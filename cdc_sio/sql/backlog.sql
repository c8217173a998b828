-- How many changes wait, how old the oldest is (by id: index only), and how full the notification queue is.
SELECT
    (SELECT count(*) FROM cdc_sio.changes) AS waiting,
    (SELECT extract(epoch FROM now() - captured_at)::float8 FROM cdc_sio.changes ORDER BY id LIMIT 1) AS oldest_age,
    pg_notification_queue_usage() AS queue_usage
