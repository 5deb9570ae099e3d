"""Stack commands: up, down, restart, status, logs, env, service run. Same commands for both runtimes."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from arbees_cli.output import EXIT_FAIL, activity, console, err_console, fail, parse_duration, print_json
from arbees_core import settings as S
from arbees_core.config import mask_url_passwords, read_dotenv, redact_env
from arbees_core.registry import SERVICES, instance_name, spec
from arbees_core.runtime.base import Runtime, RuntimeError_, ServiceStatus
from arbees_core.runtime.preflight import SettingsError
from arbees_core.runtime.select import select_runtime

RuntimeOpt = typer.Option("auto", "--runtime", "-r", help="local (processes + embedded servers), compose "
                          "(Docker), swarm[:<stack>] (a docker stack deploy on this node, stack arbees by "
                          "default; reads and chaos), or auto: compose when its project is up, local otherwise.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object instead of tables.")


def get_runtime(kind: str, as_json: bool = False) -> Runtime:
    try:
        rt = select_runtime(kind)
    except RuntimeError_ as e:
        fail(str(e), as_json=as_json)
    warn_if_servers_differ(rt)
    return rt


def warn_if_servers_differ(rt: Runtime) -> None:
    """A REDIS_URL / DATABASE_URL set now (environment or `.env`) that is not the running local stack's: the stack
    keeps the servers it started with until `down` and `up`, so say so rather than ignore the new value."""
    if rt.kind != "local" or not rt.is_up():
        return
    root: Path = rt.root  # type: ignore[attr-defined]
    dotenv = read_dotenv(root / ".env")
    for key, running in rt.urls().items():
        setting = S.DECLARED.get(key)
        if setting is None:
            continue
        here = (setting.raw(os.environ) or "").strip()
        wanted = here or (setting.raw(dotenv) or "").strip()  # the supervisor's order: environment first
        if wanted and running and wanted != running:
            where = "the environment" if here else str(root / ".env")
            err_console.print(f"[yellow]warning:[/] {key}={escape(mask_url_passwords(wanted))} ({escape(where)}) is "
                              f"not the running stack's {escape(mask_url_passwords(running))}: the stack keeps its "
                              "own until `arbees down` and `arbees up`", highlight=False, soft_wrap=True)


def stop_what_started(rt: Runtime, as_json: bool) -> str:
    """After a failed `up` of a stack that was not running: a stack half up is no use, so stop whatever runs of it
    (nothing when it failed before starting a service); returns the line that says so."""
    if not any(s.state in ("running", "restarting") for s in rt.status()):
        return ""
    try:
        with activity("stopping what was started…", as_json):
            rt.down()
    except RuntimeError_ as e:
        return f"\n(stopping what this `up` had started failed too: {e})"
    return f"\n(stopped the {rt.kind} stack this `up` had started)"


def _names(services: list[str] | None, as_json: bool) -> list[str]:
    try:
        return [instance_name(s) for s in services or []]
    except KeyError as e:
        fail(str(e.args[0]), as_json=as_json)


def status_table(rows: list[ServiceStatus], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("service", "state", "pid/container", "ports", "started", "restarts", "last exit", "health"):
        table.add_column(col)
    table.add_column("detail", overflow="fold")
    colour = {"running": "green", "restarting": "yellow", "exited": "red", "failed": "red", "stopped": "dim",
              "missing": "dim"}
    for s in rows:
        table.add_row(s.name, f"[{colour.get(s.state, 'white')}]{s.state}[/]", str(s.pid or s.container or "-"),
                      ",".join(map(str, s.ports)) or "-", s.started_at[11:19] if s.started_at else "-",
                      str(s.restarts), "-" if s.exit_code is None else str(s.exit_code), s.health or "-",
                      escape(s.detail) or "-")
    return table


def _report(rt: Runtime, rows: list[ServiceStatus], as_json: bool, title: str) -> None:
    if as_json:
        print_json({"runtime": rt.kind, "up": rt.is_up(), "services": [r.to_dict() for r in rows],
                    **({"urls": rt.urls()} if hasattr(rt, "urls") else {})})
    else:
        console.print(status_table(rows, title))


def up(services: Optional[list[str]] = typer.Argument(None, help="Services to start (default: all)."),
       build: bool = typer.Option(False, "--build", help="Compose: rebuild the image first (after a code "
                                  "change); without it the image is built only when missing."),
       shards: Optional[int] = typer.Option(None, "--shards", min=1, help="How many game shards to run "
                                             "(default GAME_SHARDS from .env, else 1); the orchestrator spreads "
                                             "the games over them."),
       runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
    """Start the stack, or the named services. Local runtime: a supervisor process starts every service
    (and an embedded Redis and PostgreSQL when REDIS_URL / DATABASE_URL are unset) and keeps running after
    this command returns. A second `up` finds the running stack and starts only what is missing."""
    if shards is not None:
        os.environ["GAME_SHARDS"] = str(shards)  # the supervisor (and compose) read it like `.env`'s
    rt = get_runtime(runtime, as_json)
    names = _names(services, as_json)
    was_up = rt.is_up()
    try:
        with activity("starting the stack…" if not was_up else "starting services…", as_json):
            rows = rt.up(names or None, build=True) if build and rt.kind == "compose" else rt.up(names or None)
    except SettingsError as e:  # checked before anything starts
        fail(str(e), as_json=as_json)
    except RuntimeError_ as e:
        fail(str(e) + ("" if was_up else stop_what_started(rt, as_json)), code=EXIT_FAIL, as_json=as_json)
    _report(rt, rows, as_json, f"{rt.kind} stack {'already running' if was_up else 'started'}")


def down(runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
    """Stop the stack for good: restarts first, then every service (SIGTERM, then SIGKILL after 10 s), then the
    embedded servers. Returns when every process of the stack has exited and its ports are free, so an `up`
    right after starts at once."""
    rt = get_runtime(runtime, as_json)
    was_up = rt.is_up()
    try:
        with activity("stopping…", as_json):
            rt.down()
    except RuntimeError_ as e:
        fail(str(e), code=EXIT_FAIL, as_json=as_json)
    if as_json:
        print_json({"runtime": rt.kind, "was_up": was_up, "up": rt.is_up()})
    else:
        console.print(f"{rt.kind} stack {'stopped' if was_up else 'was not running'}")


def restart(services: Optional[list[str]] = typer.Argument(None, help="Services to restart (default: all)."),
            runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
    """Restart services with the current `.env` (environment rebuilt: a changed ZMQ_ENABLED takes effect)."""
    rt = get_runtime(runtime, as_json)
    names = _names(services, as_json)
    try:
        with activity("restarting…", as_json):
            rows = rt.restart(names or None)
    except SettingsError as e:  # checked before anything stops
        fail(str(e).replace("nothing was started", "nothing was restarted"), as_json=as_json)
    except RuntimeError_ as e:
        fail(str(e), code=EXIT_FAIL, as_json=as_json)
    _report(rt, rows, as_json, "restarted")


def status(runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
    """Every service's state, pid or container, ports, start time, restart count, last exit code, health,
    and why when something is wrong (a configuration error, a peer not usable yet). Exit code 0 when every
    service runs, 1 otherwise."""
    rt = get_runtime(runtime, as_json)
    rows = rt.status()
    _report(rt, rows, as_json, f"{rt.kind} stack ({'up' if rt.is_up() else 'down'})")
    if not rt.is_up() or any(r.state != "running" for r in rows):
        raise typer.Exit(EXIT_FAIL)


def logs(service: str = typer.Argument(..., help="Service name (plan spelling; - and _ both work)."),
         since: Optional[str] = typer.Option(None, "--since", help="Only lines newer than this (5m, 1h)."),
         tail: Optional[int] = typer.Option(None, "--tail", "-n", help="Only the last N lines."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
         runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
    """A service's log (the plan's `docker logs <service>`), greppable as the plan does; --json: one object
    with the service and its lines (not with --follow)."""
    rt = get_runtime(runtime, as_json)
    name = _names([service], as_json)[0]
    text = rt.logs(name, parse_duration(since) if since else None, tail)
    if as_json:
        if follow:
            fail("--follow streams lines; it cannot be one JSON object", as_json=True)
        print_json({"service": name, "lines": text.splitlines()})
        return
    sys.stdout.write(text)
    sys.stdout.flush()
    if follow:
        try:
            for line in rt.follow(name):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


def env_cmd(service: str = typer.Argument(..., help="Service name."), runtime: str = RuntimeOpt,
            as_json: bool = JsonOpt) -> None:
    """The environment the running service actually has (the plan's `docker exec <svc> env`), secrets
    redacted. Only arbees settings are shown unless --json."""
    rt = get_runtime(runtime, as_json)
    name = _names([service], as_json)[0]
    try:
        env = redact_env(rt.env(name))
    except RuntimeError_ as e:
        fail(str(e), code=EXIT_FAIL, as_json=as_json)
    if as_json:
        print_json({"service": name, "env": env})
        return
    relevant = [k for k in sorted(env) if k.startswith(("ZMQ_", "REDIS_", "DATABASE_", "SIM_", "ARBEES_", "MIN_",
                                                        "MAX_", "GAME_", "KALSHI_", "POLYMARKET_", "SIGNAL_",
                                                        "GLIBC_"))]
    # plain writes, never Rich: a value is shown whole (no wrapping or cropping at the terminal's or a pipe's
    # width), so it can be copied into psql or redis-cli as it is
    sys.stdout.write("".join(f"{key}={env[key]}\n" for key in relevant))
    sys.stdout.flush()


def service_run(name: str = typer.Argument(..., help="One of: " + ", ".join(s.name for s in SERVICES))) -> None:
    """Run the service in this process, configured by env and `.env`, until SIGTERM / Ctrl-C."""
    try:
        module = spec(name).module
    except KeyError as e:
        fail(str(e.args[0]))
    os.execv(sys.executable, [sys.executable, "-m", module])


def service_list(as_json: bool = JsonOpt) -> None:
    """Every service of the registry: name, module, port, dependencies."""
    if as_json:
        print_json([{"name": s.name, "module": s.module, "port": s.port, "depends_on": list(s.depends_on),
                     "env": list(s.env)} for s in SERVICES])
        return
    table = Table("service", "module", "port", "depends on", "what it does")
    for s in SERVICES:
        table.add_row(s.name, s.module, str(s.port or "-"), ", ".join(s.depends_on) or "-", s.description)
    console.print(table)


def register(app: typer.Typer) -> None:
    """`arbees up`, `down`, `restart`, `status`, `logs`, `env`, `service run|list`."""
    for command in (up, down, restart, status, logs):
        app.command()(command)
    app.command("env")(env_cmd)
    service_app = typer.Typer(help="Run one service in the foreground (what the runtimes start).")
    service_app.command("run")(service_run)
    service_app.command("list")(service_list)
    app.add_typer(service_app, name="service")
