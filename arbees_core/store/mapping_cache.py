"""The cross-venue mapping as services see it: loaded from PostgreSQL in the background, never on the hot path.

Discovery writes `market_mappings`; monitors (for game ids) and game_shard (for pairs to compare) read it.
Refreshes run in a short-lived thread, so a slow or absent database never stalls a price loop; until the first
load succeeds the cache retries every few seconds, then every `refresh_s`. A database that refuses us (down, no
such database, wrong password) is the process's PostgreSQL peer's outage: one line per reason, retries paced by
its backoff, one line when it is back (telemetry/peers.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from arbees_core.store.db import StoreUnavailable, connect, postgres_peer
from arbees_core.store.mappings import load_mappings
from arbees_core.telemetry.peers import PeerLink, describe
from arbees_core.venues.listing import GameMapping, OutcomePair

_RETRY_EMPTY_S = 2.0
#: How often the services reload the mapping, seconds.
MAPPING_REFRESH_S = 30.0


class MappingCache:
    """ticker -> (game_id, outcome) and the list of games, refreshed from PostgreSQL."""

    def __init__(self, database_url: str, log: logging.Logger, refresh_s: float = MAPPING_REFRESH_S,
                 shard_id: str | None = None) -> None:
        self.database_url = database_url
        self.log = log
        self.refresh_s = refresh_s
        self.shard_id = shard_id
        self.games: list[GameMapping] = []
        self._by_ticker: dict[tuple[str, str], tuple[str, str]] = {}
        self._pairs: dict[tuple[str, str], tuple[GameMapping, OutcomePair]] = {}
        self._next = 0.0
        self._thread: threading.Thread | None = None
        self._failing = False
        self._link = PeerLink(postgres_peer(database_url), "loading the market mapping") if database_url else None
        self.version = 0

    def lookup(self, venue: str, ticker: str) -> tuple[str, str] | None:
        return self._by_ticker.get((venue, ticker))

    def pair_of(self, venue: str, ticker: str) -> tuple[GameMapping, OutcomePair] | None:
        """The game and outcome pair a contract belongs to, or None when discovery has not mapped it."""
        return self._pairs.get((venue, ticker))

    def maybe_refresh(self) -> None:
        """Start a background refresh when one is due and none is running."""
        now = time.monotonic()
        if now < self._next or (self._thread is not None and self._thread.is_alive()) or self._link is None \
                or not self._link.may_try():
            return
        self._next = now + (self.refresh_s if self.games else _RETRY_EMPTY_S)
        self._thread = threading.Thread(target=self.refresh, name="mapping-refresh", daemon=True)
        self._thread.start()

    def refresh(self) -> bool:
        """Load the mapping now (blocking). False when the database is not usable (logged once per reason)."""
        if self._link is None:
            return False
        try:
            conn = connect(self.database_url, retries=0)
        except StoreUnavailable as e:
            self._link.failed(e, f"keeping {len(self.games)} games of the market mapping; retrying with backoff")
            return False
        self._link.ok()
        try:
            with conn:
                games = load_mappings(conn, self.shard_id)
        except Exception as e:  # noqa: BLE001 - e.g. no market_mappings table before discovery ran: keep the mapping
            if not self._failing:
                self.log.warning("Cannot load the market mapping from PostgreSQL (%s); keeping %d games",
                                 describe(e), len(self.games))
            self._failing = True
            return False
        self._install(games)
        return True

    def _install(self, games: list[GameMapping]) -> None:
        by_ticker: dict[tuple[str, str], tuple[str, str]] = {}
        pairs: dict[tuple[str, str], tuple[GameMapping, OutcomePair]] = {}
        for game in games:
            for pair in game.pairs:
                by_ticker[("kalshi", pair.kalshi_ticker)] = (game.game_id, pair.outcome)
                by_ticker[("polymarket", pair.poly_token)] = (game.game_id, pair.outcome)
                pairs[("kalshi", pair.kalshi_ticker)] = (game, pair)
                pairs[("polymarket", pair.poly_token)] = (game, pair)
        changed = len(games) != len(self.games) or self._failing
        self._by_ticker, self._pairs, self.games = by_ticker, pairs, games
        self._failing = False
        self.version += 1
        if changed:
            self.log.info("Loaded market mapping: %d games, %d contracts", len(games), len(by_ticker))


#: How long the book of a market not mapped now, and a feed not heard from, are kept (`prune_books`).
BOOK_RETAIN_S = 300.0


def prune_books(books: dict[tuple[str, str], tuple[Any, int]], feed_live: dict[str, int], mapping: MappingCache,
                now_ns: int, retain_s: float = BOOK_RETAIN_S) -> int:
    """Forget what ended games and gone monitors left behind in a consumer's latest books (game_shard, the api):
    keep the books of the markets mapped now and of any market updated within `retain_s` (a new game's markets
    may be heard before discovery maps them; an ended game's leave the mapping and go quiet), and the feeds
    (monitor instances, `feed_live_ns` by src) heard of within `retain_s`. Returns how many books went."""
    retain_ns = retain_s * 1e9
    gone = [k for k, (_, recv_ns) in books.items() if now_ns - recv_ns > retain_ns and mapping.pair_of(*k) is None]
    for key in gone:
        del books[key]
    for src in [s for s, live_ns in feed_live.items() if now_ns - live_ns > retain_ns]:
        del feed_live[src]
    return len(gone)
