"""The local runtime as the CLI sees it: finds, starts, asks and stops the supervisor (`runtime/supervisor.py`).

Nothing here holds the stack in memory: every answer comes from `.arbees/stack.json`, the live processes and the
log files, so `arbees status` in a new shell sees the stack an earlier `arbees up` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from arbees_core.config import project_root, redact_env, state_dir
from arbees_core.registry import SERVICES, instance_name, shard_names, spec
from arbees_core.runtime.base import (PortProbe, RuntimeError_, ServiceStatus, parse_utc, process_environment,
                                      tcp_probe)
from arbees_core.runtime.embedded import EmbeddedPostgres
from arbees_core.runtime.local_stack import STACK_FILE, game_shards, stack_names, stack_ports
from arbees_core.runtime.logfile import follow_log, last_error, read_log
from arbees_core.runtime.ports import PortHolder, port_holder
from arbees_core.runtime.preflight import check_local
from arbees_core.runtime.supervisor import STOP_GRACE_S
from arbees_core.services.startup import STATE_CONFIG_ERROR, peers_problem

#: How long `up` waits for every requested service to be running, and how long a service must stay up to count.
UP_TIMEOUT_S, SETTLE_S, SETTLE_MAX_S = 60.0, 1.0, 20.0
#: How long `down` lets the supervisor stop the stack before it kills what is left (seconds).
DOWN_TIMEOUT_S = 2 * STOP_GRACE_S + 15
#: How long `down` waits, once every process of the stack has exited, for its ports to be free (seconds).
PORTS_FREE_TIMEOUT_S = 10.0


def _alive(pid: int | None, marker: str = "") -> bool:
    """A live process with this pid (and, when given, `marker` in its command line: pids get reused)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return not marker or marker in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _wait_exited(pids: list[int], timeout_s: float, poll_s: float = 0.05) -> bool:
    """Whether every process of `pids` has exited (a zombie counts) within `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def _wait_ports_free(ports: list[int], timeout_s: float, poll_s: float = 0.05) -> list[PortHolder]:
    """Wait until every port of `ports` is free (`runtime.ports`); what still holds one after `timeout_s`.

    Needed even once every process is reported exited: a multi-threaded process killed by a signal shows as a
    zombie as soon as its main thread has exited, and its sockets close only when its last thread has."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = [h for h in map(port_holder, ports) if h is not None]
        if not held or time.monotonic() >= deadline:
            return held
        time.sleep(poll_s)


class LocalRuntime:
    """Services as supervised local processes, with embedded Redis/PostgreSQL unless URLs are configured."""

    kind = "local"

    def __init__(self, root: Path | None = None, state: Path | None = None) -> None:
        self.root = (root or project_root()).resolve()
        self.state = state or (state_dir() if root is None else self.root / ".arbees")
        self.stack_file = self.state / STACK_FILE
        self._procs: dict[int, psutil.Process] = {}

    # -- reading -----------------------------------------------------------------------------------------------

    def read_stack(self) -> dict[str, Any]:
        try:
            return json.loads(self.stack_file.read_text())
        except (OSError, ValueError):
            return {}

    def supervisor_pid(self, stack: dict[str, Any] | None = None) -> int | None:
        """The live supervisor's pid, from `stack` (already read) or the state file."""
        pid = (self.read_stack() if stack is None else stack).get("supervisor_pid")
        return pid if _alive(pid, "arbees_core.runtime.supervisor") else None

    def is_up(self) -> bool:
        return self.supervisor_pid() is not None

    def status(self) -> list[ServiceStatus]:
        stack = self.read_stack()
        up = self.supervisor_pid(stack) is not None
        out = []
        for name in stack_names(stack):
            view = stack.get("services", {}).get(name, {})
            pid = view.get("pid")
            state = view.get("state", "missing") if up else ("stopped" if view else "missing")
            if up and state == "running" and not _alive(pid):
                state = "exited"
            out.append(ServiceStatus(
                name=name, state=state, pid=pid if state == "running" else None,
                started_at=view.get("started_at", ""),
                restarts=int(view.get("restarts", 0)), exit_code=view.get("exit_code"),
                ports=[view["port"]] if view.get("port") else [], health=self._health(name, state),
                detail=view.get("detail", "") if state != "running" else self._waiting_for(name),
                http_port=view.get("http_port"), metrics_port=view.get("metrics_port")))
        return out

    def _waiting_for(self, name: str) -> str:
        """Why a running service cannot work yet: the peers its snapshot says are not usable, with the reason."""
        return peers_problem(self.metrics(name))

    def _health(self, name: str, state: str) -> str:
        """healthy when the service wrote a metrics snapshot within 5 s; starting before its first one."""
        if state != "running":
            return ""
        path = self.state / "metrics" / f"{name}.json"
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return "starting"
        return "healthy" if age < 5.0 else "unhealthy"

    def metrics(self, service: str) -> dict[str, Any]:
        """The service's latest metrics snapshot (counters, gauges, per-hop HDR latency), {} before the first."""
        try:
            return json.loads((self.state / "metrics" / f"{instance_name(service)}.json").read_text())
        except (OSError, ValueError):
            return {}

    def resources(self, service: str) -> dict[str, float]:
        """Resident memory (MB) and CPU (% of one core since the last call) of the running service."""
        st = next(s for s in self.status() if s.name == instance_name(service))
        if st.pid is None:
            return {}
        try:
            proc = self._procs.get(st.pid) or psutil.Process(st.pid)
            self._procs[st.pid] = proc
            with proc.oneshot():
                return {"rss_mb": round(proc.memory_info().rss / 2**20, 2), "cpu_pct": proc.cpu_percent(None)}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return {}

    def urls(self) -> dict[str, str]:
        """REDIS_URL, DATABASE_URL, and API_URL (the dashboard) when the stack has an api."""
        stack = self.read_stack()
        api = stack.get("services", {}).get("api", {}).get("http_port")
        return {**stack.get("urls", {}), **({"API_URL": f"http://127.0.0.1:{api}"} if api else {})}

    def probe_port(self, service: str, port: int, timeout_s: float = 2.0) -> PortProbe:
        """Local services bind on this machine: a direct TCP connect to 127.0.0.1."""
        return tcp_probe("127.0.0.1", port, timeout_s)

    def log_path(self, service: str) -> Path:
        return self.state / "logs" / f"{instance_name(service)}.log"

    def logs(self, service: str, since_s: float | None = None, tail: int | None = None) -> str:
        return read_log(self.log_path(service), since_s, tail)

    def follow(self, service: str, poll_s: float = 0.2) -> Iterator[str]:
        """Lines appended to the service's log from now on (like `docker logs -f`), until the caller stops."""
        return follow_log(self.log_path(service), poll_s)

    def env(self, service: str) -> dict[str, str]:
        """The running process's environment, secrets redacted (the plan's `docker exec <svc> env`)."""
        st = next(s for s in self.status() if s.name == instance_name(service))
        if st.pid is None:
            raise RuntimeError_(f"{st.name} is not running ({st.state}); start it with `arbees up {st.name}`")
        try:
            return redact_env(psutil.Process(st.pid).environ())
        except (psutil.NoSuchProcess, psutil.AccessDenied) as e:
            raise RuntimeError_(f"cannot read the environment of {st.name} (pid {st.pid}): {e}") from e

    # -- acting ------------------------------------------------------------------------------------------------

    def run_settings(self, settings: dict[str, str]) -> AbstractContextManager[None]:
        """The supervisor `up` starts inherits this process's environment, which its services read below `.env`."""
        return process_environment(settings)

    def up(self, services: list[str] | None = None, timeout_s: float = UP_TIMEOUT_S) -> list[ServiceStatus]:
        """Start the stack (or the named services of a running one) and wait until they run."""
        names = [instance_name(n) for n in services or []] or [s.name for s in SERVICES]
        check_local(self.root, [spec(n).name for n in names])
        if "game_shard" in names:  # GAME_SHARDS (or `arbees up --shards N`): every shard of the stack
            count = game_shards(self.root)
            names += [n for n in shard_names(count)[1:] if n not in names]
        if self.is_up():
            self.request("start", names)
        else:
            self._spawn_supervisor(names)
        return self.wait_running(names, timeout_s)

    def _spawn_supervisor(self, names: list[str]) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "logs").mkdir(exist_ok=True)
        self.stack_file.unlink(missing_ok=True)
        env = {**os.environ, "ARBEES_HOME": str(self.root), "ARBEES_STATE_DIR": str(self.state)}
        with open(self.state / "logs" / "supervisor.log", "ab") as out:
            subprocess.Popen([sys.executable, "-m", "arbees_core.runtime.supervisor", "--services", ",".join(names)],
                             env=env, cwd=self.root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)

    def wait_running(self, names: list[str], timeout_s: float) -> list[ServiceStatus]:
        """Until every named service is past its start (see _settled); a failed start raises with its last log lines."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stack = self.read_stack()
            if stack.get("status") == "failed":
                raise RuntimeError_(f"the stack did not start: {stack.get('error')}")
            if stack.get("status") == "running" and self.supervisor_pid(stack) is None:
                raise RuntimeError_("the supervisor died; see " + str(self.state / "logs" / "supervisor.log"))
            views = stack.get("services", {})
            crashed = [n for n in names if views.get(n, {}).get("state") in ("exited", "failed") or
                       (views.get(n, {}).get("restarts", 0) > 0 and views.get(n, {}).get("state") != "running")]
            if crashed:
                raise RuntimeError_(self._start_failure(crashed[0], views[crashed[0]]))
            if stack.get("status") == "running" and all(self._settled(n, views.get(n, {})) for n in names):
                return self.status()
            time.sleep(0.1)
        raise RuntimeError_(f"not every service was running within {timeout_s:.0f}s: "
                            + ", ".join(f"{s.name}={s.state}" for s in self.status() if s.name in names))

    def _start_failure(self, name: str, view: dict[str, Any]) -> str:
        """Why `name` died at start: its error line first, then its last lines from that process only (a log
        file keeps earlier runs' lines, which say nothing about this start)."""
        started = parse_utc(view.get("started_at", ""))
        since = (datetime.now(timezone.utc) - started).total_seconds() + 1.0 if started else None
        lines = self.logs(name, since).splitlines()
        cause = last_error(lines)
        return (f"{name} exited at start with code {view.get('exit_code')}" + (f": {cause}" if cause else "")
                + "; its log since that start:\n" + "\n".join(lines[-15:]))

    def _settled(self, name: str, view: dict[str, Any]) -> bool:
        """Running, and past its start: it wrote a metrics snapshot from this very process (configuration is
        read before the first running snapshot; one that dies of a bad setting writes state `config_error` just
        before it exits, which does not count), or it has run for SETTLE_MAX_S (a slow machine) without dying."""
        if view.get("state") != "running" or not _alive(view.get("pid")):
            return False
        try:
            started = datetime.fromisoformat(view["started_at"])
        except (KeyError, ValueError):
            return False
        age = (datetime.now(timezone.utc) - started).total_seconds()
        if age < SETTLE_S:
            return False
        snap = self.metrics(name)
        if snap.get("state") == STATE_CONFIG_ERROR:  # written just before it exits with code 2: not settled
            return False
        return snap.get("pid") == view.get("pid") or age >= SETTLE_MAX_S

    def request(self, action: str, services: list[str], timeout_s: float = 60.0) -> None:
        """Ask the running supervisor to start/restart/stop services and wait for its answer."""
        if not self.is_up():
            raise RuntimeError_("the local stack is not running; start it with `arbees up`")
        control = self.state / "control"
        control.mkdir(parents=True, exist_ok=True)
        rid = f"{time.time_ns()}-{uuid.uuid4().hex[:6]}"
        tmp = control / f"{rid}.tmp"
        tmp.write_text(json.dumps({"action": action, "services": services}))
        os.replace(tmp, control / f"{rid}.request.json")
        done = control / f"{rid}.done.json"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done.exists():
                answer = json.loads(done.read_text())
                done.unlink(missing_ok=True)
                if not answer.get("ok"):
                    raise RuntimeError_(answer.get("error") or f"{action} failed")
                return
            if not self.is_up():
                raise RuntimeError_("the supervisor stopped while handling the request")
            time.sleep(0.05)
        raise RuntimeError_(f"the supervisor did not answer {action} within {timeout_s:.0f}s")

    def restart(self, services: list[str] | None = None, timeout_s: float = UP_TIMEOUT_S) -> list[ServiceStatus]:
        """Stop and start with the current `.env` (the environment is rebuilt, never reused)."""
        names = [instance_name(n) for n in services or []] or [s.name for s in SERVICES]
        check_local(self.root, [spec(n).name for n in names])
        self.request("restart", names)
        return self.wait_running(names, timeout_s)

    def stop(self, services: list[str]) -> None:
        self.request("stop", [instance_name(n) for n in services])

    def down(self, timeout_s: float = DOWN_TIMEOUT_S) -> None:
        """Stop the stack for good; return only when every process of it has exited and its ports are free.

        The supervisor does the stopping (`Supervisor.shutdown`: restarts off, services, embedded servers). Should
        it not be done within `timeout_s` seconds (or be gone already), it is killed, and so is whatever of the
        stack is left (`stack_processes`). Raises RuntimeError_ when a port of the stack is still held afterwards
        (by a process that is not the stack's), naming the holder: the next `up` would be refused on it."""
        stack = self.read_stack()
        pid = self.supervisor_pid(stack)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not _wait_exited([pid], timeout_s):
                os.kill(pid, signal.SIGKILL)
        stack = self.read_stack() or stack
        self._stop_leftover_postgres(stack)
        leftovers = self.stack_processes(stack)
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if not _wait_exited([p.pid for p in leftovers], timeout_s):
            raise RuntimeError_("processes of the stack survived SIGKILL: "
                                + ", ".join(str(p.pid) for p in leftovers if _alive(p.pid)))
        if pid is None and not leftovers:  # nothing of the stack ran: no port of it to wait for
            return
        held = _wait_ports_free(stack_ports(stack), PORTS_FREE_TIMEOUT_S)
        if held:
            raise RuntimeError_("the stack stopped, but " + "; ".join(f"port {h.port} is held by {h}" for h in held))

    def stack_processes(self, stack: dict[str, Any] | None = None) -> list[psutil.Process]:
        """Every live process of this stack: the supervisor and every arbees process of its session (the services:
        `SERVICE_SESSION` keeps them in it, each in a process group of its own), and the embedded Redis (which
        has a session of its own). Found by session, so a service started after the state file was written is
        found too."""
        stack = self.read_stack() if stack is None else stack
        sid = stack.get("supervisor_pid")
        found: list[psutil.Process] = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            try:
                if (proc.info["status"] != psutil.STATUS_ZOMBIE and sid and os.getsid(proc.pid) == sid
                        and any("arbees_core" in arg for arg in proc.info["cmdline"] or [])):
                    found.append(proc)
            except (psutil.Error, OSError):  # gone meanwhile
                continue
        redis_pid = stack.get("embedded", {}).get("redis", {}).get("pid")
        if _alive(redis_pid, "redis-server"):
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(redis_pid))
        return found

    def _stop_leftover_postgres(self, stack: dict[str, Any]) -> None:
        """The embedded PostgreSQL of a supervisor that could not stop it (killed): stopped with pg_ctl, as its
        own stop does (a SIGKILL would leave its shared memory and lock file behind)."""
        folder = stack.get("embedded", {}).get("postgres", {}).get("folder")
        if folder:
            EmbeddedPostgres(Path(folder)).stop()
