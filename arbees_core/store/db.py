"""Opening PostgreSQL connections: bounded retries, a short connect timeout, and DSNs that are safe to log.

Services start in any order (compose, `arbees up`), so the database may still be booting when a service starts.
When the retries are spent the caller gets one `StoreUnavailable` with the reason (`reason`: the server's own,
e.g. `database "arbees" does not exist`) and a DSN without its password, never a raw driver traceback. Services
connect with `retries=0` and pace their own retries through the process's PostgreSQL peer (`postgres_peer`,
telemetry/peers.py), which logs one line per reason and one when the database is usable again.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.conninfo import conninfo_to_dict

from arbees_core.config import redact_dsn
from arbees_core.telemetry.peers import Peer, peer

#: Seconds libpq waits for the TCP connection and the startup handshake; short, so an absent server is noticed.
CONNECT_TIMEOUT_S = 3
#: Text always arrives as str: a server initialised without a locale (SQL_ASCII, e.g. a bare `initdb` in a
#: container) would otherwise hand psycopg bytes for every text column, and no ticker would ever match.
CLIENT_ENCODING = "utf8"
#: Longest single wait between attempts, whatever the backoff says.
MAX_DELAY_S = 5.0

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)



class StoreUnavailable(Exception):
    """PostgreSQL could not be reached after the allowed retries (the message names the redacted DSN and why;
    `reason` is why alone)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def postgres_location(dsn: str) -> str:
    """host:port/database of a DSN (URL or key=value), never its password; the DSN itself when unparsable."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return redact_dsn(dsn)
    host = params.get("host") or params.get("hostaddr") or "localhost"
    return f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user') or ''}"


def postgres_peer(dsn: str) -> Peer:
    """The process's one `Peer` for the PostgreSQL of `dsn` (see telemetry/peers.py)."""
    return peer("PostgreSQL", postgres_location(dsn))


_ADDRESS_PREFIX = re.compile(r"^(connection (failed|is bad): )?(connection to server (at|on) .*? failed: )?")


def _reason(error: BaseException) -> str:
    """The server's reason on one line: libpq's first line (it repeats its message per address tried) without
    the address prefix, which the caller logs beside it: `FATAL: database "x" does not exist`."""
    text = str(error).strip().splitlines()
    reason = " ".join(_ADDRESS_PREFIX.sub("", text[0]).split()) if text else ""
    return reason or type(error).__name__


def connect(dsn: str, *, retries: int = 5, delay_s: float = 0.5, autocommit: bool = True,
            log: logging.Logger | None = None) -> psycopg.Connection:
    """Connect, trying `retries + 1` times with doubling waits on connection errors.

    Raises `StoreUnavailable` when every attempt failed. Use as `with connect(url) as conn:` (psycopg closes the
    connection at the end of the block, committing or rolling back an open transaction).
    """
    if not dsn:
        raise StoreUnavailable("no database URL configured (DATABASE_URL is empty)")
    wait = delay_s
    last: BaseException | None = None
    for attempt in range(retries + 1):
        try:
            conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S,
                                   client_encoding=CLIENT_ENCODING)
        except psycopg.OperationalError as e:
            last = e
            if attempt < retries:
                time.sleep(wait)
                wait = min(wait * 2, MAX_DELAY_S)
            continue
        if log is not None:
            log.info("Connected to PostgreSQL (%s)", redact_dsn(dsn))
        return conn
    reason = _reason(last) if last is not None else "unknown error"
    raise StoreUnavailable(f"cannot connect to {redact_dsn(dsn)} after {retries + 1} attempt(s): {reason}", reason)


def ns_to_datetime(ns: int) -> datetime:
    """Exact (microsecond) UTC datetime of epoch nanoseconds, the same instant `to_timestamp(ns/1e9)` gives."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def datetime_to_ns(ts: datetime | None) -> int:
    """Epoch nanoseconds (microsecond precision) of a stored timestamp; 0 for NULL."""
    return 0 if ts is None else (ts - _EPOCH) // timedelta(microseconds=1) * 1000
