from prometheus_client.parser import text_string_to_metric_families

from cdc_sio.metrics import Metrics


def lag_samples(metrics: Metrics) -> dict[tuple[str, str], float]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    family = next(f for f in families if f.name == "cdc_sio_publish_lag_seconds")
    return {(s.name, s.labels.get("le", "")): s.value for s in family.samples}


def test_lag_histogram_counts_each_change_of_a_shared_lag() -> None:
    metrics = Metrics()
    metrics.lag.observe(0.005, 3)  # a bound is inclusive, as Prometheus defines it
    metrics.lag.observe(0.0051)
    metrics.lag.observe(7200.0, 2)  # above every bound

    samples = lag_samples(metrics)

    assert samples[("cdc_sio_publish_lag_seconds_bucket", "0.005")] == 3
    assert samples[("cdc_sio_publish_lag_seconds_bucket", "0.01")] == 4
    assert samples[("cdc_sio_publish_lag_seconds_bucket", "3600.0")] == 4
    assert samples[("cdc_sio_publish_lag_seconds_bucket", "+Inf")] == 6
    assert samples[("cdc_sio_publish_lag_seconds_count", "")] == 6
    assert samples[("cdc_sio_publish_lag_seconds_sum", "")] == 0.005 * 3 + 0.0051 + 7200.0 * 2
