"""`arbees report`: the latest stored runs as one Markdown document with PNG plots beside it, and one
self-contained HTML page (the same plots embedded).

What an operator hands on after a validation: which phases passed (with their evidence), latency per hop and
mode as CDFs and histograms from the interleaved phase 4 windows, the soak's time series (message rate,
end-to-end latency, memory per service), and the decision table with its reasons. Everything is read from
`.arbees/runs/`, so a report can be rebuilt offline from stored results.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from arbees_core.validation.results import latest_result, runs_dir

KINDS = ("phase1", "phase2", "phase3", "phase4", "phase5", "zmq_only", "rollback", "validate")
_MODE_COLOUR = {"zmq": "#1f77b4", "redis": "#d62728"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    return plt


def _window_values(data: dict[str, Any], mode: str, hop: str) -> tuple[list[float], list[int]]:
    """(values in ms, counts) of the merged valid windows of one mode and hop."""
    from arbees_core.validation.stats import merge_histograms

    hists = [w["hops"][hop]["hdr"] for w in data.get("windows", [])
             if w.get("mode") == mode and w.get("valid", True) and hop in w.get("hops", {})
             and w["hops"][hop].get("count")]
    if not hists:
        return [], []
    merged = merge_histograms(hists)
    values, counts = [], []
    for item in merged.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000.0)
        counts.append(item.count_added_in_this_iter_step)
    return values, counts


#: A plot's x axis ends at the slower mode's tail quantile (histogram p99, CDF p99.9) times this: a single outlier
#: (80 ms among values of 1 ms) would otherwise stretch the axis until every bar of the other mode sits in one bin.
CLIP_FACTOR = 1.5


def weighted_quantile(values: list[float], counts: list[int], q: float) -> float:
    """The value at fraction `q` (0..1) of the counts, `values` ascending."""
    target, run = q * sum(counts), 0
    for value, count in zip(values, counts):
        run += count
        if run >= target:
            return value
    return values[-1]


def axis_limit(series: dict[str, tuple[list[float], list[int]]], q: float) -> float:
    """Where a plot's x axis ends (ms): the highest of the modes' `q` quantiles times CLIP_FACTOR, never past the
    largest value."""
    top = max(values[-1] for values, _ in series.values())
    return min(top, max(weighted_quantile(v, c, q) for v, c in series.values()) * CLIP_FACTOR)


def clipped_note(series: dict[str, tuple[list[float], list[int]]], limit: float) -> str:
    """"N of M values beyond <limit> ms (max X ms)", or "" when nothing lies beyond."""
    beyond = sum(c for values, counts in series.values() for v, c in zip(values, counts) if v > limit)
    if not beyond:
        return ""
    total = sum(sum(counts) for _, counts in series.values())
    top = max(values[-1] for values, _ in series.values())
    return f"{beyond} of {total} values beyond {limit:.3g} ms (max {top:.3g} ms)"


def log_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About `count` tick positions spread evenly on a log axis from `low` to `high`, rounded to two significant
    figures, so even a range narrower than a decade gets several labels (matplotlib's default labels only the
    powers of ten: 1 ms and nothing else for values between 1.2 and 3.5 ms)."""
    import math

    if low <= 0 or high <= low:
        return [low] if low > 0 else []
    step = (math.log10(high) - math.log10(low)) / max(1, count - 1)
    ticks = {float(f"{10 ** (math.log10(low) + i * step):.2g}") for i in range(count)}
    return sorted(t for t in ticks if low * 0.95 <= t <= high * 1.05)  # rounding may step just outside


def _draw_cdf(ax: Any, series: dict[str, tuple[list[float], list[int]]], hop: str) -> str:
    """Both modes' CDFs on a log axis ending past the slower mode's p99.9 (the curve of an outlier runs off the
    right edge below 1.0); returns the note on what lies beyond ("" if nothing)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    for mode, (values, counts) in series.items():
        total, run, ys = sum(counts), 0, []
        for c in counts:
            run += c
            ys.append(run / total)
        ax.step(values, ys, where="post", label=f"{mode} (n={total})", color=_MODE_COLOUR[mode])
    ax.set_xscale("log")
    low, limit = min(v[0] for v, _ in series.values()), axis_limit(series, 0.999)
    ax.set_xlim(low / 1.05, limit * 1.05)
    ax.xaxis.set_major_locator(FixedLocator(log_ticks(low, limit)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    note = clipped_note(series, limit)
    ax.set_xlabel("latency (ms, log)" + (f", clipped at {limit:.3g}" if note else ""))
    ax.set_ylabel("fraction <= x")
    ax.set_title(f"{hop}: CDF" + (f" ({note.split(' (')[0]})" if note else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return note


def _draw_histogram(ax: Any, series: dict[str, tuple[list[float], list[int]]], hop: str) -> str:
    """Both modes over one x range ending past the slower mode's p99 (values beyond are left out, not piled into
    the last bar); returns the note on what was left out ("" if nothing)."""
    low, limit = min(v[0] for v, _ in series.values()), axis_limit(series, 0.99)
    for mode, (values, counts) in series.items():
        kept = [(v, c) for v, c in zip(values, counts) if v <= limit]
        ax.hist([v for v, _ in kept], weights=[c for _, c in kept], bins=40, range=(low, limit), alpha=0.55,
                label=mode, color=_MODE_COLOUR[mode])
    note = clipped_note(series, limit)
    ax.set_xlabel("latency (ms)" + (f", clipped at {limit:.3g}" if note else ""))
    ax.set_ylabel("messages")
    ax.set_title(f"{hop}: histogram" + (f" ({note.split(' (')[0]})" if note else ""))
    ax.legend()
    return note


def latency_plots(data: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Per hop: a CDF (log axis) and a histogram, both modes together, each clipped past the slower mode's tail with
    the clipped count in its title and in the caption; returns [(caption, file name)]."""
    plt = _plt()
    hops = sorted({hop for w in data.get("windows", []) for hop in w.get("hops", {})})
    made = []
    for hop in hops:
        series = {mode: _window_values(data, mode, hop) for mode in ("zmq", "redis")}
        series = {mode: vc for mode, vc in series.items() if vc[0]}
        if not series:
            continue
        fig, (cdf, hist) = plt.subplots(1, 2, figsize=(11, 3.6))
        notes = {"CDF": _draw_cdf(cdf, series, hop), "histogram": _draw_histogram(hist, series, hop)}
        fig.tight_layout()
        name = f"latency-{hop}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        clipped = "; ".join(f"{plot} x axis clipped: {note}" for plot, note in notes.items() if note)
        made.append((f"{hop} latency, ZMQ vs Redis" + (f" ({clipped})" if clipped else ""), name))
    return made


def soak_plots(data: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Message rate, end-to-end p50/p95 and RSS per service over the soak."""
    plt = _plt()
    samples = data.get("samples", [])
    if not samples:
        return []
    hours = [s.get("t_s", 0.0) / 3600.0 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    axes[0].plot(hours, [s.get("mirrored_per_s") or 0 for s in samples], label="mirrored/s")
    axes[0].plot(hours, [s.get("prices_per_s") or 0 for s in samples], label="prices/s (game_shard)")
    axes[0].set_ylabel("messages/s")
    axes[0].legend()
    for key in ("p50_ms", "p95_ms"):
        axes[1].plot(hours, [(s.get("end_to_end") or {}).get(key) for s in samples], marker=".", label=f"e2e {key}")
    axes[1].set_ylabel("ms")
    axes[1].legend()
    names = sorted({n for s in samples for n in s.get("services", {})})
    for name in names:
        axes[2].plot(hours, [(s["services"].get(name) or {}).get("rss_mb") for s in samples], label=name)
    axes[2].set_ylabel("RSS MB")
    axes[2].set_xlabel("hours since soak start")
    axes[2].legend(fontsize=7, ncol=3)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=110)
    plt.close(fig)
    return [("Soak: message rate, end-to-end latency, memory", "soak.png")]


def run_label(result: dict[str, Any]) -> str:
    """A run's result as decided: a phase PASS / FAIL / INCONCLUSIVE; a validation its decision (GO, DEBUG, NO-GO),
    since DEBUG (inconclusive, exit 2) is not a failure, plus the phases that failed, if any."""
    decision = result.get("decision")
    if not decision:
        return str(result.get("verdict") or ("pass" if result["passed"] else "fail")).upper()
    failed = [c["name"] for c in result.get("checks", []) if c["name"].startswith("phase") and not c["passed"]]
    return decision + (f" ({', '.join(failed)} failed)" if failed else "")


def check_label(check: dict[str, Any]) -> str:
    """PASS, NOT RUN (the check could not be made), FAIL, or WARN (an advisory check that did not hold)."""
    if check["passed"]:
        return "PASS"
    if check.get("inconclusive"):
        return "NOT RUN"
    return "FAIL" if check.get("critical", True) else "WARN"


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def build_report(root: Path | None = None, out: Path | None = None, decision: Any = None) -> dict[str, Any]:
    """Write report.md, report.html and the PNGs into `out` (default .arbees/reports/<stamp>/)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = runs_dir(root)
    out = out or base.parent / "reports" / stamp
    out.mkdir(parents=True, exist_ok=True)
    results = {k: latest_result(k, root) for k in KINDS}
    sections: list[tuple[str, str, list[tuple[str, str]]]] = []  # (title, markdown body, images)

    rows = [[k, run_label(r), r.get("started_at", ""), f"{r.get('duration_s', 0):.1f}s",
             f"{sum(c['passed'] for c in r['checks'])}/{len(r['checks'])}"]
            for k, r in results.items() if r]
    sections.append(("Runs", _md_table(["run", "result", "started", "took", "checks passed"], rows)
                     if rows else "No stored runs in " + str(base), []))
    for kind in ("phase1", "phase2", "phase3", "zmq_only", "rollback"):
        r = results.get(kind)
        if r:
            body = _md_table(["criterion", "result", "evidence"],
                             [[c["name"], check_label(c), c["evidence"]] for c in r["checks"]])
            sections.append((f"{r['command']}", body, []))
    p4 = results.get("phase4")
    if p4:
        summary = p4["data"].get("summary", {})
        body = _md_table(["mode", "hop", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"],
                         [[m, hop, v.get("count"), v.get("p50_ms"), v.get("p95_ms"), v.get("p99_ms"), v.get("max_ms")]
                          for m, hops in summary.items() for hop, v in hops.items()])
        windows = p4["data"].get("windows", [])
        body += f"\n\n{len(windows)} interleaved windows ({', '.join(w['mode'] for w in windows)}), " \
                f"{p4['data'].get('window_seconds', '?')} s each."
        sections.append(("Phase 4: latency per hop and mode", body, latency_plots(p4["data"], out)))
    p5 = results.get("phase5")
    if p5:
        samples = p5["data"].get("samples", [])
        body = f"{len(samples)} samples every {p5['data'].get('interval_s')} s " \
               f"(asked {p5['data'].get('duration_s')} s, resumed {p5['data'].get('resumed', 0)} times)."
        sections.append(("Phase 5: soak", body, soak_plots(p5["data"], out)))
    if decision is not None:
        d = decision.to_dict()
        body = f"**{d['decision']}**\n\n" + _md_table(
            ["metric", "target", "actual", "verdict", "reason"],
            [[r["metric"], r["target"], r["actual"], r["verdict"], r["reason"]] for r in d["rows"]])
        sections.append(("Decision", body, []))

    md = [f"# arbees validation report\n\nGenerated {stamp} from `{base}`.\n"]
    for title, body, images in sections:
        md.append(f"## {title}\n\n{body}\n")
        md += [f"![{alt}]({name})\n" for alt, name in images]
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(_html(stamp, base, sections, out))
    images = [name for _, _, imgs in sections for _, name in imgs]
    return {"folder": str(out), "markdown": str(out / "report.md"), "html": str(out / "report.html"),
            "images": images, "runs": {k: bool(v) for k, v in results.items()}}


def _data_uri(png: Path) -> str:
    """The PNG as a `data:` URI: the HTML report is one file that can be mailed or attached on its own."""
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _html(stamp: str, base: Path, sections: list[tuple[str, str, list[tuple[str, str]]]], folder: Path) -> str:
    """The same content as one self-contained HTML page: markdown tables become HTML tables, the plots are
    embedded in it (data URIs), so nothing else needs to travel with it."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>arbees report {stamp}</title>"
             "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "font-size:13px;vertical-align:top;text-align:left}img{max-width:100%}</style></head><body>",
             f"<h1>arbees validation report</h1><p>Generated {stamp} from <code>{html.escape(str(base))}</code>.</p>"]
    for title, body, images in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for block in body.split("\n\n"):
            lines = block.strip().splitlines()
            if len(lines) >= 2 and lines[0].startswith("|") and lines[1].startswith("|---"):
                head = [html.escape(c.strip()) for c in lines[0].strip("|").split(" | ")]
                parts.append("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
                for line in lines[2:]:
                    cells = [html.escape(c.strip().replace("\\|", "|")) for c in line.strip()[2:-2].split(" | ")]
                    parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
                parts.append("</table>")
            elif block.strip():
                text = html.escape(block.strip())
                parts.append(f"<p>{text.replace('**', '')}</p>")
        parts += [f"<figure><img src='{_data_uri(folder / name)}' alt='{html.escape(alt)}'><figcaption>"
                  f"{html.escape(alt)}</figcaption></figure>" for alt, name in images]
    parts.append("</body></html>")
    return "\n".join(parts)


def summary_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)
