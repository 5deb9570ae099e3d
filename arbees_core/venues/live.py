"""What both live venue adapters share: source selection, the reconnecting WebSocket loop, backoff, proxies.

A live source is a `VenueSource` (venues/source.py), like the simulator and the replay file, so the monitor
runs the same parser and books on all three. `LiveSource.stream()` owns the connection: connect (through a proxy
when configured), subscribe, read, answer the venue's needs between frames (resubscribe after a sequence gap,
follow the mapping's tickers, keep-alive), and on any disconnect wait a jittered exponential backoff and start
again. Authentication failures (HTTP 401/403 on the handshake, or the venue's own "auth required" error) are one
clear error line and the same backoff, never a crash loop.

Connection state is an attribute (`state`, `connected`, `connected_since_ns`) and a `stats()` dict for the
monitor's metrics, and every transition is one log line. `intact(now)` says whether the connection is open and its
keep-alive (venues/keepalive.py) arrived within its interval: what the monitor's feed liveness is built on, so a
quiet market's book stays tradeable while its connection demonstrably works.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Opcode

from arbees_core import settings as S
from arbees_core.config import ConfigError, Env, redact_value
from arbees_core.venues.keepalive import KeepAlive, WatchedConnection

# -- connection constants (one place) ------------------------------------------------------------------------------

#: How long a blocking receive waits before the loop does its housekeeping (resync, tickers, keep-alive), seconds.
RECV_POLL_S: Final = 0.25
#: How often the subscribed tickers are compared with the wanted ones, seconds.
TICKER_CHECK_S: Final = 1.0
#: WebSocket handshake timeout, and how long a protocol ping of ours may wait for its pong before the connection is
#: dropped (answers to the venue's pings are automatic; we ping once per keep-alive interval), seconds.
OPEN_TIMEOUT_S: Final = 10.0
WS_PING_TIMEOUT_S: Final = 20.0
#: The keep-alive interval of a venue that names none, seconds.
DEFAULT_KEEPALIVE_S: Final = 20.0
#: Largest frame accepted (a full book snapshot of many markets fits easily), bytes.
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
#: A connection that stayed up this long resets the backoff to its minimum, seconds.
STABLE_AFTER_S: Final = 10.0

DISCONNECTED: Final = "disconnected"
CONNECTING: Final = "connecting"
CONNECTED: Final = "connected"
AUTH_FAILED: Final = "auth_failed"
STOPPED: Final = "stopped"

_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

Tickers = Sequence[str] | Callable[[], Iterable[str]]


class VenueError(RuntimeError):
    """A venue API could not be used (unreachable, rejected the request, answered nonsense); the message says why."""


class AuthFailed(VenueError):
    """The venue rejected our credentials."""


# -- backoff and proxies -------------------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(min, min(max, min * 2**n)) seconds.
    min_s: VENUE_BACKOFF_MIN_S (0.5); max_s: VENUE_BACKOFF_MAX_S (30)."""

    min_s: float = 0.5
    max_s: float = 30.0
    attempt: int = 0

    @classmethod
    def from_env(cls, env: Env) -> "Backoff":
        lo = env.get(S.VENUE_BACKOFF_MIN_S)
        return cls(lo, max(lo, env.get(S.VENUE_BACKOFF_MAX_S)))

    def next_delay(self) -> float:
        cap = min(self.max_s, self.min_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return random.uniform(self.min_s, cap) if cap > self.min_s else cap

    def reset(self) -> None:
        self.attempt = 0


def proxy_for(url: str, explicit: str = "", environ: dict[str, str] | None = None) -> str | None:
    """The proxy to reach `url` through: `explicit` when given, else HTTPS_PROXY / ALL_PROXY (either case) from the
    environment; None for loopback hosts and hosts in NO_PROXY. http(s):// and socks5:// proxies are supported."""
    env = Env(environ)
    host = (urlsplit(url).hostname or "").lower()
    if host in _LOOPBACK:
        return None
    proxy = explicit or env.get(S.HTTPS_PROXY) or env.get(S.ALL_PROXY)
    if not proxy:
        return None
    no_proxy = [h.lower().lstrip(".") for h in env.get(S.NO_PROXY)]
    if "*" in no_proxy or any(h and (host == h or host.endswith("." + h)) for h in no_proxy):
        return None
    return proxy


def safe_url(url: str) -> str:
    """A URL fit for a log line (a password inside it is masked)."""
    return redact_value("URL", url)


def tickers_of(source: Tickers) -> list[str]:
    """The current wanted tickers, de-duplicated, in a stable order."""
    items = source() if callable(source) else source
    return list(dict.fromkeys(str(t) for t in items if t))


# -- the reconnecting loop -----------------------------------------------------------------------------------------


class LiveSource:
    """Base of the venues' live sources. Subclasses set `venue`/`label` and implement the hooks:
    `handshake_headers()`, `on_open(ws)` (subscribe), `on_idle(ws)` (between frames: resync, tickers,
    keep-alive), `inspect(raw)` (True = hand the frame to the monitor; may raise AuthFailed) and
    `is_keepalive(raw)` (a text keep-alive answer). keepalive_s: the venue's keep-alive interval, seconds;
    protocol_ping_s: how often we send a WebSocket Ping of our own (default: once per keep-alive interval).
    The feed's side: `resync` returns what lost updates and must be subscribed again (the feed's `take_resync`);
    `on_connect` runs before each new connection's first frame (the feed voids the previous connection's books)."""

    venue: str = ""
    label: str = ""

    def __init__(self, url: str, tickers: Tickers, backoff: Backoff | None = None, proxy: str | None = None,
                 log: logging.Logger | None = None, keepalive_s: float = DEFAULT_KEEPALIVE_S,
                 protocol_ping_s: float | None = None, resync: Callable[[], set[Any]] | None = None,
                 on_connect: Callable[[], None] | None = None) -> None:
        self.url = url
        self.resync = resync
        self.on_connect = on_connect
        self.tickers = tickers
        self.backoff = backoff or Backoff()
        self.proxy = proxy
        self.log = log or logging.getLogger(self.venue or "venue")
        self.state = DISCONNECTED
        self.connected_since_ns = 0
        self.last_message_ns = 0
        self.connects = 0
        self.reconnects = 0
        self.disconnects = 0
        self.auth_failures = 0
        self.messages = 0
        self.resubscribes = 0
        self.last_error = ""
        self.keepalive = KeepAlive(keepalive_s, RECV_POLL_S)
        self.protocol_ping_s = protocol_ping_s or keepalive_s
        self._auth_reported = False
        self.state_changed: asyncio.Event | None = None  # created per stream (needs a running loop)

    # -- hooks ---------------------------------------------------------------------------------------------------

    def handshake_headers(self) -> dict[str, str]:
        return {}

    async def on_open(self, ws: ClientConnection) -> None:
        """Called once per connection, before the first frame is read (subscribe here)."""

    async def on_idle(self, ws: ClientConnection) -> None:
        """Called after every frame and at least every RECV_POLL_S seconds while connected."""

    def inspect(self, raw: bytes) -> bool:
        """Whether `raw` goes to the monitor; raise AuthFailed for the venue's authentication errors."""
        return True

    def is_keepalive(self, raw: bytes) -> bool:
        """Whether `raw` is the venue's text keep-alive answer (protocol pings and pongs are seen without it)."""
        return False

    # -- state ---------------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    def intact(self, now_ns: int) -> bool:
        """Open, and its keep-alive (or any frame) arrived within the keep-alive interval."""
        return self.state == CONNECTED and self.keepalive.fresh(now_ns)

    @property
    def keepalive_misses(self) -> int:
        return self.keepalive.misses

    def gauges(self) -> dict[str, int]:
        """The connection counters the monitor exports (`venue_<name>`)."""
        return {"reconnects": self.reconnects, "auth_failures": self.auth_failures,
                "resubscribes": self.resubscribes, "keepalive_misses": self.keepalive.misses}

    def stats(self) -> dict[str, Any]:
        return {"state": self.state, "url": safe_url(self.url), "connects": self.connects,
                "reconnects": self.reconnects, "disconnects": self.disconnects, "auth_failures": self.auth_failures,
                "messages": self.messages, "last_error": self.last_error,
                "proxy": safe_url(self.proxy) if self.proxy else "", "keepalive_s": self.keepalive.interval_s,
                "keepalives": self.keepalive.received, "keepalive_misses": self.keepalive.misses,
                "intact": self.intact(time.time_ns())}

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.state_changed is not None:
            self.state_changed.set()

    # -- the loop ------------------------------------------------------------------------------------------------

    async def stream(self, stop: asyncio.Event | None = None) -> AsyncIterator[bytes]:
        """Raw frames for as long as `stop` is unset, across reconnects."""
        stop = stop or asyncio.Event()
        self.state_changed = asyncio.Event()
        try:
            while not stop.is_set():
                async for raw in self._one_connection(stop):
                    yield raw
                if stop.is_set():
                    break
                delay = self.backoff.next_delay()
                if self.state != AUTH_FAILED:
                    self.log.warning("%s disconnected (%s); reconnecting in %.1fs (attempt %d)", self.label,
                                     self.last_error or "closed", delay, self.backoff.attempt)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            self._set_state(STOPPED)

    async def stream_batches(self, stop: asyncio.Event | None = None) -> AsyncIterator[list[bytes]]:
        """`stream` as reads of one frame each (a WebSocket read is one frame)."""
        async for raw in self.stream(stop):
            yield [raw]

    async def _one_connection(self, stop: asyncio.Event) -> AsyncIterator[bytes]:
        self._set_state(CONNECTING)
        opened_at = 0.0
        headers = self.handshake_headers()
        self.log.debug("%s handshake: GET %s%s", self.label, safe_url(self.url),
                       f" with {len(headers)} signed headers (values not logged)" if headers else "")
        try:
            async with connect(self.url, additional_headers=headers, proxy=self.proxy,
                               create_connection=functools.partial(WatchedConnection, on_control=self._control),
                               open_timeout=OPEN_TIMEOUT_S, ping_interval=self.protocol_ping_s,
                               ping_timeout=WS_PING_TIMEOUT_S, max_size=MAX_FRAME_BYTES, close_timeout=2) as ws:
                opened_at = time.monotonic()
                self._opened()
                self._feed_reset()
                await self.on_open(ws)
                while not stop.is_set():
                    try:
                        async with asyncio.timeout(RECV_POLL_S):
                            raw = await ws.recv()
                    except TimeoutError:
                        await self._idle(ws)
                        continue
                    data = raw.encode() if isinstance(raw, str) else raw
                    self.last_message_ns = time.time_ns()
                    self.keepalive.alive(self.is_keepalive(data), self.last_message_ns)
                    self.messages += 1
                    try:
                        wanted = self.inspect(data)
                    except AuthFailed as e:
                        await ws.close(1000, "authentication failed")
                        self._auth_failed(str(e))
                        return
                    if wanted:
                        if self._auth_reported:
                            self.log.info("%s authentication accepted again", self.label)
                            self._auth_reported = False
                        yield data
                    await self._idle(ws)
        except InvalidURI as e:
            raise ConfigError(f"{self.label} URL {safe_url(self.url)!r} is not a WebSocket URL: {e}") from None
        except (ConnectionClosed, OSError, TimeoutError, InvalidHandshake, EOFError) as e:
            self._lost(e)
        finally:
            if self.state == CONNECTED:
                self.disconnects += 1
                self._set_state(DISCONNECTED)
            elif self.state == CONNECTING:
                self._set_state(DISCONNECTED)
            if opened_at and time.monotonic() - opened_at >= STABLE_AFTER_S:
                self.backoff.reset()

    def _lost(self, e: Exception) -> None:
        """Why the connection ended or never opened, as `last_error`; HTTP 401/403 on the handshake is an
        authentication failure."""
        if isinstance(e, InvalidStatus):
            status = e.response.status_code
            if status in (401, 403):
                self._auth_failed(f"HTTP {status} on the WebSocket handshake")
            else:
                self.last_error = f"handshake rejected: HTTP {status}"
        elif isinstance(e, ConnectionClosed):
            self.last_error = f"connection closed: code {e.rcvd.code if e.rcvd else 1006}"
        else:
            self.last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__

    async def _idle(self, ws: ClientConnection) -> None:
        """Between frames: the venue's own housekeeping, then whether its keep-alive is overdue (one line each way)."""
        await self.on_idle(ws)
        change = self.keepalive.check(time.time_ns())
        if change:
            self.log.warning("%s keep-alive overdue: nothing from the venue for over %.1fs; the feed is not intact "
                             "and its prices age out", self.label, self.keepalive.window_ns / 1e9)
        elif change is False:
            self.log.info("%s keep-alive back; the feed is intact again", self.label)

    def _feed_reset(self) -> None:
        """A new connection: the feed forgets the previous one, and what it asked to resubscribe then is void
        (everything is subscribed afresh)."""
        if self.on_connect is not None:
            self.on_connect()
        self.take_resync()

    def take_resync(self) -> set[Any]:
        """What the feed wants subscribed again since the last call (empty without a feed)."""
        return self.resync() if self.resync is not None else set()

    def _control(self, opcode: Opcode) -> None:
        """A Ping or Pong frame from the venue (Kalshi's heartbeat, or the answer to our protocol ping)."""
        self.keepalive.alive(True)

    def _opened(self) -> None:
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        self.connected_since_ns = time.time_ns()
        self.keepalive.alive(False, self.connected_since_ns)
        self.keepalive.overdue = False
        self._set_state(CONNECTED)
        self.last_error = ""
        self.log.info("%s connected to %s%s (connection %d, %d reconnects)", self.label, safe_url(self.url),
                      f" via proxy {safe_url(self.proxy)}" if self.proxy else "", self.connects, self.reconnects)

    def _auth_failed(self, why: str) -> None:
        """One clear error line per run of failures; the loop then backs off as for any disconnect."""
        self.auth_failures += 1
        self.last_error = f"authentication failed: {why}"
        if self.state == CONNECTED:
            self.disconnects += 1
        self._set_state(AUTH_FAILED)
        if not self._auth_reported:
            self.log.error("%s authentication failed (%s): check the API key id and private key for this "
                           "environment; retrying with backoff", self.label, why)
            self._auth_reported = True
