"""The report: machine facts, the Rich table, the `--json` object, ratios and the targets of ARCHITECTURE.md."""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Any, NamedTuple

from rich.console import Group
from rich.table import Table

from benchmarks.verdict import (INCONCLUSIVE, MET, MISSED, Verdict, by_config, judge_at_least, judge_percentile,
                               judge_ratio, summary)

if TYPE_CHECKING:
    from benchmarks.common import Servers
    from benchmarks.suite import BenchResult

#: ARCHITECTURE.md, "Figures we must reach".
HOP_OVER_RAW_MAX = 1.3
HOP_P99_MAX_US = 1000
E2E_P50_MAX_US = 1500
E2E_P99_MAX_US = 5000
ZMQ_OVER_REDIS_MAX = 0.5
THROUGHPUT_MIN = 20000
#: The same hops through container networking (compose) against the local runtime's, same run.
COMPOSE_OVER_LOCAL_MAX = 1.2


class Config(NamedTuple):
    """A configuration the benchmark measures: its name (each target's `config`), row suffix, ratio prefix, the
    suffix of the Redis rows it is compared with, and its bare hop: the raw row with the same way of receiving,
    which says whether this machine can show an absolute limit, or a ZMQ / Redis ratio of the price hop, at all
    (benchmarks/verdict.py)."""

    name: str
    sfx: str
    pre: str
    redis_sfx: str
    bare: str


#: ZMQ_SPIN_US does nothing in Redis mode, so the spinning ZMQ rows compare with the default Redis rows; their bare
#: hop is bare pyzmq with a polling receiver. Real-time rows keep the default bare hop (see suite.run_suite).
DEFAULT = Config("default", "", "", "", "raw")
#: The configurations besides the default.
CONFIGS = (Config("rt", "@rt", "rt_", "@rt", "raw"), Config("spin", "@spin", "spin_", "", "raw@spin"))
VERDICT_STYLE = {MET: "[green]met[/]", MISSED: "[red]missed[/]", INCONCLUSIVE: "[yellow]inconclusive[/]"}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def idle_info() -> str | None:
    """How an idle CPU waits, which sets what waking it costs: on a VM, waking a halted vCPU can be half of a bare
    pyzmq hop, so runs on hosts that differ in this differ in every figure. `haltpoll/haltpoll, guest halt polling 0 ns`; None where the OS does not say."""
    root = "/sys/devices/system/cpu/cpuidle/"
    driver, governor = _read(root + "current_driver"), _read(root + "current_governor_ro") or _read(
        root + "current_governor")
    if driver is None:
        return None
    text = f"{driver}/{governor}"
    halt_poll = _read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    return text + (f", guest halt polling {halt_poll} ns" if halt_poll is not None else "")


def machine_info(srv: "Servers | None" = None) -> dict[str, Any]:
    """CPU, cores, load, how idle CPUs wait, Python, pyzmq/libzmq and Redis versions."""
    import zmq

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                            "kernel": platform.release(),
                            "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "platform": platform.platform(),
                            "load_avg_1m": round(os.getloadavg()[0], 2), "cpuidle": idle_info()}
    if srv is not None:
        import redis

        try:
            client = redis.Redis.from_url(srv.redis_url)
            info["redis"] = client.info("server").get("redis_version")
            client.close()
        except redis.RedisError:
            info["redis"] = None
        info["servers"] = "embedded " + ", ".join(srv.embedded) if srv.embedded else "REDIS_URL / DATABASE_URL"
    return info


def _p(result: "BenchResult", hop: str, mode: str, field: str = "p50_us") -> float | None:
    row = result.row(hop, mode)
    return getattr(row, field) if row is not None else None


def _div(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _same_rate(result: "BenchResult", a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Whether two rows were measured at the same rate (within 10 %): a hop at 20k/s over a raw hop at 2k/s is
    not a ratio to its limit (--quick replays only its single throughput step, the target rate)."""
    ra, rb = result.row(*a), result.row(*b)
    return ra is not None and rb is not None and abs(ra.rate - rb.rate) <= 0.1 * max(ra.rate, rb.rate)


def ratios(result: "BenchResult") -> dict[str, float | None]:
    """Each figure divided by its reference, measured in the same run."""
    replay_vs_raw = _same_rate(result, ("price@replay", "zmq"), ("raw", "zmq"))
    out = {
        "zmq_hop_over_raw_p50": _div(_p(result, "price", "zmq"), _p(result, "raw", "zmq")),
        "zmq_hop_replay_over_raw_p50": (_div(_p(result, "price@replay", "zmq"), _p(result, "raw", "zmq"))
                                        if replay_vs_raw else None),
        "redis_hop_over_raw_p50": _div(_p(result, "price", "redis"), _p(result, "raw", "redis")),
        "zmq_over_redis_p50": _div(_p(result, "price", "zmq"), _p(result, "price", "redis")),
        "zmq_over_redis_replay_p50": _div(_p(result, "price@replay", "zmq"), _p(result, "price@replay", "redis")),
        "signal_zmq_over_redis_p50": _div(_p(result, "signal", "zmq"), _p(result, "signal", "redis")),
        "end_to_end_zmq_over_redis_p50": _div(_p(result, "end_to_end", "zmq"), _p(result, "end_to_end", "redis")),
        "raw_zmq_over_redis_p50": _div(_p(result, "raw", "zmq"), _p(result, "raw", "redis")),
        # the signal hop against the raw hops at its own rate and payload (`raw@signal`, 10 msg/s)
        "signal_zmq_over_raw_p50": _div(_p(result, "signal", "zmq"), _p(result, "raw@signal", "zmq")),
        "signal_redis_over_raw_p50": _div(_p(result, "signal", "redis"), _p(result, "raw@signal", "redis")),
        "raw_zmq_over_redis_p50_at_signal_rate": _div(_p(result, "raw@signal", "zmq"),
                                                      _p(result, "raw@signal", "redis")),
    }
    for _, sfx, pre, redis_sfx, _ in CONFIGS:  # the same ratios in each other configuration measured
        if result.row("price" + sfx, "zmq") is None:
            continue
        out |= {
            f"{pre}zmq_hop_over_raw_p50": _div(_p(result, "price" + sfx, "zmq"), _p(result, "raw", "zmq")),
            f"{pre}zmq_over_redis_p50": _div(_p(result, "price" + sfx, "zmq"),
                                             _p(result, "price" + redis_sfx, "redis")),
            f"{pre}signal_zmq_over_redis_p50": _div(_p(result, "signal" + sfx, "zmq"),
                                                    _p(result, "signal" + redis_sfx, "redis")),
            f"{pre}end_to_end_zmq_over_redis_p50": _div(_p(result, "end_to_end" + sfx, "zmq"),
                                                        _p(result, "end_to_end" + redis_sfx, "redis")),
        }
    for mode in ("zmq", "redis"):  # container networking against the local runtime, same settings
        if result.row("price@compose", mode) is not None:
            out[f"compose_over_local_price_p50_{mode}"] = _div(_p(result, "price@compose", mode),
                                                               _p(result, "price", mode))
            out[f"compose_over_local_end_to_end_p50_{mode}"] = _div(_p(result, "end_to_end@compose", mode),
                                                                    _p(result, "end_to_end", mode))
    if result.row("raw@spin", "zmq") is not None:  # the spinning hop against bare pyzmq with a polling receiver
        out["spin_zmq_hop_over_raw_spin_p50"] = _div(_p(result, "price@spin", "zmq"), _p(result, "raw@spin", "zmq"))
    return out


def _target(name: str, target: str, actual: float | None, verdict: Verdict, config: str) -> dict[str, Any]:
    """One target as --json prints it: the issue's fields (`met` is the verdict's: the whole interval within the
    limit), plus the verdict, its interval, the values behind it, why (benchmarks/verdict.py) and the
    configuration it was measured in (`default`, `rt`, `spin`; the throughput steps run with default settings)."""
    return {"name": name, "target": target, "actual": actual, "met": verdict.met, "verdict": verdict.verdict,
            "ci": list(verdict.ci) if verdict.ci else None, "n": verdict.n, "reason": verdict.reason,
            "config": config}


def _latency_targets(result: "BenchResult", config: Config = DEFAULT, label: str = "") -> list[dict[str, Any]]:
    """The latency targets for one configuration: default (rows `<hop>`), ARBEES_RT_PRIORITY (`<hop>@rt`) or
    ZMQ_SPIN_US (`<hop>@spin`); `label` tags its targets."""
    r, row, sfx, pre = result.ratios, result.row, config.sfx, config.pre
    price, signal, e2e = row("price" + sfx, "zmq"), row("signal" + sfx, "zmq"), row("end_to_end" + sfx, "zmq")
    redis_price, redis_signal = row("price" + config.redis_sfx, "redis"), row("signal" + config.redis_sfx, "redis")
    wanted = (("pipeline ZMQ hop p50 / raw pyzmq p50", HOP_OVER_RAW_MAX, r.get(f"{pre}zmq_hop_over_raw_p50"),
               judge_ratio(price, row("raw", "zmq"), HOP_OVER_RAW_MAX)),
              ("pipeline ZMQ hop p99 (us)", HOP_P99_MAX_US, _p(result, "price" + sfx, "zmq", "p99_us"),
               judge_percentile(price, 99, HOP_P99_MAX_US, machine=row(config.bare, "zmq"))),
              ("end-to-end p50, ZMQ mode (us)", E2E_P50_MAX_US, _p(result, "end_to_end" + sfx, "zmq"),
               judge_percentile(e2e, 50, E2E_P50_MAX_US)),
              ("end-to-end p99, ZMQ mode (us)", E2E_P99_MAX_US, _p(result, "end_to_end" + sfx, "zmq", "p99_us"),
               judge_percentile(e2e, 99, E2E_P99_MAX_US)),
              ("ZMQ / Redis p50, price hop", ZMQ_OVER_REDIS_MAX, r.get(f"{pre}zmq_over_redis_p50"),
               judge_ratio(price, redis_price, ZMQ_OVER_REDIS_MAX,
                           machine=(row(config.bare, "zmq"), row("raw", "redis")))),
              ("ZMQ / Redis p50, signal hop", ZMQ_OVER_REDIS_MAX, r.get(f"{pre}signal_zmq_over_redis_p50"),
               judge_ratio(signal, redis_signal, ZMQ_OVER_REDIS_MAX,
                           machine=(row("raw@signal", "zmq"), row("raw@signal", "redis")))))
    return [_target(name + label, f"<= {limit}", actual, verdict, config.name)
            for name, limit, actual, verdict in wanted]


def _compose_targets(result: "BenchResult") -> list[dict[str, Any]]:
    """ARCHITECTURE.md: the same hops through container networking within 1.2 x the local runtime's (p50, both
    modes, same run and settings)."""
    out = []
    for mode in ("zmq", "redis"):
        for hop in ("price", "end_to_end"):
            local, compose = result.row(hop, mode), result.row(hop + "@compose", mode)
            if compose is None:
                continue
            out.append(_target(f"compose / local p50, {hop.replace('_', '-')}, {mode} mode", f"<= {COMPOSE_OVER_LOCAL_MAX}",
                               result.ratios.get(f"compose_over_local_{hop}_p50_{mode}"),
                               judge_ratio(compose, local, COMPOSE_OVER_LOCAL_MAX), "compose"))
    return out


def config_settings(result: "BenchResult", name: str) -> str:
    """What a configuration sets. Real-time scheduling is the services' default where permitted (services/sched.py),
    so the `rt` rows are what an operator's default run gets; the rows without a suffix run with it off."""
    m = result.machine
    return {"rt": f"ARBEES_RT_PRIORITY={m.get('rt_priority')} (the default settings: real-time where permitted)",
            "spin": f"ZMQ_SPIN_US={m.get('spin_us')}",
            "compose": "docker compose (container networking, normal scheduling)"}.get(
        name, "ARBEES_RT_PRIORITY=0 (normal scheduling)")


def config_label(result: "BenchResult", config: Config) -> str:
    """How the targets of a configuration other than the default are tagged: ` [ARBEES_RT_PRIORITY=10]`."""
    return "" if config == DEFAULT else f" [{config_settings(result, config.name)}]"


def configurations(result: "BenchResult") -> list[dict[str, Any]]:
    """The targets' verdicts counted per configuration (`verdict.by_config`), with what each sets: which
    configuration met everything this machine could show, whatever the run's exit code."""
    return [{"config": name, "settings": config_settings(result, name)} | c
            for name, c in by_config(result.targets).items()]


def targets(result: "BenchResult") -> list[dict[str, Any]]:
    """ARCHITECTURE.md's figures, for default settings and each other configuration measured (CONFIGS)."""
    tp = {(t.path, t.mode): t.max_rate for t in result.throughput}
    out = _latency_targets(result)
    for config in CONFIGS:
        if result.row("price" + config.sfx, "zmq") is not None:
            out += _latency_targets(result, config, config_label(result, config))
    out += _compose_targets(result)
    for path in ("monitor->game_shard", "mirror"):
        rate = tp.get((path, "zmq"))
        out.append(_target(f"sustained {path}, ZMQ, 0 lost (msg/s)", f">= {THROUGHPUT_MIN}", rate,
                           judge_at_least(rate, THROUGHPUT_MIN, "rate held"), DEFAULT.name))
    return out


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
