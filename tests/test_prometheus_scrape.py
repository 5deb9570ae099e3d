"""A real Prometheus (Debian's `prometheus` package) scrapes every service of a real local stack, and its HTTP API
answers a rate and a histogram quantile over what it scraped. Skipped, with the reason, without the package."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from arbees_core.polling import eventually
from arbees_core.runtime.local import LocalRuntime
from arbees_core.runtime.ports import free_port
from arbees_core.telemetry.prometheus import scrape_config

pytestmark = pytest.mark.e2e

PROMETHEUS = "/usr/bin/prometheus"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start Prometheus on a free port with the config given to the factory; returns its base URL."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("no /usr/bin/prometheus: apt-get install prometheus")
    procs: list[subprocess.Popen] = []

    def start(config: str) -> str:
        (tmp_path / "prometheus.yml").write_text(config)
        port = free_port()
        with open(tmp_path / "prometheus.log", "ab") as log:  # the child keeps its own descriptor
            procs.append(subprocess.Popen(
                [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT))
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=20)


def query(base: str, promql: str) -> list[dict]:
    """The result vector of an instant query (empty when Prometheus does not answer yet)."""
    try:
        body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return []
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_every_service_and_answers_a_rate_and_a_quantile(
        local_project: Callable[[str], Path], prometheus: Callable[[str], str]) -> None:
    rt = LocalRuntime(local_project("ZMQ_ENABLED=true\nSIM_RATE=100\nSIM_MISPRICE_EVERY_S=2\n"
                                    "GAME_COOLDOWN_MS=500\nHEARTBEAT_INTERVAL_SECS=0.5\n"))
    services = rt.up()
    targets = {s.name: f"127.0.0.1:{s.metrics_port}" for s in services}
    assert len(targets) == len(services) and all(s.metrics_port for s in services)
    base = prometheus(scrape_config(targets, interval_s=1))

    up = eventually(lambda: (r := query(base, "up == 1")) and len(r) == len(targets) and r, 60, interval=0.5,
                    what="every service's target up")
    assert {r["metric"]["service"] for r in up} == set(targets)

    rate = eventually(lambda: query(base, 'rate(arbees_prices_rx_total{service="game_shard"}[10s]) > 0'), 60,
                      interval=0.5,
                      what="a price rate")
    assert float(rate[0]["value"][1]) > 0
    p99 = eventually(lambda: query(base, 'histogram_quantile(0.99, sum by (le) (rate(arbees_latency_seconds_bucket'
                                         '{service="game_shard", hop="price"}[10s]))) > 0'), 60, interval=0.5,
                     what="the price hop's p99")
    assert 0 < float(p99[0]["value"][1]) < 60
    e2e = eventually(lambda: query(base, 'histogram_quantile(0.5, arbees_latency_seconds_bucket{hop="end_to_end"})'
                                         ' > 0'), 60, interval=0.5, what="the end-to-end median")
    assert e2e[0]["metric"]["service"] == "execution_service"
    modes = query(base, "arbees_service_info")
    assert {r["metric"]["mode"] for r in modes} == {"zmq"} and len(modes) == len(targets)

    # the Grafana dashboard shipped beside it: every panel's query is valid PromQL over these metrics, and answers
    dashboard = json.loads((Path(__file__).parents[1] / "docs" / "grafana" / "arbees-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    answered = [e for e in exprs if query(base, e)]
    for expr in ('up{job="arbees"}', "arbees_service_info", 'process_resident_memory_bytes{job="arbees"}',
                 "histogram_quantile(0.99, sum by (le, hop) (rate(arbees_latency_seconds_bucket[1m])))"):
        assert expr in answered, expr
