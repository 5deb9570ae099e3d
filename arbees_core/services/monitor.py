"""What both venue monitors share: source -> venue parser + local books -> top-of-book price updates.

A monitor never forwards a venue message as a quote. It applies every message to a local book per market (the
original read Kalshi deltas as snapshots and published them as 0/1 quotes) and publishes a `PriceUpdate` only when
a market's top of book changed. The venue source is chosen by `<VENUE>_SOURCE`: `sim` (default), `live` (the
venue adapter, subscribed to the discovery mapping's contracts and following it), or `replay:<file>[@<speed>x]`.

Staleness: `feed_live_ns` (sent in heartbeats; game_shard trades a price only while it or the feed's liveness is
recent) is "now" while the feed is intact: the connection is open, its keep-alive arrived within its interval
(venues/keepalive.py), and every published quote comes from a book of this connection that missed no update. So
an unchanged book of a quiet market stays tradeable, and a silent, broken or disconnected feed's prices age out
within the keep-alive interval. A book that became invalid (sequence gap, a new connection before its snapshot)
gets one cleared quote (no prices) at once. A feed that has not been intact for `STALE_FEED_S` gets one cleared
quote per market, one log line, and its markets count in the `stale_markets` gauge until the feed is intact again
(then the markets whose books are still valid are published again). A quiet market is never cleared.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env
from arbees_core.messages import PriceUpdate, encode_json
from arbees_core.services.runner import Service
from arbees_core.store.mapping_cache import MappingCache
from arbees_core.telemetry.logs import RateLimiter
from arbees_core.topics import price_topic, resolution_topic
from arbees_core.transport import Outbox, TransportSettings
from arbees_core.venues import adapter, venue
from arbees_core.venues.book import BookChange, TopOfBook
from arbees_core.venues.feed import VenueFeed
from arbees_core.venues.live import safe_url
from arbees_core.venues.replay import ReplaySource
from arbees_core.venues.resolution import Resolution, resolution_message
from arbees_core.venues.sim import SimConfig, SimVenue
from arbees_core.venues.source import SourceSpec, VenueSource, parse_source

#: How often the monitor's housekeeping runs (heartbeat, late joiners, mapping refresh), seconds.
HOUSEKEEPING_S = 0.02
#: How often markets are checked for staleness, seconds.
STALE_CHECK_S = 1.0


@dataclass(frozen=True)
class MonitorConfig:
    """Monitor settings. port: ZMQ_PUB_PORT; endpoint: ZMQ_PUB_ENDPOINT (overrides bind host/port, e.g. ipc://);
    source: <VENUE>_SOURCE (`sim` | `live` | `replay:<file>[@<speed>x]`); database_url: DATABASE_URL, for game ids
    from the discovery mapping (optional for sim/replay: without it Kalshi ids come from the ticker and Polymarket
    ids stay empty; a live source subscribes to the mapping's contracts); live: the live adapter's settings (see
    the venue's `*LiveConfig`); stale_feed_s: STALE_FEED_S (30; 0 = off)."""

    port: int
    endpoint: str
    source: str
    database_url: str
    sim: SimConfig
    log_sample_per_s: float
    live: Any = None
    stale_feed_s: float = 30.0

    @property
    def source_spec(self) -> SourceSpec:
        return parse_source(self.source, "source")


class MonitorService(Service):
    """Base of kalshi_monitor and polymarket_monitor; subclasses name the venue and port, the venue registry
    gives the rest (feed, live source, simulator encoder, the variable that picks the source)."""

    venue: ClassVar[str]
    default_port: ClassVar[int]
    rt_scope = "zmq_io"  # ARBEES_RT_PRIORITY: the I/O threads that send prices, not the parsing thread

    def __init__(self, settings: TransportSettings, cfg: MonitorConfig, heartbeat_interval_s: float = 0.5) -> None:
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self.feed: VenueFeed = adapter(self.venue).make_feed()
        self.mapping = MappingCache(cfg.database_url, self.log)
        self._limiter = RateLimiter(cfg.log_sample_per_s)
        self._feed_live_ns = 0
        self.outbox: Outbox | None = None
        self.source: VenueSource | None = None
        self._published: set[str] = set()
        self._stale: set[str] = set()
        self._gaps_seen = 0
        self._connects_seen = 0
        self._next_stale_check = 0.0

    @classmethod
    def config_from_env(cls, env: Env) -> MonitorConfig:
        source = venue(cls.venue).source
        spec = parse_source(env.get(source), source.name)
        live = None
        if spec.kind == "live":
            live = adapter(cls.venue).live_config(env)
            if not env.get(S.DATABASE_URL):
                raise ConfigError(f"{source.name}=live subscribes to the discovery mapping's markets: set "
                                  "DATABASE_URL (and run market_discovery with the live source)")
        elif spec.kind == "replay" and not Path(spec.path).is_file():
            raise ConfigError(f"{source.name}={spec.describe()!r}: no recording at {spec.path!r}")
        return MonitorConfig(
            port=env.get(S.ZMQ_PUB_PORT, cls.default_port),
            endpoint=env.get(S.ZMQ_PUB_ENDPOINT),
            source=spec.describe(),
            database_url=env.get(S.DATABASE_URL),
            sim=SimConfig.from_env(env),
            log_sample_per_s=env.get(S.LOG_SAMPLE_PER_SEC),
            live=live,
            stale_feed_s=env.get(S.STALE_FEED_S),
        )

    @classmethod
    def from_env(cls, env: Env) -> "MonitorService":
        return cls(TransportSettings.from_env(env), cls.config_from_env(env),
                   env.get(S.HEARTBEAT_INTERVAL_SECS, 0.5))

    def make_source(self) -> VenueSource:
        spec = self.cfg.source_spec
        if spec.kind == "replay":
            return ReplaySource(spec.path, spec.speed)
        if spec.kind == "live":
            return adapter(self.venue).make_live_source(self.cfg.live, self.live_tickers, self.feed)
        return SimVenue(self.venue, self.cfg.sim, resync=self.feed.take_resync)

    def live_tickers(self) -> list[str]:
        """The contracts of this venue in the discovery mapping (the live source subscribes to exactly these)."""
        return [t for game in self.mapping.games for t in game.tickers(self.venue)]

    def game_of(self, ticker: str) -> tuple[str, str]:
        """(game_id, outcome) of a market: the discovery mapping first, then the venue's own fallback."""
        return self.mapping.lookup(self.venue, ticker) or self.fallback_game_of(ticker)

    def fallback_game_of(self, ticker: str) -> tuple[str, str]:
        return ("", "")

    def feed_live_ns(self) -> int:
        return self.note_liveness(time.time_ns())

    def note_liveness(self, now_ns: int) -> int:
        """When the feed was last known intact (ns since the epoch): `now_ns` when it is intact now."""
        if self.feed_intact(now_ns):
            self._feed_live_ns = now_ns
        return self._feed_live_ns

    def feed_intact(self, now_ns: int) -> bool:
        """The source is connected with its keep-alive current (a live source's `intact`; a simulator always is, a
        replay while it plays), and no published quote comes from an invalid book (withdrawn first)."""
        if self.source is None:
            return False
        self.sync_connection(now_ns)
        return self.source.intact(now_ns)

    def sync_connection(self, now_ns: int) -> None:
        """A new venue connection voids the books of the previous one until their snapshot: withdraw their quotes
        before anything vouches for the feed again."""
        connects = self.source.connects if self.source is not None else 0
        if connects != self._connects_seen:
            self._connects_seen = connects
            self.clear_invalid_books(now_ns, "new connection")

    def extra_snapshot(self) -> dict[str, Any]:
        return {"venue": self.venue, "source": self.cfg.source, "feed": self.feed.stats(),
                "connection": self.source.stats() if self.source is not None else {},
                "stale_markets": sorted(self._stale)}

    # -- run --------------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if not self.announce_mode(stop):
            return
        self.outbox = self.open_outbox(self.cfg.port, self.cfg.endpoint)
        publisher = self.outbox.publisher
        self.log.info("%s source: %s (%s)", self.venue, self.cfg.source, self.describe_source())
        self.mapping.refresh()
        try:
            asyncio.run(self._run_async(stop))
        finally:
            publisher.close()

    def describe_source(self) -> str:
        spec = self.cfg.source_spec
        if spec.kind == "replay":
            return f"recording {spec.path} at {'maximum speed' if spec.speed <= 0 else f'{spec.speed:g}x'}"
        if spec.kind == "live":
            live = self.cfg.live
            url, proxy = live.ws_url, live.proxy
            return (f"live {safe_url(url)}{f' via proxy {safe_url(proxy)}' if proxy else ''}, markets of the "
                    f"discovery mapping, prices withdrawn after {self.cfg.stale_feed_s:g}s without keep-alive")
        s = self.cfg.sim
        return (f"seed {s.seed}, {s.games} games, {s.rate_per_s:g} msg/s, mispricing every {s.mispricing_every_s:g}s"
                f" at {list(s.mispricing_at_s)} of {s.mispricing_cents:g}c on {s.mispricing_venue}")

    async def _run_async(self, stop: threading.Event) -> None:
        done = asyncio.Event()
        self.source = self.make_source()
        reader = asyncio.create_task(self._read(self.source, done))
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
        now = time.monotonic()
        if now >= self._next_stale_check:
            self._next_stale_check = now + STALE_CHECK_S
            self.check_stale(time.time_ns())
            self.note_connection()

    def note_connection(self) -> None:
        """Connection state as gauges (`venue_connected` 1/0, `venue_reconnects`, `venue_auth_failures`)."""
        self.metrics.gauges["venue_connected"] = 1 if self.source_connected() else 0
        for name, value in (self.source.gauges() if self.source is not None else {}).items():
            self.metrics.gauges[f"venue_{name}"] = value

    def source_connected(self) -> bool:
        """Whether the venue connection is up (a simulator always is; a finished replay is not)."""
        return self.source is None or self.source.connected

    async def _read(self, source: VenueSource, done: asyncio.Event) -> None:
        """Apply every frame to the books; publish each changed market's top once per read. A source that
        delivers reads (`stream_batches`: the frames that arrived together) gets one publish per market per
        read, so a burst of deltas moving one book is one price update, not one per delta."""
        async for frames in source.stream_batches(done):
            recv_ns = time.time_ns()
            self.sync_connection(recv_ns)
            self.metrics.inc("venue_rx", len(frames))
            changed = self.feed.handle_many(frames, recv_ns)  # books whose top moved, once each
            if self._check_gaps(recv_ns):  # a book that lost deltas is not published from this read either
                books = self.feed.books
                changed = [c for c in changed if c.ticker not in books or books[c.ticker].ready]
            if changed:
                self.publish_changes(changed, recv_ns)
            resolved = self.feed.take_resolutions()
            if resolved:
                self.publish_resolutions(resolved, recv_ns)
            self.note_liveness(recv_ns)

    def _check_gaps(self, recv_ns: int) -> bool:
        """True when the feed saw a new sequence gap (its books are withdrawn until their fresh snapshot)."""
        gaps = self.feed.gaps
        if gaps == self._gaps_seen:
            return False
        self._gaps_seen = gaps
        self.metrics.gauges["venue_gaps"] = gaps
        self.clear_invalid_books(recv_ns, "sequence gap")
        return True

    # -- staleness ----------------------------------------------------------------------------------------------

    def check_stale(self, now_ns: int) -> None:
        """A feed not intact for STALE_FEED_S (keep-alive lost, disconnected, replay over): withdraw every quote it
        published, once. When it is intact again, publish the withdrawn markets whose books are still valid."""
        limit_ns = self.cfg.stale_feed_s * 1e9
        if limit_ns <= 0:
            return
        live_ns = self.note_liveness(now_ns)
        if now_ns - live_ns <= limit_ns:
            if self._stale:
                self.republish(sorted(self._stale), now_ns)
            return
        newly = sorted(self._published)
        if newly:
            self._stale.update(newly)
            self.metrics.inc("stale_events", len(newly))
            if self._limiter.allow("stale"):
                self.log.warning("Stale %s feed: not intact (keep-alive lost or disconnected) for over %.0fs; the "
                                 "last prices of %d markets are withdrawn until it is intact again", self.venue,
                                 self.cfg.stale_feed_s, len(newly))
            self.publish_cleared(newly, now_ns)
        self.metrics.gauges["stale_markets"] = len(self._stale)

    def republish(self, tickers: list[str], now_ns: int) -> None:
        """The feed is intact again: the current top of every withdrawn market whose book is still valid."""
        books = self.feed.books
        valid = [BookChange(t, books[t].top(), 0, now_ns) for t in tickers if t in books and books[t].ready]
        self._stale.clear()
        self.metrics.gauges["stale_markets"] = 0
        self.log.info("%s feed intact again; %d of %d withdrawn markets published from their books", self.venue,
                      len(valid), len(tickers))
        if valid:
            self.publish_changes(valid, now_ns)

    def clear_invalid_books(self, now_ns: int, why: str) -> None:
        """Books the feed marked invalid until a fresh snapshot (a sequence gap, a new connection): withdraw their
        last quotes."""
        books = self.feed.books
        invalid = [t for t in self._published if t in books and not books[t].ready]
        if invalid:
            self.log.warning("%d %s markets withdrawn until their fresh snapshot (%s)", len(invalid), self.venue, why)
            self.publish_cleared(invalid, now_ns)

    def publish_cleared(self, tickers: list[str], now_ns: int) -> None:
        """One quote without prices per market: game_shard then has nothing of it to trade."""
        tickers = [t for t in tickers if t in self._published]
        if tickers and self.outbox is not None:
            self._published.difference_update(tickers)
            items = [(price_topic(self.venue, t), self.to_update(BookChange(t, TopOfBook(), 0, now_ns), now_ns))
                     for t in tickers]
            self.outbox.publish_many(items)
            self.metrics.inc("quotes_withdrawn", len(items))

    def publish_changes(self, changes: list[BookChange], recv_ns: int) -> None:
        assert self.outbox is not None
        for c in changes:
            self._published.add(c.ticker)
            if c.ticker in self._stale:
                self._stale.discard(c.ticker)
                self.metrics.gauges["stale_markets"] = len(self._stale)
        items = [(price_topic(self.venue, c.ticker), self.to_update(c, recv_ns)) for c in changes]
        self.outbox.publish_many(items)
        self.metrics.inc("prices_published", len(items))
        if self._limiter.allow("publish"):
            topic, upd = items[-1]
            self.log.info("Published %s yes_bid=%s yes_ask=%s (payload %d bytes)", topic, upd.yes_bid, upd.yes_ask,
                          len(encode_json(upd)))

    def publish_resolutions(self, resolved: list[Resolution], recv_ns: int) -> None:
        """Markets the venue says have resolved: their quotes withdrawn (nothing may trade them), then one
        `MarketResolution` each (execution settles their positions); they are never republished."""
        assert self.outbox is not None
        tickers = [r.ticker for r in resolved]
        self.publish_cleared(tickers, recv_ns)
        for ticker in tickers:
            self._stale.discard(ticker)
            self.outbox.retire(price_topic(self.venue, ticker))
        self.outbox.publish_many([(resolution_topic(self.venue, r.ticker), resolution_message(
            self.venue, r, self.game_of(r.ticker), recv_ns)) for r in resolved])
        self.metrics.inc("resolutions_published", len(resolved))
        self.log.info("%d %s market(s) resolved: %s", len(resolved), self.venue,
                      ", ".join(f"{r.ticker} {r.result}" for r in resolved[:4]))

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
