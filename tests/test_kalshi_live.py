"""The Kalshi adapter against local servers speaking Kalshi's documented protocol (Trade API v2).

The WebSocket server verifies the RSA-PSS signature of the handshake with the key's public half, answers
`subscribe` with `subscribed` + `orderbook_snapshot` + `orderbook_delta`s (fixed-point fields, `seq` per `sid`),
answers the `market_lifecycle_v2` subscription with `subscribed` (and, when a test scripts it, lifecycle events),
and each test scripts one of the situations the issue names: a sequence gap, a disconnect mid-stream, a malformed
frame, an auth failure. The REST server pages `/trade-api/v2/markets` with a cursor and answers one 429.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from arbees_core.config import ConfigError, Env
from arbees_core.polling import eventually_async
from arbees_core.venues.book import BookChange
from arbees_core.venues.kalshi.auth import KalshiSigner, signed_path, verify
from arbees_core.venues.kalshi.feed import KalshiFeed
from arbees_core.venues.kalshi.rest import KalshiRestConfig, discover_markets, retry_after_s
from arbees_core.venues.kalshi.ws import KalshiLiveConfig, KalshiLiveSource
from arbees_core.venues import adapter
from arbees_core.venues.live import AUTH_FAILED, CONNECTED, Backoff
from tests.venue_support import drive

TICKER = "KXNBAGAME-26NOV24MIABOS-BOS"
WS_PATH = "/trade-api/ws/v2"


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The account's key and another one (a wrong key)."""
    return (rsa.generate_private_key(public_exponent=65537, key_size=2048),
            rsa.generate_private_key(public_exponent=65537, key_size=2048))


def snapshot(sid: int, seq: int, ticker: str = TICKER, yes: str = "0.4500", no: str = "0.5300") -> dict:
    return {"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": {
        "market_ticker": ticker, "market_id": "9b0f", "yes_dollars_fp": [["0.3000", "250.00"], [yes, "100.00"]],
        "no_dollars_fp": [["0.3000", "80.00"], [no, "50.00"]]}}


def delta(sid: int, seq: int, price: str, change: str, side: str = "yes", ticker: str = TICKER) -> dict:
    return {"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": {
        "market_ticker": ticker, "market_id": "9b0f", "price_dollars": price, "delta_fp": change, "side": side,
        "ts": "2026-11-24T23:10:00.125Z"}}


Script = Callable[["FakeKalshi", ServerConnection, int, int, list[str]], Awaitable[None]]
LifecycleScript = Callable[[ServerConnection, int], Awaitable[None]]


class FakeKalshi:
    """Kalshi's WebSocket as documented: signed handshake, JSON commands, `subscribed` with a sid per subscribe."""

    def __init__(self, public_key: rsa.RSAPublicKey, script: Script) -> None:
        self.public_key = public_key
        self.script = script
        self.connections = 0
        self.rejected = 0
        self.signed_paths: list[str] = []
        self.commands: list[tuple[int, dict]] = []  # order-book commands
        self.lifecycle: list[tuple[int, dict]] = []  # market_lifecycle_v2 subscriptions
        self.lifecycle_script: LifecycleScript | None = None
        self.auth_error = False  # answer every subscribe with error code 9

    def process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.signed_paths.append(request.path)
        if not verify(self.public_key, request.headers, "GET", request.path):
            self.rejected += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid signature\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            await self._serve(ws, self.connections)
        except ConnectionClosed:
            pass  # the client went away: what a real server shrugs at

    async def _serve(self, ws: ServerConnection, conn: int) -> None:
        sid = 0
        async for text in ws:
            cmd = json.loads(text)
            if cmd["cmd"] == "subscribe" and cmd["params"]["channels"] == ["market_lifecycle_v2"] \
                    and not self.auth_error:
                self.lifecycle.append((conn, cmd))  # every market's lifecycle: no tickers, a sid of its own
                await ws.send(json.dumps({"id": cmd["id"], "type": "subscribed",
                                          "msg": {"channel": "market_lifecycle_v2", "sid": 100 + conn}}))
                if self.lifecycle_script is not None:
                    await self.lifecycle_script(ws, 100 + conn)
                continue
            self.commands.append((conn, cmd))
            if cmd["cmd"] == "subscribe" and self.auth_error:
                await ws.send(json.dumps({"id": cmd["id"], "type": "error",
                                          "msg": {"code": 9, "msg": "Authentication required"}}))
            elif cmd["cmd"] == "subscribe":
                sid += 1
                await ws.send(json.dumps({"id": cmd["id"], "type": "subscribed",
                                          "msg": {"channel": "orderbook_delta", "sid": sid}}))
                await self.script(self, ws, conn, sid, cmd["params"]["market_tickers"])
            elif cmd["cmd"] == "unsubscribe":
                for s in cmd["params"]["sids"]:
                    await ws.send(json.dumps({"id": cmd["id"], "type": "unsubscribed", "sid": s}))

    def subscribes(self) -> list[tuple[int, dict]]:
        return [(c, cmd) for c, cmd in self.commands if cmd["cmd"] == "subscribe"]



async def run_client(server: FakeKalshi, signer: KalshiSigner, until: Callable[[KalshiLiveSource, KalshiFeed], object],
                     tickers: Any = (TICKER,), timeout: float = 10.0) -> tuple[KalshiLiveSource, KalshiFeed, list[BookChange]]:
    """Serve `server`, run the monitor-side loop (source -> KalshiFeed) until `until(source, feed)` holds."""
    async with serve(server.handler, "127.0.0.1", 0, process_request=server.process_request) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        cfg = KalshiLiveConfig(f"ws://127.0.0.1:{port}{WS_PATH}", signer, Backoff(0.01, 0.05))
        feed = KalshiFeed()
        source = adapter("kalshi").make_live_source(cfg, list(tickers) if not callable(tickers) else tickers, feed)
        assert isinstance(source, KalshiLiveSource)
        return source, feed, await drive(source, feed, until, timeout)


def test_signature_is_rsa_pss_over_timestamp_method_and_path_without_query(keys: Any) -> None:
    signer = KalshiSigner("key-1", keys[0])
    headers = signer.headers("GET", "/trade-api/v2/markets?series_ticker=KXNBAGAME&cursor=abc", 1_764_000_000_123)
    assert headers["KALSHI-ACCESS-KEY"] == "key-1" and headers["KALSHI-ACCESS-TIMESTAMP"] == "1764000000123"
    assert verify(keys[0].public_key(), headers, "GET", "/trade-api/v2/markets")
    assert not verify(keys[1].public_key(), headers, "GET", "/trade-api/v2/markets")
    assert not verify(keys[0].public_key(), headers, "POST", "/trade-api/v2/markets")
    assert signed_path("https://external-api.kalshi.com/trade-api/v2/markets?x=1") == "/trade-api/v2/markets"
    assert "PRIVATE" not in repr(signer) and "***" in repr(signer)


def test_signer_reads_the_key_from_a_pem_file_or_env_and_never_shows_it(keys: Any, tmp_path: Any) -> None:
    pem = keys[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    (tmp_path / "k.pem").write_text(pem)
    from_file = KalshiSigner.from_env(Env({"KALSHI_API_KEY_ID": "id", "KALSHI_PRIVATE_KEY_PATH": str(tmp_path / "k.pem")}))
    from_env = KalshiSigner.from_env(Env({"KALSHI_API_KEY_ID": "id", "KALSHI_PRIVATE_KEY": pem.replace("\n", "\\n")}))
    h = from_file.headers("GET", WS_PATH)
    assert verify(keys[0].public_key(), h, "GET", WS_PATH) and verify(keys[0].public_key(), from_env.headers("GET", WS_PATH), "GET", WS_PATH)
    with pytest.raises(ConfigError, match="KALSHI_API_KEY_ID"):
        KalshiSigner.from_env(Env({}))
    with pytest.raises(ConfigError) as bad:
        KalshiSigner.from_env(Env({"KALSHI_API_KEY_ID": "id", "KALSHI_PRIVATE_KEY": "-----BEGIN NOPE-----secret"}))
    assert "secret" not in str(bad.value)


def test_hosts_follow_kalshi_env_and_overrides(keys: Any, tmp_path: Any) -> None:
    pem = keys[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    base = {"KALSHI_API_KEY_ID": "id", "KALSHI_PRIVATE_KEY": pem}
    assert KalshiLiveConfig.from_env(Env(base)).ws_url == "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
    assert KalshiLiveConfig.from_env(Env(base | {"KALSHI_ENV": "demo"})).ws_url == \
        "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"
    assert KalshiRestConfig.from_env(Env(base | {"KALSHI_ENV": "demo"})).base_url == \
        "https://external-api.demo.kalshi.co/trade-api/v2"
    assert KalshiRestConfig.from_env(Env({})).base_url == "https://external-api.kalshi.com/trade-api/v2"
    assert KalshiLiveConfig.from_env(Env(base | {"KALSHI_WS_URL": "ws://x/y"})).ws_url == "ws://x/y"
    with pytest.raises(ConfigError, match="KALSHI_ENV"):
        KalshiLiveConfig.from_env(Env(base | {"KALSHI_ENV": "staging"}))


def test_signed_handshake_subscribe_snapshot_then_deltas(keys: Any) -> None:
    async def script(srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int, tickers: list[str]) -> None:
        await ws.send(json.dumps(snapshot(sid, 1)))
        await ws.send(json.dumps(delta(sid, 2, "0.4600", "30.00")))  # a new best YES bid at 46c
        await ws.send(json.dumps(delta(sid, 3, "0.5300", "-50.00", side="no")))  # the best NO bid leaves

    server = FakeKalshi(keys[0].public_key(), script)
    source, feed, changes = asyncio.run(run_client(server, KalshiSigner("id", keys[0]),
                                                   lambda s, f: f.messages >= 4))
    assert server.rejected == 0 and server.signed_paths == [WS_PATH]
    assert server.subscribes()[0][1]["params"] == {"channels": ["orderbook_delta"], "market_tickers": [TICKER]}
    first, second, third = (c.top for c in changes)
    assert (first.yes_bid, first.yes_ask, first.no_bid, first.no_ask) == (45.0, 47.0, 53.0, 55.0)
    assert (second.yes_bid, second.yes_bid_size, second.no_ask) == (46.0, 30.0, 54.0)
    assert (third.yes_ask, third.yes_ask_size, third.no_bid) == (70.0, 80.0, 30.0)
    assert feed.gaps == 0 and feed.errors == {} and source.connects == 1


def lifecycle(sid: int, ticker: str, event_type: str, **fields: Any) -> dict:
    return {"type": "market_lifecycle_v2", "sid": sid, "msg": {"event_type": event_type, "market_ticker": ticker,
                                                               **fields}}


def test_lifecycle_channel_is_subscribed_and_a_determined_market_resolves(keys: Any) -> None:
    async def script(srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int, tickers: list[str]) -> None:
        await ws.send(json.dumps(snapshot(sid, 1)))

    async def events(ws: ServerConnection, sid: int) -> None:
        await ws.send(json.dumps(lifecycle(sid, "KXFED-26DEC-T4.00", "determined", result="no",
                                           determination_ts=1_795_000_000)))  # a market not held here
        await ws.send(json.dumps(lifecycle(sid, TICKER, "close_date_updated", close_ts=1_795_000_000)))
        await ws.send(json.dumps(lifecycle(sid, TICKER, "determined", result="yes", settlement_value="1.00",
                                           determination_ts=1_795_000_123)))

    server = FakeKalshi(keys[0].public_key(), script)
    server.lifecycle_script = events
    source, feed, _ = asyncio.run(run_client(server, KalshiSigner("id", keys[0]), lambda s, f: f.resolutions))
    assert [cmd["params"] for _, cmd in server.lifecycle] == [{"channels": ["market_lifecycle_v2"]}]
    [res] = feed.take_resolutions()
    assert (res.ticker, res.result, res.ts_event_ns) == (TICKER, "yes", 1_795_000_123 * 10**9)
    assert TICKER not in feed.books and feed.errors == {} and feed.take_resolutions() == []


def test_wrong_key_is_one_clear_auth_error_and_backoff_not_a_crash(keys: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def script(*_: Any) -> None:
        raise AssertionError("an unsigned client must never subscribe")

    server = FakeKalshi(keys[0].public_key(), script)
    caplog.set_level(logging.INFO, logger="kalshi")
    source, feed, _ = asyncio.run(run_client(server, KalshiSigner("id", keys[1]),
                                             lambda s, f: server.rejected >= 3))
    assert source.state in (AUTH_FAILED, "stopped") and source.auth_failures >= 3 and source.connects == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "authentication failed" in errors[0].getMessage()
    assert "HTTP 401" in errors[0].getMessage()


def test_error_code_9_after_connecting_is_an_auth_failure(keys: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def script(*_: Any) -> None:
        raise AssertionError("a rejected subscribe sends no data")

    server = FakeKalshi(keys[0].public_key(), script)
    server.auth_error = True
    caplog.set_level(logging.INFO, logger="kalshi")
    source, _, _ = asyncio.run(run_client(server, KalshiSigner("id", keys[0]), lambda s, f: s.auth_failures >= 2))
    assert source.auth_failures >= 2 and server.connections >= 2
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_sequence_gap_resubscribes_and_a_fresh_snapshot_restores_the_book(keys: Any) -> None:
    async def script(srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int, tickers: list[str]) -> None:
        if sid == 1:
            await ws.send(json.dumps(snapshot(sid, 1)))
            await ws.send(json.dumps(delta(sid, 2, "0.4600", "10.00")))
            await ws.send(json.dumps(delta(sid, 4, "0.4700", "10.00")))  # seq 3 was lost
        else:
            await ws.send(json.dumps(snapshot(sid, 1, yes="0.4900", no="0.4900")))

    server = FakeKalshi(keys[0].public_key(), script)
    source, feed, changes = asyncio.run(run_client(server, KalshiSigner("id", keys[0]),
                                                   lambda s, f: f.books.get(TICKER) and f.books[TICKER].top().yes_bid == 49.0))
    assert feed.gaps == 1 and source.resubscribes == 1
    kinds = [cmd["cmd"] for _, cmd in server.commands]
    assert kinds == ["subscribe", "unsubscribe", "subscribe"]
    assert server.commands[1][1]["params"] == {"sids": [1]}
    assert all(c.top.yes_bid != 47.0 for c in changes)  # the delta after the gap was never applied
    assert changes[-1].top.yes_bid == 49.0 and changes[-1].top.yes_ask == 51.0 and feed.books[TICKER].ready


def test_disconnect_mid_stream_reconnects_resubscribes_without_a_false_gap(keys: Any) -> None:
    async def script(srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int, tickers: list[str]) -> None:
        await ws.send(json.dumps(snapshot(sid, 1, yes="0.4500" if conn == 1 else "0.4000")))
        await ws.send(json.dumps(delta(sid, 2, "0.4400", "5.00")))
        if conn == 1:
            await ws.close(1011, "server restarting")

    server = FakeKalshi(keys[0].public_key(), script)
    source, feed, changes = asyncio.run(run_client(server, KalshiSigner("id", keys[0]),
                                                   lambda s, f: len(server.subscribes()) >= 2 and f.messages >= 6))
    assert server.connections == 2 and source.reconnects == 1 and source.disconnects >= 1
    assert [conn for conn, _ in server.subscribes()] == [1, 2]
    assert feed.gaps == 0  # sids and seqs restart with the connection
    assert changes[-1].top.yes_bid == 44.0 and source.state in (CONNECTED, "stopped")


def test_malformed_frame_is_counted_and_skipped(keys: Any) -> None:
    async def script(srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int, tickers: list[str]) -> None:
        await ws.send(json.dumps(snapshot(sid, 1)))
        await ws.send('{"type": "orderbook_delta", "sid": 1, "seq": ')
        await ws.send(json.dumps(delta(sid, 2, "0.4600", "10.00")))

    server = FakeKalshi(keys[0].public_key(), script)
    source, feed, changes = asyncio.run(run_client(server, KalshiSigner("id", keys[0]), lambda s, f: f.messages >= 4))
    assert feed.errors == {"malformed": 1} and changes[-1].top.yes_bid == 46.0 and source.connects == 1


def test_subscriptions_follow_the_mapping(keys: Any) -> None:
    other = "KXNBAGAME-26NOV24MIABOS-MIA"
    wanted = [TICKER]

    async def script(srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int, tickers: list[str]) -> None:
        for t in tickers:
            await ws.send(json.dumps(snapshot(sid, 1, ticker=t)))

    def until(source: KalshiLiveSource, feed: KalshiFeed) -> bool:  # one market per subscription: seq 1 each
        if TICKER in feed.books and other not in wanted:
            wanted.append(other)
        return other in feed.books

    server = FakeKalshi(keys[0].public_key(), script)
    asyncio.run(run_client(server, KalshiSigner("id", keys[0]), until, tickers=lambda: wanted))
    assert [cmd["params"]["market_tickers"] for _, cmd in server.subscribes()] == [[TICKER], [other]]


def test_forget_connection_voids_books_until_their_snapshot() -> None:
    feed = KalshiFeed()
    feed.handle(json.dumps(snapshot(1, 7)), 1)
    feed.forget_connection()
    assert not feed.books[TICKER].ready
    assert feed.handle(json.dumps(delta(1, 1, "0.4600", "1.00")), 2) == [] and feed.gaps == 0


# -- REST discovery ------------------------------------------------------------------------------------------------


def _market(ticker: str) -> dict:
    return {"ticker": ticker, "event_ticker": ticker.rsplit("-", 1)[0], "title": "Miami at Boston Winner?",
            "yes_sub_title": "Boston", "status": "active", "close_time": "2026-11-25T04:00:00Z"}


class FakeKalshiRest(BaseHTTPRequestHandler):
    pages: dict[str, list[tuple[list[dict], str]]] = {}
    seen: list[tuple[float, str, dict, bool]] = []
    public_key: Any = None
    throttle_once = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        signed = verify(self.public_key, self.headers, "GET", url.path)
        type(self).seen.append((time.monotonic(), url.path, q, signed))
        if type(self).throttle_once:
            type(self).throttle_once = False
            self._reply(429, {"error": "too many requests"}, {"Retry-After": "1"})
            return
        pages = self.pages.get(q.get("series_ticker", ""), [([], "")])
        index = int(q["cursor"].removeprefix("c")) if q.get("cursor") else 0
        markets, cursor = pages[index]
        self._reply(200, {"markets": markets, "cursor": cursor})

    def _reply(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_rest_discovery_pages_with_the_cursor_signs_and_honours_retry_after(keys: Any) -> None:
    nba = ["KXNBAGAME-26NOV24MIABOS-MIA", "KXNBAGAME-26NOV24MIABOS-BOS"]
    nhl = ["KXNHLGAME-26NOV24VGKLA-VGK", "KXNHLGAME-26NOV24VGKLA-LA"]
    FakeKalshiRest.pages = {"KXNBAGAME": [([_market(nba[0])], "c1"), ([_market(nba[1])], "")],
                            "KXNHLGAME": [([_market(t) for t in nhl], "")]}
    FakeKalshiRest.seen, FakeKalshiRest.public_key, FakeKalshiRest.throttle_once = [], keys[0].public_key(), True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeKalshiRest)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = KalshiRestConfig(f"http://127.0.0.1:{httpd.server_address[1]}/trade-api/v2",
                               KalshiSigner("id", keys[0]), ("KXNBAGAME", "KXNHLGAME"), min_interval_s=0.0)
        listings = discover_markets(cfg)
    finally:
        httpd.shutdown()
        httpd.server_close()
    seen = FakeKalshiRest.seen
    assert [x.ticker for x in listings] == nba + nhl
    assert all(signed for *_, signed in seen) and all(path == "/trade-api/v2/markets" for _, path, _, _ in seen)
    assert seen[1][0] - seen[0][0] >= 1.0  # the 429's Retry-After was waited out before the retry
    assert [q.get("cursor") for _, _, q, _ in seen] == [None, None, "c1", None]
    assert all(q["status"] == "open" for _, _, q, _ in seen)
    first = listings[1]
    assert (first.venue, first.event_id, first.outcome, first.league, first.start_date) == \
        ("kalshi", "KXNBAGAME-26NOV24MIABOS", "BOS", "NBA", "2026-11-24")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("2") == 2.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 25 Nov 2026 12:00:10 GMT", now=1795608000.0) == pytest.approx(10.0)


def test_live_monitor_subscribes_the_mapping_and_its_feed_liveness_stops_when_disconnected(keys: Any) -> None:
    """KALSHI_SOURCE=live: the monitor subscribes exactly the mapping's Kalshi contracts, publishes their prices,
    and `feed_live_ns` (what game_shard's staleness uses) does not advance while the venue is away."""
    from arbees_core.services.kalshi_monitor import KalshiMonitor
    from arbees_core.transport import TransportSettings
    from arbees_core.venues.listing import GameMapping, OutcomePair

    async def script(srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int, tickers: list[str]) -> None:
        for seq, t in enumerate(tickers, 1):
            await ws.send(json.dumps(snapshot(sid, seq, ticker=t)))
        await ws.close(1001, "maintenance")

    pem = keys[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    server = FakeKalshi(keys[0].public_key(), script)
    published: list[tuple[str, Any]] = []

    class Outbox:
        def publish_many(self, items: list) -> None:
            published.extend(items)

    async def main() -> tuple[int, int, Any]:
        async with serve(server.handler, "127.0.0.1", 0, process_request=server.process_request) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            env = Env({"KALSHI_SOURCE": "live", "DATABASE_URL": "postgresql://unused/none", "KALSHI_API_KEY_ID": "id",
                       "KALSHI_PRIVATE_KEY": pem, "KALSHI_WS_URL": f"ws://127.0.0.1:{port}{WS_PATH}",
                       "VENUE_BACKOFF_MIN_S": "5", "VENUE_BACKOFF_MAX_S": "5"})
            monitor = KalshiMonitor(TransportSettings.from_env(Env({})), KalshiMonitor.config_from_env(env))
            monitor.outbox = Outbox()  # type: ignore[assignment]
            game = GameMapping("NBA-2026-11-24-MIA-BOS", "NBA", "2026-11-24", "MIA", "BOS",
                               (OutcomePair("BOS", TICKER, "1"), OutcomePair("MIA", "KXNBAGAME-26NOV24MIABOS-MIA", "2")))
            monitor.mapping._install([game])  # noqa: SLF001 - what a refresh from PostgreSQL does
            monitor.source = monitor.make_source()
            done = asyncio.Event()
            reader = asyncio.create_task(monitor._read(monitor.source, done))  # noqa: SLF001
            await eventually_async(lambda: len(published) == 2 and not monitor.source.connected, 10,
                                   "prices, then a drop")
            live_then = monitor.feed_live_ns()
            await asyncio.sleep(0.3)  # the venue stays away (5 s backoff): no frame may refresh liveness
            live_later = monitor.feed_live_ns()
            done.set()
            await asyncio.wait_for(reader, 5)
            return live_then, live_later, monitor

    live_then, live_later, monitor = asyncio.run(main())
    assert server.subscribes()[0][1]["params"]["market_tickers"] == [TICKER, "KXNBAGAME-26NOV24MIABOS-MIA"]
    assert {u.game_id for _, u in published} == {"NBA-2026-11-24-MIA-BOS"}
    assert live_then > 0 and live_later == live_then
    assert monitor.extra_snapshot()["connection"]["disconnects"] == 1
