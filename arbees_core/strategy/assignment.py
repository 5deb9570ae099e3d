"""Assigning games to game shards: balanced, capped, and moving as few games as possible (pure; no I/O).

One round looks at the mapped games, the shards (live or not, each with the epoch it joined at and the newest
epoch it has read) and the current assignments, and returns the changes:

* a game held by a live shard under an assignment newer than the shard's registration stays, unless that shard
  holds more than its share: the excess is revoked (handed over next rounds, once the shard has read the
  revocation), which is the only way a game leaves a live shard;
* a game with no holder (new, its shard dead or restarted, or revoked and let go) goes to the live shard furthest
  below its share;
* shares: G games over S live shards, G mod S of them (those holding most already) get ceil(G/S), the others
  floor(G/S), none more than MAX_GAMES_PER_SHARD; what does not fit stays unassigned (reported).
A state that is already balanced yields no change, so an orchestrator restart moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arbees_core.store.assignments import AssignmentRow, ShardRow


@dataclass
class Plan:
    """assign: game -> shard; revoke: game -> shard it is taken from; drop: games no longer mapped;
    unassigned: games no live shard has room for; waiting: revoked games whose shard has not let go yet."""

    assign: dict[str, str] = field(default_factory=dict)
    revoke: dict[str, str] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.assign or self.revoke or self.drop)


def shares(holding: dict[str, int], games: int, cap: int) -> dict[str, int]:
    """Each live shard's share of `games`: within one of each other, the larger shares to the shards holding most
    already (fewest moves), none above `cap`."""
    if not holding:
        return {}
    base, extra = divmod(games, len(holding))
    order = sorted(holding, key=lambda s: (-holding[s], s))
    return {s: min(cap, base + (1 if i < extra else 0)) for i, s in enumerate(order)}


def _held(a: AssignmentRow, shards: dict[str, ShardRow]) -> bool:
    s = shards.get(a.shard_id or "")
    return s is not None and s.live and a.epoch > s.joined_epoch


def _let_go(a: AssignmentRow, shards: dict[str, ShardRow]) -> bool:
    """A revoked game is free once its previous shard is dead or has read the revocation."""
    prev = shards.get(a.prev_shard)
    return prev is None or not prev.live or prev.seen_epoch >= a.epoch


def plan_round(games: list[str], shards: list[ShardRow], current: dict[str, AssignmentRow], cap: int) -> Plan:
    by_id = {s.shard_id: s for s in shards}
    live = sorted(s.shard_id for s in shards if s.live)
    plan = Plan(drop=sorted(g for g in current if g not in set(games)))
    held: dict[str, list[str]] = {s: [] for s in live}
    free: list[str] = []
    for game in games:
        a = current.get(game)
        if a is not None and _held(a, by_id):
            held[a.shard_id].append(game)  # type: ignore[index]
        elif a is not None and a.shard_id is None and not _let_go(a, by_id):
            plan.waiting.append(game)
        else:
            free.append(game)
    share = shares({s: len(g) for s, g in held.items()}, len(games), cap)
    for shard in live:
        mine = sorted(held[shard])
        for game in mine[share[shard]:]:
            plan.revoke[game] = shard
        held[shard] = mine[:share[shard]]
    for game in free:
        room = [s for s in live if len(held[s]) < share[s]]
        if not room:
            plan.unassigned.append(game)
            continue
        shard = min(room, key=lambda s: (len(held[s]) - share[s], len(held[s]), s))
        held[shard].append(game)
        if current.get(game) is None or current[game].shard_id != shard or not _held(current[game], by_id):
            plan.assign[game] = shard
    return plan
