"""`arbees decide` and `arbees report` on stored results, as an operator re-judges a finished validation offline.

decide: one verdict per stored scenario with the plan's exit codes (0 GO, 2 DEBUG, 1 NO-GO), the common JSON shape
plus `decision` and `rows`, and thresholds overridable on the command line. report: Markdown, HTML and plots.
"""

from __future__ import annotations

import base64
import json
import os
import re
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
    assert "<table>" in page
    sources = re.findall(r"<img src='([^']*)'", page)  # one self-contained file: every plot inside it
    assert len(sources) == len(made["images"]) and all(src.startswith("data:image/png;base64,") for src in sources)
    assert all(base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG" for src in sources)


def _validate_result(decision: str, passed_phases: int = 5) -> dict:
    checks = [{"name": f"phase {n}", "passed": n <= passed_phases, "evidence": ""} for n in range(1, 6)]
    return {"command": "validate", "passed": False, "started_at": "2026-11-24T10:00:00+00:00", "duration_s": 240.0,
            "checks": checks + [{"name": "decision", "passed": False, "evidence": decision}], "decision": decision,
            "rows": [], "quick": True}


def test_report_labels_a_validation_by_its_decision_not_fail(tmp_path: Path) -> None:
    runs = tmp_path / ".arbees" / "runs"
    shutil.copytree(RUNS / "go", runs)
    for stamp, result in (("20261124T110000Z", _validate_result("DEBUG")),
                          ("20261124T100000Z", _validate_result("NO-GO", passed_phases=2))):
        (runs / f"{stamp}-validate").mkdir()
        (runs / f"{stamp}-validate" / "result.json").write_text(json.dumps(result))
    made = json.loads(arbees(tmp_path, "report", "--json").stdout)
    md = Path(made["markdown"]).read_text()
    assert "| validate | DEBUG |" in md and "FAIL" not in md.split("## Runs")[1].split("##")[0]
    older = sorted(runs.glob("*-validate"))[0]  # the NO-GO run with failed phases becomes the latest
    older.rename(runs / "20261124T120000Z-validate")
    md = Path(json.loads(arbees(tmp_path, "report", "--json").stdout)["markdown"]).read_text()
    assert "| validate | NO-GO (phase 3, phase 4, phase 5 failed) |" in md


def test_report_plots_stay_readable_with_an_outlier(tmp_path: Path) -> None:
    """One 80 ms price among ~1 ms ones: both plots end near the bulk of the values and say what they left out."""
    from arbees_core.telemetry.metrics import decode_histogram

    shutil.copytree(RUNS / "go", tmp_path / ".arbees" / "runs")
    path = next((tmp_path / ".arbees" / "runs").glob("*-phase4")) / "result.json"
    data = json.loads(path.read_text())
    hop = data["data"]["windows"][1]["hops"]["price"]
    hist = decode_histogram(hop["hdr"])
    hist.record_value(80_000)  # µs
    hop["hdr"] = hist.encode().decode("ascii")
    path.write_text(json.dumps(data))
    made = json.loads(arbees(tmp_path, "report", "--json").stdout)
    page = Path(made["html"]).read_text()
    caption = re.search(r"<figcaption>(price latency[^<]*)</figcaption>", page).group(1)
    assert re.search(r"CDF x axis clipped: 1 of \d+ values beyond [\d.]+ ms \(max 80\.\d ms\)", caption), caption
    assert re.search(r"histogram x axis clipped: 1 of \d+ values beyond 1\.\d+ ms", caption), caption


def test_log_axis_ticks_label_a_range_narrower_than_a_decade() -> None:
    from arbees_core.validation.report import log_ticks

    ticks = log_ticks(1.2, 3.5)
    assert len(ticks) >= 5 and ticks[0] == 1.2 and ticks[-1] == 3.5 and ticks == sorted(ticks)
    assert len(log_ticks(0.723, 80.06)) >= 5
