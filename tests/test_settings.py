"""Settings declared once (arbees_core/settings): every environment read goes through a typed declaration, a
malformed value is one error naming the variable, secrets are never shown, and the README's table and the
registry's per-service settings are generated from the declarations."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, redact_env
from arbees_core.registry import SERVICES, spec
from arbees_core.runtime.preflight import read_settings
from arbees_core.settings.render import markdown, readme_table
from arbees_core.transport import TransportSettings

ROOT = Path(__file__).resolve().parents[1]

#: os.environ uses that read no single setting, with why (everything else goes through a declaration).
ALLOWED_ENVIRON_USES = {
    ("arbees_core/runtime/base.py", "process_environment"): "saves the values it overrides, to put them back",
    ("arbees_core/runtime/preflight.py", "settings_error"): "says where the variable an error names was set",
    ("arbees_core/bench/common.py", "servers"): "REDIS_URL / DATABASE_URL unset means start embedded servers, not the "
                                                "declared default",
    ("arbees_core/bench/compose.py", "build_command"): "the image build's settings, passed on to docker as compose "
                                                       "reads them (not settings of any service)",
    ("arbees_core/bench/compose.py", "project"): "the image settings, passed on to the compose project's .env",
}


@pytest.mark.parametrize(("name", "raw", "says"), [
    ("ZMQ_SNDHWM", "1.9", "ZMQ_SNDHWM: expected an integer, was '1.9'"),
    ("MIN_EDGE_PCT", "abc", "MIN_EDGE_PCT: expected a number, was 'abc'"),
    ("ZMQ_ENABLED", "maybe", "ZMQ_ENABLED: expected true/false, was 'maybe'"),
    ("LEG_POLICY", "both", "LEG_POLICY: expected joint or sequential, was 'both'"),
    ("SIM_LEG_MISS_AT_S", "1,b", "SIM_LEG_MISS_AT_S: expected a comma list of numbers, was '1,b'"),
    ("SIM_GAMES", "401", "SIM_GAMES: expected an integer from 1 to 400, was '401'"),
    ("MIN_EDGE_PCT", "nan", "MIN_EDGE_PCT: expected a number, was 'nan'"),
])
def test_a_malformed_value_is_one_error_naming_the_variable(name: str, raw: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        Env({name: raw}).get(S.declared(name))
    assert str(err.value) == says


def test_an_integer_is_never_truncated_but_a_whole_number_in_float_notation_is_read() -> None:
    with pytest.raises(ConfigError, match="ZMQ_SNDHWM: expected an integer, was '1.9'"):
        TransportSettings.from_env(Env({"ZMQ_SNDHWM": "1.9"}))
    assert TransportSettings.from_env(Env({"ZMQ_SNDHWM": "1e4", "ZMQ_RCVHWM": "500.0"})).sndhwm == 10_000
    assert TransportSettings.from_env(Env({})) == TransportSettings()  # the declared defaults are the class's


def test_unset_means_the_declared_default_and_a_reader_may_give_its_own() -> None:
    assert Env({}).get(S.MIN_EDGE_PCT) == 0.5
    assert Env({}).get(S.HEARTBEAT_INTERVAL_SECS, 0.5) == 0.5
    assert Env({"NO_PROXY": "", "no_proxy": "a, b"}).get(S.NO_PROXY) == ()  # set (even blank) wins over `also`
    assert Env({"no_proxy": "a, b"}).get(S.NO_PROXY) == ("a", "b")
    assert Env({"POLYMARKET_GEOBLOCK_URL": ""}).get(S.POLYMARKET_GEOBLOCK_URL) == ""  # empty = skip the check


def test_every_setting_constant_is_named_as_its_variable_and_declared_once() -> None:
    constants = {k: v for k, v in vars(S).items() if isinstance(v, S.Setting)}
    assert {k: v.name for k, v in constants.items()} == {k: k for k in constants}
    assert set(constants) == set(S.DECLARED)
    with pytest.raises(ValueError, match="declared twice"):
        S.model.Int("ZMQ_SNDHWM", 1, "again", ())


def test_every_reader_is_a_service_or_the_cli() -> None:
    known = {s.name for s in SERVICES} | {S.ARBEES}
    assert set(S.PIPELINE) == {s.name for s in SERVICES}, "a new service: add it to settings.PIPELINE"
    assert {r for s in S.DECLARED.values() for r in s.readers} <= known


def test_the_registry_lists_what_the_declarations_say_each_service_reads() -> None:
    for entry in SERVICES:
        assert entry.env == tuple(s.name for s in S.DECLARED.values() if entry.name in s.readers)
    assert "MIN_EDGE_PCT" in spec("game_shard").env and "MIN_EDGE_PCT" not in spec("kalshi_monitor").env


def test_the_readme_settings_table_is_the_generated_one() -> None:
    assert readme_table(ROOT / "README.md") == markdown(), \
        "README.md's settings table is stale: python -m arbees_core.settings --write-readme README.md"


def test_secrets_are_declared_and_never_shown() -> None:
    secrets = {s.name for s in S.DECLARED.values() if s.secret}
    assert {"KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY", "KALSHI_PRIVATE_KEY_PATH"} <= secrets
    shown = redact_env({name: "hunter2-value" for name in secrets})
    assert set(shown.values()) == {"***"}
    assert "hunter2" not in repr(S.KALSHI_PRIVATE_KEY) and "hunter2" not in str(
        S.model.Int("TEST_SECRET_NUMBER", 0, "a test", (), secret=True).problem("hunter2"))
    S.DECLARED.pop("TEST_SECRET_NUMBER")


def test_preflight_checks_every_declared_setting_a_service_reads_even_one_this_start_skips() -> None:
    with pytest.raises(ConfigError, match="KALSHI_ENV: expected prod or demo, was 'staging'"):
        read_settings(spec("kalshi_monitor"), {"KALSHI_SOURCE": "sim", "KALSHI_ENV": "staging"})
    read_settings(spec("polymarket_monitor"), {"KALSHI_ENV": "staging"})  # not its setting


def test_hold_on_config_error_treats_a_malformed_value_as_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    from arbees_core.services.startup import hold_on_config_error

    monkeypatch.setenv("ARBEES_CONFIG_ERROR", "HOLD")
    assert hold_on_config_error()
    monkeypatch.setenv("ARBEES_CONFIG_ERROR", "wait")
    assert not hold_on_config_error()


def test_arbees_settings_lists_values_set_here_masks_secrets_and_fails_on_a_malformed_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arbees_cli.main import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARBEES_HOME", raising=False)
    (tmp_path / ".env").write_text("KALSHI_API_KEY_ID=key-id-hunter2\nMIN_EDGE_PCT=abc\n")
    done = CliRunner().invoke(app, ["settings", "--json"])
    assert done.exit_code == 1 and "hunter2" not in done.output
    out = json.loads(done.output)
    values = {r["name"]: r["value"] for r in out["settings"]}
    assert values["KALSHI_API_KEY_ID"] == "***" and out["errors"] == ["MIN_EDGE_PCT: expected a number, was 'abc'"]
    (tmp_path / ".env").write_text("MIN_EDGE_PCT=1.5\n")
    done = CliRunner().invoke(app, ["settings", "zmq_listener", "--json"])
    assert done.exit_code == 0 and "MIN_EDGE_PCT" not in done.output and "MIRROR_NICE" in done.output
    assert CliRunner().invoke(app, ["settings", "nobody"]).exit_code == 3


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) \
        and node.value.id == "os"


_BY_NAME_READS = {"str", "int", "float", "bool", "list", "endpoints", "redis_url", "database_url"}


def _reads_one_variable(node: ast.AST) -> bool:
    """os.environ.get(...) / [...] / `in os.environ`, getenv(...), or a typed read by name (`env.int("NAME", ...)`,
    what Env offered before the declarations). Writes (`os.environ[k] = v`, .setdefault, .update, .pop) read none."""
    if isinstance(node, ast.Call):
        func = node.func
        first = node.args[0] if node.args else None
        if isinstance(func, ast.Attribute) and func.attr in _BY_NAME_READS and isinstance(first, ast.Constant) \
                and isinstance(first.value, str) and first.value.isupper() and first.value.isidentifier():
            return True
        return (isinstance(func, ast.Attribute) and func.attr in ("get", "getenv", "__getitem__")
                and (_is_environ(func.value) or func.attr == "getenv")) or \
            (isinstance(func, ast.Name) and func.id == "getenv")
    if isinstance(node, ast.Subscript):
        return _is_environ(node.value) and isinstance(node.ctx, ast.Load)
    return isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators)


def _environ_reads(path: Path) -> list[tuple[str, int]]:
    """(innermost function, line) of every read of one variable from the process environment in `path`."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, func: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = node.name
        if _reads_one_variable(node):
            found.append((func, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(ast.parse(path.read_text()), "<module>")
    return found


def test_every_environment_read_goes_through_a_declaration() -> None:
    """An AST scan: os.environ.get / [...] / `in` and getenv appear only where ALLOWED_ENVIRON_USES says why.
    (Passing the whole environment on, `{**os.environ}` or `Env(os.environ)`, reads no setting by name.)"""
    stray = []
    for package in ("arbees_core", "arbees_cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for func, line in _environ_reads(path):
                if (rel, func) not in ALLOWED_ENVIRON_USES:
                    stray.append(f"{rel}:{line} ({func})")
    assert not stray, ("read these through a declaration in arbees_core/settings (`Env().get(S.NAME)`), or add "
                       f"the use to ALLOWED_ENVIRON_USES with the reason: {sorted(set(stray))}")
