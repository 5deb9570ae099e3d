"""Every command explains itself: `--help` works and says something for each command and sub-command."""

from __future__ import annotations

import typer
from typer.testing import CliRunner
from typer.main import get_command

from arbees_cli.main import app

runner = CliRunner()


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        out.append(path)
        out += _commands(cmd, path)
    return out


def test_every_command_has_help_text() -> None:
    root = get_command(app)
    paths = _commands(root)
    assert {("up",), ("down",), ("status",), ("phase",), ("rollback",), ("decide",), ("diagnose",), ("validate",),
            ("report",), ("service", "run")} <= set(paths)
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        cmd = root
        for part in path:
            cmd = cmd.commands[part]  # type: ignore[attr-defined]
        assert (cmd.help or "").strip(), f"arbees {' '.join(path)} has no help text"


def test_no_arguments_prints_usage() -> None:
    result = runner.invoke(app, [])
    assert "Usage" in result.output
    assert isinstance(app, typer.Typer)


def test_an_environment_failure_is_one_line_and_exit_code_3(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCKER_HOST": "tcp://127.0.0.1:1", "ARBEES_HOME": str(tmp_path), "COLUMNS": "300"}
    proc = subprocess.run([sys.executable, "-m", "arbees_cli.main", "status", "--runtime", "compose"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.startswith("error: Docker engine not reachable at tcp://127.0.0.1:1")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_chaos_all_without_a_stack_injects_nothing_and_says_it_could_not_run(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A check that did not run is never a pass: with no stack up, every scenario is `not run` with its reason,
    and the command exits 3 (nothing could run), not 0."""
    import json

    monkeypatch.setenv("ARBEES_HOME", str(tmp_path))
    monkeypatch.delenv("ARBEES_STATE_DIR", raising=False)
    result = runner.invoke(app, ["chaos", "all", "--runtime", "local", "--json"])
    assert result.exit_code == 3, result.output
    body = json.loads(result.stdout)
    assert body["verdict"] == "inconclusive" and not body["passed"]
    assert body["checks"] and all(c["inconclusive"] and "not running" in c["evidence"] for c in body["checks"])
