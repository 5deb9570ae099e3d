"""Configuration: `.env` as the plan uses it, typed env reads with clear errors, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, parse_dotenv, read_dotenv, redact_env, write_dotenv_value


def test_appended_zmq_enabled_wins_as_in_the_plans_rollback() -> None:
    text = "ZMQ_ENABLED=true\nMIN_EDGE_PCT=1.0\nZMQ_ENABLED=false\n"
    assert parse_dotenv(text)["ZMQ_ENABLED"] == "false"


def test_inline_comment_is_not_part_of_the_value() -> None:
    values = parse_dotenv('PAPER_TRADING=1  # paper only\nNAME="a # b"\nexport X=2\n# comment\nbad line\n')
    assert values == {"PAPER_TRADING": "1", "NAME": "a # b", "X": "2"}


def test_write_dotenv_value_replaces_every_earlier_definition(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("ZMQ_ENABLED=true\nA=1\nZMQ_ENABLED=true\n")
    write_dotenv_value("ZMQ_ENABLED", "false", path)
    assert path.read_text().count("ZMQ_ENABLED") == 1
    assert read_dotenv(path) == {"A": "1", "ZMQ_ENABLED": "false"}


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False)])
def test_bool_reads_the_usual_spellings(raw: str, expected: bool) -> None:
    assert Env({"ZMQ_ENABLED": raw}).get(S.ZMQ_ENABLED) is expected


@pytest.mark.parametrize(("setting", "raw"), [(S.ZMQ_ENABLED, "maybe"), (S.ZMQ_SNDHWM, "five"),
                                              (S.MIN_EDGE_PCT, "1,5")])
def test_bad_values_name_the_variable(setting: S.Setting, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^{setting.name}: expected"):
        Env({setting.name: raw}).get(setting)


def test_secrets_and_url_passwords_are_redacted() -> None:
    shown = redact_env({"KALSHI_PRIVATE_KEY": "-----BEGIN", "POLYMARKET_API_KEY": "k", "ZMQ_ENABLED": "true",
                        "DATABASE_URL": "postgresql://arbees:hunter2@db:5432/arbees"})
    assert shown["KALSHI_PRIVATE_KEY"] == "***" and shown["POLYMARKET_API_KEY"] == "***"
    assert shown["ZMQ_ENABLED"] == "true"
    assert "hunter2" not in shown["DATABASE_URL"] and shown["DATABASE_URL"].startswith("postgresql://arbees:***@db")
