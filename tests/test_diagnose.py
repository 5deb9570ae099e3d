"""`diagnose`: the plan's troubleshooting probes against a real local stack, and the faults they must name.

One stack (ZMQ mode, a mispricing every 2 s) serves every case: healthy first (every probe of every target passes),
then faults planted one after another the way an operator would cause them (.env + restart of one service, a stop),
each found and worded with the real values, then the fault is removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from arbees_core.config import parse_dotenv, write_dotenv_value
from arbees_core.polling import eventually
from arbees_core.runtime.local import LocalRuntime
from arbees_core.validation.diagnose import (
    TARGETS,
    PlaybookError,
    diagnose,
    load_all_playbooks,
    load_playbook,
    normalize_target,
)
from arbees_core.validation.results import RunResult

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks" / "diagnose"






# -- playbooks (no stack) ------------------------------------------------------------------------------------------


def test_every_playbook_loads_with_a_fix_per_probe() -> None:
    books = load_all_playbooks()
    assert set(books) == set(TARGETS)
    for book in books.values():
        assert book.probes and all(p.fix and p.name for p in book.probes)
    assert "MIN_EDGE_PCT" in next(p.fix for p in books["game-shard"].probes if p.id == "signals_published")


def test_targets_accept_underscores_and_reject_unknown_names() -> None:
    assert normalize_target("game_shard") == "game-shard"
    assert normalize_target("Execution_Service") == "execution-service"
    with pytest.raises(ValueError, match="unknown diagnose target 'redis'.*zmq-listener, game-shard"):
        normalize_target("redis")


def test_an_unknown_probe_id_names_the_file_and_the_id(tmp_path: Path) -> None:
    text = (PLAYBOOKS / "latency.yaml").read_text() + "  - id: ping_the_moon\n    fix: no\n"
    (tmp_path / "latency.yaml").write_text(text)
    with pytest.raises(PlaybookError) as err:
        load_playbook("latency", tmp_path)
    assert str(tmp_path / "latency.yaml") in str(err.value) and "'ping_the_moon'" in str(err.value)
    (tmp_path / "latency.yaml").write_text(text.replace("ping_the_moon\n    fix: no", "cpu\n    name: x"))
    with pytest.raises(PlaybookError, match=r"latency.yaml:\d+: probe 'cpu' has no `fix`"):
        load_playbook("latency", tmp_path)


# -- a real stack ------------------------------------------------------------------------------------------------


@pytest.fixture
def project(local_project: Callable[[str], Path]) -> Path:
    # MAX_EXPOSURE_USD out of reach: a signal every 2 s reaches the default $1000 within a minute, and a stack that
    # rejects every signal is a fault of its own (signals_filled)
    return local_project("ZMQ_ENABLED=true\nSIM_RATE=100\nSIM_GAMES=2\nHEARTBEAT_INTERVAL_SECS=0.2\nSIM_MISPRICE_EVERY_S=2\n"
                         "GAME_COOLDOWN_MS=500\nDISCOVERY_INTERVAL_S=30\nMAX_EXPOSURE_USD=1000000\n")


def _unset(env_file: Path, key: str) -> None:
    lines = env_file.read_text().splitlines()
    env_file.write_text("".join(ln + "\n" for ln in lines if parse_dotenv(ln).keys() != {key}))


def _faults(result: RunResult) -> list[str]:
    return [f["fault"] for f in result.data["findings"]]


def _check(result: RunResult, probe_id: str) -> tuple[bool, bool]:
    """(passed, critical) of the check a probe id produced (checks follow the playbook's order)."""
    book = load_playbook(result.data["target"])
    i = [p.id for p in book.probes].index(probe_id)
    c = result.checks[i]
    return c.passed, c.critical


def _all_healthy(rt: LocalRuntime, last: dict) -> bool:
    results = {t: diagnose(rt, t) for t in TARGETS}
    last["failed"] = {t: [(c.name, c.evidence) for c in r.checks if not c.passed] for t, r in results.items()}
    return all(r.passed and all(c.passed for c in r.checks) for r in results.values())


def _finding(rt: LocalRuntime, target: str, pattern: str, timeout: float = 20.0) -> tuple[RunResult, re.Match]:
    """Diagnose until a finding matches `pattern`; the result and the match."""
    last: dict = {}

    def found() -> tuple[RunResult, re.Match] | None:
        r = last["r"] = diagnose(rt, target)
        m = next((m for f in _faults(r) if (m := re.search(pattern, f))), None)
        return (r, m) if m else None

    return eventually(found, timeout, pattern, interval=0.2,  # type: ignore[return-value]
                      details=lambda: f"findings of {target}: {_faults(last['r']) if 'r' in last else None}")


def test_healthy_stack_passes_then_planted_faults_are_named(project: Path) -> None:
    base = int(os.environ["ARBEES_PORT_BASE"])
    env_file = project / ".env"
    rt = LocalRuntime(project)
    rt.up()

    # healthy: every probe of every target passes (once signals and trades have flowed)
    last: dict = {}
    eventually(lambda: _all_healthy(rt, last), 30, "every probe of every target passes", interval=0.3,
               details=lambda: f"failing checks: {last.get('failed')}")
    healthy = diagnose(rt, "game_shard")
    assert healthy.command == "diagnose game-shard" and healthy.data["findings"] == []
    assert healthy.to_dict()["passed"] is True

    # (a) wrong endpoint in game_shard's ZMQ_SUB_ENDPOINTS: the wrong endpoint and kalshi_monitor's real port
    write_dotenv_value("ZMQ_SUB_ENDPOINTS", f"tcp://127.0.0.1:{base + 7},tcp://127.0.0.1:{base + 1}", env_file)
    rt.restart(["game_shard"])
    r = diagnose(rt, "game-shard")
    assert not r.passed
    faults = _faults(r)
    assert f"game_shard ZMQ_SUB_ENDPOINTS has tcp://127.0.0.1:{base + 7} but kalshi_monitor binds {base}" in faults
    assert any(f.startswith(f"game_shard has no 'ZMQ subscriber connected to tcp://127.0.0.1:{base + 7}' line")
               for f in faults)
    assert not any(f"127.0.0.1:{base + 1}" in f for f in faults)  # the polymarket endpoint is right
    fix = next(f["fix"] for f in r.data["findings"] if f["probe"] == "endpoints_match")
    assert "ZMQ_SUB_ENDPOINTS" in fix and "restart game_shard" in fix
    _finding(rt, "game-shard", r"^game_shard received no kalshi price updates from kalshi_monitor")

    # (c) endpoint restored, MIN_EDGE_PCT far above any edge: no signals, explained by the best edge seen
    _unset(env_file, "ZMQ_SUB_ENDPOINTS")
    write_dotenv_value("MIN_EDGE_PCT", "50", env_file)
    rt.restart(["game_shard"])
    r, m = _finding(rt, "game-shard", r"no signals because MIN_EDGE_PCT=50 is above every edge seen in the last "
                                      r"10 min \(max ([0-9.]+)%\)$")
    assert 0 < float(m.group(1)) < 50
    assert _check(r, "endpoints_match") == (True, True) and _check(r, "prices_received") == (True, True)
    assert [f["probe"] for f in r.data["findings"]] == ["signals_published"]
    r, _ = _finding(rt, "execution-service", r"^execution_service received no signals because game_shard published "
                                             r"none: no signals because MIN_EDGE_PCT=50 is above every edge seen")
    assert any("MIN_EDGE_PCT" in f["fix"] for f in r.data["findings"])

    # (d) a stopped service is named as the fault; the probes that need it are skipped, not blamed
    rt.stop(["execution_service"])
    r = diagnose(rt, "execution-service")
    assert not r.passed
    stopped = [f for f in r.data["findings"] if f["probe"] == "services_running"]
    assert [f["fault"] for f in stopped] == ["execution_service is stopped, exit code 0: it is not running"]
    assert _check(r, "signals_received") == (False, False)
    assert not any("execution_service" in f["fault"] for f in r.data["findings"] if f["probe"] != "services_running")
    rt.up(["execution_service"])

    # (b) ZMQ disabled on one publisher: zmq_listener's diagnosis says which and what it means
    write_dotenv_value("ZMQ_ENABLED", "false", env_file)
    rt.restart(["kalshi_monitor"])
    write_dotenv_value("ZMQ_ENABLED", "true", env_file)  # only kalshi_monitor's process has it
    r = diagnose(rt, "zmq_listener")
    faults = _faults(r)
    assert "kalshi_monitor has ZMQ_ENABLED=false: it publishes to Redis streams, not ZMQ" in faults
    assert any(f.startswith("zmq_listener mirrored nothing from kalshi_monitor") and
               f.endswith(": kalshi_monitor has ZMQ_ENABLED=false") for f in faults)
    assert any(f.startswith(f"kalshi_monitor port {base} is not reachable") for f in faults)
    assert not any(s in f for f in faults for s in ("polymarket_monitor", "game_shard", "execution_service")), faults
    latency = diagnose(rt, "latency")
    assert any(f.startswith("kalshi_monitor runs in Redis mode, not ZMQ") for f in _faults(latency))

    # restored: the listener's diagnosis is clean again
    rt.restart(["kalshi_monitor"])
    last = {}

    def listener_ok() -> bool:
        r = last["r"] = diagnose(rt, "zmq-listener")
        return r.passed

    eventually(listener_ok, 20, "zmq-listener clean after restoring kalshi_monitor", interval=0.3,
               details=lambda: f"findings: {_faults(last['r'])}")

    # (e) game_shard busy-polling for prices (ZMQ_SPIN_US): the plan's < 50 % CPU check judges its work, not the
    # polling, which its metrics count apart
    write_dotenv_value("ZMQ_SPIN_US", "200000", env_file)
    rt.restart(["game_shard"])
    cpu_check = [p.id for p in load_playbook("latency").probes].index("cpu")

    def spinning() -> object:
        c = diagnose(rt, "latency").checks[cpu_check]
        return c if "busy-polling for prices (ZMQ_SPIN_US=200000)" in c.evidence else None

    check = eventually(spinning, 20, interval=0.3, what="game_shard's CPU reading names its busy-polling")
    assert check.passed, check.evidence  # type: ignore[attr-defined]
    assert re.search(r"game_shard [0-9.]+% CPU over 1s, ~\d+% of it busy-polling", check.evidence)  # type: ignore[attr-defined]
