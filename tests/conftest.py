"""Shared fixtures: real Redis and real PostgreSQL.

`REDIS_URL` / `DATABASE_URL` point at running servers (our machines and CI have them); when unset, the embedded
servers from Python packages are started once per session, so a bare machine runs the same tests.
Each test gets its own Redis database (flushed) and its own PostgreSQL database (created and dropped).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from arbees_core.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from arbees_core.runtime.ports import free_port, free_port_block
from arbees_core.transport.base import Publisher


def run_arbees(root: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 240) -> subprocess.CompletedProcess:
    """`arbees ARGS` as an operator runs it in the project `root`, from a script: its own process, output to a pipe
    (not a terminal), the terminal width unknown. `env` adds to (or overrides) this process's environment."""
    full = {**os.environ, "ARBEES_HOME": str(root), **(env or {})}
    full.pop("ARBEES_STATE_DIR", None)
    return subprocess.run([sys.executable, "-m", "arbees_cli.main", *args], env=full, cwd=root, capture_output=True,
                          text=True, timeout=timeout)


def never(condition: Callable[[], object], duration: float = 3.0, interval: float = 0.05, what: str = "") -> None:
    """Watch `condition` for `duration` seconds and fail at once, with `what` and the value, if it is ever truthy:
    the counterpart of `arbees_core.polling.eventually` for what must not happen (a process of the stack alive after `down`)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        value = condition()
        assert not value, f"{what or condition}: {value!r}"
        time.sleep(interval)


#: A process that listens on 127.0.0.1:<argv[1]> (or the host in argv[2]) until killed; prints "ready" once it does.
#: SO_REUSEADDR as every server does: `free_port` checks a port the way libzmq binds it (with it), so a port an
#: earlier test's server left in TIME-WAIT reads as free, and a bind without it would then fail.
_LISTENER = ("import socket, sys, time\n"
             "s = socket.socket()\n"
             "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             "s.bind((sys.argv[2] if len(sys.argv) > 2 else '127.0.0.1', int(sys.argv[1])))\n"
             "s.listen()\n"
             "print('ready', flush=True)\n"
             "time.sleep(600)\n")


@contextlib.contextmanager
def listening_process(port: int, host: str = "127.0.0.1") -> Iterator[subprocess.Popen]:
    """A real process of its own listening on `host:port` (another program holding a port), stopped on exit."""
    with subprocess.Popen([sys.executable, "-c", _LISTENER, str(port), host], stdout=subprocess.PIPE,
                          text=True) as proc:  # its exit closes the pipe and waits for the process
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", "the listener did not start"
            yield proc
        finally:
            proc.kill()



class KeptPublisher(Publisher):
    """A transport publisher that keeps what it is given (topic, payload), for services driven in process."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []

    def send(self, topic: str, payload: bytes) -> None:
        self.frames.append((topic, payload))

    def close(self) -> None:
        pass

@pytest.fixture(autouse=True)
def _fresh_peers() -> Iterator[None]:
    """Each test starts with no known Redis / PostgreSQL outage: the process-wide peers (telemetry/peers.py) would
    otherwise carry one test's outage, and its already-logged reasons, into the next."""
    from arbees_core.telemetry.peers import reset_peers

    reset_peers()
    yield
    reset_peers()


#: Ports a test's stack may use from ARBEES_PORT_BASE: ZMQ base..base+3 and base+5, the api base+4, metrics base+8..16,
#: further game shards base+20..; probes may plant faults at base+6..7.
STACK_PORTS = 36


@pytest.fixture
def local_project(tmp_path: Path, redis_url: str, database_url: str,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """Factory of a project folder for a real local stack: `.env` as given, the test's Redis and PostgreSQL, a
    block of ports of its own (ARBEES_PORT_BASE), its own state folder. Its stack is stopped at teardown."""
    from arbees_core.runtime.local import LocalRuntime

    def make(dotenv: str) -> Path:
        (tmp_path / ".env").write_text(dotenv)
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("ARBEES_PORT_BASE", str(free_port_block(STACK_PORTS)))
        monkeypatch.setenv("ARBEES_HOME", str(tmp_path))
        monkeypatch.delenv("ARBEES_STATE_DIR", raising=False)
        monkeypatch.delenv("ZMQ_ENABLED", raising=False)  # `.env` decides the mode
        monkeypatch.setenv("ARBEES_RT_PRIORITY", "0")  # stacks of tests share the machine: normal scheduling
        return tmp_path

    yield make
    LocalRuntime(tmp_path).down()


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), free_port()).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg")).start()
    try:
        yield server.url
    finally:
        server.stop()


_redis_dbs = itertools.cycle(range(1, 16))


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis URL on a numbered database of its own, flushed before and after the test."""
    parts = urlsplit(redis_server_url)
    db = next(_redis_dbs)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    yield client
    client.close()


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, parts.fragment))


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A PostgreSQL URL of a database created for this test and dropped after it."""
    name = f"arbees_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_dbname(postgres_server_url, name)
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated `.arbees/` for the test (logs, spool, metrics)."""
    folder = tmp_path / ".arbees"
    folder.mkdir()
    monkeypatch.setenv("ARBEES_STATE_DIR", str(folder))
    monkeypatch.setenv("ARBEES_HOME", str(tmp_path))
    return folder


# The compose stack on a real Docker engine, one per session, shared by every `docker`-marked test module.
from tests.docker_support import compose_project  # noqa: E402,F401
