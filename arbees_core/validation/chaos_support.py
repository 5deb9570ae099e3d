"""What the chaos scenarios (`validation/chaos.py`) stand on: reading a running local stack, the paper-trade
ledger in PostgreSQL, control of the embedded Redis/PostgreSQL, and taking over a publisher's port.

Everything here reads evidence from the stack itself (metrics snapshots, logs, streams, tables); nothing
assumes a timing. Faults are only ever applied to servers this stack started (`stack.json` `embedded`), never to
a REDIS_URL / DATABASE_URL the operator configured.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import zmq

from arbees_core.messages import PriceUpdate, encode
from arbees_core.registry import SERVICES
from arbees_core.runtime.ports import find_holder
from arbees_core.store.db import connect
from arbees_core.topics import price_topic

#: Services that subscribe to each publisher in ZMQ mode (who must reconnect after it restarts).
SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    "kalshi_monitor": ("game_shard", "execution_service", "zmq_listener"),
    "polymarket_monitor": ("game_shard", "execution_service", "zmq_listener"),
    "game_shard": ("execution_service", "zmq_listener"),
    "execution_service": ("zmq_listener",),
}


class ChaosUnavailable(Exception):
    """The scenario cannot run against this stack (not up, wrong runtime, a server it may not control)."""


def eventually(condition: Callable[[], Any], timeout_s: float, interval_s: float = 0.2) -> Any:
    """The first truthy value of `condition` within `timeout_s`, else the last (falsy) one."""
    deadline = time.monotonic() + timeout_s
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = condition()
    return value


class StackProbe:
    """Reads one running local stack: service rows, counters, logs, mode, URLs."""

    def __init__(self, runtime: Any) -> None:
        if getattr(runtime, "kind", "") != "local":
            raise ChaosUnavailable("chaos scenarios drive the local runtime (processes, embedded servers); "
                                   "use --runtime local")
        if not runtime.is_up():
            raise ChaosUnavailable("the local stack is not running; start it with `arbees up`")
        self.rt = runtime
        self.stack: dict[str, Any] = runtime.read_stack()
        self.urls: dict[str, str] = runtime.urls()

    def row(self, name: str) -> Any:
        return next(s for s in self.rt.status() if s.name == name)

    def running(self) -> list[str]:
        return [s.name for s in self.rt.status() if s.state == "running"]

    def metrics(self, service: str, pid: int | None = None) -> dict[str, Any]:
        """The latest snapshot; with `pid`, only that process's (a restarted service's file is its predecessor's
        until the new instance writes its first one)."""
        snap = self.rt.metrics(service)
        return snap if pid is None or snap.get("pid") == pid else {}

    def counter(self, service: str, key: str, pid: int | None = None) -> int:
        return int(self.metrics(service, pid).get("counters", {}).get(key, 0))

    def field(self, service: str, key: str, default: Any = None, pid: int | None = None) -> Any:
        return self.metrics(service, pid).get(key, default)

    def instance(self, service: str) -> str:
        return str(self.rt.metrics(service).get("instance", ""))

    @property
    def zmq_mode(self) -> bool:
        try:
            return self.rt.env("game_shard").get("ZMQ_ENABLED", "false").strip().lower() in ("1", "true", "yes", "on")
        except Exception:  # noqa: BLE001 - game_shard not running: fall back to the .env value
            from arbees_core.config import read_dotenv

            return read_dotenv(self.rt.root / ".env").get("ZMQ_ENABLED", "false").lower() in ("1", "true", "yes")

    def logs_since(self, service: str, t0_wall: float) -> str:
        return self.rt.logs(service, since_s=max(0.0, time.time() - t0_wall) + 0.2)

    def restarts(self) -> dict[str, int]:
        return {s.name: s.restarts for s in self.rt.status()}

    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.urls["REDIS_URL"], socket_timeout=5)

    def spool_path(self) -> Path:
        env = self.rt.env("execution_service") if "execution_service" in self.running() else {}
        return Path(env.get("SPOOL_PATH") or self.rt.state / "spool" / "execution_service.jsonl")


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
    with connect(database_url, retries=0) as conn:
        rows = conn.execute(_LEDGER_SQL).fetchall()
        orphans = [r[0] for r in conn.execute(_ORPHANS_SQL).fetchall()]
    wrong = [sid for sid, legs, n, distinct, top in rows if not (n == distinct == legs and top == legs - 1)]
    return Ledger(len(rows), sum(r[2] for r in rows), wrong, orphans)


def executed_ids(database_url: str) -> set[str]:
    with connect(database_url, retries=0) as conn:
        return {r[0] for r in conn.execute("SELECT signal_id FROM executed_signals").fetchall()}


def trade_rows(database_url: str) -> int:
    with connect(database_url, retries=0) as conn:
        return int(conn.execute("SELECT count(*) FROM paper_trades").fetchone()[0])


class _SpoolLine(msgspec.Struct):
    signal_id: str
    executed_ns: int = 0


def spool_signals(path: Path) -> dict[str, int]:
    """signal id -> executed_ns of every complete record in the spool file, read-only (never opened for
    writing: the service may be appending)."""
    out: dict[str, int] = {}
    decoder = msgspec.json.Decoder(_SpoolLine)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
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


# -- embedded servers ------------------------------------------------------------------------------------------


def embedded_redis_pid(probe: StackProbe) -> int:
    pid = probe.stack.get("embedded", {}).get("redis", {}).get("pid")
    if not pid:
        raise ChaosUnavailable("this stack uses a configured REDIS_URL; the Redis outage needs the embedded Redis "
                               "(unset REDIS_URL and `arbees up`) so the scenario never stops a shared server")
    return int(pid)


@contextmanager
def redis_frozen(pid: int) -> Iterator[None]:
    """Redis unresponsive (SIGSTOP) for the body; always resumed (SIGCONT)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def embedded_pg_folder(probe: StackProbe) -> Path:
    folder = probe.stack.get("embedded", {}).get("postgres", {}).get("folder")
    if not folder:
        raise ChaosUnavailable("this stack uses a configured DATABASE_URL; the PostgreSQL outage needs the embedded "
                               "PostgreSQL (unset DATABASE_URL and `arbees up`) so a shared server is never stopped")
    return Path(folder)


def _pg_ctl(folder: Path, *args: str) -> None:
    from arbees_core.runtime.embedded import pg_ctl

    done = pg_ctl(folder, *args)
    if done.returncode != 0:
        raise ChaosUnavailable(f"pg_ctl {args[-1]} failed for the embedded PostgreSQL in {folder}: "
                               f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def pg_stop(folder: Path) -> str:
    """Stop the cluster (fast: clients are disconnected); returns its Unix socket folder for the restart."""
    lines = (folder / "postmaster.pid").read_text().splitlines()
    socket_dir = lines[4] if len(lines) > 4 else str(folder)
    _pg_ctl(folder, "-w", "-m", "fast", "stop")
    return socket_dir


def pg_start(folder: Path, socket_dir: str) -> None:
    """Start it again as pgserver does: no TCP listener, the same socket folder, so the URL is unchanged."""
    _pg_ctl(folder, "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(folder / "log"), "start")


# -- publishing on a service's own port ------------------------------------------------------------------------


@dataclass
class Takeover:
    """An XPUB bound where a stopped publisher was: frames sent here reach its real subscribers' sockets."""

    sock: zmq.Socket
    src: str
    seq: int = 0

    def send_raw(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    def price(self, ticker: str, seq: int | None = None, **fields: Any) -> PriceUpdate:
        """A valid Kalshi price update for an unmapped ticker (never tradeable), stamped as the next message."""
        self.seq = self.seq + 1 if seq is None else seq
        now = time.time_ns()
        base = dict(yes_bid=40.0, yes_bid_size=10.0, yes_ask=42.0, yes_ask_size=10.0, no_bid=58.0, no_bid_size=10.0,
                    no_ask=60.0, no_ask_size=10.0)
        return PriceUpdate(src=self.src, seq=self.seq, ts_origin_ns=now, ts_pub_ns=now, venue="kalshi", ticker=ticker,
                           game_id="", outcome="", **{**base, **fields})

    def send_price(self, ticker: str, **fields: Any) -> None:
        upd = self.price(ticker, **fields)
        self.sock.send_multipart([price_topic("kalshi", ticker).encode(), encode(upd)])


@contextmanager
def take_over_port(probe: StackProbe, service: str, expect: dict[str, int], sndhwm: int = 1000,
                   timeout_s: float = 20.0) -> Iterator[Takeover]:
    """Stop `service`, bind its port, wait until `expect` (topic prefix -> subscriber count) have subscribed,
    yield; then close and start the service again. Every subscriber's real SUB socket is what receives. A
    subscription to a shorter prefix that covers the expected one counts (game_shard subscribes by topic class,
    `prices.`: `transport.zmq.first_in_line_prefixes`)."""
    port = next((p for p in probe.row(service).ports), None)
    if port is None:
        raise ChaosUnavailable(f"{service} has no port to take over (is the stack in ZMQ mode and running?)")
    probe.rt.stop([service])
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    try:
        _bind(sock, port)
        seen: dict[str, int] = {}
        deadline = time.monotonic() + timeout_s
        def covering(topic_prefix: str) -> int:
            return sum(n for prefix, n in seen.items() if topic_prefix.startswith(prefix))

        while any(covering(k) < n for k, n in expect.items()) and time.monotonic() < deadline:
            if sock.poll(200):
                frame = sock.recv()
                if frame[:1] == b"\x01":
                    prefix = frame[1:].decode(errors="replace")
                    seen[prefix] = seen.get(prefix, 0) + 1
        missing = {k: n - covering(k) for k, n in expect.items() if covering(k) < n}
        if missing:
            raise ChaosUnavailable(f"subscribers did not reconnect to port {port} within {timeout_s:.0f}s: {missing}")
        yield Takeover(sock, f"chaos.{os.getpid()}.{time.time_ns() % 100000}")
        time.sleep(0.5)  # let queued frames leave before the socket closes
    finally:
        sock.close(0)
        probe.rt.up([service])


def _bind(sock: zmq.Socket, port: int) -> None:
    """Bind the stopped publisher's port: at once, since `stop` returns when the publisher has exited and a port
    left with closed connections only binds (SO_REUSEADDR); a refusal names who took the port meanwhile."""
    try:
        sock.bind(f"tcp://127.0.0.1:{port}")
    except zmq.ZMQError as e:
        held = f"held by {find_holder(port)}" if e.errno == errno.EADDRINUSE else e.strerror
        raise ChaosUnavailable(f"cannot bind port {port} after stopping its publisher: {held}") from None


def service_names() -> list[str]:
    return [s.name for s in SERVICES]


_CONNECTED = "connected to tcp://"


def reconnected(probe: StackProbe, subscriber: str, port: int, t0_wall: float) -> bool:
    """Whether `subscriber` logged a real (socket monitor) connection to `port` after `t0_wall`."""
    pattern = re.compile(re.escape(_CONNECTED) + r"[^\s:]+:" + str(port) + r"\b")
    return bool(pattern.search(probe.logs_since(subscriber, t0_wall)))
