"""The embedded servers a bare machine uses: a real Redis and a real PostgreSQL from Python packages."""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis

from arbees_core.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from arbees_core.runtime.ports import free_port


def test_embedded_redis_starts_answers_streams_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", free_port()).start()
    try:
        client = redis.Redis.from_url(server.url)
        client.xadd("prices:kalshi", {"topic": "prices.kalshi.X", "data": "{}"})
        assert client.xlen("prices:kalshi") == 1
        client.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None


def test_embedded_postgres_starts_answers_and_stops(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg").start()
    try:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
