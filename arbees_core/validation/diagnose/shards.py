"""The `shards` probe of `arbees diagnose game-shard`: every game shard of the stack, not only the first.

With an orchestrator, each shard is named (`game_shard`, `game_shard_2`, ...) with its state, the games it
holds and the prices it received; the orchestrator's view adds which shards are live and how many games found
no room (MAX_GAMES_PER_SHARD). A stack of one unsharded game_shard has nothing to check here (skipped).
"""

from __future__ import annotations

from typing import Any

from arbees_core.registry import shard_number
from arbees_core.validation.diagnose.context import Context
from arbees_core.validation.diagnose.probes import Outcome, _finish, _skip, probe


def shard_rows(ctx: Context) -> list[str]:
    """The stack's game shards, in order (`game_shard`, `game_shard_2`, ...)."""
    return sorted((n for n in ctx._status if shard_number(n)), key=lambda n: shard_number(n) or 0)


@probe("shards")
def p_shards(ctx: Context, params: dict[str, Any]) -> Outcome:
    names = shard_rows(ctx)
    view = (ctx.metrics("orchestrator") or {}).get("assignment") if ctx.running("orchestrator") else None
    if not view and len(names) <= 1:
        return _skip("one game_shard and no orchestrator: it evaluates every game")
    evidence, faults = [], []
    for name in names:
        if not ctx.running(name):
            evidence.append(f"{name} {ctx.state_text(name)}")
            faults.append(f"{name} is {ctx.state_text(name)}: its games move to the live shards after SHARD_DEAD_S")
            continue
        snap = ctx.metrics(name)
        held, rx = snap.get("games_held"), snap.get("counters", {}).get("prices_rx", 0)
        evidence.append(f"{name} (shard {snap.get('shard_id', '?')}): {held} games, prices_rx={rx}")
        if held == 0:
            faults.append(f"{name} holds no game: is the orchestrator running (`arbees up orchestrator`)?")
    if view:
        live = [s for s, v in view.get("shards", {}).items() if v.get("live")]
        evidence.append(f"orchestrator: {view.get('games')} games over live shards {', '.join(live) or 'none'}, "
                        f"epoch {view.get('epoch')}, {view.get('unassigned')} unassigned")
        if view.get("unassigned"):
            faults.append(f"{view['unassigned']} games have no shard: raise MAX_GAMES_PER_SHARD or run more shards "
                          "(`arbees up --shards N`)")
    elif names:
        faults.append("the orchestrator is not running: shards hold only what it assigned before it stopped")
    return _finish(evidence, faults, {"shards": names})
