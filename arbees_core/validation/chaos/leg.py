"""Chaos scenario `leg-miss`: the book moves between a signal and its fill, and no leg is left naked.

The mispriced venue's simulator is asked (through `.env` and a restart of its monitor, as `feed-gap` asks for a
sequence gap) to show a mispricing for one read and take it back a few milliseconds later (`SIM_LEG_MISS_AT_S`,
`SIM_LEG_MISS_HOLD_MS`), and execution_service to model a venue round trip for its orders
(`PAPER_ORDER_LATENCY_MS`, longer than the holds): game_shard signals on the first read, and the order meets the
book after the take-back, as a live IOC order sent to a venue whose book moved would. Each injection hits the next
game, spaced so that game_shard's cooldown never hides one. An injection whose two reads game_shard saw at once
makes no signal (a loaded machine); a run in which none met a moved book could not check anything and says so
(inconclusive), never a pass.

Checked: a leg miss was provoked; no pair of `paper_trades` since the injections holds unequal quantities, and
execution reports 0 unhedged contracts; each miss is counted (`leg_misses`) and logged once; and after the
simulator and execution_service are restored, the next signals fill both legs at the same size. Registered in
`chaos/__init__.py`.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from arbees_core.store.db import connect
from arbees_core.store.positions import unequal_pairs
from arbees_core import settings as S
from arbees_core.polling import eventually
from arbees_core.validation.chaos.probe import ChaosUnavailable, StackProbe, ledger, restarted_with, running_setting
from arbees_core.validation.results import RunResult

#: Seconds before the first injection (the restarted monitor's books settle first); how long each one holds its
#: mispricing, ms: long enough for game_shard to read the mispriced book alone (it conflates the reads of one
#: wake-up), short against the order round trip execution_service models meanwhile, ms, so that each order meets
#: the book after the take-back.
FIRST_AT_S = 3.0
HOLDS_MS = (2.0, 4.0, 6.0, 10.0, 15.0, 20.0)
ORDER_LATENCY_MS = 100.0
_MISS_LINE = "Leg miss on "
PROVOKED = "a leg miss was provoked: the book moved between a signal and its fill"

_HEDGED_SINCE = """
SELECT count(*) FROM (
  SELECT signal_id FROM paper_trades WHERE created_at >= %s AND action = 'buy'
   GROUP BY signal_id
  HAVING count(*) FILTER (WHERE filled_qty > 0) = 2 AND min(filled_qty) = max(filled_qty)) AS hedged"""


def _mispriced_monitor(runtime: Any) -> str:
    venue = running_setting(runtime, "kalshi_monitor", S.SIM_MISPRICE_VENUE)
    return "polymarket_monitor" if venue == "polymarket" else "kalshi_monitor"


def _schedule(runtime: Any, monitor: str) -> list[float]:
    """Injection times (seconds after the monitor's stream starts): one game after the other, each game again only
    after game_shard's cooldown, so every injection can make a signal."""
    cooldown_s = running_setting(runtime, "game_shard", S.GAME_COOLDOWN_MS) / 1000
    games = running_setting(runtime, monitor, S.SIM_GAMES)
    spacing = max(2.0, cooldown_s / games + 1.0)
    return [round(FIRST_AT_S + k * spacing, 3) for k in range(len(HOLDS_MS))]


def _hedged_fills_since(database_url: str, since: datetime) -> int:
    with connect(database_url, retries=0) as conn:
        return int(conn.execute(_HEDGED_SINCE, (since,)).fetchone()[0])


def _unequal_since(database_url: str, since: datetime) -> list[tuple[str, float, float]]:
    with connect(database_url, retries=0) as conn:
        return unequal_pairs(conn, since)


def leg_miss(runtime: Any, root: Path, result: RunResult, **opts: Any) -> None:
    """The book moves between a signal and its fill (module docstring). `.env` and the monitor are restored."""
    probe = StackProbe(runtime)
    flow_s = float(opts.get("flow_timeout_s", 45))
    svc = _mispriced_monitor(runtime)
    for name in (svc, "game_shard", "execution_service"):
        if probe.row(name).state != "running":
            raise ChaosUnavailable(f"{name} is not running; start it with `arbees up {name}`")
    source_var = "KALSHI_SOURCE" if svc == "kalshi_monitor" else "POLYMARKET_SOURCE"
    if (runtime.env(svc).get(source_var) or "sim") != "sim":
        raise ChaosUnavailable(f"leg-miss moves a book inside the simulated venue; {svc} runs {source_var}="
                               f"{runtime.env(svc).get(source_var)}")
    at = _schedule(runtime, svc)
    t0_wall, since, since_ns = time.time(), datetime.now(timezone.utc), time.time_ns()
    injection = {"SIM_LEG_MISS_AT_S": ",".join(f"{x:g}" for x in at),
                 "SIM_LEG_MISS_HOLD_MS": ",".join(f"{x:g}" for x in HOLDS_MS),
                 "SIM_MISPRICE_EVERY_S": "0", "SIM_MISPRICE_AT_S": "",  # the only mispricings meanwhile
                 "PAPER_ORDER_LATENCY_MS": f"{ORDER_LATENCY_MS:g}"}
    with restarted_with(runtime, root, ["execution_service", svc], injection):
        done = eventually(lambda: (probe.field(svc, "connection", {}, since_ns) or {}).get("leg_misses_injected", 0)
                          >= len(at), at[-1] + flow_s, raises=False)
        if not done:
            raise ChaosUnavailable(f"{svc} did not make its {len(at)} injections within {at[-1] + flow_s:.0f}s")
        time.sleep(2.0)  # the last injection's signal reaches execution and its spool
        # execution_service was restarted with the injection: its counters start at 0, read from its new snapshot
        misses = probe.counter("execution_service", "leg_misses", since_ns)
        if misses > 0:
            _check_misses(probe, result, misses, since_ns, t0_wall, since, len(at))
        else:
            result.add_inconclusive(PROVOKED, f"none of {len(at)} injections met its fill after the book moved "
                                    "(game_shard saw both reads of each at once: a loaded machine?); run again")
    _check_trading_resumes(probe, result, flow_s, opts)


#: Seconds the miss counter may take to agree with the log lines: it is read from execution_service's metrics
#: snapshot, written each heartbeat, while a line is in the log at once (a late injection's miss can land between).
TALLY_SETTLE_S = 10.0


def _miss_tally(probe: StackProbe, since_ns: int, t0_wall: float) -> tuple[int, list[str]]:
    """Leg misses counted by the execution_service started for the injections, and the `Leg miss on` lines logged
    since they began."""
    lines = [ln for ln in probe.logs_since("execution_service", t0_wall).splitlines() if _MISS_LINE in ln]
    return probe.counter("execution_service", "leg_misses", since_ns), lines


def _check_misses(probe: StackProbe, result: RunResult, misses: int, since_ns: int, t0_wall: float, since: datetime,
                  injections: int) -> None:
    db = probe.urls["DATABASE_URL"]
    result.add(PROVOKED, True,
               f"{misses} leg miss(es) counted by execution_service in {injections} injections")
    eventually(lambda: (probe.field("execution_service", "writer") or {}).get("pending") == 0, 20, raises=False)
    unequal = _unequal_since(db, since)
    naked = float((probe.field("execution_service", "positions") or {}).get("unhedged_contracts", -1))
    result.add("no naked leg remains: both legs of every pair hold the same quantity", not unequal and naked == 0,
               f"{len(unequal)} pair(s) with unequal filled quantities in paper_trades since the injections"
               + (f" (e.g. {unequal[0][0]}: {unequal[0][1]:g} vs {unequal[0][2]:g})" if unequal else "")
               + f"; execution_service unhedged_contracts={naked:g}")

    tally = (misses, [])

    def agreeing() -> bool:
        nonlocal tally
        tally = _miss_tally(probe, since_ns, t0_wall)
        return len(tally[1]) == tally[0]

    eventually(agreeing, TALLY_SETTLE_S, raises=False)  # the last read stands when they never agree
    misses, lines = tally
    result.add("each miss counted and logged once", len(lines) == misses,
               f"leg_misses +{misses}, {len(lines)} `Leg miss on` line(s)"
               + (f"; {lines[-1].split(_MISS_LINE, 1)[1][:160]}" if lines else ""))
    book = ledger(db)
    result.add("no paper trade lost or duplicated", book.consistent, book.text())


def _check_trading_resumes(probe: StackProbe, result: RunResult, flow_s: float, opts: dict[str, Any]) -> None:
    """With the simulator's own mispricings back, a new signal fills both legs at the same size. When every signal
    meanwhile was refused by the exposure limit, the check could not be made (inconclusive): trading resumes as
    positions settle, which this scenario does not wait for."""
    name = "the next signals trade normally: both legs filled at the same size"
    restored = datetime.now(timezone.utc)
    refused0 = probe.counter("execution_service", "signals_rejected.exposure")
    every_s = running_setting(probe.rt, "kalshi_monitor", S.SIM_MISPRICE_EVERY_S)
    wait_s = flow_s + every_s + float(opts.get("extra_s", 0))
    hedged = eventually(lambda: _hedged_fills_since(probe.urls["DATABASE_URL"], restored), wait_s, raises=False)
    if hedged:
        result.add(name, True, f"{hedged} signal(s) filled on both legs after the simulator was restored")
        return
    refused = probe.counter("execution_service", "signals_rejected.exposure") - refused0
    exposure = probe.field("execution_service", "exposure_usd")
    if refused > 0:
        result.add_inconclusive(name, f"every signal within {wait_s:.0f}s of the restore was refused by the exposure "
                                f"limit ({refused}; open exposure ${exposure}): they trade again as positions settle")
        return
    result.add(name, False, f"no signal filled on both legs within {wait_s:.0f}s of the restore")
