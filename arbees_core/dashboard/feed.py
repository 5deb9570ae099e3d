"""The api's inputs: the live pipeline (a feed thread) and the slower reads (a poller thread).

Feed: in ZMQ mode a SUB socket of its own on every publisher (prices, signals, trade results, heartbeats); the
monitors' XPUB replays every market's current book when it subscribes, so the api has the current state at once.
It does not depend on zmq_listener or the Redis streams (it keeps working in ZMQ-only mode). In Redis mode it reads
the streams (the newest entry per market first). It never publishes anything, and it is an ordinary subscriber
(not first in line): the hot path's receivers are written to before it.

Its counters are its own (`FeedCounters`: rx, lost, rejected): a message the dashboard missed is not a message the
pipeline lost, so they never reach the `lost` / `rx_rejected` counters that `decide` sums over the services.
Poller: health keys and the supervisor's view every second, positions every two, into the state.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from arbees_core.dashboard.health import HealthReader
from arbees_core.dashboard.pg import read_positions, recent_results
from arbees_core.dashboard.state import KEEP_EVENTS, LiveState
from arbees_core.messages import Heartbeat, PriceUpdate, TradeResult, TradingSignal
from arbees_core.telemetry.metrics import Metrics
from arbees_core.topics import LAST_VALUE_FAMILIES, Family, family_of
from arbees_core.transport import Inbox, Received, Subscriber, TransportSettings, make_subscriber

log = logging.getLogger("api")

FAMILIES = [Family.PRICES_KALSHI, Family.PRICES_POLY, Family.SIGNALS, Family.RESULTS, Family.HEARTBEAT]
#: Rate names per family, as the page labels them.
RATE_NAMES = {Family.PRICES_KALSHI: "prices.kalshi", Family.PRICES_POLY: "prices.poly", Family.SIGNALS: "signals",
              Family.RESULTS: "trades.result", Family.HEARTBEAT: "heartbeat"}
POSITIONS_EVERY_S, HEALTH_EVERY_S = 2.0, 1.0


class Feed(threading.Thread):
    """Receives the pipeline's messages into `state`."""

    def __init__(self, settings: TransportSettings, endpoints: list[str], state: LiveState) -> None:
        super().__init__(name="api-feed", daemon=True)
        self.settings, self.endpoints, self.state = settings, endpoints, state
        self.counters = Metrics("api-feed", "api-feed")  # own figures: see the module docstring
        self.subscriber: Subscriber | None = None
        self._halt = threading.Event()

    def open(self) -> None:
        """The subscriber, before the thread starts (a bad endpoint is a start error, not a silent thread)."""
        self.subscriber = make_subscriber(self.settings, FAMILIES, self.endpoints, last_value=True,
                                          name="api subscriber")

    def run(self) -> None:
        assert self.subscriber is not None
        inbox = Inbox(self.subscriber, self.counters, "api")
        while not self._halt.is_set():
            for item in inbox.receive(self.settings.block_ms):
                self.dispatch(item)

    def dispatch(self, item: Received) -> None:
        family = family_of(item.topic)
        if family is None or (item.replay and family not in LAST_VALUE_FAMILIES):
            return  # a stream's older signals and trades: the history comes from paper_trades instead
        self.state.count(RATE_NAMES[family])
        msg = item.msg
        if isinstance(msg, PriceUpdate):
            self.state.on_price(msg, item.recv_ns)
        elif isinstance(msg, TradingSignal):
            self.state.on_signal(msg)
        elif isinstance(msg, TradeResult):
            self.state.on_result(msg)
        elif isinstance(msg, Heartbeat):
            self.state.on_heartbeat(msg)

    def connected(self) -> list[str]:
        """The publisher endpoints the SUB socket is connected to (ZMQ), or the streams (Redis)."""
        return sorted(getattr(self.subscriber, "connected", set())) if self.settings.zmq_enabled else \
            ["redis streams"]

    def close(self) -> None:
        self._halt.set()
        self.join(timeout=3)
        if self.subscriber is not None:
            self.subscriber.close()


def load_history(database_url: str, state: LiveState) -> int:
    """The last executed signals from paper_trades into the state (so a page after an api restart is not empty);
    0 when PostgreSQL cannot be read (logged)."""
    from arbees_core.store.db import connect

    try:
        with connect(database_url, retries=0) as conn:
            results = recent_results(conn, KEEP_EVENTS)
    except Exception as e:  # noqa: BLE001 - the live feed works without history
        log.warning("No trade history from PostgreSQL (%s: %s): the page starts empty", type(e).__name__, e)
        return 0
    for res in results:
        state.on_result(res, from_history=True)
    return len(results)


class Poller(threading.Thread):
    """Health every HEALTH_EVERY_S, positions every POSITIONS_EVERY_S (their reads block: never on the event loop)."""

    def __init__(self, state: LiveState, health: HealthReader, database_url: str) -> None:
        super().__init__(name="api-poller", daemon=True)
        self.state, self.health, self.database_url = state, health, database_url
        self._halt = threading.Event()
        self._positions_error = ""

    def run(self) -> None:
        tick = 0
        while not self._halt.is_set():
            self.state.health = self.health.read()
            if tick % round(POSITIONS_EVERY_S / HEALTH_EVERY_S) == 0:
                self.read_positions()
            tick += 1
            self._halt.wait(HEALTH_EVERY_S)

    def read_positions(self) -> None:
        from arbees_core.dashboard.models import PositionsView
        from arbees_core.store.db import connect

        try:
            with connect(self.database_url, retries=0) as conn:
                self.state.positions = read_positions(conn, self.state.best_bid)
            self._positions_error = ""
        except Exception as e:  # noqa: BLE001 - shown on the panel, logged once per kind of failure
            why = f"{type(e).__name__}: {str(e)[:200]}"
            if why != self._positions_error:
                log.warning("Cannot read positions from PostgreSQL: %s", why)
            self._positions_error = why
            self.state.positions = PositionsView(available=False, status=f"PostgreSQL unreadable: {why}")

    def close(self) -> None:
        self._halt.set()
        self.join(timeout=3)


def feed_status(feed: Feed) -> dict[str, Any]:
    """The feed's own counters (not the pipeline's)."""
    c = feed.counters.counters
    return {"messages": int(c.get("rx", 0)), "feed_lost": int(c.get("lost", 0)),
            "feed_rejected": int(c.get("rx_rejected", 0))}
