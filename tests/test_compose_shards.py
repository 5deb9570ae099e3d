"""Three game shards under docker compose on a real engine: `arbees up --shards 3 --runtime compose` adds
game_shard_2 and game_shard_3 beside game_shard, the orchestrator spreads the games over the three, every shard's
signals are traded, and the plan's `docker logs game_shard` is still the first shard's log. The stack goes back to
one shard afterwards (the session's other docker tests expect it)."""

from __future__ import annotations

import json

import pytest

from tests.docker_support import ComposeProject, run

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


def _shards_of_executed(project: ComposeProject) -> set[str]:
    done = run(["docker", "exec", "arbees-redis", "redis-cli", "--raw", "XREVRANGE", "signals:trades", "+", "-",
                "COUNT", "300"], timeout=60)
    return {str(json.loads(line).get("shard_id")) for line in done.stdout.splitlines()
            if line.startswith("{") and '"signal_id"' in line}


def test_compose_runs_three_game_shards_and_docker_logs_game_shard_is_the_first(
        compose_project: ComposeProject) -> None:
    project = compose_project
    project.set_env(GAME_SHARDS="3")
    try:
        up = project.arbees("up", "--runtime", "compose", "--json")
        assert up.returncode == 0, up.stderr[-2000:]
        project.wait("game_shard_2 and game_shard_3 running", lambda: all(
            run(["docker", "inspect", "-f", "{{.State.Running}}", n], timeout=30).stdout.strip() == "true"
            for n in ("game_shard_2", "game_shard_3")), timeout=180)
        project.wait("the games spread over shards 1, 2, 3", lambda: {r[0] for r in project.psql(
            "SELECT DISTINCT shard_id FROM game_assignments WHERE shard_id IS NOT NULL")} == {"1", "2", "3"},
            timeout=120)
        project.wait("signals from all three shards", lambda: _shards_of_executed(project) >= {"1", "2", "3"},
                     timeout=120)
        logs = project.sh("docker logs game_shard 2>&1 | grep 'Shard 1 registered'")
        assert logs.returncode == 0 and "Shard 1 registered" in logs.stdout
        status = json.loads(project.arbees("status", "--runtime", "compose", "--json").stdout)["services"]
        assert {"game_shard", "game_shard_2", "game_shard_3"} <= {s["name"] for s in status}
    finally:
        project.compose("-f", "docker-compose.yml", "-f", ".arbees/compose-shards.yml", "--profile", "full", "rm",
                        "-sf", "game_shard_2", "game_shard_3")
        project.set_env(GAME_SHARDS="1")
