"""Configuration from the environment and `.env`, with one clear error per mistake.

Precedence: the process environment, then `.env` (as docker compose does: `ZMQ_ENABLED=true docker-compose up`
overrides the file). In `.env` the *last* definition of a key wins, because the plan's rollback appends
(`echo "ZMQ_ENABLED=false" >> .env`) rather than edits; unquoted values lose a trailing ` # comment` (an
inline comment once became part of a value in the original).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
_SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|PASS|TOKEN|PEM|PRIVATE|CREDENTIAL)", re.IGNORECASE)
_ENDPOINT = re.compile(r"^(tcp://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.*-]+):\d{1,5}|ipc://\S+|inproc://\S+)$")
_URL_PASSWORD = re.compile(r"(?P<pre>://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<post>@)")
REDACTED: Final = "***"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable and what was expected."""


def project_root() -> Path:
    """The folder holding `.env` and `.arbees/`: `ARBEES_HOME`, else the current directory."""
    return Path(os.environ.get("ARBEES_HOME") or os.getcwd()).resolve()


def state_dir() -> Path:
    """`.arbees/` under the project root (logs, runs, spool, embedded servers)."""
    return Path(os.environ.get("ARBEES_STATE_DIR") or project_root() / ".arbees")


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse `.env` text: `KEY=VALUE` lines, `export` allowed, quotes stripped, last definition wins."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            continue
        values[key] = _dotenv_value(value.strip())
    return values


def _dotenv_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    hash_at = value.find(" #")
    return value[:hash_at].rstrip() if hash_at >= 0 else value


def read_dotenv(path: Path | None = None) -> dict[str, str]:
    """The `.env` file's values, or {} when there is none."""
    path = path or Path(os.environ.get("ARBEES_ENV_FILE") or project_root() / ".env")
    try:
        return parse_dotenv(path.read_text())
    except FileNotFoundError:
        return {}


def load_dotenv_into_environ(path: Path | None = None) -> None:
    """Fill `os.environ` from `.env` for keys the process environment does not already set."""
    for key, value in read_dotenv(path).items():
        os.environ.setdefault(key, value)


def write_dotenv_value(key: str, value: str, path: Path | None = None) -> Path:
    """Set one key in `.env`, replacing every earlier definition (no duplicate keys, unlike `echo >>`)."""
    path = path or project_root() / ".env"
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [ln for ln in lines if parse_dotenv(ln).keys() != {key}]
    kept.append(f"{key}={value}")
    path.write_text("\n".join(kept) + "\n")
    return path


class Env:
    """Typed reads of environment variables; every failure is a `ConfigError` naming the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def str(self, name: str, default: str = "") -> str:
        return self._env.get(name, default).strip()

    def bool(self, name: str, default: bool = False) -> bool:
        raw = self._env.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(f"{name}: expected true/false, was {raw!r}")

    def int(self, name: str, default: int, minimum: int | None = None) -> int:
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = int(float(raw.strip())) if "." in raw else int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, was {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name}: expected at least {minimum}, was {value}")
        return value

    def float(self, name: str, default: float, minimum: float | None = None) -> float:
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}: expected a number, was {raw!r}") from None
        if value != value or (minimum is not None and value < minimum):
            raise ConfigError(f"{name}: expected a number >= {minimum}, was {raw!r}")
        return value

    def list(self, name: str, default: list[str] | None = None) -> list[str]:
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            return list(default or [])
        return [item.strip() for item in raw.split(",") if item.strip()]

    def endpoints(self, name: str, default: list[str] | None = None) -> list[str]:
        """A comma list of ZMQ endpoints, checked at start: a typo (`tcp//host:5555`, a missing port) is one
        configuration error naming the variable, not a libzmq `Invalid argument` from deep in a socket call."""
        values = self.list(name, default)
        for value in values:
            check_endpoint(name, value)
        return values


def check_endpoint(name: str, value: str) -> str:
    """`value` when it is a ZMQ endpoint (tcp://host:port, ipc://path, inproc://name); else a ConfigError."""
    m = _ENDPOINT.match(value)
    port_ok = not value.startswith("tcp://") or (m is not None and 0 < int(value.rsplit(":", 1)[1]) < 65536)
    if m is None or not port_ok:
        raise ConfigError(f"{name}: {value!r} is not a ZMQ endpoint (expected tcp://host:port, ipc://path or "
                          "inproc://name)")
    return value


def is_secret_name(name: str) -> bool:
    """Whether an env var name looks like a credential (its value is never shown)."""
    return bool(_SECRET_NAME.search(name))


def redact_value(name: str, value: str) -> str:
    """The value safe to show: secrets become `***`, passwords inside URLs are masked."""
    if is_secret_name(name) and value:
        return REDACTED
    return mask_url_passwords(value)


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it masked (`redis://:***@host`, `http://user:***@proxy`)."""
    return _URL_PASSWORD.sub(lambda m: m.group("pre") + REDACTED + m.group("post"), text)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` safe to print or store."""
    return {k: redact_value(k, v) for k, v in env.items()}
