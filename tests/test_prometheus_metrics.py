"""A service's counters, gauges and latency histograms in the Prometheus text format, read back by prometheus_client's
own parser from the real HTTP endpoint (the end-to-end scrape by a real Prometheus is in test_prometheus_scrape.py)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbees_core.config import ConfigError, Env
from arbees_core.runtime.ports import free_port
from arbees_core.telemetry.metrics import Metrics
from arbees_core.telemetry.prometheus import LATENCY_BUCKETS_S, Exporter, MetricsEndpoint
from tests.conftest import listening_process


def _families(port: int) -> dict[str, object]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_counters_gauges_and_hop_histograms_are_exposed_with_conventional_names() -> None:
    metrics = Metrics("game_shard", "game_shard.1.ab")
    metrics.inc("prices_rx", 5)
    metrics.inc("rx_rejected", 3)
    metrics.inc("rx_rejected.malformed", 2)
    metrics.inc("rx_rejected.bad_value", 1)
    metrics.gauges["backlog"] = 7
    for us in (80, 120, 400, 900, 1800, 4000):
        metrics.latency.record_ns("price", us * 1000)
    exporter = Exporter(MetricsEndpoint(free_port()))
    assert exporter.start()
    try:
        exporter.update(metrics, "zmq")
        fams = _families(exporter.endpoint.port)
    finally:
        exporter.close()

    # prometheus_client's parser names counter families without `_total`; the samples keep it
    prices = fams["arbees_prices_rx"]
    assert prices.type == "counter" and [(s.name, s.labels, s.value) for s in prices.samples] == [
        ("arbees_prices_rx_total", {"service": "game_shard"}, 5.0)]
    reasons = {s.labels["reason"]: s.value for s in fams["arbees_rx_rejected_by_reason"].samples}
    assert reasons == {"malformed": 2.0, "bad_value": 1.0}
    assert fams["arbees_rx_rejected"].samples[0].value == 3.0  # the total stays its own family
    assert fams["arbees_backlog"].type == "gauge" and fams["arbees_backlog"].samples[0].value == 7.0
    info = fams["arbees_service_info"].samples[0].labels
    assert info == {"service": "game_shard", "mode": "zmq", "instance": "game_shard.1.ab", "state": "running"}
    assert "process_resident_memory_bytes" in fams

    hist = fams["arbees_latency_seconds"]
    assert hist.type == "histogram"
    buckets = {float(s.labels["le"]): s.value for s in hist.samples if s.name.endswith("_bucket")}
    assert len(buckets) == len(LATENCY_BUCKETS_S) + 1 and buckets[float("inf")] == 6
    assert buckets[0.0001] == 1 and buckets[0.00025] == 2 and buckets[0.001] == 4 and buckets[0.002] == 5
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative
    by_name = {s.name: s.value for s in hist.samples if not s.name.endswith("_bucket")}
    assert by_name["arbees_latency_seconds_count"] == 6
    assert by_name["arbees_latency_seconds_sum"] == pytest.approx((80 + 120 + 400 + 900 + 1800 + 4000) / 1e6)


def test_metrics_port_is_off_unless_set_and_checked() -> None:
    assert MetricsEndpoint.from_env(Env({})).port == 0
    assert MetricsEndpoint.from_env(Env({"METRICS_PORT": "9401", "METRICS_HOST": "0.0.0.0"})) == \
        MetricsEndpoint(9401, "0.0.0.0")
    with pytest.raises(ConfigError, match="METRICS_PORT"):
        MetricsEndpoint.from_env(Env({"METRICS_PORT": "70000"}))
    with pytest.raises(ConfigError, match="METRICS_PORT"):
        MetricsEndpoint.from_env(Env({"METRICS_PORT": "nine"}))


def test_a_taken_metrics_port_costs_the_endpoint_not_the_service(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with listening_process(port):
        exporter = Exporter(MetricsEndpoint(port))
        assert exporter.start() is False
    assert f"Cannot serve Prometheus metrics on 127.0.0.1:{port}" in caplog.text
