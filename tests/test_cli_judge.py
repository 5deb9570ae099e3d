"""`arbees decide` and `arbees report` on stored results, as an operator re-judges a finished validation offline.

decide: one verdict per stored scenario with the plan's exit codes (0 GO, 2 DEBUG, 1 NO-GO), the common JSON shape
plus `decision` and `rows`, and thresholds overridable on the command line. report: Markdown, HTML and plots.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUNS = Path(__file__).parent / "data" / "runs"


def arbees(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARBEES_HOME": str(root), "COLUMNS": "200"}
    env.pop("ARBEES_STATE_DIR", None)
    return subprocess.run([sys.executable, "-m", "arbees_cli.main", *args], env=env, cwd=root, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("scenario, code, decision", [
    ("go", 0, "GO"), ("debug-p50", 2, "DEBUG"), ("nogo-crash", 1, "NO-GO"), ("nogo-zmq-slower", 1, "NO-GO"),
    ("no-phase5", 2, "DEBUG"),
])
def test_decide_on_stored_results(tmp_path: Path, scenario: str, code: int, decision: str) -> None:
    proc = arbees(tmp_path, "decide", "--runs", str(RUNS / scenario), "--json")
    assert proc.returncode == code, proc.stderr
    out = json.loads(proc.stdout)
    assert out["decision"] == decision and out["command"] == "decide" and out["passed"] is (decision == "GO")
    assert {"started_at", "duration_s", "checks"} <= set(out)
    for row in out["rows"]:
        assert {"metric", "target", "actual", "verdict", "reason"} <= set(row) and row["reason"]


def test_decide_rejudges_with_other_thresholds(tmp_path: Path) -> None:
    strict = arbees(tmp_path, "decide", "--runs", str(RUNS / "go"), "-t", "p50_go_ms=0.001", "-t",
                    "p50_nogo_ms=0.002", "--json")
    assert strict.returncode == 1 and json.loads(strict.stdout)["decision"] == "NO-GO"
    table = arbees(tmp_path, "decide", "--runs", str(RUNS / "go"))
    assert table.returncode == 0 and "Latency p50" in table.stdout and "GO" in table.stdout


def test_decide_with_a_bad_threshold_is_a_clear_error(tmp_path: Path) -> None:
    proc = arbees(tmp_path, "decide", "--runs", str(RUNS / "go"), "-t", "p50_go_msec=3")
    assert proc.returncode == 3 and "p50_go_msec" in proc.stderr and "Traceback" not in proc.stderr


def test_report_writes_markdown_html_and_plots(tmp_path: Path) -> None:
    shutil.copytree(RUNS / "go", tmp_path / ".arbees" / "runs")
    proc = arbees(tmp_path, "report", "--json")
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    md = Path(made["markdown"]).read_text()
    assert "## Phase 4: latency per hop and mode" in md and "## Decision" in md and "## Phase 5: soak" in md
    assert "latency-end_to_end.png" in made["images"] and "soak.png" in made["images"]
    for name in made["images"]:
        assert Path(made["folder"], name).read_bytes()[:4] == b"\x89PNG"
    page = Path(made["html"]).read_text()
    assert "<table>" in page and "<img src='soak.png'" in page
