"""kalshi_monitor: Kalshi order books -> `prices.kalshi.<ticker>` on ZMQ PUB :5555 (or `prices:kalshi` in Redis mode).

Kalshi sends an order-book snapshot and then signed deltas per market; its feed (venues/kalshi/feed.py) keeps the
book, checks the sequence per subscription and asks for a fresh snapshot on a gap. YES ask = 100 - best NO bid.
Run: `python -m arbees_core.services.kalshi_monitor`.
"""

from __future__ import annotations

from arbees_core.services.monitor import MonitorService
from arbees_core.services.runner import main as run_main
from arbees_core.strategy.teams import parse_kalshi_ticker
from arbees_core.topics import KALSHI, KALSHI_MONITOR, KALSHI_MONITOR_PORT
from arbees_core.venues.listing import make_game_id


class KalshiMonitor(MonitorService):
    name = KALSHI_MONITOR
    venue = KALSHI
    default_port = KALSHI_MONITOR_PORT

    def fallback_game_of(self, ticker: str) -> tuple[str, str]:
        """Kalshi tickers name the game: `KXNBAGAME-26NOV24MIABOS-BOS` -> NBA-2026-11-24-MIA-BOS, outcome BOS."""
        parsed = parse_kalshi_ticker(ticker)
        if parsed is None:
            return ("", "")
        league, date_iso, away, home, team = parsed
        return (make_game_id(league, date_iso, away, home), team)


def main() -> int:
    return run_main(KalshiMonitor)


if __name__ == "__main__":
    raise SystemExit(main())
