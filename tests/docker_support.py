"""A compose project on a real Docker engine, for the `docker`-marked tests.

The stack runs under the plan's fixed names (containers `kalshi_monitor`, `arbees-redis`, network
`arbees-network`), so one engine holds one arbees stack at a time: the fixture refuses to take over a stack that
another checkout started, and removes one that a killed test session left behind. The image is built once per
test session from this checkout; the project folder is a temporary copy of the compose files with its own `.env`,
so no test touches the developer's `.env`.

Settings read from the environment (the lines `../shared/docker-offline/setup.sh` prints, or none for Docker Hub):
PYTHON_IMAGE, ARBEES_REDIS_IMAGE, ARBEES_TIMESCALEDB_IMAGE, ARBEES_BUILD_NETWORK (host where the default bridge
cannot reach the package index). Without an engine the tests skip with one reason, unless ARBEES_REQUIRE_DOCKER=1
(CI), which turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from arbees_core.polling import eventually

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "arbees:test"
PROJECT = "arbees"
#: Settings a Docker user on a normal host does not need, copied into the test project's `.env` when set.
IMAGE_SETTINGS = ("PYTHON_IMAGE", "ARBEES_REDIS_IMAGE", "ARBEES_TIMESCALEDB_IMAGE", "ARBEES_BUILD_NETWORK")
VPN_STANDIN = "arbees-test/vpn-standin"
LOCK_FILE = "/tmp/arbees-docker-tests.lock"


def unavailable(reason: str) -> None:
    """Skip (a user's machine without Docker) or fail (CI, ARBEES_REQUIRE_DOCKER=1) with one reason."""
    if os.environ.get("ARBEES_REQUIRE_DOCKER", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"Docker tests required (ARBEES_REQUIRE_DOCKER) but {reason}", pytrace=False)
    pytest.skip(f"no usable Docker engine: {reason}")


def run(cmd: list[str] | str, *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600,
        check: bool = False) -> subprocess.CompletedProcess[str]:
    """A command (a list, or a shell line run by bash as an operator's shell would: a pipeline's status is its
    last command's, so `... | grep x | wc -l` succeeds with 0), its output captured as text."""
    shell = isinstance(cmd, str)
    done = subprocess.run(["bash", "-c", cmd] if shell else cmd, cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)
    if check and done.returncode != 0:
        shown = cmd if shell else " ".join(cmd)
        raise AssertionError(f"`{shown}` exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def engine_reason() -> str:
    """'' when `docker info` answers, else why not."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        done = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if done.returncode != 0:
        return f"`docker info` failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
    if run(["docker", "compose", "version"], timeout=30).returncode != 0:
        return "Docker Compose v2 (`docker compose`) is not installed"
    return ""


def existing_stack() -> str:
    """The working directory of any arbees compose stack on the engine (an operator's, or a test session that
    did not finish), '' when there is none."""
    done = run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format",
                '{{.Label "com.docker.compose.project.working_dir"}}'], timeout=30)
    return ", ".join(sorted({d for d in done.stdout.split() if d}))


def left_by_a_test_session(working_dirs: str) -> bool:
    """Whether every working directory of a stack is a test session's (a pytest temporary folder) or is gone: such
    a stack was left by a session that was killed before its teardown, and the session holding the engine lock may
    remove it. An operator's stack (any other folder that still exists) is never touched."""
    dirs = [d.strip() for d in working_dirs.split(",") if d.strip()]
    return bool(dirs) and all("/pytest-of-" in d or not Path(d).exists() for d in dirs)


def remove_stack() -> None:
    """Every container, network and volume of the arbees compose project, without its compose files (they went
    with the session that made them)."""
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind, listing in (("container", ["ps", "-aq"]), ("network", ["network", "ls", "-q"]),
                          ("volume", ["volume", "ls", "-q"])):
        ids = run(["docker", *listing, "--filter", label], timeout=60).stdout.split()
        if ids:
            remove = ["rm", "-f"] if kind == "container" else [kind, "rm"]
            run(["docker", *remove, *ids], timeout=120)


_LOCK_DEPTH = [0]  # how deep this process is inside engine_lock(): the lock is this process's once taken


@contextlib.contextmanager
def engine_lock() -> Iterator[None]:
    """One test session on the engine at a time (a second one would rebuild the image under the first and tear
    its stack down): a second session skips, or under ARBEES_REQUIRE_DOCKER waits for the first to finish. Within
    one session it is re-entrant (the session's compose stack holds it while a later module's swarm takes it)."""
    if _LOCK_DEPTH[0]:
        _LOCK_DEPTH[0] += 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] -= 1
        return
    with open(LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not os.environ.get("ARBEES_REQUIRE_DOCKER"):
                pytest.skip("another test session is using the Docker engine (it holds " + LOCK_FILE + ")")
            fcntl.flock(handle, fcntl.LOCK_EX)
        _LOCK_DEPTH[0] = 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_image() -> None:
    """The arbees image of this checkout, built once (`docker build`, classic builder where BuildKit is absent)."""
    from arbees_core.bench.compose import build_command

    run(build_command(IMAGE, ROOT), timeout=1200, check=True)
    run(["docker", "tag", IMAGE, "zmqtools"], check=True)  # what `docker compose --profile tools build` makes


def build_vpn_standin() -> str:
    """A stand-in for gluetun (which cannot be pulled here): a container that only holds a network namespace
    and reports healthy, so the VPN override's wiring is tested without a VPN."""
    folder = ROOT / "tests" / "data" / "vpn-standin"
    args = ["docker", "build", "-q", "-t", VPN_STANDIN]
    if os.environ.get("PYTHON_IMAGE"):
        args += ["--build-arg", f"PYTHON_IMAGE={os.environ['PYTHON_IMAGE']}"]
    run([*args, str(folder)], timeout=600, check=True)
    return VPN_STANDIN


@dataclass
class ComposeProject:
    """A project folder with the compose files and a `.env`, and the commands an operator runs in it."""

    root: Path
    venv_bin: Path = field(default_factory=lambda: Path(sys.executable).parent)

    @property
    def env(self) -> dict[str, str]:
        """The operator's shell: this folder as ARBEES_HOME, the checkout's `arbees` and a `docker-compose`
        spelling of `docker compose` (the plan uses both) on PATH."""
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "ZMQ_ENABLED")}
        env.update(ARBEES_HOME=str(self.root), PATH=f"{self.root / 'bin'}:{self.venv_bin}:{env.get('PATH', '')}")
        return env

    def sh(self, line: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A shell line, as the plan writes it, run in the project folder."""
        return run(line, cwd=self.root, env=self.env, timeout=timeout)

    def arbees(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run([str(self.venv_bin / "arbees"), *args], cwd=self.root, env=self.env, timeout=timeout)

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run(["docker", "compose", "--project-directory", str(self.root), *args], cwd=self.root,
                   env=self.env, timeout=timeout)

    def set_env(self, **values: str) -> None:
        from arbees_core.config import write_dotenv_value

        for key, value in values.items():
            write_dotenv_value(key, value, self.root / ".env")

    def psql(self, query: str) -> list[list[str]]:
        """Rows of a query run inside the database container, as the plan's `docker exec ... psql` does."""
        done = run(["docker", "exec", "arbees-timescaledb", "psql", "-U", "arbees", "-d", "arbees", "-tAF", "|",
                    "-c", query], check=True, timeout=60)
        return [line.split("|") for line in done.stdout.splitlines() if line.strip()]

    def redis(self, *args: str) -> str:
        return run(["docker", "exec", "arbees-redis", "redis-cli", *args], check=True, timeout=60).stdout.strip()

    def wait(self, what: str, condition: Callable[[], object], timeout: float = 120) -> object:
        """Poll `condition` until truthy (the project's one polling rule, for a stack in containers)."""
        return eventually(condition, timeout=timeout, interval=1.0, what=what)


def make_project(folder: Path) -> ComposeProject:
    """Copy the compose files, write `.env` (ZMQ mode, a mispricing a second, this checkout's image) and a
    `docker-compose` command that is `docker compose` (Compose v2's standalone spelling)."""
    for name in ("docker-compose.yml", "docker-compose.vpn.yml"):
        shutil.copy(ROOT / name, folder / name)
    settings = {k: os.environ[k] for k in IMAGE_SETTINGS if os.environ.get(k)}
    from arbees_core.runtime.ports import free_port

    lines = [f"ARBEES_IMAGE={IMAGE}", *(f"{k}={v}" for k, v in settings.items()),
             "ZMQ_ENABLED=true", "SIM_MISPRICE_EVERY_S=1", "SIM_RATE=50",
             "MAX_EXPOSURE_USD=1000000",  # a signal a second reaches $1000 in a minute; then diagnose finds a fault
             f"ARBEES_API_HOST_PORT={free_port()}"]  # the dashboard's host port: 8000 may be another stack's
    (folder / ".env").write_text("\n".join(lines) + "\n")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "docker-compose"
    shim.write_text('#!/bin/sh\nexec docker compose "$@"\n')
    shim.chmod(0o755)
    return ComposeProject(folder)


@pytest.fixture(scope="session")
def compose_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    """The whole stack (`docker compose --profile full up -d`) on the real engine, ZMQ mode, for the session."""
    reason = engine_reason()
    if reason:
        unavailable(reason)
    with engine_lock():
        other = existing_stack()
        if other and left_by_a_test_session(other):
            print(f"removing the arbees stack an unfinished test session left ({other})", file=sys.stderr)
            remove_stack()
            other = existing_stack()
        if other:
            unavailable(f"an arbees compose stack started from {other} is on this engine; the docker tests use "
                        "the plan's container names: stop it first (`docker compose --profile full down`)")
        build_image()
        project = make_project(tmp_path_factory.mktemp("arbees-compose-"))
        t0 = time.monotonic()
        try:
            up = project.compose("--profile", "full", "up", "-d", "--wait", timeout=600)
            assert up.returncode == 0, f"compose up failed:\n{up.stderr[-3000:]}"
            print(f"compose stack up in {time.monotonic() - t0:.0f}s", file=sys.stderr)
            yield project
        finally:
            project.compose("--profile", "full", "--profile", "vpn", "--profile", "plan", "--profile", "tools",
                            "down", "-v", "--remove-orphans", "--timeout", "5")
