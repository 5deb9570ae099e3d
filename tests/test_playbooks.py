"""Playbooks are data the CLI executes: every shipped playbook loads, and a broken one is rejected with the
file, the line and the reason before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbees_core.validation.playbook import PLAYBOOK_DIR, STEP_KINDS, PlaybookError, WaitLog, load_playbook


@pytest.mark.parametrize("name", ["phase1", "phase2", "phase3", "phase4", "phase5", "rollback", "rollback-undo"])
def test_shipped_playbooks_load(name: str) -> None:
    book = load_playbook(PLAYBOOK_DIR / f"{name}.yaml")
    assert book.name == name and book.steps
    assert all(step.line > 0 for step in book.steps)


def test_phase1_checks_the_plans_success_criteria() -> None:
    book = load_playbook(PLAYBOOK_DIR / "phase1.yaml")
    patterns = [s.pattern for s in book.steps if isinstance(s, WaitLog)]
    assert "ZMQ publisher initialized on port {port:kalshi_monitor}" in patterns
    assert any("Mirrored prices" in p and "prices:kalshi" in p for p in patterns)
    kinds = [type(s).__name__ for s in book.steps]
    assert {"StreamLen", "StreamLatest", "NoErrors", "PortOpen"} <= set(kinds)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return path


HEAD = "name: broken\ntitle: Broken\nsteps:\n"


@pytest.mark.parametrize("body, line, reason", [
    ("  - kind: start\n    services: [zmq_listener]\n  - kind: teleport\n    to: mars\n", 6, "unknown step kind 'teleport'"),
    ("  - kind: wait_log\n    service: game_shard\n    patern: x\n", 4, "unknown field `patern`"),
    ("  - kind: wait_log\n    service: game_shard\n", 4, "missing required field `pattern`"),
    ("  - kind: stream_len\n    stream: prices:kalshi\n    min: lots\n", 4, "Expected `int`, got `str`"),
    ("  - kind: start\n    services: [kalshi_monitr]\n", 4, "unknown service 'kalshi_monitr'"),
    ("  - kind: wait_log\n    service: game_shard\n    pattern: '(('\n    literal: false\n", 4, "bad regex"),
])
def test_a_broken_playbook_names_file_line_and_reason(tmp_path: Path, body: str, line: int, reason: str) -> None:
    path = _write(tmp_path, HEAD + body)
    with pytest.raises(PlaybookError) as err:
        load_playbook(path)
    assert f"{path}:{line}:" in str(err.value)
    assert reason in str(err.value)


def test_yaml_syntax_errors_and_missing_steps_are_reported(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match=r"broken.yaml:\d+: not valid YAML"):
        load_playbook(_write(tmp_path, HEAD + "  - kind: start\n   services: [x\n"))
    with pytest.raises(PlaybookError, match="`steps` must be a non-empty list"):
        load_playbook(_write(tmp_path, "name: x\ntitle: y\n"))
    with pytest.raises(PlaybookError, match="no such playbook"):
        load_playbook(tmp_path / "nope.yaml")


def test_every_step_kind_is_documented() -> None:
    import arbees_core.validation.playbook as pb

    documented = {cls.__struct_config__.tag for cls in pb.Step.__args__}  # type: ignore[attr-defined]
    assert documented == set(STEP_KINDS)
