"""ZeroMQ PUB/SUB, the hot path of ZMQ mode.

Publishers bind an XPUB socket (a PUB that also tells us when a subscriber subscribes, so the outbox can replay
the last value of every market to a late joiner, the ZMQ guide's clone pattern). Subscribers connect a SUB
socket to every endpoint; libzmq reconnects by itself, and a socket monitor logs real connection state:
`ZMQ subscriber connected to <endpoint>` is logged when the TCP connection is up, not when `connect()` was
called, so the line is evidence and not intent.
"""

from __future__ import annotations

import errno
import logging
import os
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from arbees_core.transport.base import (
    MAX_BATCH,
    ZMQ_CONNECT_TIMEOUT_MS,
    ZMQ_HEARTBEAT_IVL_MS,
    ZMQ_HEARTBEAT_TIMEOUT_MS,
    ZMQ_LINGER_MS,
    ZMQ_RECONNECT_IVL_MAX_MS,
    ZMQ_RECONNECT_IVL_MS,
    Delivery,
    Publisher,
    Subscriber,
    TransportError,
    TransportSettings,
)

log = logging.getLogger("arbees.transport.zmq")

_MONITOR_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED


def _common_options(sock: zmq.Socket) -> None:
    sock.setsockopt(zmq.LINGER, ZMQ_LINGER_MS)
    sock.setsockopt(zmq.HEARTBEAT_IVL, ZMQ_HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ZMQ_HEARTBEAT_TIMEOUT_MS)
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)


def bind_endpoint(settings: TransportSettings, port: int, override: str = "") -> str:
    """`ZMQ_PUB_ENDPOINT` when given (e.g. `ipc:///tmp/kalshi.ipc`), else `tcp://<bind_host>:<port>`."""
    return override or f"tcp://{settings.bind_host}:{port}"


class ZmqPublisher(Publisher):
    """An XPUB socket bound to one endpoint."""

    def __init__(self, settings: TransportSettings, endpoint: str, ctx: zmq.Context | None = None) -> None:
        self._ctx = ctx or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        _common_options(self._sock)
        self._sock.setsockopt(zmq.SNDHWM, settings.sndhwm)
        self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as e:
            self._sock.close(0)
            hint = " (address already in use: is another instance running? `arbees status`)" if e.errno == errno.EADDRINUSE else ""
            raise TransportError(f"Cannot bind ZMQ publisher to {endpoint}: {e.strerror}{hint}") from None
        self.endpoint = endpoint
        self._closed = False
        self._yield = settings.send_yield and hasattr(os, "sched_yield")

    @property
    def port(self) -> int | None:
        last = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return int(last.rsplit(":", 1)[1]) if last.startswith("tcp://") else None

    def send(self, topic: str, payload: bytes) -> None:
        self._sock.send_multipart((topic.encode(), payload), copy=True)
        if self._yield:
            os.sched_yield()  # let the I/O thread this send woke send it now (TransportSettings.send_yield)

    def send_many(self, frames: list[tuple[str, bytes]]) -> None:
        send = self._sock.send_multipart
        for topic, payload in frames:
            send((topic.encode(), payload), copy=True)
        if self._yield and frames:
            os.sched_yield()

    def new_subscriptions(self) -> list[str]:
        prefixes: list[str] = []
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return prefixes
            if frame[:1] == b"\x01":
                prefixes.append(frame[1:].decode(errors="replace"))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close(ZMQ_LINGER_MS)


def first_in_line_prefixes(prefixes: list[str]) -> list[str]:
    """The topic classes of `prefixes` (`prices.kalshi.` -> `prices.`), for a subscriber that must be written first.

    An XPUB hands each message to its matching subscribers in the order its subscription trie matches them, and the
    trie is walked from the root: a subscriber whose prefix is shorter is matched, and so written to, before those
    deeper in the trie; subscribers sharing one prefix come in no fixed order (by pipe address). Every monitor
    price goes to game_shard, execution_service's book feed and zmq_listener, and with all three on
    `prices.kalshi.` game_shard was first, second or third by chance of connection: each place behind costs it one
    TCP write and one wake-up of another receiver (~10 us here, 3 x 4 s of bare pyzmq to three SUBs). Measured
    in the pipeline, same-run A/B, ZMQ mode, 2 000 prices/s: price hop p50 130-135 -> 112-118 us in 4 of 4 pairs
    with default scheduling; 83-127 (bimodal, by connection order) -> 76-92 us with ARBEES_RT_PRIORITY.
    Only the order changes: libzmq still filters on the publisher's side, and `ZmqSubscriber` drops any topic
    outside the families asked for (none in the contract today: `prices.` holds exactly the two venues' families).
    """
    if not all(prefixes):
        return [""]
    return sorted({p.split(".", 1)[0] + "." for p in prefixes})


def spin_window_ns(spin_us: int, name: str) -> int:
    """The busy-poll window in ns for a subscriber created on the calling thread: `spin_us`, or 0 when the thread
    runs under a real-time policy (ARBEES_RT_PRIORITY), where `sched_yield` yields only to real-time threads and a
    spinning thread would hold its core against everything else (the kernel's RT throttling aside)."""
    if spin_us <= 0:
        return 0
    if not hasattr(os, "sched_yield"):
        log.warning("%s: ZMQ_SPIN_US=%d ignored: this platform has no sched_yield", name, spin_us)
        return 0
    if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR):
        log.warning("%s: ZMQ_SPIN_US=%d ignored: this thread runs under real-time scheduling (ARBEES_RT_PRIORITY), "
                    "where a busy-polling thread would starve its core; it blocks instead", name, spin_us)
        return 0
    log.info("%s busy-polls for %d us after each delivery (ZMQ_SPIN_US)", name, spin_us)
    return spin_us * 1000


def poll_spinning(sock: zmq.Socket, deadline_ns: int) -> bool:
    """Poll `sock` until a frame is queued (True) or `time.monotonic_ns()` reaches `deadline_ns` (False), calling
    `sched_yield` between polls so that any other runnable thread on this core goes first."""
    events, ev, pollin, clock, yield_cpu = sock.getsockopt, zmq.EVENTS, zmq.POLLIN, time.monotonic_ns, os.sched_yield
    while not events(ev) & pollin:
        if clock() >= deadline_ns:
            return False
        yield_cpu()
    return True


class ZmqSubscriber(Subscriber):
    """A SUB socket connected to several publishers, with prefix filters and connection-state logging.

    first_in_line: subscribe by topic class (`first_in_line_prefixes`) so that each publisher writes to this
    subscriber before the others of the same family: the hot path's receivers (game_shard's prices,
    execution_service's signals) ahead of the mirror and the book feed.

    spin_us: after a delivery, keep polling the socket (yielding the CPU between polls) for this long before
    blocking again (`_spin`); `spin_cpu_ns` counts the CPU time that polling took, so that a CPU reading can tell
    it from work."""

    def __init__(
        self,
        settings: TransportSettings,
        endpoints: list[str],
        prefixes: list[str],
        ctx: zmq.Context | None = None,
        name: str = "ZMQ subscriber",
        first_in_line: bool = False,
        spin_us: int = 0,
    ) -> None:
        if not endpoints:
            raise TransportError("ZMQ subscriber needs at least one endpoint (check ZMQ_SUB_ENDPOINTS)")
        self._ctx = ctx or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._closed = False
        _common_options(self._sock)
        self._sock.setsockopt(zmq.RCVHWM, settings.rcvhwm)
        # A SUB sends only subscriptions, and libzmq drops those past SNDHWM: a shard following 1 600 markets lost a
        # third of them at the default 1 000 (their prices never came). Unbounded: one frame per market followed.
        self._sock.setsockopt(zmq.SNDHWM, 0)
        self._sock.setsockopt(zmq.RECONNECT_IVL, ZMQ_RECONNECT_IVL_MS)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, ZMQ_RECONNECT_IVL_MAX_MS)
        self._sock.setsockopt(zmq.CONNECT_TIMEOUT, ZMQ_CONNECT_TIMEOUT_MS)
        self._monitor = self._sock.get_monitor_socket(_MONITOR_EVENTS)
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self.name = name
        self._spin_ns = spin_window_ns(spin_us, name)
        self._last_rx_ns = 0
        self.spin_cpu_ns = 0
        self.endpoints = list(endpoints)
        self.connected: set[str] = set()
        self.retries: dict[str, int] = {}
        #: follow_topics: the exact topics followed, and the families they narrow (None: no narrowing)
        self._topics: set[str] = set()
        self._narrowed: tuple[str, ...] | None = None
        wanted = tuple(prefixes)
        if first_in_line:
            prefixes = first_in_line_prefixes(prefixes)
        #: a shortened subscription can let through topics outside the families asked for: dropped on receipt
        self._filter = wanted if tuple(prefixes) != wanted else None
        for prefix in prefixes:
            self._sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        for endpoint in endpoints:
            try:
                self._sock.connect(endpoint)
            except zmq.ZMQError as e:
                self.close()
                raise TransportError(f"Cannot connect {name} to {endpoint!r}: {e.strerror}") from None
            log.info("%s connecting to %s (topics %s)", name, endpoint, ", ".join(prefixes) or "all")

    def add_endpoint(self, endpoint: str) -> bool:
        """Connect to one more publisher (a game shard that joined); False when already connected to it."""
        if endpoint in self.endpoints or self._closed:
            return False
        try:
            self._sock.connect(endpoint)
        except zmq.ZMQError as e:
            log.warning("%s cannot connect to %r: %s", self.name, endpoint, e.strerror)
            return False
        self.endpoints.append(endpoint)
        log.info("%s connecting to %s (a new publisher)", self.name, endpoint)
        return True

    def follow_topics(self, families: tuple[str, ...], topics: set[str]) -> tuple[int, int]:
        """Receive of `families` (prefixes the socket was not subscribed to) exactly `topics`, replacing the
        previous set: one ZMQ subscription per topic, so each publisher filters on its side and this subscriber
        never reads nor decodes the rest (a game shard follows the markets of the games it holds). A topic that is
        a prefix of another lets that one through the socket; `_drain` drops it. Returns (subscribed, dropped).

        A per-topic subscription sits deeper in the publisher's trie than a family's, so the publisher writes to
        the subscribers of whole families first (`first_in_line_prefixes` no longer applies to these topics).
        The families' sequence numbers count per publisher, not per topic: gaps in what arrives are expected and
        say nothing of loss (`Inbox(partial=...)`)."""
        if self._closed:
            return 0, 0
        self._narrowed = families
        added, gone = topics - self._topics, self._topics - topics
        for topic in gone:
            self._sock.setsockopt(zmq.UNSUBSCRIBE, topic.encode())
        for topic in added:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._topics = set(topics)
        return len(added), len(gone)

    @property
    def spin_us(self) -> int:
        return self._spin_ns // 1000

    def receive(self, timeout_ms: int) -> list[Delivery]:
        if self._spin_ns and self._spin(timeout_ms):
            if self._monitor.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._drain_monitor()
            return self._received(self._drain())
        events = dict(self._poller.poll(timeout_ms))
        if self._monitor in events:
            self._drain_monitor()
        if self._sock not in events:
            return []
        return self._received(self._drain())

    def _received(self, out: list[Delivery]) -> list[Delivery]:
        if out and self._spin_ns:
            self._last_rx_ns = time.monotonic_ns()
        return out

    def _spin(self, timeout_ms: int) -> bool:
        """Poll the socket until a frame is queued (True) or the spin window since the last delivery, or
        `timeout_ms`, has passed (False: block as usual). The caller's blocking poll wakes up twice per price
        (libzmq's I/O thread reads the TCP socket, then signals this thread); polling skips the second wake-up,
        which on the 2-vCPU VMs here is half of a bare hop: bare pyzmq at 2 000 msg/s, 114 -> 57 us p50 with a
        polling receiver; in the pipeline, price hop p50 148-185 -> 112-128 us (same-run A/B, benchmarks/RESULTS.md).
        Each poll is followed by `sched_yield`, so any other runnable thread on this core goes first: without it
        the tails doubled (the monitors and the mirror waited for the spinner's time slice to end)."""
        start = time.monotonic_ns()
        deadline = min(self._last_rx_ns + self._spin_ns, start + timeout_ms * 1_000_000)
        if start >= deadline:
            return False
        cpu = time.thread_time_ns()
        try:
            return poll_spinning(self._sock, deadline)
        finally:
            self.spin_cpu_ns += time.thread_time_ns() - cpu

    def _drain(self) -> list[Delivery]:
        out: list[Delivery] = []
        recv = self._sock.recv_multipart
        now = time.time_ns
        for _ in range(MAX_BATCH):
            try:
                frames = recv(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            ts = now()
            if len(frames) != 2:
                out.append(Delivery("", b"", ts, error=f"frame_count:{len(frames)}"))
                continue
            try:
                topic = frames[0].decode()
            except UnicodeDecodeError:
                out.append(Delivery("", b"", ts, error="topic_not_utf8"))
                continue
            if self._filter is not None and not topic.startswith(self._filter):
                continue
            if self._narrowed is not None and topic not in self._topics and topic.startswith(self._narrowed):
                continue
            out.append(Delivery(topic, frames[1], ts))
        return out

    def _drain_monitor(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            endpoint = event.get("endpoint", b"")
            endpoint = endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)
            kind = event["event"]
            if kind == zmq.EVENT_CONNECTED:
                self.connected.add(endpoint)
                log.info("%s connected to %s", self.name, endpoint)
            elif kind == zmq.EVENT_DISCONNECTED:
                self.connected.discard(endpoint)
                log.warning("%s lost connection to %s; reconnecting", self.name, endpoint)
            elif kind == zmq.EVENT_CONNECT_RETRIED:
                self.retries[endpoint] = self.retries.get(endpoint, 0) + 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close(0)
        self._sock.close(ZMQ_LINGER_MS)
