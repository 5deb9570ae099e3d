"""The report: the Rich tables and the Markdown of a benchmark result. It renders the ratios and verdicts the suite
stored (`targets.py`); it judges nothing itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

from arbees_core.bench.targets import config_settings
from arbees_core.bench.verdict import INCONCLUSIVE, MET, MISSED, summary

if TYPE_CHECKING:
    from arbees_core.bench.suite import BenchResult

VERDICT_STYLE = {MET: "[green]met[/]", MISSED: "[red]missed[/]", INCONCLUSIVE: "[yellow]inconclusive[/]"}


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def tables(result: "BenchResult") -> Group:
    """Hops, throughput, ratios and targets as Rich tables."""
    hops = Table(title="Latency per hop (us, one-way)", title_justify="left")
    for col in ("hop", "mode", "rate/s", "n", "p50", "p95", "p99", "max", "lost"):
        hops.add_column(col, justify="left" if col in ("hop", "mode") else "right", no_wrap=True)
    for r in result.rows:
        hops.add_row(r.hop, r.mode, f"{r.rate:,.0f}", f"{r.count:,}", _us(r.p50_us), _us(r.p95_us), _us(r.p99_us),
                     _us(r.max_us), f"[red]{r.lost}[/]" if r.lost else "0")
    tp = Table(title="Throughput (highest rate held with 0 lost)", title_justify="left")
    for col in ("path", "mode", "max rate/s", "lost at next step", "steps (rate: achieved/s, lost)"):
        tp.add_column(col)
    for t in result.throughput:
        steps = "; ".join(f"{s.rate:,.0f}: {s.achieved_rate:,.0f}, {s.lost}{'' if s.held else ' x'}" for s in t.steps)
        tp.add_row(t.path, t.mode, f"{t.max_rate:,.0f}", str(t.lost), steps)
    rt = Table(title="Ratios (same run)", title_justify="left")
    rt.add_column("ratio")
    rt.add_column("value", justify="right")
    for k, v in result.ratios.items():
        rt.add_row(k, "-" if v is None else f"{v:.2f}")
    tg = Table(title=f"Targets (ARCHITECTURE.md): {summary(result.targets)}", title_justify="left")
    for col in ("target", "wanted", "actual", "verdict", "why"):
        tg.add_column(col)
    for t in result.targets:
        actual = "-" if t["actual"] is None else f"{t['actual']:,.2f}"
        tg.add_row(t["name"], t["target"], actual, VERDICT_STYLE[t["verdict"]], t["reason"])
    per = Table(title="Per configuration (throughput runs with default settings; the run's exit code covers them all)",
                title_justify="left")
    for col in ("configuration", MET, MISSED, INCONCLUSIVE, "exit"):
        per.add_column(col, justify="left" if col == "configuration" else "right")
    for c in result.configurations:
        per.add_row(c["settings"], str(c[MET]), f"[red]{c[MISSED]}[/]" if c[MISSED] else "0", str(c[INCONCLUSIVE]),
                    str(c["exit"]))
    m = result.machine
    machine = (f"{m.get('cpu')} x{m.get('cores')}, Python {m.get('python')}, pyzmq {m.get('pyzmq')} / libzmq "
               f"{m.get('libzmq')}, Redis {m.get('redis')}, kernel {m.get('kernel')}, idle CPUs: {m.get('cpuidle')}, "
               f"load {m.get('load_avg_1m')}, "
               f"real-time rows: {config_settings(result, 'rt') if m.get('rt_priority') else 'no'}, "
               f"spin rows: {config_settings(result, 'spin') if m.get('spin_us') else 'no'}")
    return Group(machine, hops, tp, rt, tg, per, *[f"note: {n}" for n in result.notes])


def markdown_table(result: "BenchResult") -> str:
    """The hop rows and the verdicts per configuration as Markdown tables (for RESULTS.md)."""
    lines = ["| hop | mode | rate/s | n | p50 us | p95 us | p99 us | max us | lost |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result.rows:
        lines.append(f"| {r.hop} | {r.mode} | {r.rate:,.0f} | {r.count:,} | {_us(r.p50_us)} | {_us(r.p95_us)} | "
                     f"{_us(r.p99_us)} | {_us(r.max_us)} | {r.lost} |")
    lines += ["", "| configuration | met | missed | inconclusive | exit |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {c['settings']} | {c[MET]} | {c[MISSED]} | {c[INCONCLUSIVE]} | {c['exit']} |"
              for c in result.configurations]
    return "\n".join(lines)
