"""What the chaos scenarios stand on: reading a running stack (either runtime), the paper-trade ledger in
PostgreSQL, the runtime's faults (`runtime/faults.py`), and publishing in a publisher's place (`injector.py`).

Everything here reads evidence from the stack itself (metrics snapshots, logs, streams, tables); nothing
assumes a timing. Faults are only ever applied to servers the stack itself runs, never to a REDIS_URL /
DATABASE_URL the operator configured.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, read_dotenv
from arbees_core.messages import PriceUpdate, encode
from arbees_core.polling import eventually
from arbees_core.registry import SERVICES
from arbees_core.runtime.ports import find_holder
from arbees_core.store.db import connect
from arbees_core.topics import price_topic

#: Services that subscribe to each publisher in ZMQ mode (who must reconnect after it restarts); the api's dashboard
#: feed subscribes to every publisher.
SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    "kalshi_monitor": ("game_shard", "execution_service", "zmq_listener", "api", "position_tracker"),
    "polymarket_monitor": ("game_shard", "execution_service", "zmq_listener", "api", "position_tracker"),
    "game_shard": ("execution_service", "zmq_listener", "api"),
    "execution_service": ("zmq_listener", "api", "position_tracker"),
    "position_tracker": ("execution_service", "zmq_listener"),
}


class ChaosUnavailable(Exception):
    """The scenario cannot run against this stack (not up, wrong runtime, a server it may not control)."""


def running_setting(runtime: Any, service: str, setting: S.Setting[Any]) -> Any:
    """`setting` as the running `service` has it (its real environment), through its declaration; the declared
    default when the value is malformed (a service would not have started with it)."""
    try:
        return Env(runtime.env(service)).get(setting)
    except ConfigError:
        return setting.default


class StackProbe:
    """Reads one running stack (local processes or compose containers): rows, counters, logs, mode, URLs, and
    applies the runtime's faults."""

    def __init__(self, runtime: Any) -> None:
        from arbees_core.runtime.faults import FaultUnavailable, faults_for

        try:
            self.faults = faults_for(runtime)
        except FaultUnavailable as e:
            raise ChaosUnavailable(str(e)) from None
        if not runtime.is_up():
            raise ChaosUnavailable(f"the {runtime.kind} stack is not running; start it with `arbees up`")
        self.rt = runtime
        self.urls: dict[str, str] = runtime.urls()

    def row(self, name: str) -> Any:
        return next(s for s in self.rt.status() if s.name == name)

    def current_url(self, name: str, timeout_s: float = 60.0) -> str:
        """REDIS_URL / DATABASE_URL as the stack publishes it now (a restarted server container may publish
        another host port), waiting for the server to be back."""
        url = eventually(lambda: self.rt.urls().get(name, ""), timeout_s, raises=False)
        if not url:
            raise ChaosUnavailable(f"the stack reports no {name} within {timeout_s:.0f}s")
        self.urls[name] = url
        return url

    def running(self) -> list[str]:
        return [s.name for s in self.rt.status() if s.state == "running"]

    def metrics(self, service: str, since_ns: int | None = None) -> dict[str, Any]:
        """The latest snapshot; with `since_ns`, only that of an instance started after it (a restarted service's
        snapshot is its predecessor's until the new instance writes its first one)."""
        snap = self.rt.metrics(service)
        return snap if since_ns is None or int(snap.get("started_ns") or 0) >= since_ns else {}

    def counter(self, service: str, key: str, since_ns: int | None = None) -> int:
        return int(self.metrics(service, since_ns).get("counters", {}).get(key, 0))

    def field(self, service: str, key: str, default: Any = None, since_ns: int | None = None) -> Any:
        return self.metrics(service, since_ns).get(key, default)

    def instance(self, service: str) -> str:
        return str(self.rt.metrics(service).get("instance", ""))

    @property
    def zmq_mode(self) -> bool:
        try:
            environ = self.rt.env("game_shard")
        except Exception:  # noqa: BLE001 - game_shard not running: fall back to the .env value
            environ = read_dotenv(self.rt.root / ".env")
        try:
            return Env(environ).get(S.ZMQ_ENABLED)
        except ConfigError:
            return False

    def logs_since(self, service: str, t0_wall: float) -> str:
        return self.rt.logs(service, since_s=max(0.0, time.time() - t0_wall) + 0.2)

    def restarts(self) -> dict[str, int]:
        return {s.name: s.restarts for s in self.rt.status()}

    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.urls["REDIS_URL"], socket_timeout=5)

    def fault(self, action: str, *args: Any) -> Any:
        """Apply one of the runtime's faults (`kill`, `pause`, ...); a fault this stack cannot host is a scenario
        that cannot run here (ChaosUnavailable), never a failed check."""
        from arbees_core.runtime.faults import FaultUnavailable

        try:
            return getattr(self.faults, action)(*args)
        except FaultUnavailable as e:
            raise ChaosUnavailable(str(e)) from None

    @contextmanager
    def paused(self, target: str) -> Iterator[None]:
        """`target` (a service, or `redis`) frozen for the body; always resumed."""
        self.fault("pause", target)
        try:
            yield
        finally:
            self.fault("resume", target)

    def spool_path(self) -> str:
        env = self.rt.env("execution_service") if "execution_service" in self.running() else {}
        default = Path(getattr(self.rt, "state", Path(".arbees"))) / "spool" / "execution_service.jsonl"
        return env.get("SPOOL_PATH") or str(default)

    def spool_signals(self) -> dict[str, int]:
        """signal id -> executed_ns of every complete record in execution_service's spool, read where it lives."""
        return spool_signals(self.faults.read_file("execution_service", self.spool_path()))


@contextmanager
def restarted_with(runtime: Any, root: Path, service: str | list[str], values: dict[str, str]) -> Iterator[None]:
    """`service` (or several) restarted with `values` set in the project's `.env` for the body (fault injection
    through the settings read at start); `.env` restored exactly and the services restarted again afterwards."""
    from arbees_core.config import write_dotenv_value

    services = [service] if isinstance(service, str) else list(service)
    env_file = root / ".env"
    saved = env_file.read_text() if env_file.exists() else None
    for key, value in values.items():
        write_dotenv_value(key, value, env_file)
    try:
        runtime.restart(services)
        yield
    finally:
        if saved is None:
            env_file.unlink(missing_ok=True)
        else:
            env_file.write_text(saved)
        runtime.restart(services)


def new_instance(probe: StackProbe, service: str, old: Any, timeout_s: float) -> Any:
    """The service's row once it runs again as a new instance (another start time or pid) with its restart
    counted, or None when that did not happen within `timeout_s`."""
    def again() -> Any:
        r = probe.row(service)
        fresh = (r.pid, r.started_at) != (old.pid, old.started_at)
        return r if r.state == "running" and fresh and r.restarts > old.restarts else None

    return eventually(again, timeout_s, raises=False)


# -- the ledger ------------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """executed_signals and paper_trades as the idempotency contract sees them."""

    signals: int
    trades: int
    wrong_legs: list[str]  # signal ids whose trade rows are not exactly legs 0..n-1 once each
    orphans: list[str]  # trade rows without an executed_signals row

    @property
    def consistent(self) -> bool:
        return not self.wrong_legs and not self.orphans

    def text(self) -> str:
        bad = (f"; wrong legs: {', '.join(self.wrong_legs[:5])}" if self.wrong_legs else "") + \
              (f"; orphan trades: {', '.join(self.orphans[:5])}" if self.orphans else "")
        return f"{self.signals} executed signals, {self.trades} paper_trades rows{bad or ', each signal exactly its legs'}"


_LEDGER_SQL = """
SELECT e.signal_id, e.legs, count(p.order_id), count(DISTINCT p.leg), coalesce(max(p.leg), -1)
  FROM executed_signals e LEFT JOIN paper_trades p ON p.signal_id = e.signal_id
 GROUP BY e.signal_id, e.legs"""
_ORPHANS_SQL = """
SELECT DISTINCT p.signal_id FROM paper_trades p
 WHERE NOT EXISTS (SELECT 1 FROM executed_signals e WHERE e.signal_id = p.signal_id)"""


def ledger(database_url: str) -> Ledger:
    with connect(database_url, retries=8) as conn:
        rows = conn.execute(_LEDGER_SQL).fetchall()
        orphans = [r[0] for r in conn.execute(_ORPHANS_SQL).fetchall()]
    wrong = [sid for sid, legs, n, distinct, top in rows if not (n == distinct == legs and top == legs - 1)]
    return Ledger(len(rows), sum(r[2] for r in rows), wrong, orphans)


def executed_ids(database_url: str) -> set[str]:
    with connect(database_url, retries=8) as conn:
        return {r[0] for r in conn.execute("SELECT signal_id FROM executed_signals").fetchall()}


def trade_rows(database_url: str) -> int:
    with connect(database_url, retries=8) as conn:
        return int(conn.execute("SELECT count(*) FROM paper_trades").fetchone()[0])


class _SpoolLine(msgspec.Struct):
    signal_id: str
    executed_ns: int = 0


def spool_signals(data: bytes) -> dict[str, int]:
    """signal id -> executed_ns of every complete record in the spool's bytes (read, never opened for writing:
    the service may be appending; a last line without its newline is still being written)."""
    out: dict[str, int] = {}
    decoder = msgspec.json.Decoder(_SpoolLine)
    for line in data.split(b"\n")[:-1]:
        try:
            rec = decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        out[rec.signal_id] = rec.executed_ns
    return out


def mirrored_signals(probe: StackProbe, since_ms: int, until_ms: int) -> dict[str, tuple[str, int]]:
    """signal id -> (publisher instance, seq) of every signal in `signals:trades` within the window."""
    client = probe.redis()
    try:
        entries = client.xrange("signals:trades", min=f"{since_ms}-0", max=f"{until_ms}-0")
    finally:
        client.close()
    out: dict[str, tuple[str, int]] = {}
    for _, fields in entries:
        try:
            body = msgspec.json.decode(fields[b"data"])
            out.setdefault(body["signal_id"], (body.get("src", ""), int(body.get("seq", 0))))
        except (KeyError, ValueError, TypeError, msgspec.DecodeError):
            continue
    return out


# -- publishing on a service's own port ------------------------------------------------------------------------


@dataclass
class Takeover:
    """Frames sent here go out of the injector (`injector.py`) bound where the stopped publisher was, so its real
    subscribers' sockets receive them. Messages are built here; the injector process only sends them."""

    proc: subprocess.Popen | None
    src: str
    seq: int = 0
    topic_seqs: dict[str, int] = field(default_factory=dict)

    def send_raw(self, *frames: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(" ".join(f.hex() for f in frames) + "\n")

    def price(self, ticker: str, seq: int | None = None, **fields: Any) -> PriceUpdate:
        """A valid Kalshi price update for an unmapped ticker (never tradeable), stamped as the next message."""
        self.seq = self.seq + 1 if seq is None else seq
        topic_seq = self.topic_seqs[ticker] = self.topic_seqs.get(ticker, 0) + 1
        now = time.time_ns()
        base = dict(yes_bid=40.0, yes_bid_size=10.0, yes_ask=42.0, yes_ask_size=10.0, no_bid=58.0, no_bid_size=10.0,
                    no_ask=60.0, no_ask_size=10.0)
        return PriceUpdate(src=self.src, seq=self.seq, ts_origin_ns=now, ts_pub_ns=now, venue="kalshi", ticker=ticker,
                           game_id="", outcome="", topic_seq=topic_seq, **{**base, **fields})

    def send_price(self, ticker: str, **fields: Any) -> None:
        upd = self.price(ticker, **fields)
        self.send_raw(price_topic("kalshi", ticker).encode(), encode(upd))

    def sync(self) -> int:
        """Return once the injector has sent every message written so far; how many it has sent in all."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("SYNC\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if not line.startswith("SYNCED "):
            raise ChaosUnavailable(f"the injector stopped answering ({line or 'no answer'})")
        return int(line.split()[1])


@contextmanager
def take_over_port(probe: StackProbe, service: str, expect: dict[str, int], sndhwm: int = 1000,
                   timeout_s: float = 30.0) -> Iterator[Takeover]:
    """Stop `service`, start the injector where it was (the runtime says how: a process on its port, or a
    container answering to its name), wait until `expect` (topic prefix -> subscriber count) have subscribed,
    yield; then end the injector and start the service again."""
    port = next((p for p in probe.row(service).ports), None)
    if port is None:
        raise ChaosUnavailable(f"{service} has no port to take over (is the stack in ZMQ mode and running?)")
    command = probe.faults.injector(service, port)
    command += [*(f"--expect={k}={n}" for k, n in expect.items()), f"--sndhwm={sndhwm}", f"--timeout={timeout_s}"]
    probe.rt.stop([service])
    try:
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as proc:  # its end closes the pipes and waits for the injector
            try:
                _await_ready(proc, port)
                yield Takeover(proc, f"chaos.{os.getpid()}.{time.time_ns() % 100000}")
                _end(proc)
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        probe.rt.up([service])


def _await_ready(proc: subprocess.Popen, port: int) -> None:
    """The injector's first line: READY, or why it could not take the port over."""
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line == "READY":
        return
    proc.wait(timeout=30)
    reason = line or (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-1:]
    if line.startswith("BIND"):
        held = find_holder(port) if "in use" in line.lower() else None
        reason = f"{line[5:]}" + (f" (held by {held})" if held else "")
        raise ChaosUnavailable(f"cannot bind port {port} after stopping its publisher: {reason}")
    raise ChaosUnavailable(f"the publisher's subscribers did not all reconnect to port {port}: {reason}")


def _end(proc: subprocess.Popen) -> None:
    """Tell the injector to finish (queued frames leave first) and wait for it."""
    assert proc.stdin is not None
    proc.stdin.write("END\n")
    proc.stdin.close()
    proc.wait(timeout=60)


def price_subscribers(probe: StackProbe) -> int:
    """How many running services subscribe to a monitor's prices (ZMQ mode): a taken-over monitor port is ready once
    that many have subscribed again, not only the ones a scenario checks."""
    return len([s for s in SUBSCRIBERS["kalshi_monitor"] if s in probe.running()])


def service_names() -> list[str]:
    return [s.name for s in SERVICES]


_CONNECTED = "connected to tcp://"


def reconnected(probe: StackProbe, subscriber: str, port: int, t0_wall: float) -> bool:
    """Whether `subscriber` logged a real (socket monitor) connection to `port` after `t0_wall`."""
    pattern = re.compile(re.escape(_CONNECTED) + r"[^\s:]+:" + str(port) + r"\b")
    return bool(pattern.search(probe.logs_since(subscriber, t0_wall)))


def port_lines(probe: StackProbe, subscriber: str, port: int, t0_wall: float, keep: int = 3) -> list[str]:
    """The last lines `subscriber` logged about `port` since `t0_wall` (a lost connection, a new endpoint): the
    evidence when no reconnect line came."""
    needle = re.compile(r":" + str(port) + r"\b")
    return [line.strip()[-200:] for line in probe.logs_since(subscriber, t0_wall).splitlines()
            if needle.search(line)][-keep:]
