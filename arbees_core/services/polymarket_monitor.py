"""polymarket_monitor: Polymarket CLOB books -> `prices.poly.<asset_id>` on ZMQ PUB :5556 (or `prices:poly`).

Each outcome token has its own book: `book` snapshots and `price_change` updates with absolute sizes per level
(size 0 removes it). NO on a token is derived from its book (NO ask = 100 - YES bid). Game ids come from the
discovery mapping. Run: `python -m arbees_core.services.polymarket_monitor`.
"""

from __future__ import annotations

from arbees_core.services.monitor import MonitorService
from arbees_core.services.runner import main as run_main
from arbees_core.topics import POLYMARKET, POLYMARKET_MONITOR, POLYMARKET_MONITOR_PORT


class PolymarketMonitor(MonitorService):
    name = POLYMARKET_MONITOR
    venue = POLYMARKET
    default_port = POLYMARKET_MONITOR_PORT


def main() -> int:
    return run_main(PolymarketMonitor)


if __name__ == "__main__":
    raise SystemExit(main())
