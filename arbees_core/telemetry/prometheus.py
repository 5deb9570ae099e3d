"""Every service's counters, gauges and per-hop latency histograms in the Prometheus text format, on METRICS_PORT.

The figures are the ones the service keeps anyway (`telemetry/metrics.py`). Nothing is added to the hot path: once
per heartbeat, on the service's own thread and right after the JSON snapshot is built (`Service.tick`), an
immutable `Exposition` is made from them and swapped in with one attribute assignment; prometheus_client's HTTP
thread renders whichever exposition is current when it is scraped. No lock, no per-message work.

Names follow Prometheus conventions, with the service as a label (every service shares the names):
- each counter `<name>` -> `arbees_<name>_total`; a counter per reason `<name>.<reason>` (rejects) ->
  `arbees_<name>_by_reason_total{reason="<reason>"}`;
- each gauge `<name>` -> `arbees_<name>`;
- each latency hop -> `arbees_latency_seconds{hop="<hop>"}`, a histogram with LATENCY_BUCKETS_S (`_bucket`,
  `_sum`, `_count`), for `histogram_quantile()`;
- `arbees_service_info{mode, instance, state}` = 1 and `arbees_service_start_time_seconds`;
- the process's own `process_*` (resident memory, CPU seconds, open fds) from prometheus_client.
The figures are as of the service's latest heartbeat (HEARTBEAT_INTERVAL_SECS, 1 s by default).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from arbees_core import settings as S
from arbees_core.config import Env
from arbees_core.telemetry.metrics import Metrics

#: Histogram bucket bounds in seconds: 50 us .. 60 s, dense where the hops live (0.1-5 ms).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BOUNDS_US: tuple[int, ...] = tuple(round(b * 1e6) for b in LATENCY_BUCKETS_S)
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")

log = logging.getLogger("arbees.metrics")


@dataclass(frozen=True)
class HopHistogram:
    """One hop's lifetime histogram: cumulative counts per LATENCY_BUCKETS_S bound, total count, sum in seconds."""

    cumulative: tuple[int, ...]
    count: int
    sum_s: float


@dataclass(frozen=True)
class Exposition:
    """What one scrape shows: a copy of the service's figures as of one heartbeat (never mutated afterwards)."""

    service: str
    instance: str
    mode: str
    state: str
    started_s: float
    counters: dict[str, int]
    gauges: dict[str, float]
    hops: dict[str, HopHistogram]


def metric_name(name: str) -> str:
    """A counter or gauge name as a Prometheus name part (`rx_rejected` stays, anything else becomes `_`)."""
    return _NAME_BAD.sub("_", name).strip("_") or "unnamed"


def exposition(metrics: Metrics, mode: str, state: str = "running") -> Exposition:
    """The current figures of `metrics`; call on the thread that records them (it reads their live dicts)."""
    hops = {}
    for hop in metrics.latency.hops():
        cumulative, count, sum_us = metrics.latency.cumulative(hop, _BOUNDS_US)
        hops[hop] = HopHistogram(tuple(cumulative), count, sum_us / 1e6)
    gauges = {k: float(v) for k, v in metrics.gauges.items() if isinstance(v, (int, float))}
    return Exposition(metrics.service, metrics.instance, mode, state, metrics.started_ns / 1e9,
                      dict(metrics.counters), gauges, hops)


class ServiceCollector(Collector):
    """Renders the latest `Exposition` (set by the service thread) when Prometheus scrapes."""

    def __init__(self) -> None:
        self.latest: Exposition | None = None

    def collect(self) -> Iterator[Metric]:
        exp = self.latest  # one read: the service thread may swap in a newer one meanwhile
        if exp is None:
            return
        svc = exp.service
        info = GaugeMetricFamily("arbees_service_info", "The service, its transport mode and instance (value 1).",
                                 labels=["service", "mode", "instance", "state"])
        info.add_metric([svc, exp.mode, exp.instance, exp.state], 1.0)
        yield info
        start = GaugeMetricFamily("arbees_service_start_time_seconds", "When this instance started (Unix seconds).",
                                  labels=["service"])
        start.add_metric([svc], exp.started_s)
        yield start
        yield from _counters(svc, exp.counters)
        for name, value in sorted(exp.gauges.items()):
            gauge = GaugeMetricFamily(f"arbees_{metric_name(name)}", f"Gauge {name} of the service.",
                                      labels=["service"])
            gauge.add_metric([svc], value)
            yield gauge
        if exp.hops:
            hist = HistogramMetricFamily("arbees_latency_seconds", "Per-hop latency since the instance started "
                                         "(price: monitor -> game_shard; signal: game_shard -> execution_service; "
                                         "execution: receipt -> paper fill; end_to_end: venue message -> paper fill; "
                                         "mirror: publish -> Redis stream).", labels=["service", "hop"])
            for hop, h in sorted(exp.hops.items()):
                buckets = [(_le(b), c) for b, c in zip(LATENCY_BUCKETS_S, h.cumulative)] + [("+Inf", h.count)]
                hist.add_metric([svc, hop], buckets, h.sum_s)
            yield hist


def _le(bound_s: float) -> str:
    return f"{bound_s:g}"


def _counters(service: str, counters: dict[str, int]) -> Iterator[Metric]:
    """One family per plain counter; counters per reason (`name.reason`) grouped into `name_by_reason`."""
    by_reason: dict[str, list[tuple[str, int]]] = {}
    for name, value in sorted(counters.items()):
        head, dot, reason = name.partition(".")
        if dot:
            by_reason.setdefault(head, []).append((reason, value))
            continue
        family = CounterMetricFamily(f"arbees_{metric_name(name)}", f"Counter {name} of the service.",
                                     labels=["service"])
        family.add_metric([service], value)
        yield family
    for head, rows in by_reason.items():
        family = CounterMetricFamily(f"arbees_{metric_name(head)}_by_reason", f"Counter {head}, per reason.",
                                     labels=["service", "reason"])
        for reason, value in rows:
            family.add_metric([service, reason], value)
        yield family


@dataclass(frozen=True)
class MetricsEndpoint:
    """METRICS_PORT (0 = no endpoint, the default for a service started by hand; the local runtime gives every
    service one, compose uses 9464 in each container) and METRICS_HOST (127.0.0.1; 0.0.0.0 inside compose)."""

    port: int
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Env) -> "MetricsEndpoint":
        return cls(env.get(S.METRICS_PORT), env.get(S.METRICS_HOST))


class Exporter:
    """The service's `/metrics` HTTP endpoint (prometheus_client's server, a daemon thread of its own)."""

    def __init__(self, endpoint: MetricsEndpoint) -> None:
        self.endpoint = endpoint
        self.collector = ServiceCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.registry.register(ProcessCollector(registry=None))
        self._server: Any = None

    def start(self) -> bool:
        """Bind and serve; False (one ERROR line) when the port cannot be bound: the service keeps trading."""
        try:
            self._server, _thread = start_http_server(self.endpoint.port, self.endpoint.host, self.registry)
        except OSError as e:
            log.error("Cannot serve Prometheus metrics on %s:%d: %s (METRICS_PORT)", self.endpoint.host,
                      self.endpoint.port, e.strerror or e)
            return False
        log.info("Prometheus metrics on http://%s:%d/metrics", self.endpoint.host, self.endpoint.port)
        return True

    def update(self, metrics: Metrics, mode: str, state: str = "running") -> None:
        """Publish the current figures (service thread, once per heartbeat)."""
        self.collector.latest = exposition(metrics, mode, state)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def scrape_config(targets: dict[str, str], interval_s: float = 5.0, job: str = "arbees") -> str:
    """A Prometheus configuration scraping each service's endpoint (`{service: "host:port"}`), one target each with
    its `service` label (`honor_labels`: the services' own `service` label is the same)."""
    import yaml

    config = {"global": {"scrape_interval": f"{interval_s:g}s", "evaluation_interval": f"{interval_s:g}s"},
              "scrape_configs": [{"job_name": job, "honor_labels": True, "static_configs": [
                  {"targets": [address], "labels": {"service": name}} for name, address in targets.items()]}]}
    return yaml.safe_dump(config, sort_keys=False)
