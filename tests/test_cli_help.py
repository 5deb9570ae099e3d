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


#: Commands without `--json`, and why: their output is another program's or a process's own.
NO_JSON = {
    ("redis-cli",): "the redis-cli client's own output (its options go after --)",
    ("psql",): "the psql client's own output (its options go after --)",
    ("service", "run"): "runs one service in the foreground: its output is the service's log",
}


def _leaves(group: object, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    out: dict[tuple[str, ...], object] = {}
    for name, cmd in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        out.update(_leaves(cmd, path) if hasattr(cmd, "commands") else {path: cmd})
    return out


def test_every_command_takes_json_through_the_shared_option_or_says_why_not() -> None:
    leaves = _leaves(get_command(app))
    for path, cmd in leaves.items():
        options = {o for p in cmd.params for o in getattr(p, "opts", [])}  # type: ignore[attr-defined]
        assert ("--json" in options) != (path in NO_JSON), f"arbees {' '.join(path)}: --json or a reason in NO_JSON"
        if "--json" in options:
            json_help = next(p.help for p in cmd.params if "--json" in getattr(p, "opts", []))  # type: ignore[attr-defined]
            assert json_help and "JSON" in json_help, path


def test_a_usage_error_is_could_not_run_for_every_command() -> None:
    """A mistyped option is exit 3 ("could not run"), never click's 2, which a script would read as inconclusive."""
    for path in _leaves(get_command(app)):
        result = runner.invoke(app, [*path, "--no-such-option"])
        assert result.exit_code == 3, (path, result.exit_code, result.output)


def test_an_arbees_error_is_one_line_with_its_exit_code_and_json_under_json(tmp_path) -> None:
    """Every operator-facing error derives from ArbeesError and is mapped once in `main`: one line, or one JSON
    object under --json, and the error's exit code."""
    import json
    import os
    import subprocess
    import sys

    from arbees_core.config import ConfigError
    from arbees_core.errors import ArbeesError
    from arbees_core.runtime.base import RuntimeError_
    from arbees_core.runtime.preflight import SettingsError
    from arbees_core.validation.playbook import PlaybookError

    assert all(issubclass(e, ArbeesError) for e in (ConfigError, RuntimeError_, SettingsError, PlaybookError))
    env = {**os.environ, "DOCKER_HOST": "tcp://127.0.0.1:1", "ARBEES_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "arbees_cli.main", "status", "--runtime", "compose", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    body = json.loads(proc.stdout)
    assert proc.returncode == 3 and body["exit_code"] == 3 and not body["passed"]
    assert body["error"].startswith("Docker engine not reachable at tcp://127.0.0.1:1")
