"""api: the operators' live view of the pipeline (the plan's "api WebSocket, real-time dashboard"), on HTTP :8000.

A web page and JSON endpoints (`arbees_core/dashboard/app.py` lists them; OpenAPI at `/openapi.json`), fed live
from the pipeline: in ZMQ mode its own SUB socket on every publisher (so it needs neither zmq_listener nor the
Redis streams), in Redis mode the streams. Per game both venues' books and the edge after fees; signals and trades
as they happen with their hop latencies; latency percentiles and message rates; every service's health; positions
and P&L from the position store. A browser that connects late gets a snapshot first, then updates (SSE), through a
bounded queue of its own: a slow browser loses only its own updates (counted), never slows the feed.
Bound to API_HOST (127.0.0.1) : API_PORT (8000). Run: `python -m arbees_core.services.api`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from arbees_core import settings as S
from arbees_core.config import Env, state_dir
from arbees_core.dashboard.app import create_app
from arbees_core.dashboard.feed import Feed, Poller, feed_status, load_history
from arbees_core.dashboard.health import HealthReader
from arbees_core.dashboard.hub import Hub
from arbees_core.dashboard.models import ApiStatus
from arbees_core.dashboard.state import LiveState
from arbees_core.services.runner import Service
from arbees_core.services.runner import main as run_main
from arbees_core.services.zmq_listener import ENDPOINT_SETTINGS
from arbees_core.store.mapping_cache import MappingCache
from arbees_core.strategy.arb import ArbConfig
from arbees_core.topics import API
from arbees_core.transport import TransportError, TransportSettings

#: How long the HTTP server may take to bind before the start counts as failed (seconds).
SERVE_START_S = 15.0


@dataclass(frozen=True)
class ApiConfig:
    """host / port: API_HOST (127.0.0.1; 0.0.0.0 in compose) / API_PORT (8000); push_ms: API_PUSH_MS (250), how
    often changes go to the browsers; client_queue: API_CLIENT_QUEUE (64), updates a browser may fall behind before
    they are dropped (and it is resynced); window_s: API_WINDOW_S (300), the latency and rate windows, seconds;
    endpoints: the four publishers (ZMQ_KALSHI_ENDPOINT, ZMQ_POLYMARKET_ENDPOINT, ZMQ_GAME_SHARD_ENDPOINT,
    ZMQ_EXECUTION_ENDPOINT, as zmq_listener reads them); database_url: DATABASE_URL (mapping, trade history,
    positions); arb: MIN_EDGE_PCT, MAX_PRICE_AGE_MS and the fee rates, to show edges as game_shard computes them."""

    host: str
    port: int
    push_ms: float
    client_queue: int
    window_s: float
    endpoints: list[str]
    database_url: str
    arb: ArbConfig

    @classmethod
    def from_env(cls, env: Env) -> "ApiConfig":
        return cls(host=env.get(S.API_HOST), port=env.get(S.API_PORT), push_ms=env.get(S.API_PUSH_MS),
                   client_queue=env.get(S.API_CLIENT_QUEUE), window_s=env.get(S.API_WINDOW_S),
                   endpoints=[env.get(s) for s in ENDPOINT_SETTINGS],
                   database_url=env.get(S.DATABASE_URL), arb=ArbConfig.from_env(env))


class Api(Service):
    name = API

    def __init__(self, settings: TransportSettings, cfg: ApiConfig, heartbeat_interval_s: float = 1.0) -> None:
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self.mapping = MappingCache(cfg.database_url, self.log)
        # what the dashboard shows (`self.state` is the runner's: running, or waiting for Redis)
        self.live = LiveState(settings.mode, cfg.arb, self.mapping, cfg.window_s)
        self.feed = Feed(settings, cfg.endpoints, self.live)
        self.hub = Hub(self.live, self.metrics, self.status, cfg.push_ms, cfg.client_queue)

    @classmethod
    def from_env(cls, env: Env) -> "Api":
        return cls(TransportSettings.from_env(env), ApiConfig.from_env(env),
                   env.get(S.HEARTBEAT_INTERVAL_SECS))

    def status(self) -> ApiStatus:
        return ApiStatus(source=self.settings.mode, endpoints=self.cfg.endpoints if self.settings.zmq_enabled else [],
                         connected=self.feed.connected(), clients=len(self.hub.clients),
                         updates_dropped=int(self.metrics.counters.get("updates_dropped", 0)), **feed_status(self.feed))

    def extra_snapshot(self) -> dict[str, Any]:
        return {"url": f"http://{self.cfg.host}:{self.cfg.port}/", "source": self.settings.mode,
                "clients": len(self.hub.clients), "feed": feed_status(self.feed)}

    def run(self, stop: threading.Event) -> None:
        import uvicorn

        if not self.announce_mode(stop):
            return
        self.mapping.refresh()
        self.log.info("Loaded %d trade results from paper_trades", load_history(self.cfg.database_url, self.live))
        self.feed.open()
        self.feed.start()
        poller = Poller(self.live, HealthReader(self.settings.redis_url, state_dir()), self.cfg.database_url)
        poller.start()
        server = uvicorn.Server(uvicorn.Config(create_app(self.live, self.hub, self.status), host=self.cfg.host,
                                               port=self.cfg.port, log_config=None, access_log=False,
                                               timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, name="api-http", daemon=True)
        try:
            thread.start()
            self._wait_serving(server, thread)
            self.log.info("Dashboard on http://%s:%d/ (live feed: %s)", self.cfg.host, self.cfg.port,
                          f"ZMQ SUB on {', '.join(self.cfg.endpoints)}" if self.settings.zmq_enabled else
                          "Redis streams")
            while not stop.wait(0.2):
                self.tick()
                self.mapping.maybe_refresh()
        finally:
            server.should_exit = True
            thread.join(timeout=5)
            poller.close()
            self.feed.close()

    def _wait_serving(self, server: Any, thread: threading.Thread) -> None:
        deadline = time.monotonic() + SERVE_START_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise TransportError(f"Cannot serve the dashboard on {self.cfg.host}:{self.cfg.port} (API_PORT): "
                                     "see the line above; is another program on that port?")
            time.sleep(0.05)


def main() -> int:
    return run_main(Api)


if __name__ == "__main__":
    raise SystemExit(main())
