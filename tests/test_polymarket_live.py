"""The Polymarket adapter against local servers speaking the CLOB market channel, Gamma and the geoblock endpoint.

The WebSocket server expects `{"assets_ids": [...], "type": "market", ...}` (with the custom features, which bring
`market_resolved`), answers with `book` snapshots (prices and sizes as strings, several events in one array) and
`price_change` events carrying several assets with absolute sizes, answers the client's text `PING` with `PONG`,
and can drop the connection mid-stream. Gamma serves `/sports`
and `/events` with `outcomes` / `clobTokenIds` encoded as JSON strings, as the real API does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from arbees_core.polling import eventually_async
from arbees_core.venues.book import BookChange
from arbees_core.venues import adapter
from arbees_core.venues.live import Backoff, proxy_for
from arbees_core.venues.polymarket.auth import check_geoblock
from arbees_core.venues.polymarket.parsing import json_list
from arbees_core.venues.polymarket.rest import GammaConfig, discover_markets
from arbees_core.venues.polymarket.feed import PolymarketFeed
from arbees_core.venues.polymarket.ws import PolymarketLiveConfig, PolymarketLiveSource
from tests.venue_support import drive

LAL = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
BOS = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
CONDITION = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"
#: The subscription the adapter sends: the mapped tokens, with the custom features that bring `market_resolved`.
SUBSCRIPTION = {"assets_ids": [LAL, BOS], "type": "market", "initial_dump": True, "custom_feature_enabled": True}


def book(asset: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> dict:
    return {"event_type": "book", "asset_id": asset, "market": CONDITION, "timestamp": "1764000000123",
            "hash": "0xabc", "bids": [{"price": p, "size": q} for p, q in bids],
            "asks": [{"price": p, "size": q} for p, q in asks]}


def price_change(*changes: tuple[str, str, str, str]) -> dict:
    return {"event_type": "price_change", "market": CONDITION, "timestamp": "1764000000456",
            "price_changes": [{"asset_id": a, "price": p, "size": q, "side": side, "hash": "0xdef",
                               "best_bid": "0.45", "best_ask": "0.47"} for a, p, q, side in changes]}


Script = Callable[["FakeClob", ServerConnection, int, dict], Awaitable[None]]


class FakeClob:
    """The market channel: subscription by token ids, text PING -> PONG, a script per subscription."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.pings = 0
        self.answer_pings = True  # False: PINGs are read and never answered
        self.subscriptions: list[tuple[int, dict]] = []

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        conn = self.connections
        try:
            async for text in ws:
                if text == "PING":
                    self.pings += 1
                    if self.answer_pings:
                        await ws.send("PONG")
                    continue
                msg = json.loads(text)
                self.subscriptions.append((conn, msg))
                await self.script(self, ws, conn, msg)
        except ConnectionClosed:
            pass



async def run_client(server: FakeClob, until: Callable[[PolymarketLiveSource, PolymarketFeed], object],
                     tickers: tuple[str, ...] = (LAL, BOS), ping_s: float = 10.0, snapshot_timeout_s: float = 5.0
                     ) -> tuple[PolymarketLiveSource, PolymarketFeed, list[BookChange]]:
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        cfg = PolymarketLiveConfig(f"ws://127.0.0.1:{port}/ws/market", "", ping_s, Backoff(0.01, 0.05), "",
                                   snapshot_timeout_s)
        feed = PolymarketFeed()
        source = adapter("polymarket").make_live_source(cfg, list(tickers), feed)
        assert isinstance(source, PolymarketLiveSource)
        return source, feed, await drive(source, feed, until, 10.0)


def test_book_then_multi_asset_price_change_with_absolute_sizes() -> None:
    async def script(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
        await ws.send(json.dumps([book(LAL, [(".44", "100"), (".45", "250")], [(".47", "80"), (".48", "500")]),
                                  book(BOS, [(".52", "90")], [(".55", "40"), (".56", "70")])]))
        await ws.send(json.dumps(price_change((LAL, ".45", "0", "BUY"),      # the best LAL bid leaves
                                              (BOS, ".55", "15", "SELL"))))  # BOS ask size set to 15, not -25

    server = FakeClob(script)
    source, feed, changes = asyncio.run(run_client(server, lambda s, f: f.messages >= 2))
    assert server.subscriptions[0][1] == SUBSCRIPTION
    lal, bos = feed.books[LAL].top(), feed.books[BOS].top()
    assert (lal.yes_bid, lal.yes_bid_size, lal.yes_ask, lal.no_ask, lal.no_bid) == (44.0, 100.0, 47.0, 56.0, 53.0)
    assert (bos.yes_ask, bos.yes_ask_size, bos.no_bid) == (55.0, 15.0, 45.0)
    assert len(changes) == 4 and feed.errors == {} and source.connects == 1


def test_text_ping_keepalive_is_sent_and_pong_is_not_a_price_message() -> None:
    async def script(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
        await ws.send(json.dumps([book(LAL, [(".44", "100")], [(".47", "80")])]))

    server = FakeClob(script)
    source, feed, _ = asyncio.run(run_client(server, lambda s, f: server.pings >= 2 and s.pongs >= 2, ping_s=0.1))
    assert source.pings >= 2 and feed.messages == 1  # PONGs never reach the feed


def test_disconnect_reconnects_and_resubscribes() -> None:
    async def script(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
        await ws.send(json.dumps([book(LAL, [(".44", "100")], [(".47", "80")])]))
        if conn == 1:
            await ws.close(1001, "going away")
        else:
            await ws.send(json.dumps(price_change((LAL, ".46", "30", "BUY"))))

    server = FakeClob(script)
    source, feed, changes = asyncio.run(run_client(server, lambda s, f: f.books.get(LAL) and
                                                   f.books[LAL].top().yes_bid == 46.0))
    assert server.connections == 2 and source.reconnects == 1
    assert [conn for conn, _ in server.subscriptions] == [1, 2]
    assert server.subscriptions[1][1] == SUBSCRIPTION
    assert changes[-1].top.yes_bid == 46.0


def test_market_resolved_resolves_both_tokens_of_the_market() -> None:
    async def script(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
        await ws.send(json.dumps([book(LAL, [(".44", "100")], [(".47", "80")]), book(BOS, [(".52", "90")], [(".55", "40")])]))
        await ws.send(json.dumps({"event_type": "market_resolved", "id": "1031769", "market": CONDITION,
                                  "assets_ids": [LAL, BOS], "winning_asset_id": BOS, "winning_outcome": "Celtics",
                                  "timestamp": "1764000009000", "tags": ["sports"]}))

    server = FakeClob(script)
    _, feed, _ = asyncio.run(run_client(server, lambda s, f: f.resolutions))
    assert server.subscriptions[0][1] == SUBSCRIPTION  # custom features on: market_resolved is one of them
    assert {(r.ticker, r.result, r.ts_event_ns) for r in feed.take_resolutions()} == {
        (LAL, "no", 1_764_000_009_000 * 10**6), (BOS, "yes", 1_764_000_009_000 * 10**6)}
    assert feed.books == {} and feed.errors == {}


def test_a_book_missing_after_subscribing_is_resubscribed_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    async def script(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
        if msg.get("type") == "market":  # the server skips BOS's snapshot
            await ws.send(json.dumps([book(LAL, [(".44", "100")], [(".47", "80")])]))
        elif msg.get("operation") == "subscribe":
            await ws.send(json.dumps([book(a, [(".52", "90")], [(".55", "40")]) for a in msg["assets_ids"]]))

    server = FakeClob(script)
    caplog.set_level(logging.INFO, logger="polymarket")
    source, feed, _ = asyncio.run(run_client(server, lambda s, f: f.has_snapshot(BOS), snapshot_timeout_s=0.2))
    assert [m for _, m in server.subscriptions] == [
        SUBSCRIPTION,
        {"assets_ids": [BOS], "operation": "unsubscribe", "custom_feature_enabled": True},
        {"assets_ids": [BOS], "operation": "subscribe", "initial_dump": True, "custom_feature_enabled": True}]
    assert source.snapshot_timeouts == 1 and source.stats()["snapshot_timeouts"] == 1
    assert feed.books[BOS].top().yes_bid == 52.0 and feed.has_snapshot(LAL)
    assert [r.levelname for r in caplog.records if "no book for" in r.getMessage()] == ["WARNING"]


def test_legacy_price_change_is_counted_once_warned_and_its_book_fetched_again(
        caplog: pytest.LogCaptureFixture) -> None:
    legacy = {"event_type": "price_change", "asset_id": LAL, "market": CONDITION, "timestamp": "1764000000456",
              "changes": [{"price": ".45", "side": "BUY", "size": "10"}]}

    async def script(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
        if msg.get("type") == "market":
            await ws.send(json.dumps([book(LAL, [(".44", "100")], [(".47", "80")])]))
            for _ in range(3):
                await ws.send(json.dumps(legacy))
        elif msg.get("operation") == "subscribe":
            await ws.send(json.dumps([book(LAL, [(".49", "20")], [(".51", "20")])]))

    server = FakeClob(script)
    caplog.set_level(logging.INFO, logger="polymarket")
    source, feed, changes = asyncio.run(run_client(server, lambda s, f: f.books.get(LAL) and f.has_snapshot(LAL)
                                                   and f.books[LAL].top().yes_bid == 49.0, tickers=(LAL,)))
    assert feed.errors == {"legacy_price_change": 3} and feed.gaps == 1 and source.resubscribes == 1
    assert {"assets_ids": [LAL], "operation": "subscribe", "initial_dump": True, "custom_feature_enabled": True} in [
        m for _, m in server.subscriptions]
    assert [c.top.yes_bid for c in changes] == [44.0, 49.0]  # nothing published from the book that missed updates
    skipped = [r for r in caplog.records if "frame skipped" in r.getMessage()]
    assert [r.levelname for r in skipped] == ["WARNING"] and "(legacy_price_change)" in skipped[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_proxy_from_env_with_socks_and_loopback_bypass() -> None:
    env = {"HTTPS_PROXY": "http://vpn:8888", "ALL_PROXY": "socks5://vpn:1080", "NO_PROXY": "internal.example"}
    assert proxy_for("wss://ws-subscriptions-clob.polymarket.com/ws/market", environ=env) == "http://vpn:8888"
    assert proxy_for("wss://ws-subscriptions-clob.polymarket.com/ws/market",
                     environ={"ALL_PROXY": "socks5://vpn:1080"}) == "socks5://vpn:1080"
    assert proxy_for("ws://127.0.0.1:9/ws", environ=env) is None
    assert proxy_for("https://api.internal.example/x", environ=env) is None
    assert proxy_for("wss://x.polymarket.com", "socks5h://explicit:1", environ=env) == "socks5h://explicit:1"
    assert proxy_for("wss://x.polymarket.com", environ={}) is None


# -- Gamma and geoblock --------------------------------------------------------------------------------------------


def _gamma_event() -> dict:
    moneyline = {"id": "601", "question": "Lakers vs. Celtics", "conditionId": CONDITION, "slug": "nba-lal-bos-2025-11-06",
                 "outcomes": '["Lakers", "Celtics"]', "clobTokenIds": json.dumps([LAL, BOS]),
                 "outcomePrices": '["0.455", "0.545"]', "sportsMarketType": "moneyline", "enableOrderBook": True,
                 "active": True, "closed": False, "gameStartTime": "2025-11-07 00:30:00+00"}
    spread = moneyline | {"id": "602", "question": "Spread: Celtics (-4.5)", "conditionId": "0x02",
                          "sportsMarketType": "spreads", "clobTokenIds": '["1", "2"]'}
    yes_no = moneyline | {"id": "603", "question": "Will LeBron score 30+?", "conditionId": "0x03",
                          "sportsMarketType": None, "outcomes": '["Yes", "No"]', "clobTokenIds": '["3", "4"]'}
    return {"id": "9001", "slug": "nba-lal-bos-2025-11-06", "title": "Lakers vs. Celtics",
            "startDate": "2025-10-30T15:00:00Z", "markets": [moneyline, spread, yes_no]}


class FakeGamma(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict]] = []
    geoblock: dict = {}

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        type(self).requests.append((url.path, q))
        if url.path == "/sports":
            body: Any = [{"sport": "nba", "series": "10345", "tags": "1,745,100639"}]
        elif url.path == "/events":
            body = [_gamma_event()] if q.get("series_id") == "10345" and q.get("offset") == "0" else []
        elif url.path == "/api/geoblock":
            body = self.geoblock
        else:
            body = {"error": "not found"}
        data = json.dumps(body).encode()
        self.send_response(200 if url.path in ("/sports", "/events", "/api/geoblock") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gamma_url() -> Any:
    FakeGamma.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeGamma)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_gamma_discovery_decodes_json_in_string_fields_and_keeps_moneylines_only(gamma_url: str) -> None:
    listings = discover_markets(GammaConfig(gamma_url, ("NBA", "NHL"), "", ""))
    assert [(x.ticker, x.outcome) for x in listings] == [(LAL, "Lakers"), (BOS, "Celtics")]
    first = listings[0]
    assert (first.venue, first.event_id, first.title, first.league, first.start_date) == \
        ("polymarket", CONDITION, "Lakers vs. Celtics", "NBA", "2025-11-06")
    events = [q for path, q in FakeGamma.requests if path == "/events"]
    assert {"series_id": "10345", "closed": "false", "limit": "100", "offset": "0"} in events
    assert any(q.get("tag_slug") == "nhl" for q in events)  # a league /sports did not name


def test_json_list_accepts_strings_and_lists() -> None:
    assert json_list('["a", "b"]') == ["a", "b"] and json_list(["a"]) == ["a"] and json_list("oops") == []


def test_geoblock_blocked_is_logged_and_never_fatal(gamma_url: str, caplog: pytest.LogCaptureFixture) -> None:
    FakeGamma.geoblock = {"blocked": True, "ip": "203.0.113.9", "country": "US", "region": "NY"}
    caplog.set_level(logging.INFO, logger="polymarket")
    answer = check_geoblock(f"{gamma_url}/api/geoblock")
    assert answer is not None and answer["blocked"] is True
    assert "Polymarket reports this IP blocked in US: orders are not allowed; market data only" in caplog.text
    assert check_geoblock("http://127.0.0.1:9/api/geoblock") is None  # unreachable: a warning, no exception
    assert "geoblock check failed" in caplog.text


class ConnectProxy:
    """An HTTP CONNECT proxy (what a VPN container's HTTPS_PROXY is), counting tunnels and keeping each request."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        target = head.split(b" ")[1].decode()
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def test_market_channel_through_an_http_connect_proxy() -> None:
    async def script(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
        await ws.send(json.dumps([book(LAL, [(".44", "100")], [(".47", "80")])]))

    async def main() -> tuple[PolymarketLiveSource, PolymarketFeed, list[str]]:
        proxy = ConnectProxy()
        server = FakeClob(script)
        proxy_server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        async with proxy_server, serve(server.handler, "127.0.0.1", 0) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            proxy_url = f"http://127.0.0.1:{proxy_server.sockets[0].getsockname()[1]}"
            cfg = PolymarketLiveConfig(f"ws://127.0.0.1:{port}/ws/market", proxy_url, 10.0, Backoff(0.01, 0.05), "")
            feed = PolymarketFeed()
            source = PolymarketLiveSource(cfg, [LAL], feed.take_resync)
            stop = asyncio.Event()

            async def read() -> None:
                async for raw in source.stream(stop):
                    feed.handle(raw, time.time_ns())

            reader = asyncio.create_task(read())
            await eventually_async(lambda: LAL in feed.books or reader.done(), 10.0, "a book through the proxy")
            stop.set()
            await asyncio.wait_for(reader, 5)
            return source, feed, proxy.tunnels

    source, feed, tunnels = asyncio.run(main())
    assert feed.books[LAL].top().yes_bid == 44.0 and len(tunnels) == 1 and tunnels[0].startswith("127.0.0.1:")
    assert source.stats()["proxy"].startswith("http://127.0.0.1:")
