"""position_tracker: positions per arbitrage pair and per market, marked to market, settled, and exited early.

It consumes trade results (ZMQ `trades.result.*` from execution_service, or the stream `trades:results`), the
monitors' prices and market resolutions (`prices.*`, `markets.resolved.*`, or their streams), and publishes
`positions.pair.<pair>` updates (opened, re-marked, closed) and `positions.exit.<pair>` exit signals on ZMQ PUB
:5562 (or the streams `positions:updates`, `positions:exits`).

Who owns what. execution_service stays the only writer of a position's contracts and cost: it opens the legs with
the signal's trades, and sells them (an unwind, or an exit), each in the same transaction as the paper trades, once
per record (`store/trades.py`), because its risk limit judges the exposure those rows make and must never disagree
with them. The tracker never counts a fill itself: its pairs are the `positions` rows, re-read when a trade result
says they changed (and every POSITION_RELOAD_S), so a restart rebuilds exactly what is stored and counts nothing
twice. It owns the rest: marks (`position_marks`, each open leg at the bid of its side net of the sell fee), the
per-pair and per-market views over them, the `positions.*` publications, and the exit decision. It settles what it
tracks: a market's result is stored through the same idempotent `record_resolutions` execution_service uses, so a
resolution settles the stored positions even while execution_service is down, and whichever stores it first wins.

An exit signal goes out when selling both legs into the current bids, after the venues' fees, beats the 100 cents per
hedged contract that settlement pays by EXIT_MIN_GAIN_CENTS per contract (`strategy/exits.py`), at most once per
EXIT_COOLDOWN_MS per pair. execution_service carries it out (`services/execution_exits.py`): IOC sales of both legs
against the books it sees, recorded, the exposure freed. Run: `python -m arbees_core.services.position_tracker`.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env
from arbees_core.messages import ExitSignal, MarketResolution, PositionUpdate, PriceUpdate, TradeResult
from arbees_core.services.runner import Service
from arbees_core.services.runner import main as run_main
from arbees_core.store.db import connect, postgres_peer
from arbees_core.store.marks import drop_marks, pair_legs, realised_totals, store_marks
from arbees_core.store.positions import load_open, record_resolutions
from arbees_core.store.schema import migrate
from arbees_core.strategy.exits import PairMark, exit_signal, mark_pair
from arbees_core.strategy.fees import FeeSchedule
from arbees_core.strategy.positions import LegPosition
from arbees_core.telemetry.peers import PeerLink
from arbees_core.topics import POSITION_TRACKER, POSITION_TRACKER_PORT, Family, exit_topic, position_topic
from arbees_core.transport import Inbox, Outbox, Received, TransportSettings, make_subscriber

FAMILIES = [Family.PRICES_KALSHI, Family.PRICES_POLY, Family.RESOLUTIONS, Family.RESULTS]
#: How long a trade result's pair is re-read for (every loop) until the store shows it, seconds.
AWAIT_STORED_S = 5.0
#: Market results remembered as stored, so a monitor's replay of them is not written again (the newest kept).
STORED_RESULTS_KEPT = 20_000


@dataclass(frozen=True)
class TrackerConfig:
    """endpoints: ZMQ_PRICE_ENDPOINTS (the monitors) and ZMQ_EXECUTION_ENDPOINT (trade results); port / endpoint:
    ZMQ_PUB_PORT (5562) / ZMQ_PUB_ENDPOINT; database_url: DATABASE_URL (required); mark_ms: POSITION_MARK_MS (500),
    how often marks are recomputed, stored and published; reload_s: POSITION_RELOAD_S (2), how often the open pairs
    are re-read even when no trade result said so; exit_min_gain_cents: EXIT_MIN_GAIN_CENTS (1.0, cents per contract;
    negative turns exits off); exit_cooldown_ms: EXIT_COOLDOWN_MS (2000), between two exit signals of one pair."""

    endpoints: list[str]
    port: int
    endpoint: str
    database_url: str
    fees: FeeSchedule
    mark_ms: float = 500.0
    reload_s: float = 2.0
    exit_min_gain_cents: float = 1.0
    exit_cooldown_ms: float = 2000.0

    @classmethod
    def from_env(cls, env: Env) -> "TrackerConfig":
        database_url = env.get(S.DATABASE_URL)
        if not database_url:
            raise ConfigError("DATABASE_URL is not set: position_tracker keeps positions in PostgreSQL")
        return cls(endpoints=[*env.get(S.ZMQ_PRICE_ENDPOINTS), env.get(S.ZMQ_EXECUTION_ENDPOINT)],
                   port=env.get(S.ZMQ_PUB_PORT, POSITION_TRACKER_PORT), endpoint=env.get(S.ZMQ_PUB_ENDPOINT),
                   database_url=database_url, fees=FeeSchedule.from_env(env), mark_ms=env.get(S.POSITION_MARK_MS),
                   reload_s=env.get(S.POSITION_RELOAD_S), exit_min_gain_cents=env.get(S.EXIT_MIN_GAIN_CENTS),
                   exit_cooldown_ms=env.get(S.EXIT_COOLDOWN_MS))


class PositionTracker(Service):
    name = POSITION_TRACKER

    def __init__(self, settings: TransportSettings, cfg: TrackerConfig, heartbeat_interval_s: float = 1.0) -> None:
        super().__init__(settings, heartbeat_interval_s)
        self.cfg = cfg
        self.books: dict[tuple[str, str], PriceUpdate] = {}
        self.pairs: dict[str, list[LegPosition]] = {}
        self.marks: dict[str, PairMark] = {}
        self._published: dict[str, tuple] = {}
        self._exit_at: dict[str, float] = {}
        self._stored: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()  # results stored
        self._resolutions: list[MarketResolution] = []
        self._reload_due = True
        #: pairs a trade result announced that the store did not show yet -> give up at (monotonic s)
        self._awaiting: dict[str, float] = {}
        self._exits: dict[str, tuple[str, float]] = {}  # exit id -> (pair, its held qty when signalled)
        self._next_reload = self._next_mark = 0.0
        self._totals = (0, 0.0)
        self._link = PeerLink(postgres_peer(cfg.database_url), "tracking positions")
        self._conn: psycopg.Connection | None = None
        self.outbox: Outbox | None = None
        self.known = False

    @classmethod
    def from_env(cls, env: Env) -> "PositionTracker":
        return cls(TransportSettings.from_env(env), TrackerConfig.from_env(env), env.get(S.HEARTBEAT_INTERVAL_SECS))

    def extra_snapshot(self) -> dict[str, Any]:
        """The positions' figures; the numeric ones are also gauges (`arbees_positions_<name>` in Prometheus)."""
        marks = list(self.marks.values())
        unrealised = [m.unrealised_pnl_cents for m in marks]
        figures = {"open_pairs": len(self.pairs),
                   "open_legs": sum(1 for legs in self.pairs.values() for leg in legs if leg.open),
                   "exposure_usd": round(sum(m.cost_cents for m in marks) / 100, 4),
                   "unrealised_pnl_usd": None if None in unrealised else round(sum(u or 0.0 for u in unrealised) / 100,
                                                                               4),
                   "closed_legs": self._totals[0], "realised_pnl_usd": round(self._totals[1] / 100, 4),
                   "resolutions_pending": len(self._resolutions)}
        self.metrics.gauges.update({f"positions_{k}": v for k, v in figures.items() if v is not None})
        return {"positions": {"known": self.known, **figures}, "books": len(self.books)}

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if not self.announce_mode(stop):
            return
        self.outbox = self.open_outbox(self.cfg.port, self.cfg.endpoint)
        publisher = self.outbox.publisher
        sub = make_subscriber(self.settings, FAMILIES, self.cfg.endpoints, last_value=True)
        inbox = Inbox(sub, self.metrics, self.name)
        try:
            while not stop.is_set():
                for item in inbox.receive(self.settings.block_ms):
                    self.dispatch(item)
                self.housekeeping()
        finally:
            sub.close()
            publisher.close()
            self.close()

    def close(self) -> None:
        """The end of `run`, or of a test that drives the tracker in process: the store connection closed, the
        PostgreSQL link forgotten."""
        self._disconnect()
        self._link.close()

    def dispatch(self, item: Received) -> None:
        msg = item.msg
        if isinstance(msg, PriceUpdate):
            self.books[(msg.venue, msg.ticker)] = msg
        elif isinstance(msg, TradeResult):
            self.metrics.inc("results_rx")
            if msg.filled_qty > 0:  # its pair opened or changed: re-read until the writer has stored it
                self._reload_due = True
                pair = self._exits.get(msg.signal_id, (msg.signal_id, 0.0))[0] if msg.action == "sell" else \
                    msg.signal_id
                self._awaiting[pair] = time.monotonic() + AWAIT_STORED_S
        elif isinstance(msg, MarketResolution):
            self.metrics.inc("resolutions_rx")
            self.books.pop((msg.venue, msg.ticker), None)
            if (msg.venue, msg.ticker) not in self._stored:  # a monitor replays its results to every late joiner
                self._resolutions.append(msg)

    def housekeeping(self) -> None:
        """Store heard resolutions, re-read the pairs when due, re-mark when due; then the heartbeat."""
        now = time.monotonic()
        due = self._reload_due or bool(self._awaiting) or now >= self._next_reload
        if self._link.may_try() and (self._resolutions or due):
            self.with_store(self.reload)
        if self.known and now >= self._next_mark:
            self._next_mark = now + self.cfg.mark_ms / 1000
            if self._link.may_try():
                self.with_store(self.mark_all)
            else:
                self.mark_all(None)  # PostgreSQL away: marks and exits from memory, not stored
        self.tick()

    # -- the store -----------------------------------------------------------------------------------------------

    def with_store(self, step: Any) -> None:
        """Run `step(conn)`; PostgreSQL not usable -> one line per reason, retried with backoff (marks and exits go
        on from memory meanwhile, without being stored)."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.cfg.database_url, retries=0)
                migrate(self._conn)
            step(self._conn)
            self._link.ok()
        except Exception as e:  # noqa: BLE001 - any failure of the store: keep tracking, retry with backoff
            self._disconnect()
            self._link.failed(e, "positions are not re-read or marked in PostgreSQL until it is back; retrying")
            if step == self.mark_all:
                self.mark_all(None)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is gone either way
                pass

    def reload(self, conn: psycopg.Connection) -> None:
        """Settle the heard resolutions, then re-read the open pairs: publish the pairs that opened and closed."""
        if self._resolutions:
            heard, self._resolutions = self._resolutions, []
            try:
                settled = record_resolutions(conn, heard)
            except Exception:
                self._resolutions = heard + self._resolutions  # stored when PostgreSQL is back
                raise
            self.metrics.inc("positions_settled", settled)
            for res in heard:
                self._stored[(res.venue, res.ticker)] = None
            while len(self._stored) > STORED_RESULTS_KEPT:
                self._stored.popitem(last=False)
            if settled:
                names = ", ".join(f"{r.venue} {r.ticker} {r.result}" for r in heard[:4])
                self.log.info("Settled %d position leg(s) on %d market result(s): %s%s", settled, len(heard), names,
                              " ..." if len(heard) > 4 else "")
        self._reload_due = False
        self._next_reload = time.monotonic() + self.cfg.reload_s
        pairs: dict[str, list[LegPosition]] = {}
        for leg in load_open(conn):
            pairs.setdefault(leg.pair_id, []).append(leg)
        closed = [p for p in self.pairs if p not in pairs]
        opened = [p for p in pairs if p not in self.pairs]
        if not self.known:
            self.log.info("Tracking %d open pairs (%d legs) from PostgreSQL", len(pairs),
                          sum(len(legs) for legs in pairs.values()))
        self.known, self.pairs = True, pairs
        self._settle_awaited(opened, closed)
        self.metrics.inc("pairs_opened", len(opened))
        self.publish_closed(conn, closed)
        self._totals = realised_totals(conn)
        if opened:
            self._next_mark = 0.0  # mark and publish the new pairs at once

    def _settle_awaited(self, opened: list[str], closed: list[str]) -> None:
        """Stop re-reading for the pairs the store now shows as the trade results said (opened, sold down or
        closed), or after AWAIT_STORED_S (a result of a pair that opened nothing: an unwound, unhedged signal)."""
        now = time.monotonic()
        changed = set(opened) | set(closed)
        for exit_id, (pair, qty) in list(self._exits.items()):
            legs = self.pairs.get(pair, [])
            if pair not in self.pairs or any(leg.qty != qty for leg in legs if leg.open):
                changed.add(pair)
                del self._exits[exit_id]
        self._awaiting = {p: t for p, t in self._awaiting.items() if p not in changed and t > now and
                          (p not in self.pairs or any(e[0] == p for e in self._exits.values()))}

    def publish_closed(self, conn: psycopg.Connection, pair_ids: list[str]) -> None:
        """A closed update for each pair that has no open leg any more, with its realised P&L as stored."""
        if not pair_ids:
            return
        final = pair_legs(conn, pair_ids)
        drop_marks(conn, pair_ids)
        for pair_id in pair_ids:
            legs = final.get(pair_id, [])
            pnl = sum(leg.realised_pnl_cents for leg in legs)
            reasons = sorted({leg.close_reason for leg in legs if leg.close_reason})
            self.publish(PositionUpdate(src="", seq=0, ts_mark_ns=time.time_ns(), pair_id=pair_id,
                                        game_id=legs[0].game_id if legs else "", status="closed", open_legs=0,
                                        qty=0.0, cost_cents=0.0, realised_pnl_cents=round(pnl, 6),
                                        close_reason="+".join(reasons)))
            self.metrics.inc("pairs_closed")
            self.log.info("Pair %s closed (%s): realised P&L $%.2f", pair_id, "+".join(reasons) or "?", pnl / 100)
            self.marks.pop(pair_id, None)
            self._published.pop(pair_id, None)
            self._exit_at.pop(pair_id, None)

    # -- marks and exits -------------------------------------------------------------------------------------------

    def mark_all(self, conn: psycopg.Connection | None) -> None:
        """Mark every open pair at the current bids; publish those whose mark changed; store their marks; signal
        the exits that pay."""
        now_ns = time.time_ns()
        changed = []
        for pair_id, legs in self.pairs.items():
            mark = mark_pair(legs, lambda venue, ticker: self.books.get((venue, ticker)), self.cfg.fees)
            self.marks[pair_id] = mark
            key = (None if mark.mark_cents is None else round(mark.mark_cents, 2), mark.qty, len(legs))
            if self._published.get(pair_id) != key:
                self._published[pair_id] = key
                changed.append(mark)
                self.publish(self.update_of(mark, now_ns))
            self.maybe_exit(mark, now_ns)
        if conn is not None and changed:
            store_marks(conn, [leg for m in changed for leg in m.legs], now_ns)

    def update_of(self, mark: PairMark, now_ns: int) -> PositionUpdate:
        unrealised = mark.unrealised_pnl_cents
        return PositionUpdate(src="", seq=0, ts_mark_ns=now_ns, pair_id=mark.pair_id, game_id=mark.game_id,
                              status="open", open_legs=sum(1 for m in mark.legs if m.leg.open), qty=mark.qty,
                              cost_cents=round(mark.cost_cents, 6),
                              mark_cents=None if mark.mark_cents is None else round(mark.mark_cents, 6),
                              hold_cents=round(mark.hold_cents, 6),
                              unrealised_pnl_cents=None if unrealised is None else round(unrealised, 6),
                              realised_pnl_cents=round(mark.realised_pnl_cents, 6))

    def maybe_exit(self, mark: PairMark, now_ns: int) -> None:
        if self.cfg.exit_min_gain_cents < 0:
            return
        last = self._exit_at.get(mark.pair_id)
        if last is not None and time.monotonic() - last < self.cfg.exit_cooldown_ms / 1000:
            return
        sig: ExitSignal | None = exit_signal(mark, self.cfg.exit_min_gain_cents, now_ns)
        if sig is None:
            return
        self._exit_at[mark.pair_id] = time.monotonic()
        self._exits[sig.exit_id] = (mark.pair_id, mark.qty)
        assert self.outbox is not None
        self.outbox.publish(exit_topic(mark.pair_id), sig)
        self.metrics.inc("exits_signalled")
        self.log.info("Exit signal %s: selling both legs of %s now brings %.2fc, settlement %.2fc (gain %.2fc)",
                      sig.exit_id, mark.pair_id, sig.exit_value_cents, sig.hold_value_cents, sig.gain_cents)

    def publish(self, update: PositionUpdate) -> None:
        assert self.outbox is not None
        self.outbox.publish(position_topic(update.pair_id), update)
        self.metrics.inc("position_updates")


def main() -> int:
    return run_main(PositionTracker)


if __name__ == "__main__":
    raise SystemExit(main())
