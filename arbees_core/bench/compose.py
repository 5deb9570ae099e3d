"""The pipeline's hops through container networking: the compose stack on a real Docker engine, measured like
the local runs (same recorded venue traffic, replayed 1x by the monitors; the services' own HDR histograms over a
window after warm-up), so its rows (`<hop>@compose`) compare with the local rows of the same run.

It needs a Docker engine with Compose v2 and no other arbees stack on it (the compose file fixes the plan's
container names); otherwise the rows are skipped with a note saying why. The image is built once per run from this
checkout (`PYTHON_IMAGE`, `ARBEES_BUILD_NETWORK` as for `docker compose build`); the stack's data volumes are
removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from arbees_core.runtime.compose import ComposeRuntime, engine_available
from arbees_core.bench.common import HopRow, row_from_histogram, sleep_reporting, window_histogram
from arbees_core.bench.pipeline import SERVICE_HOPS, Progress, bench_env

ROOT = Path(__file__).resolve().parents[2]  # the checkout: docker-compose.yml and the Dockerfile
IMAGE = "arbees:bench"
SUFFIX = "@compose"
#: Compose starts services one after another behind healthchecks: traffic must outlast that too.
START_MARGIN_S = 90.0
#: Settings of `bench_env` that describe the traffic and the strategy (addresses are the compose file's own).
_CARRIED = ("SIM_", "GAME_COOLDOWN_MS", "MAX_EXPOSURE_USD", "LOG_SAMPLE_PER_SEC", "HEARTBEAT_INTERVAL_SECS",
            "MIRROR_LOG_PER_SEC")
_IMAGE_SETTINGS = ("PYTHON_IMAGE", "ARBEES_REDIS_IMAGE", "ARBEES_TIMESCALEDB_IMAGE")


def unavailable() -> str:
    """Why the compose rows cannot be measured here, '' when they can."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    if not engine_available():
        return "no Docker engine answers (DOCKER_HOST or the default socket)"
    probe = subprocess.run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=arbees"],
                           capture_output=True, text=True, timeout=30)
    if probe.stdout.strip():
        return "an arbees compose stack is on this engine (the compose file fixes the plan's container names)"
    return ""


def build_command(tag: str, context: Path) -> list[str]:
    """`docker build` of the arbees image with the engine's settings from the environment: ARBEES_BUILD_NETWORK
    (host where the default bridge cannot reach the package index), PYTHON_IMAGE (the base image)."""
    args = ["docker", "build", "-q", "-t", tag]
    if os.environ.get("ARBEES_BUILD_NETWORK"):
        args += ["--network", os.environ["ARBEES_BUILD_NETWORK"]]
    if os.environ.get("PYTHON_IMAGE"):
        args += ["--build-arg", f"PYTHON_IMAGE={os.environ['PYTHON_IMAGE']}"]
    return [*args, str(context)]


def build_image() -> None:
    done = subprocess.run(build_command(IMAGE, ROOT), capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"docker build failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def project(folder: Path, zmq_mode: bool, rate: float, traffic: dict[str, Path]) -> Path:
    """A compose project: the compose file, an override mounting the recorded traffic into the monitors, `.env`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "docker-compose.yml", folder / "docker-compose.yml")
    mount = f"{traffic['kalshi'].parent.resolve()}:/traffic:ro"
    (folder / "docker-compose.bench.yml").write_text(
        "services:\n" + "".join(f"  {svc}:\n    volumes: [\"{mount}\"]\n"
                                for svc in ("kalshi_monitor", "polymarket_monitor")))
    env = bench_env(zmq_mode, rate, "", "", folder / "unused")
    lines = [f"{k}={v}" for k, v in env.items() if k.startswith(_CARRIED)]
    lines += [f"{k}={os.environ[k]}" for k in _IMAGE_SETTINGS if os.environ.get(k)]
    lines += [f"ARBEES_IMAGE={IMAGE}", f"ZMQ_ENABLED={'true' if zmq_mode else 'false'}", "ARBEES_RT_PRIORITY=0",
              "ZMQ_SPIN_US=0", *(f"{v.upper()}_SOURCE=replay:/traffic/{traffic[v].name}@1x"
                                 for v in ("kalshi", "polymarket"))]
    (folder / ".env").write_text("\n".join(lines) + "\n")
    return folder


def run_compose_pipeline(zmq_mode: bool, rate: float, duration_s: float, warmup_s: float,
                         traffic: dict[str, Path], folder: Path, progress: Progress | None = None) -> list[HopRow]:
    """Start the compose stack, wait for its first paper fill, warm up, measure a window, take it down."""
    mode = "zmq" if zmq_mode else "redis"
    root = project(folder, zmq_mode, rate, traffic)
    rt = ComposeRuntime(root, ["docker-compose.yml", "docker-compose.bench.yml"])
    names = ("game_shard", "execution_service")
    try:
        rt.up()
        _wait(lambda: int(rt.metrics("execution_service").get("counters", {}).get("signals_executed", 0)) > 0,
              START_MARGIN_S, "a first paper fill in the compose stack")
        sleep_reporting(warmup_s, None)
        start = {n: rt.metrics(n) for n in names}
        sleep_reporting(duration_s, progress)
        end = {n: rt.metrics(n) for n in names}
    finally:
        rt._run("down", "-v", "--remove-orphans", "--timeout", "5")
    seconds = max(1e-9, (int(end["game_shard"].get("ts_ns", 0)) - int(start["game_shard"].get("ts_ns", 0))) / 1e9)
    prices = _delta(start, end, "game_shard", "prices_rx")
    rows = []
    for hop, service, hist_name in SERVICE_HOPS:
        if service not in names:
            continue
        hist = window_histogram(_hdr(start[service], hist_name), _hdr(end[service], hist_name))
        rows.append(row_from_histogram(hop + SUFFIX, mode, prices / seconds, hist, _delta(start, end, service, "lost")))
    return rows


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - a container still starting answers with an error: keep waiting
            pass
        time.sleep(1.0)
    raise RuntimeError(f"not reached within {timeout_s:.0f}s: {what}")


def _hdr(snap: dict[str, Any], hist_name: str) -> str | None:
    return snap.get("latency", {}).get(hist_name, {}).get("hdr")


def _delta(start: dict[str, dict], end: dict[str, dict], service: str, counter: str) -> int:
    return int(end[service].get("counters", {}).get(counter, 0)) - int(start[service].get("counters", {}).get(counter, 0))
