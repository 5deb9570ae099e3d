"""The api's HTTP side (FastAPI): the dashboard page, JSON endpoints, and the SSE stream the page reads.

Endpoints (their schema: `GET /openapi.json`):
  GET /                      the dashboard page (static; its charts are uPlot, served from here, no CDN)
  GET /api/snapshot          everything the page shows, at once
  GET /api/stream            Server-Sent Events: `snapshot` first, then `update` events (changes only)
  GET /api/games[/{game_id}] per game: both venues' top of book per team and the cross-venue edge after fees
  GET /api/signals?limit=N   newest signals; GET /api/trades?limit=N  newest executed signals with the hop latencies
  GET /api/latency           per-hop p50/p95/p99 over the window, per mode; GET /api/rates  messages per second
  GET /api/health            every service: state, restarts, lost / rejected, mode
  GET /api/positions         positions and P&L from the position store
  GET /api/status            the api itself: source (zmq | redis), connected publishers, clients, dropped updates
A malformed request gets a 4xx with one sentence saying what was wrong (`{"error": ...}`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from arbees_core.dashboard.hub import Hub
from arbees_core.dashboard.models import (
    ApiStatus, GameView, LatencyView, PositionsView, RateView, ServiceHealth, SignalView, Snapshot, TradeView,
)
from arbees_core.dashboard.state import KEEP_EVENTS, LiveState

STATIC = resources.files("arbees_core.dashboard") / "static"
Limit = Annotated[int, Query(ge=1, le=KEEP_EVENTS, description=f"how many, newest first (1-{KEEP_EVENTS})")]


class GamesResponse(BaseModel):
    source: str
    games: list[GameView]


class SignalsResponse(BaseModel):
    source: str
    signals: list[SignalView]


class TradesResponse(BaseModel):
    source: str
    trades: list[TradeView]


class HealthResponse(BaseModel):
    source: str
    services: list[ServiceHealth]


def _first_problem(exc: RequestValidationError) -> str:
    err = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
    got = f" (got {err['input']!r})" if isinstance(err.get("input"), (str, int, float)) else ""
    message = f"{err.get('msg', 'invalid request')}{got}"
    return f"{where}: {message}" if where else message


def create_app(state: LiveState, hub: Hub, status: Callable[[], ApiStatus]) -> FastAPI:
    """The FastAPI application over `state`; `hub` pushes to SSE clients (its task runs with the app)."""
    app = FastAPI(title="arbees api", version="1", lifespan=_lifespan(hub), docs_url=None, redoc_url=None,
                  description="The operators' live view of the arbees pipeline (see arbees_core/dashboard/app.py).")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _errors(app)
    _live_routes(app, state, hub, status)
    _market_routes(app, state)
    _panel_routes(app, state, status)
    return app


def _lifespan(hub: Hub) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan: the hub's push task runs while the app serves, and is cancelled when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan


def _live_routes(app: FastAPI, state: LiveState, hub: Hub, status: Callable[[], ApiStatus]) -> None:
    """The page, the whole snapshot, and the SSE stream the page follows."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/api/snapshot", response_model=Snapshot)
    def snapshot() -> Snapshot:
        """Everything the dashboard shows, as of now."""
        return state.snapshot(status())

    @app.get("/api/stream", response_class=EventSourceResponse)
    async def stream(request: Request) -> AsyncIterator[ServerSentEvent]:
        """SSE: one `snapshot` event, then `update` events with what changed (games, signals, trades) and, every
        second, the latency, rates, health, positions and api panels. A client that falls behind gets a new
        snapshot instead of the updates it missed."""
        client = hub.subscribe()
        try:
            while True:
                event, data = await client.queue.get()
                yield ServerSentEvent(event=event, raw_data=data)
        finally:
            hub.unsubscribe(client)


def _market_routes(app: FastAPI, state: LiveState) -> None:
    """Games with their books and edges, signals and trades."""

    @app.get("/api/games", response_model=GamesResponse)
    def games() -> GamesResponse:
        """Every mapped game: each team's book on both venues and the better direction's edge after fees."""
        return GamesResponse(source=state.source, games=state.games())

    @app.get("/api/games/{game_id}", response_model=GameView, responses={404: {"description": "no such game"}})
    def game(game_id: str) -> GameView:
        found = state.games({game_id})
        if not found:
            raise HTTPException(404, f"no game {game_id!r} in the market mapping")
        return found[0]

    @app.get("/api/signals", response_model=SignalsResponse)
    def signals(limit: Limit = 50) -> SignalsResponse:
        return SignalsResponse(source=state.source, signals=state.signals(limit))

    @app.get("/api/trades", response_model=TradesResponse)
    def trades(limit: Limit = 50) -> TradesResponse:
        """Executed signals, both legs, with the per-hop latency breakdown (ms)."""
        return TradesResponse(source=state.source, trades=state.trades(limit))


def _panel_routes(app: FastAPI, state: LiveState, status: Callable[[], ApiStatus]) -> None:
    """The panels the page refreshes every second: latency, rates, health, positions, the api's own status."""

    @app.get("/api/latency", response_model=LatencyView)
    def latency() -> LatencyView:
        return state.windows()[0]

    @app.get("/api/rates", response_model=RateView)
    def rates() -> RateView:
        return state.windows()[1]

    @app.get("/api/health", response_model=HealthResponse)
    def health() -> HealthResponse:
        return HealthResponse(source="redis health keys + supervisor", services=list(state.health))

    @app.get("/api/positions", response_model=PositionsView)
    def positions() -> PositionsView:
        return state.positions

    @app.get("/api/status", response_model=ApiStatus)
    def api_status() -> ApiStatus:
        return status()


def _errors(app: FastAPI) -> None:
    """4xx bodies as one sentence: `{"error": "limit: Input should be less than or equal to 200"}`."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _first_problem(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else \
            f"no such endpoint: {request.url.path} (see /openapi.json)"
        return JSONResponse({"error": message}, status_code=exc.status_code)
