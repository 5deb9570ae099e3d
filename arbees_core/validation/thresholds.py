"""Decision thresholds: `playbooks/decision.yaml` (the plan's Decision Matrix numbers as defaults), with
per-key overrides so stored results can be re-judged offline with other limits (`arbees decide -t KEY=VALUE`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

DEFAULT_THRESHOLDS_PATH = Path(__file__).resolve().parents[2] / "playbooks" / "decision.yaml"


@dataclass(frozen=True)
class Thresholds:
    """Limits of every row (documented in playbooks/decision.yaml). Latency in ms, rates as fractions."""

    latency_hop: str = "end_to_end"
    p50_go_ms: float = 120.0
    p50_nogo_ms: float = 150.0
    p95_go_ms: float = 150.0
    p95_debug_ms: float = 200.0
    error_rate_go: float = 0.01
    error_rate_nogo: float = 0.05
    zmq_errors_max: int = 0
    rate_metric: str = "mirrored_per_s"
    rate_cv_max: float = 0.25
    rate_drop_pct_per_hour_max: float = 5.0
    stall_samples: int = 2
    memory_slope_mb_per_hour_max: float = 1.0
    memory_warmup_s: float = 300.0
    memory_min_span_s: float = 600.0
    lost_max: int = 0
    crashes_max: int = 0
    unhedged_max_contracts: float = 0.0
    risk_rejected_share_max: float = 0.5
    zmq_redis_ratio_max: float = 1.0
    compare_percentiles: tuple[float, ...] = (50.0, 95.0)
    min_samples_latency_values: int = 30
    min_samples_windows_per_mode: int = 2
    min_samples_soak_samples: int = 3
    bootstrap_n_boot: int = 1000
    bootstrap_seed: int = 0
    bootstrap_confidence: float = 0.95
    source: str = "built-in defaults"
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["compare_percentiles"] = list(self.compare_percentiles)
        limits = {k: v for k, v in data.items() if k not in ("source", "overrides")}
        data["sha256"] = hashlib.sha256(json.dumps(limits, sort_keys=True).encode()).hexdigest()[:16]
        return data


_KEYS = {f.name: f for f in fields(Thresholds) if f.name not in ("source", "overrides")}


def _coerce(key: str, value: Any) -> Any:
    default = Thresholds.__dataclass_fields__[key].default
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else list(value if isinstance(value, (list, tuple))
                                                                     else [value])
        return tuple(float(v) for v in items)
    if isinstance(default, str):
        return str(value)
    number = float(value)
    if isinstance(default, int):
        if number != int(number):
            raise ValueError(f"threshold {key} must be a whole number, got {value!r}")
        return int(number)
    return number


def _normalize(key: str) -> str:
    name = key.strip().replace(".", "_").replace("-", "_")
    if name not in _KEYS:
        raise ValueError(f"unknown threshold {key!r}; known: {', '.join(sorted(_KEYS))}")
    return name


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_thresholds(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> Thresholds:
    """Thresholds from `path` (default playbooks/decision.yaml; built-in defaults if that file is absent),
    then `overrides` by key ("p50_go_ms", "bootstrap.n_boot" or "bootstrap_n_boot")."""
    file = Path(path) if path is not None else DEFAULT_THRESHOLDS_PATH
    values: dict[str, Any] = {}
    source = "built-in defaults"
    if path is not None or file.exists():
        loaded = yaml.safe_load(file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{file}: expected a mapping of thresholds")
        values = {_normalize(k): _coerce(_normalize(k), v) for k, v in _flatten(loaded).items()}
        source = str(file)
    applied = {_normalize(k): _coerce(_normalize(k), v) for k, v in (overrides or {}).items()}
    return replace(Thresholds(), **{**values, **applied}, source=source, overrides=applied)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`["p50_go_ms=130", "bootstrap.n_boot=200"]` -> overrides for load_thresholds (values coerced there)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        out[_normalize(key)] = value.strip()
    return out
