"""The Docker Swarm stack (`docker-stack.yml`) on a single-node swarm: three game_shard replicas (shard id = task
slot) trade with the games spread over them, the chaos scenario `kill-game_shard` passes on the swarm runtime (a
killed replica's games trade again on the others within SHARD_DEAD_S + 5 s, nothing duplicated), and
`docker service scale` adds a shard that takes games. Marked `docker`: it needs the engine,
holds the engine lock (`tests/docker_support.py`) and removes the stack, its volumes and the node labels it added
(swarm mode stays on)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator

import pytest

from arbees_core.polling import NotReached, eventually
from tests.docker_support import (IMAGE, ROOT, build_image, engine_lock, engine_reason, existing_stack,
                                  left_by_a_test_session, remove_stack, run, unavailable)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]  # the image build, then the stack

STACK = "arbeeswarm"
DEAD_S = 3.0
LABELS = ("arbees.db=true", "arbees.venues=true")


class Swarm:
    """The deployed stack and the commands an operator runs against it."""

    def __init__(self, node: str) -> None:
        self.node = node

    def container(self, service: str, slot: int | None = None) -> str:
        out = run(["docker", "ps", "--filter", f"label=com.docker.swarm.service.name={STACK}_{service}",
                   "--format", '{{.ID}} {{.Label "com.docker.swarm.task.name"}}'], timeout=30).stdout.split("\n")
        for line in out:
            if line.strip() and (slot is None or f"_{service}.{slot}." in line):
                return line.split()[0]
        return ""

    def psql(self, query: str) -> list[list[str]]:
        cid = self.container("timescaledb")
        done = run(["docker", "exec", cid, "psql", "-U", "arbees", "-d", "arbees", "-tAF", "|", "-c", query],
                   timeout=60)
        return [ln.split("|") for ln in done.stdout.splitlines() if ln.strip()] if done.returncode == 0 else []

    def signals(self, since_ms: int = 0) -> list[dict]:
        cid = self.container("redis")
        done = run(["docker", "exec", cid, "redis-cli", "--raw", "XRANGE", "signals:trades", f"{since_ms}-0", "+"],
                   timeout=60)
        out = []
        for line in done.stdout.splitlines():
            if line.startswith("{") and '"signal_id"' in line:
                out.append(json.loads(line))
        return out

    def held(self) -> dict[str, str]:
        return {g: s for g, s in self.psql("SELECT game_id, shard_id FROM game_assignments WHERE shard_id IS NOT NULL")}

    def dump(self) -> str:
        """What an operator looks at when the stack does not trade: services, tasks, and the logs that matter."""
        parts = [run(["docker", "service", "ls", "--filter", f"label=com.docker.stack.namespace={STACK}"],
                     timeout=30).stdout,
                 run(["docker", "stack", "ps", "--no-trunc", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}",
                      STACK], timeout=30).stdout]
        for service in ("orchestrator", "game_shard", "execution_service", "market-discovery"):
            logs = run(["docker", "service", "logs", "--tail", "15", f"{STACK}_{service}"], timeout=30)
            parts.append(f"--- {service}\n{logs.stdout[-2500:]}{logs.stderr[-800:]}")
        parts.append(str(self.psql("SELECT shard_id, endpoint, joined_epoch, seen_epoch, heartbeat_at FROM game_shards")))
        return "\n".join(parts)

    def executed(self) -> set[str]:
        return {r[0] for r in self.psql("SELECT signal_id FROM executed_signals")}


def _swarm_active() -> bool:
    return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], timeout=30).stdout.strip() == "active"


def _remove_stack(node: str) -> None:
    run(["docker", "stack", "rm", STACK], timeout=120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
            run(["docker", "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={STACK}"], timeout=30).stdout.strip()
            or run(["docker", "network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}"],
                   timeout=30).stdout.strip()):
        time.sleep(1)
    vols = run(["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}"],
               timeout=30).stdout.split()
    if vols:
        run(["docker", "volume", "rm", *vols], timeout=120)
    for label in LABELS:
        run(["docker", "node", "update", "--label-rm", label.split("=")[0], node], timeout=30)


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    reason = engine_reason()
    if reason:
        unavailable(reason)
    with engine_lock():
        stack = existing_stack()
        if stack and left_by_a_test_session(stack):  # this session's compose stack (its tests ran before): the
            remove_stack()                           # engine is this test's now, two stacks would halve each
        if not _swarm_active():
            init = run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], timeout=120)
            assert init.returncode == 0, init.stderr
        node = run(["docker", "info", "--format", "{{.Swarm.NodeID}}"], timeout=30).stdout.strip()
        build_image()
        for label in LABELS:
            run(["docker", "node", "update", "--label-add", label, node], timeout=30, check=True)
        env = {**os.environ, "ARBEES_IMAGE": IMAGE, "GAME_SHARDS": "3", "SHARD_DEAD_S": str(DEAD_S),
               "HEARTBEAT_INTERVAL_SECS": "0.5", "SIM_GAMES": "6"}
        try:
            deploy = run(["docker", "stack", "deploy", "-c", str(ROOT / "docker-stack.yml"), STACK], env=env,
                         timeout=300)
            assert deploy.returncode == 0, deploy.stderr
            yield Swarm(node)
        finally:
            _remove_stack(node)


def test_swarm_stack_trades_on_three_shard_replicas_fails_over_and_scales(swarm: Swarm) -> None:
    try:
        _trades_fails_over_and_scales(swarm)
    except (AssertionError, NotReached) as e:
        raise AssertionError(f"{e}\n{swarm.dump()}") from None


def _trades_fails_over_and_scales(swarm: Swarm) -> None:
    eventually(lambda: set(swarm.held().values()) == {"1", "2", "3"}, 180, interval=2,
               what="the games spread over shard replicas 1, 2, 3")
    eventually(lambda: {str(s.get("shard_id")) for s in swarm.signals()} >= {"1", "2", "3"}, 120, interval=2,
               what="signals from all three replicas")
    assert swarm.executed(), "execution_service traded"
    status = run([sys.executable, "-m", "arbees_cli.main", "status", "--runtime", f"swarm:{STACK}", "--json"],
                 cwd=ROOT, timeout=120)
    rows = {r["name"]: r["state"] for r in json.loads(status.stdout)["services"]}
    assert {rows.get(n) for n in ("game_shard", "game_shard_2", "game_shard_3", "execution_service")} == {"running"}, \
        status.stdout + status.stderr
    _chaos_kill_game_shard(swarm)
    # scale: a fourth replica joins and takes a share
    run(["docker", "service", "scale", "-d", f"{STACK}_game_shard=4"], timeout=60, check=True)
    eventually(lambda: "4" in set(swarm.held().values()), 180, interval=2, what="replica 4 holds games")


def _chaos_kill_game_shard(swarm: Swarm) -> None:
    """`arbees chaos kill-game_shard --runtime swarm:<stack>`, the scenario the local and compose stacks pass:
    replica 1's task killed (SIGKILL of its process: swarm replaces the task in slot 1), its games moved to the
    live replicas and trading again within SHARD_DEAD_S + 5 s, nothing duplicated, the new task counted."""
    from arbees_core.runtime.swarm import SwarmRuntime
    from arbees_core.validation.chaos import run_chaos

    result = run_chaos(SwarmRuntime(ROOT, stack=STACK), ROOT, "kill-game_shard", flow_timeout_s=60)
    failed = [f"{c.name}: {c.evidence}" for c in result.checks if c.critical and not c.passed]
    print("\n".join(f"{'ok ' if c.passed else 'NOT'} {c.name}: {c.evidence}" for c in result.checks))
    assert result.passed, "\n".join(failed)
    gap = result.data["failover_gap_s"]
    assert gap is not None and gap <= DEAD_S + 5
    print(f"swarm failover gap: {gap:.2f} s")
