"""No credential anywhere, at any log level: the secret filter on its own, then the services that hold secrets.

market_discovery, kalshi_monitor and polymarket_monitor run as the local stack at `LOG_LEVEL=DEBUG` against local
venue servers (the ones the adapter tests use): Kalshi's WebSocket and REST verify each RSA-PSS signature and keep
it, Polymarket's market channel is reached through an HTTP CONNECT proxy that takes a password. Then no key id, no
line of the private key, no signature, no proxy password may appear in the services' logs, in `arbees logs`,
`arbees env`, `arbees status --json`, or in any file the stack wrote under `.arbees/`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import secrets
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.server import ServerConnection, serve

from arbees_core.polling import eventually
from arbees_core.runtime.local import LocalRuntime
from arbees_core.telemetry import redact
from arbees_core.telemetry.logs import setup_logging
from arbees_core.telemetry.redact import SecretFilter, SecretRegistry, redact_text
from arbees_core.venues.kalshi.auth import KalshiSigner
from tests.test_kalshi_live import WS_PATH, FakeKalshi, FakeKalshiRest, snapshot
from tests.test_local_runtime import _cli
from tests.test_polymarket_live import BOS, LAL, ConnectProxy, FakeClob, FakeGamma, book
from tests.venue_support import LoopThread

KALSHI_TICKERS = ("KXNBAGAME-25NOV06LALBOS-LAL", "KXNBAGAME-25NOV06LALBOS-BOS")


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_lines(pem: str) -> list[str]:
    return [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]


# -- the filter ----------------------------------------------------------------------------------------------------


def test_redact_text_masks_headers_pem_urls_registered_values_and_signatures(private_key: Any) -> None:
    registry = SecretRegistry()
    key_id = str(uuid.uuid4())
    pem = _pem(private_key)
    registry.register(key_id)
    registry.register(pem.replace("\n", "\\n"))  # as KALSHI_PRIVATE_KEY holds it
    signature = KalshiSigner("k", private_key).sign(1764000000123, "GET", WS_PATH)
    lines = {
        f"> KALSHI-ACCESS-KEY: {key_id}": key_id,
        f"> KALSHI-ACCESS-SIGNATURE: {signature}": signature,
        f"headers {{'KALSHI-ACCESS-SIGNATURE': '{signature}', 'X': '1'}}": signature,
        "> Proxy-Authorization: Basic YXJiZWVzOnNlY3JldA==": "YXJiZWVzOnNlY3JldA==",
        "> Authorization: Bearer abc.def.ghi": "abc.def.ghi",
        f"key is {pem}": _pem_lines(pem)[3],
        f"cut short: {pem[:300]}": _pem_lines(pem)[2],
        f"a fragment alone: {_pem_lines(pem)[5]}": _pem_lines(pem)[5],
        f"signer for {key_id} failed": key_id,
        "via proxy http://arbees:hunter2-pw@vpn:8888": "hunter2-pw",
        "conninfo host=db password=s3cret-pw dbname=x": "s3cret-pw",
        f"bare signature {signature} in a message": signature,
    }
    for line, secret in lines.items():
        masked = redact_text(line, registry)
        assert secret not in masked and "***" in masked, line
    plain = (f"Published prices.poly.{LAL} yes_bid=44.0; condition 0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c"
             f"1d565897d72f8f1; Kalshi WebSocket authentication failed (HTTP 401); {KALSHI_TICKERS[0]}")
    assert redact_text(plain, registry) == plain


def test_secret_filter_masks_library_debug_lines_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter())
    lib = logging.getLogger("websockets.client.test")
    lib.addHandler(handler)
    lib.setLevel(logging.DEBUG)
    lib.propagate = False
    try:
        lib.debug("> %s: %s", "KALSHI-ACCESS-SIGNATURE", "c2lnbmF0dXJl")
        try:
            raise ValueError("bad proxy http://user:tr4ceback-pw@proxy:1")
        except ValueError:
            lib.exception("connect failed")
    finally:
        lib.removeHandler(handler)
    text = stream.getvalue()
    assert "c2lnbmF0dXJl" not in text and "tr4ceback-pw" not in text
    assert "KALSHI-ACCESS-SIGNATURE: ***" in text and "Traceback" in text


def test_setup_logging_filters_every_handler_and_registers_secret_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    key_id = str(uuid.uuid4())
    monkeypatch.setenv("KALSHI_API_KEY_ID", key_id)
    third_party = logging.getLogger("psycopg.test-handler")
    extra = logging.StreamHandler(io.StringIO())
    third_party.addHandler(extra)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    try:
        setup_logging("test_service", "DEBUG")
        assert all(any(isinstance(f, SecretFilter) for f in h.filters) for h in [*root.handlers, extra])
        third_party.propagate = False
        third_party.warning("connected with key %s", key_id)
        assert key_id not in extra.stream.getvalue() and "***" in extra.stream.getvalue()
    finally:
        third_party.removeHandler(extra)
        third_party.propagate = True
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        sys.excepthook, threading.excepthook = saved[2], saved[3]
        redact.SECRETS.clear()


# -- the services, at DEBUG, against local venue servers ------------------------------------------------------------


class RecordingKalshi(FakeKalshi):
    """Kalshi's WebSocket, keeping every handshake signature it verified."""

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        super().__init__(public_key, self._snapshots)
        self.signatures: list[str] = []

    def process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.signatures.append(request.headers.get("KALSHI-ACCESS-SIGNATURE", ""))
        return super().process_request(connection, request)

    @staticmethod
    async def _snapshots(srv: FakeKalshi, ws: ServerConnection, conn: int, sid: int, tickers: list[str]) -> None:
        for seq, ticker in enumerate(tickers, 1):
            await ws.send(json.dumps(snapshot(sid, seq, ticker=ticker)))


class RecordingKalshiRest(FakeKalshiRest):
    """Kalshi's REST market listing, keeping every request signature."""

    signatures: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).signatures.append(self.headers.get("KALSHI-ACCESS-SIGNATURE", ""))
        super().do_GET()


def _kalshi_market(ticker: str, team: str) -> dict:
    return {"ticker": ticker, "event_ticker": ticker.rsplit("-", 1)[0], "title": "Los Angeles L at Boston Winner?",
            "yes_sub_title": team, "status": "active", "close_time": "2025-11-07T04:00:00Z"}


async def _clob_books(srv: FakeClob, ws: ServerConnection, conn: int, msg: dict) -> None:
    if msg.get("operation") != "unsubscribe":
        await ws.send(json.dumps([book(a, [(".44", "100")], [(".47", "80")]) for a in msg.get("assets_ids", [])]))


@dataclass
class LocalVenues:
    """Every venue endpoint the live services use, served from this process."""

    kalshi: RecordingKalshi
    clob: FakeClob
    proxy: ConnectProxy
    env: dict[str, str] = field(default_factory=dict)

    def signatures(self) -> list[str]:
        return [s for s in self.kalshi.signatures + RecordingKalshiRest.signatures if s]


def _http_server(handler: type) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def venues(private_key: Any, tmp_path: Path) -> Iterator[LocalVenues]:
    RecordingKalshiRest.pages = {"KXNBAGAME": [([_kalshi_market(KALSHI_TICKERS[0], "Los Angeles L"),
                                                 _kalshi_market(KALSHI_TICKERS[1], "Boston")], "")]}
    RecordingKalshiRest.seen, RecordingKalshiRest.signatures = [], []
    RecordingKalshiRest.public_key, RecordingKalshiRest.throttle_once = private_key.public_key(), False
    FakeGamma.requests, FakeGamma.geoblock = [], {"blocked": False, "ip": "127.0.0.1", "country": "XX"}
    rest, gamma = _http_server(RecordingKalshiRest), _http_server(FakeGamma)
    loop = LoopThread()
    venues = LocalVenues(RecordingKalshi(private_key.public_key()), FakeClob(_clob_books), ConnectProxy())

    async def start() -> list[Any]:
        return [await serve(venues.kalshi.handler, "127.0.0.1", 0, process_request=venues.kalshi.process_request),
                await serve(venues.clob.handler, "127.0.0.2", 0),  # not a loopback name: reached through the proxy
                await asyncio.start_server(venues.proxy.handle, "127.0.0.1", 0)]

    async def stop(servers: list[Any]) -> None:
        for server in servers:
            server.close()
        await asyncio.gather(*(s.wait_closed() for s in servers), return_exceptions=True)

    servers = loop.run(start())
    (kalshi_port, clob_port, proxy_port) = (s.sockets[0].getsockname()[1] for s in servers)
    key_file = tmp_path / "kalshi.pem"
    key_file.write_text(_pem(private_key))
    venues.env = {
        "KALSHI_API_KEY_ID": str(uuid.uuid4()), "KALSHI_PRIVATE_KEY_PATH": str(key_file),
        "KALSHI_WS_URL": f"ws://127.0.0.1:{kalshi_port}{WS_PATH}", "KALSHI_SERIES": "KXNBAGAME",
        "KALSHI_REST_URL": f"http://127.0.0.1:{rest.server_address[1]}/trade-api/v2", "KALSHI_REST_MIN_INTERVAL_MS": "0",
        "POLYMARKET_WS_URL": f"ws://127.0.0.2:{clob_port}/ws/market", "POLYMARKET_LEAGUES": "NBA",
        "POLYMARKET_GAMMA_URL": f"http://127.0.0.1:{gamma.server_address[1]}",
        "POLYMARKET_GEOBLOCK_URL": f"http://127.0.0.1:{gamma.server_address[1]}/api/geoblock",
        "POLYMARKET_PROXY": f"http://arbees:pr0xy-{secrets.token_hex(8)}@127.0.0.1:{proxy_port}",
    }
    try:
        yield venues
    finally:
        loop.run(stop(servers))
        loop.close()
        for httpd in (rest, gamma):
            httpd.shutdown()
            httpd.server_close()


def _metric(root: Path, service: str, counter: str) -> int:
    try:
        return int(json.loads((root / ".arbees" / "metrics" / f"{service}.json").read_text())["counters"].get(counter, 0))
    except (OSError, ValueError, KeyError):
        return 0


def _forbidden(venues: LocalVenues, pem: str) -> dict[str, str]:
    """What must never be shown, by what it is."""
    password = venues.env["POLYMARKET_PROXY"].split(":")[2].split("@")[0]
    found = {"key id": venues.env["KALSHI_API_KEY_ID"], "proxy password": password,
             "proxy credentials (base64)": base64.b64encode(f"arbees:{password}".encode()).decode()}
    found |= {f"private key line {i}": line for i, line in enumerate(_pem_lines(pem))}
    return found | {f"signature {i}": sig for i, sig in enumerate(venues.signatures())}


def test_services_at_debug_against_local_venues_show_no_secret_anywhere(
        venues: LocalVenues, private_key: Any, local_project: Callable[[str], Path]) -> None:
    services = ["market_discovery", "kalshi_monitor", "polymarket_monitor"]
    dotenv = {"LOG_LEVEL": "DEBUG", "ZMQ_ENABLED": "true", "KALSHI_SOURCE": "live", "POLYMARKET_SOURCE": "live",
              "HEARTBEAT_INTERVAL_SECS": "0.2", "DISCOVERY_INTERVAL_S": "30", **venues.env}
    root = local_project("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    LocalRuntime(root).up(services)
    eventually(lambda: all(_metric(root, s, "prices_published") >= 2 for s in services[1:]), 90,
               what="both monitors publish the prices of the mapped markets")
    assert {t for _, cmd in venues.kalshi.subscribes() for t in cmd["params"]["market_tickers"]} == set(KALSHI_TICKERS)
    assert {a for _, msg in venues.clob.subscriptions for a in msg["assets_ids"]} == {LAL, BOS}
    forbidden = _forbidden(venues, _pem(private_key))
    assert len(venues.signatures()) >= 2 and b"Proxy-Authorization: Basic " + \
        forbidden["proxy credentials (base64)"].encode() in b"".join(venues.proxy.requests)  # the secrets were used

    local = ("--runtime", "local")  # "auto" would pick a compose project running on this machine
    outputs = {f"arbees logs {s}": _cli(root, "logs", s, *local).stdout for s in services}
    outputs |= {f"arbees env {s}{flag}": _cli(root, "env", s, *local, *flag.split()).stdout
                for s in services for flag in ("", " --json")}
    outputs |= {"arbees status --json": _cli(root, "status", "--json", *local).stdout}
    outputs |= {str(p.relative_to(root)): p.read_text(errors="replace")
                for p in (root / ".arbees").rglob("*") if p.is_file()}
    leaks = [(what, where) for where, text in outputs.items() for what, value in forbidden.items() if value in text]
    assert leaks == []
    kalshi_log = outputs["arbees logs kalshi_monitor"]
    assert "KALSHI-ACCESS-SIGNATURE: ***" in kalshi_log  # websockets' DEBUG handshake dump ran, masked
    assert "signed headers (values not logged)" in kalshi_log
    assert "via proxy http://arbees:***@" in outputs["arbees logs polymarket_monitor"]
    assert "KALSHI_API_KEY_ID=***" in outputs["arbees env kalshi_monitor"]
