"""The benchmark's targets (ARCHITECTURE.md, "Figures we must reach") judged once: ratios of each figure to its
reference from the same run, and each target's verdict (`verdict.py`) per configuration measured.

`suite.run_suite` calls these once per run and stores what they return in the result; the report (`report.py`)
only renders them, so a verdict never depends on how it is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from arbees_core.bench.verdict import Verdict, by_config, judge_at_least, judge_percentile, judge_ratio

if TYPE_CHECKING:
    from arbees_core.bench.suite import BenchResult

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
    (arbees_core/bench/verdict.py)."""

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
    limit), plus the verdict, its interval, the values behind it, why (arbees_core/bench/verdict.py) and the
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
