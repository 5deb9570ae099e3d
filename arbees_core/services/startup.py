"""A configuration that cannot work: one line, exit code 2 once, or (under a restart policy) one line and a hold.

Peers that are not usable yet (Redis refusing us, PostgreSQL without our database) heal, and every service waits
them out in-process (`telemetry.peers`). A configuration error does not heal: `REDIS_URL=http://...`,
`DATABASE_URL=mysql://...`, `MIN_EDGE_PCT=lots` fail the same way on every start. So the service logs one line
(`Cannot start game_shard: configuration error: ...`) and:

- by default exits with code 2 (`EXIT_CONFIG`). The local supervisor does not restart a service that exited with
  it (`arbees status` shows it `failed`, with the line);
- with `ARBEES_CONFIG_ERROR=hold` (set where a restart policy restarts any exit, e.g. the Dockerfile for
  docker compose's `restart: unless-stopped`) it stays alive and waits for SIGTERM, so that the policy has nothing
  to restart. Either way it first writes state `config_error` and the line into its metrics snapshot
  (`.arbees/metrics/<service>.json`, which compose's healthcheck and `arbees status` read).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, state_dir
from arbees_core.telemetry.metrics import read_snapshot, write_snapshot

#: Exit code of a configuration error; a supervisor that restarts on exit must not restart on this one.
EXIT_CONFIG = 2
#: exit (default): exit with EXIT_CONFIG; hold: stay alive until SIGTERM (under a restart policy).
CONFIG_ERROR_ENV = S.ARBEES_CONFIG_ERROR.name
#: Snapshot state of a service stopped by a configuration error (its `error` field holds the line).
STATE_CONFIG_ERROR = "config_error"


def hold_on_config_error() -> bool:
    """Whether ARBEES_CONFIG_ERROR says hold; a malformed value means exit (it may be the error being reported)."""
    try:
        return Env().get(S.ARBEES_CONFIG_ERROR) == "hold"
    except ConfigError:
        return False


def config_error_snapshot(service: str, message: str) -> dict[str, Any]:
    """The metrics snapshot of a service that cannot start: what `arbees status` and the healthcheck show."""
    return {"service": service, "pid": os.getpid(), "ts_ns": time.time_ns(), "state": STATE_CONFIG_ERROR,
            "error": message}


def recorded_config_error(state: Path, service: str, pid: int) -> str:
    """The line that process `pid` of `service` recorded in its snapshot under the state folder `state`, for a
    supervisor to show beside its exit code 2."""
    snap = read_snapshot(state / "metrics", service) or {}
    if snap.get("pid") == pid and snap.get("state") == STATE_CONFIG_ERROR:
        return str(snap.get("error", ""))
    return "configuration error: see its log"


def peers_problem(snap: dict[str, Any]) -> str:
    """The peers a metrics snapshot says are not usable, with the server's reason ("" when none)."""
    return "; ".join(f"{p.get('kind')} unavailable at {p.get('location')}: {p.get('reason', '')}"
                     for p in snap.get("peers") or [] if not p.get("usable", True))


def health_problem(snap: dict[str, Any] | None, age_s: float, stale_s: float = 15.0) -> str:
    """Why a service is not healthy, in one line, or "" when it is: what a healthcheck prints and a runtime shows.
    `config_error: <the line>` for a configuration error (a runtime shows that service as failed), `waiting: Redis
    unavailable at ...: <reason>` while a start waits for a peer, or a snapshot older than `stale_s` (seconds)."""
    if snap is None:
        return "no metrics snapshot yet"
    state = snap.get("state") or "unknown"
    if state == STATE_CONFIG_ERROR:
        return f"{STATE_CONFIG_ERROR}: {snap.get('error', '')}"
    if age_s > stale_s:
        return f"state={state}, metrics snapshot {age_s:.0f}s old"
    if state != "running":
        return f"{state}: {peers_problem(snap)}" if peers_problem(snap) else state
    return ""


def container_problem() -> str:
    """What compose's healthcheck reports for the service this container runs (ARBEES_SERVICE), "" when healthy:
    its snapshot's problem (`health_problem`), or in ZMQ mode a PUB port that does not answer."""
    env = Env()
    from arbees_core.services.shards import health_name  # an orchestrated shard writes under its own name

    path = state_dir() / "metrics" / f"{health_name(dict(os.environ))}.json"
    try:
        snap, age = json.loads(path.read_text()), time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        snap, age = None, 0.0
    problem = health_problem(snap, age)
    if problem or not (env.get(S.ZMQ_ENABLED) and env.is_set(S.ZMQ_PUB_PORT)) or env.get(S.ZMQ_PUB_ENDPOINT):
        return problem
    port = env.get(S.ZMQ_PUB_PORT)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as e:
        return f"ZMQ PUB port {port} does not answer: {e}"
    return ""


def on_config_error(service: str, error: ConfigError, stop: threading.Event, log: logging.Logger) -> int:
    """Log the one line, record it in the snapshot, hold until `stop` when asked to; returns EXIT_CONFIG."""
    hold = hold_on_config_error()
    message = f"configuration error: {error}"
    log.error("Cannot start %s: %s%s", service, message,
              f"; holding until stopped ({CONFIG_ERROR_ENV}=hold): fix the setting, then recreate the service"
              if hold else "")
    try:
        write_snapshot(state_dir() / "metrics", service, config_error_snapshot(service, message))
    except OSError as e:
        log.warning("Cannot record the configuration error in %s: %s", state_dir() / "metrics", e)
    while hold and not stop.wait(1.0):
        pass
    return EXIT_CONFIG
