"""The api against a real running local stack (`arbees up`: every service a process, real Redis and PostgreSQL).

ZMQ mode: the JSON endpoints and the SSE stream show the live pipeline (books, a trade with its hops, every service's
health), a late joiner gets a snapshot first, malformed requests get a 4xx with one clear sentence, and a browser that
stops reading loses only its own updates (counted) while the pipeline goes on. Redis mode: the same views from the
streams, and they say so.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from arbees_core.polling import eventually
from arbees_core.runtime.local import LocalRuntime

pytestmark = pytest.mark.e2e

DOTENV = ("SIM_RATE=100\nSIM_GAMES=2\nSIM_MISPRICE_EVERY_S=3\nSIM_MISPRICE_DURATION_MS=400\nGAME_COOLDOWN_MS=1000\n"
          "HEARTBEAT_INTERVAL_SECS=0.2\nAPI_PUSH_MS=20\nAPI_CLIENT_QUEUE=4\n")


def sse_events(url: str, count: int, timeout: float = 30.0) -> list[tuple[str, dict]]:
    """The first `count` events of an SSE stream, as (event, data)."""
    events: list[tuple[str, dict]] = []
    event = ""
    with httpx.stream("GET", url, timeout=timeout) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
                if len(events) == count:
                    return events
    return events


@pytest.fixture
def stack(local_project: Callable[[str], Path], request: pytest.FixtureRequest) -> Iterator[tuple[LocalRuntime, str]]:
    mode = getattr(request, "param", "zmq")
    rt = LocalRuntime(local_project(f"ZMQ_ENABLED={'true' if mode == 'zmq' else 'false'}\n{DOTENV}"))
    rt.up()
    base = rt.urls()["API_URL"]
    eventually(lambda: _answers(f"{base}/api/status"), 60, interval=0.2,
               what="the api answering")  # up() does not wait for it
    yield rt, base


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _get(url: str) -> dict:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_api_serves_the_live_pipeline_over_json_and_sse(stack: tuple[LocalRuntime, str]) -> None:
    rt, base = stack
    assert urlsplit(base).hostname == "127.0.0.1"  # loopback only
    status = eventually(lambda: (s := _get(f"{base}/api/status"))["connected"] == s["endpoints"] and s, 30,
                        what="the api's SUB socket connected to all four publishers")
    assert status["source"] == "zmq" and len(status["endpoints"]) == 4

    games = eventually(lambda: [g for g in _get(f"{base}/api/games")["games"]
                                if all(o["kalshi"] and o["polymarket"] for o in g["outcomes"])], 30,
                       what="games with both venues' books")
    outcome = games[0]["outcomes"][0]
    assert outcome["edge"] is not None and {"edge_pct", "edge_cents", "kalshi_side"} <= set(outcome["edge"])
    assert outcome["kalshi"]["yes_ask"] is not None and outcome["polymarket"]["no_ask"] is not None

    trades = eventually(lambda: _get(f"{base}/api/trades?limit=5")["trades"], 45, what="a paper trade")
    trade = trades[0]
    assert len(trade["legs"]) == 2 and trade["transport"] == "zmq" and trade["legs"][0]["status"]
    assert all(trade["latency"][k] is not None for k in ("price_ms", "signal_ms", "execution_ms", "end_to_end_ms"))
    assert _get(f"{base}/api/signals?limit=5")["signals"]
    latency = eventually(lambda: (v := _get(f"{base}/api/latency"))["modes"].get("zmq") and v, 10, what="latency")
    assert latency["modes"]["zmq"]["end_to_end"]["count"] >= 1 and latency["modes"]["zmq"]["end_to_end"]["p50_ms"]
    rates = eventually(lambda: _get(f"{base}/api/rates")["per_s"].get("prices.kalshi"), 10, what="price rate")
    assert rates > 0
    health = eventually(lambda: (h := {s["name"]: s for s in _get(f"{base}/api/health")["services"]})
                        and all(s["state"] == "running" for s in h.values()) and h, 20, what="every service healthy")
    assert set(health) == {s.name for s in rt.status()}
    assert health["game_shard"]["mode"] == "zmq" and health["game_shard"]["restarts_source"] == "supervisor"
    # the position store (execution_service's `positions` table) shows the legs of the trades above
    positions = eventually(lambda: (p := _get(f"{base}/api/positions"))["available"] and p["legs"] and p, 30,
                           what="positions read from the position store")
    assert {leg["venue"] for leg in positions["legs"]} == {"kalshi", "polymarket"}
    assert positions["open_legs"] == sum(not leg["closed"] for leg in positions["legs"])
    openapi = _get(f"{base}/openapi.json")
    assert {"/api/games", "/api/trades", "/api/stream", "/api/health", "/api/positions"} <= set(openapi["paths"])

    # a late joiner: the first event is the whole current state, trades included; then updates
    events = sse_events(f"{base}/api/stream", 3)
    assert events[0][0] == "snapshot" and events[0][1]["source"] == "zmq"
    assert {t["signal_id"] for t in events[0][1]["trades"]} >= {trade["signal_id"]}
    assert events[0][1]["games"] and events[0][1]["health"]
    assert [e for e, _ in events[1:]] == ["update", "update"]
    assert httpx.get(base, timeout=10).text.count("/static/dashboard.js") == 1


def test_malformed_requests_get_a_4xx_with_one_clear_sentence(stack: tuple[LocalRuntime, str]) -> None:
    _rt, base = stack
    cases = {
        "/api/trades?limit=0": (422, "limit: Input should be greater than or equal to 1 (got '0')"),
        "/api/trades?limit=100000": (422, "limit: Input should be less than or equal to 200 (got '100000')"),
        "/api/signals?limit=lots": (422, "limit: Input should be a valid integer, unable to parse string as an "
                                         "integer (got 'lots')"),
        "/api/games/NBA-1999-01-01-X-Y": (404, "no game 'NBA-1999-01-01-X-Y' in the market mapping"),
        "/api/nothing-here": (404, "no such endpoint: /api/nothing-here (see /openapi.json)"),
    }
    for path, (code, message) in cases.items():
        response = httpx.get(base + path, timeout=10)
        assert (response.status_code, response.json()) == (code, {"error": message}), path
    assert httpx.post(f"{base}/api/trades", timeout=10).status_code == 405
    assert _get(f"{base}/api/status")["source"] == "zmq"  # still serving


def test_a_browser_that_stops_reading_never_slows_the_pipeline(stack: tuple[LocalRuntime, str]) -> None:
    """An SSE client that never reads (a small receive buffer, so the TCP window closes soon): its updates are
    dropped and counted while prices keep flowing through game_shard and other clients get every update."""
    rt, base = stack
    eventually(lambda: _get(f"{base}/api/games")["games"], 30, what="games")
    host, port = urlsplit(base).hostname, urlsplit(base).port
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((host, port))
    stalled.sendall(b"GET /api/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    try:
        before = rt.metrics("game_shard")["counters"].get("prices_rx", 0)
        dropped = eventually(lambda: _get(f"{base}/api/status")["updates_dropped"], 90, interval=0.5,
                             what="updates dropped for the stalled browser")
        assert dropped > 0
        after = eventually(lambda: (n := rt.metrics("game_shard")["counters"].get("prices_rx", 0)) > before and n, 10,
                           what="game_shard still receiving prices")
        assert after > before
        events = sse_events(f"{base}/api/stream", 3)  # another browser is served as usual
        assert [e for e, _ in events] == ["snapshot", "update", "update"]
        assert _get(f"{base}/api/status")["clients"] >= 1  # the stalled one is still connected
    finally:
        stalled.close()
    assert all(s.restarts == 0 for s in rt.status())


@pytest.mark.parametrize("stack", ["redis"], indirect=True)
def test_in_redis_mode_the_api_reads_the_streams_and_says_so(stack: tuple[LocalRuntime, str]) -> None:
    rt, base = stack
    status = _get(f"{base}/api/status")
    assert status["source"] == "redis" and status["connected"] == ["redis streams"]
    eventually(lambda: _get(f"{base}/api/games")["games"], 30, what="games")
    trade = eventually(lambda: _get(f"{base}/api/trades?limit=1")["trades"], 45, what="a trade")[0]
    assert trade["transport"] == "redis" and _get(f"{base}/api/trades")["source"] == "redis"
    assert "Dashboard on http://127.0.0.1:" in rt.logs("api") and "(live feed: Redis streams)" in rt.logs("api")
