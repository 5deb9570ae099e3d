"""One lifecycle for every service: config -> open -> loop -> close in reverse order on SIGTERM.

A service subclasses `Service`, builds itself in `from_env()`, and runs its loop in `run(stop)`, calling
`tick()` once per iteration for heartbeats and metrics. `main()` turns a configuration mistake into one
actionable log line and exit code 2 (or a hold, `services/startup.py`), a setup failure such as a taken port
into one line and exit code 1, and a clean stop into 0, never a traceback. Redis or PostgreSQL not being usable
is none of these: the service waits for them in-process (`telemetry/peers.py`).
"""

from __future__ import annotations

import abc
import argparse
import logging
import os
import queue
import secrets
import signal
import sys
import textwrap
import threading
import time
from typing import Any, ClassVar

import orjson
import psycopg
import redis

from arbees_core.config import ConfigError, Env, load_dotenv_into_environ, state_dir
from arbees_core.messages import Heartbeat
from arbees_core.registry import spec
from arbees_core.services.sched import Scope, apply_rt, rt_explicit, rt_priority
from arbees_core.services.startup import on_config_error
from arbees_core.telemetry.logs import setup_logging
from arbees_core.telemetry.memtrace import TIDY_EVERY_S, heap_stats, settle_gc, tidy_heap
from arbees_core.telemetry.memtrace import frames_from_env as memtrace_frames
from arbees_core.telemetry.memtrace import install as install_memtrace
from arbees_core.telemetry.metrics import Metrics, write_snapshot
from arbees_core.telemetry.prometheus import Exporter, MetricsEndpoint
from arbees_core.telemetry.peers import PeerLink, describe, peers_view
from arbees_core.topics import HEALTH_KEY_PREFIX, heartbeat_topic
from arbees_core.transport import Outbox, TransportError, TransportSettings
from arbees_core.transport.redis import REDIS_ERRORS, connect_redis, make_client, redis_peer


class HealthReporter(threading.Thread):
    """Writes each metrics snapshot to `.arbees/metrics/<service>.json` and to Redis `arbees:health:<service>`
    (TTL = 3 heartbeats), off the hot path, with the process's heap figures added (`heap_stats`, and the pause of
    the last tidy); every TIDY_EVERY_S it tidies the heap (`tidy_heap`: a full collection, the C heap's free pages
    back). Redis being unusable only costs the key (one line per reason,
    through the process's Redis peer), retried with backoff."""

    def __init__(self, service: str, redis_url: str, interval_s: float) -> None:
        super().__init__(name=f"{service}-health", daemon=True)
        self.service = service
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=2)
        self._redis_url = redis_url
        self._ttl_ms = max(1000, int(interval_s * 3000))
        self._client: redis.Redis | None = None
        self._link = PeerLink(redis_peer(redis_url), "health reporting")
        self._folder = state_dir() / "metrics"
        self._next_tidy = time.monotonic() + TIDY_EVERY_S
        self._tidy_ms: float | None = None

    def submit(self, snap: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(snap)
        except queue.Full:
            pass  # the next snapshot supersedes this one

    def close(self) -> None:
        self._queue.put(None)
        self.join(timeout=3)

    def run(self) -> None:
        log = logging.getLogger(self.service)
        while True:
            snap = self._queue.get()
            if snap is None:
                return
            heap: dict[str, float] = dict(heap_stats())  # here, not in the service's loop: it takes the heap's locks
            if self._tidy_ms is not None:
                heap["gc_pause_ms"] = round(self._tidy_ms, 3)
            snap["heap"] = heap
            try:
                write_snapshot(self._folder, self.service, snap)
            except OSError as e:
                log.warning("Cannot write metrics snapshot to %s: %s", self._folder, e)
            self._to_redis(snap)
            if time.monotonic() >= self._next_tidy:  # between snapshots (the collection pauses the loop too)
                self._next_tidy = time.monotonic() + TIDY_EVERY_S
                self._tidy_ms = tidy_heap()

    def _to_redis(self, snap: dict[str, Any]) -> None:
        if not self._link.may_try():
            return
        try:
            if self._client is None:  # a short timeout: a hung Redis must not hold back the metrics file
                self._client = make_client(self._redis_url, socket_timeout_s=1.0)
            body = orjson.dumps({k: v for k, v in snap.items() if k != "latency"} | {
                "latency": {hop: {k: v for k, v in s.items() if k != "hdr"} for hop, s in snap["latency"].items()}})
            self._client.set(HEALTH_KEY_PREFIX + self.service, body, px=self._ttl_ms)
            self._link.ok()
        except REDIS_ERRORS as e:
            self._link.failed(e, "health key paused, metrics file still written; retrying with backoff")


class Service(abc.ABC):
    """Base of every arbees service process."""

    name: ClassVar[str]
    #: Which threads ARBEES_RT_PRIORITY puts under SCHED_FIFO (see services/sched.py).
    rt_scope: ClassVar[Scope] = "none"

    def __init__(self, settings: TransportSettings, heartbeat_interval_s: float = 1.0) -> None:
        self.settings = settings
        self.instance = f"{self.name}.{os.getpid()}.{secrets.token_hex(2)}"
        self.log = logging.getLogger(self.name)
        self.metrics = Metrics(self.name, self.instance)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_outbox: Outbox | None = None
        self._reporter = HealthReporter(self.name, settings.redis_url, heartbeat_interval_s)
        self.exporter: Exporter | None = None
        self._next_tick = 0.0
        self.state = "running"  # `waiting` while a Redis-mode start waits for Redis (snapshot `state`)

    @classmethod
    @abc.abstractmethod
    def from_env(cls, env: Env) -> "Service": ...

    @abc.abstractmethod
    def run(self, stop: threading.Event) -> None: ...

    def open_outbox(self, port: int, endpoint: str) -> Outbox:
        """The service's publisher (ZMQ PUB, or the Redis streams in Redis mode) behind an Outbox that its
        heartbeats share; in ZMQ mode the plan's `ZMQ publisher initialized on port ...` line."""
        from arbees_core.transport import make_publisher

        publisher = make_publisher(self.settings, port, endpoint)
        if self.settings.zmq_enabled:
            self.log.info("ZMQ publisher initialized on port %s (%s)", getattr(publisher, "port", port),
                          getattr(publisher, "endpoint", ""))
        self.heartbeat_outbox = Outbox(publisher, self.instance, self.settings.wire, self.metrics)
        return self.heartbeat_outbox

    def announce_mode(self, stop: threading.Event) -> bool:
        """The plan's start lines: `ZMQ mode enabled`, or `Connected to Redis (Redis mode)` after a real INFO.
        Redis mode needs Redis (it is the transport), so the start waits here until Redis is usable, heartbeating
        with state `waiting`, retrying with capped backoff. False when stopped before that."""
        if self.settings.zmq_enabled:
            self.log.info("ZMQ mode enabled (wire %s)", self.settings.wire)
            return True
        link = PeerLink(redis_peer(self.settings.redis_url), "Redis mode start")
        self.state = "waiting"
        try:
            while not stop.is_set():
                client = connect_redis(self.settings.redis_url, link, "Connected to Redis (Redis mode)") \
                    if link.may_try() else None
                if client is not None:
                    client.close()
                    self.state = "running"
                    return True
                self.tick()
                stop.wait(min(max(link.wait_s(), 0.05), self.heartbeat_interval_s))
            return False
        finally:
            link.close()

    def start_reporting(self, metrics_endpoint: MetricsEndpoint | None = None) -> None:
        """Health snapshots, and the Prometheus endpoint when METRICS_PORT is set (threads of their own, started
        before ARBEES_RT_PRIORITY applies, so they keep normal scheduling)."""
        self._reporter.start()
        if metrics_endpoint is not None and metrics_endpoint.port:
            exporter = Exporter(metrics_endpoint)
            if exporter.start():
                exporter.update(self.metrics, self.settings.mode, "starting")
                self.exporter = exporter

    def stop_reporting(self) -> None:
        self._reporter.submit(self.snapshot("stopped"))
        self._reporter.close()
        if self.exporter is not None:
            self.exporter.close()

    def extra_snapshot(self) -> dict[str, Any]:
        """Service-specific fields for the metrics snapshot (override)."""
        return {}

    def feed_live_ns(self) -> int:
        """Monitors: when the venue feed was last known intact (override)."""
        return 0

    def snapshot(self, state: str = "") -> dict[str, Any]:
        """peers: every Redis / PostgreSQL this process used, and why it is unusable when it is."""
        return self.metrics.snapshot({"state": state or self.state, "mode": self.settings.mode,
                                      "peers": peers_view(), **self.extra_snapshot()})

    def tick(self) -> bool:
        """Heartbeat and metrics when due; cheap otherwise. Returns True when a heartbeat went out."""
        now = time.monotonic()
        if now < self._next_tick:
            return False
        self._next_tick = now + self.heartbeat_interval_s
        snap = self.snapshot()
        self._reporter.submit(snap)
        if self.exporter is not None:
            self.exporter.update(self.metrics, self.settings.mode, str(snap.get("state", "running")))
        if self.heartbeat_outbox is not None:
            hb = Heartbeat(src="", seq=0, service=self.name, started_ns=self.metrics.started_ns,
                           feed_live_ns=self.feed_live_ns(), counters=dict(self.metrics.counters))
            self.heartbeat_outbox.publish(heartbeat_topic(self.name), hb)
        return True


def help_text(service_cls: type[Service]) -> tuple[str, str]:
    """(what the service does, the settings it reads) for `--help`: its module's docstring and the registry."""
    entry = spec(service_cls.name)
    doc = (sys.modules[service_cls.__module__].__doc__ or entry.description).strip()
    names = entry.env
    settings = "\n".join(textwrap.wrap(", ".join(names), 100, initial_indent="  ", subsequent_indent="  "))
    return doc, (f"settings it reads (environment, or .env in the working directory; the environment wins):\n"
                 f"{settings}\n\nREADME.md gives their meaning and defaults.")


def parse_args(service_cls: type[Service], argv: list[str]) -> None:
    """A service takes no arguments (it is configured by its environment); `--help` prints what it does and the
    settings it reads, then exits 0 without starting anything. Anything else is a usage error (exit 2)."""
    doc, settings = help_text(service_cls)
    parser = argparse.ArgumentParser(prog=f"python -m {spec(service_cls.name).module}", description=doc,
                                     epilog=settings, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)


def stop_on_signals(log: logging.Logger) -> threading.Event:
    """An event SIGTERM / SIGINT set: the one way a service is asked to stop."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("Received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return stop


def run_service(service: Service, stop: threading.Event, log: logging.Logger) -> int | ConfigError:
    """`service.run(stop)` with its reporting around it: 0 after a clean stop, 1 after a setup failure (one line),
    or the ConfigError to report once reporting has stopped (its snapshot must not be overwritten)."""
    try:
        service.run(stop)
    except ConfigError as e:
        return e
    except TransportError as e:
        log.error("Cannot run %s: %s", service.name, e)
        return 1
    except (*REDIS_ERRORS, psycopg.Error) as e:  # every component absorbs these; a last net against a traceback
        log.error("Cannot run %s: %s: %s", service.name, type(e).__name__, describe(e))
        return 1
    finally:
        service.stop_reporting()
    return 0


def main(service_cls: type[Service], argv: list[str] | None = None) -> int:
    """Run a service until SIGTERM/SIGINT; returns the process exit code."""
    parse_args(service_cls, sys.argv[1:] if argv is None else argv)
    load_dotenv_into_environ()
    log = setup_logging(service_cls.name)
    stop = stop_on_signals(log)
    try:
        Env().check(service_cls.name)
        install_memtrace(service_cls.name, memtrace_frames(Env()), log)  # first: what the service builds is traced
        service = service_cls.from_env(Env())
        priority = rt_priority(Env())
        metrics_endpoint = MetricsEndpoint.from_env(Env())
    except ConfigError as e:
        return on_config_error(service_cls.name, e, stop, log)
    started = time.monotonic()
    service.start_reporting(metrics_endpoint)  # its threads keep normal scheduling: they start before apply_rt
    scope = service.rt_scope if service.settings.zmq_enabled or service.rt_scope != "zmq_io" else "none"
    apply_rt(scope, priority, log, rt_explicit(Env()))  # a Redis-mode monitor has no ZMQ I/O threads
    settle_gc()
    outcome = run_service(service, stop, log)
    if isinstance(outcome, ConfigError):
        return on_config_error(service_cls.name, outcome, stop, log)
    if outcome:
        return outcome
    c = service.metrics.counters
    log.info("Stopped %s after %.1fs: rx=%d tx=%d rejected=%d lost=%d", service_cls.name,
             time.monotonic() - started, c.get("rx", 0), c.get("tx", 0), c.get("rx_rejected", 0), c.get("lost", 0))
    return 0
