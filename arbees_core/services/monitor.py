"""What both venue monitors share: source -> venue parser + local books -> top-of-book price updates.

A monitor never forwards a venue message as a quote. It applies every message to a local book per market (the
original read Kalshi deltas as snapshots and published them as 0/1 quotes) and publishes a `PriceUpdate` only when
a market's top of book changed. The venue source is chosen by `<VENUE>_SOURCE` (`sim` by default); live venue
adapters plug in behind the same source interface.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from arbees_core.config import ConfigError, Env
from arbees_core.messages import PriceUpdate, encode_json
from arbees_core.services.runner import Service
from arbees_core.store.mapping_cache import MappingCache
from arbees_core.telemetry.logs import RateLimiter
from arbees_core.topics import price_topic
from arbees_core.transport import Outbox, TransportSettings, make_publisher
from arbees_core.venues.book import BookChange
from arbees_core.venues.sim import SimConfig, SimVenue

#: How often the monitor's housekeeping runs (heartbeat, late joiners, mapping refresh), seconds.
HOUSEKEEPING_S = 0.02


class VenueFeed(Protocol):
    """A venue's parser + books: raw wire message in, top-of-book changes out."""

    def handle(self, raw: bytes, recv_ns: int) -> list[BookChange]: ...


class VenueSource(Protocol):
    """Where raw venue messages come from (simulator, replay file, live WebSocket)."""

    def stream(self, stop: asyncio.Event | None = None) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True)
class MonitorConfig:
    """Monitor settings. port: ZMQ_PUB_PORT; endpoint: ZMQ_PUB_ENDPOINT (overrides bind host/port, e.g. ipc://);
    source: <VENUE>_SOURCE (`sim`); database_url: DATABASE_URL, for game ids from the discovery mapping
    (optional: without it Kalshi ids come from the ticker and Polymarket ids stay empty)."""

    port: int
    endpoint: str
    source: str
    database_url: str
    sim: SimConfig
    log_sample_per_s: float


class MonitorService(Service):
    """Base of kalshi_monitor and polymarket_monitor; subclasses name the venue, port and feed."""

    venue: ClassVar[str]
    default_port: ClassVar[int]
    source_env: ClassVar[str]

    def __init__(self, settings: TransportSettings, cfg: MonitorConfig, heartbeat_interval_s: float = 0.5) -> None:
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self.feed = self.make_feed()
        self.mapping = MappingCache(cfg.database_url, self.log)
        self._limiter = RateLimiter(cfg.log_sample_per_s)
        self._feed_live_ns = 0
        self.outbox: Outbox | None = None

    @classmethod
    def config_from_env(cls, env: Env) -> MonitorConfig:
        source = env.str(cls.source_env, "sim") or "sim"
        if source != "sim":
            raise ConfigError(
                f"{cls.source_env}={source!r}: this build has the simulated venue only ('sim'); "
                "live and replay sources come with the live-venue adapters")
        return MonitorConfig(
            port=env.int("ZMQ_PUB_PORT", cls.default_port, minimum=0),
            endpoint=env.str("ZMQ_PUB_ENDPOINT"),
            source=source,
            database_url=env.str("DATABASE_URL"),
            sim=SimConfig.from_env(env),
            log_sample_per_s=env.float("LOG_SAMPLE_PER_SEC", 5.0, minimum=0.0),
        )

    @classmethod
    def from_env(cls, env: Env) -> "MonitorService":
        return cls(TransportSettings.from_env(env), cls.config_from_env(env),
                   env.float("HEARTBEAT_INTERVAL_SECS", 0.5, minimum=0.05))

    def make_feed(self) -> VenueFeed:
        raise NotImplementedError

    def make_source(self) -> VenueSource:
        return SimVenue(self.venue, self.cfg.sim)

    def game_of(self, ticker: str) -> tuple[str, str]:
        """(game_id, outcome) of a market: the discovery mapping first, then the venue's own fallback."""
        return self.mapping.lookup(self.venue, ticker) or self.fallback_game_of(ticker)

    def fallback_game_of(self, ticker: str) -> tuple[str, str]:
        return ("", "")

    def feed_live_ns(self) -> int:
        return self._feed_live_ns

    def extra_snapshot(self) -> dict[str, Any]:
        return {"venue": self.venue, "source": self.cfg.source, "feed": getattr(self.feed, "stats", lambda: {})()}

    # -- run --------------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.announce_mode()
        publisher = make_publisher(self.settings, self.cfg.port, self.cfg.endpoint)
        if self.settings.zmq_enabled:
            self.log.info("ZMQ publisher initialized on port %s (%s)", getattr(publisher, "port", self.cfg.port),
                          getattr(publisher, "endpoint", ""))
        self.outbox = self.heartbeat_outbox = Outbox(publisher, self.instance, self.settings.wire, self.metrics)
        self.log.info("%s source: %s (%s)", self.venue, self.cfg.source, self.describe_source())
        self.mapping.refresh()
        try:
            asyncio.run(self._run_async(stop))
        finally:
            publisher.close()

    def describe_source(self) -> str:
        s = self.cfg.sim
        return (f"seed {s.seed}, {s.games} games, {s.rate_per_s:g} msg/s, mispricing every {s.mispricing_every_s:g}s"
                f" at {list(s.mispricing_at_s)} of {s.mispricing_cents:g}c on {s.mispricing_venue}")

    async def _run_async(self, stop: threading.Event) -> None:
        done = asyncio.Event()
        reader = asyncio.create_task(self._read(self.make_source(), done))
        try:
            while not stop.is_set() and not reader.done():
                self.housekeeping()
                await asyncio.sleep(HOUSEKEEPING_S)
        finally:
            done.set()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if reader.done() and not reader.cancelled() and reader.exception():
            raise reader.exception()  # type: ignore[misc]

    def housekeeping(self) -> None:
        assert self.outbox is not None
        self.outbox.serve_late_joiners()
        self.tick()
        self.mapping.maybe_refresh()

    async def _read(self, source: VenueSource, done: asyncio.Event) -> None:
        async for raw in source.stream(done):
            recv_ns = time.time_ns()
            self._feed_live_ns = recv_ns
            self.metrics.inc("venue_rx")
            changes = self.feed.handle(raw, recv_ns)
            if changes:
                self.publish_changes(changes, recv_ns)

    def publish_changes(self, changes: list[BookChange], recv_ns: int) -> None:
        assert self.outbox is not None
        items = [(price_topic(self.venue, c.ticker), self.to_update(c, recv_ns)) for c in changes]
        self.outbox.publish_many(items)
        self.metrics.inc("prices_published", len(items))
        if self._limiter.allow("publish"):
            topic, upd = items[-1]
            self.log.info("Published %s yes_bid=%s yes_ask=%s (payload %d bytes)", topic, upd.yes_bid, upd.yes_ask,
                          len(encode_json(upd)))

    def to_update(self, change: BookChange, recv_ns: int) -> PriceUpdate:
        game_id, outcome = self.game_of(change.ticker)
        t = change.top
        return PriceUpdate(
            src="", seq=0, ts_origin_ns=recv_ns, ts_event_ns=change.ts_event_ns, venue=self.venue,  # type: ignore[arg-type]
            ticker=change.ticker, game_id=game_id, outcome=outcome,
            yes_bid=t.yes_bid, yes_bid_size=t.yes_bid_size, yes_ask=t.yes_ask, yes_ask_size=t.yes_ask_size,
            no_bid=t.no_bid, no_bid_size=t.no_bid_size, no_ask=t.no_ask, no_ask_size=t.no_ask_size,
            venue_seq=change.venue_seq,
        )
