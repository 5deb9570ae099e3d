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
from typing import TYPE_CHECKING, Any, TypeVar

# Re-exported: callers read the configuration's error, markers and checks from here.
from arbees_core.config_checks import (REDACTED, UNSET, ConfigError, check_database_url, check_endpoint,  # noqa: F401
                                       check_redis_url, mask_dsn_passwords, mask_url_passwords)

if TYPE_CHECKING:
    from arbees_core.settings.model import Setting

T = TypeVar("T")
_SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|PASS|TOKEN|PEM|PRIVATE|CREDENTIAL)", re.IGNORECASE)


def project_root() -> Path:
    """The folder holding `.env` and `.arbees/`: `ARBEES_HOME`, else the current directory."""
    from arbees_core import settings as S

    return Path(Env().get(S.ARBEES_HOME) or os.getcwd()).resolve()


def state_dir() -> Path:
    """`.arbees/` under the project root (logs, runs, spool, embedded servers)."""
    from arbees_core import settings as S

    return Path(Env().get(S.ARBEES_STATE_DIR) or project_root() / ".arbees")


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
    from arbees_core import settings as S

    path = path or Path(Env().get(S.ARBEES_ENV_FILE) or project_root() / ".env")
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
    """The settings of one environment, read through their declarations (`arbees_core.settings`): every read has
    the declared type and default, and a malformed value is a `ConfigError` naming the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def get(self, setting: Setting[T], default: Any = UNSET) -> T:
        """`setting`'s value here: `default` (else the declared default) when unset."""
        return setting.read(self._env, default)

    def check(self, reader: str) -> None:
        """Read every setting `reader` (a service name, or `arbees`) reads: the first malformed one raises its
        ConfigError, even one this start would not have read (a live-venue setting of a simulated stack)."""
        from arbees_core.settings.model import read_by

        for setting in read_by(reader):
            setting.read(self._env)

    def __getattr__(self, name: str) -> Any:
        """`env.int("NAME", ...)` and the other by-name reads are gone: say how to read a setting now."""
        raise AttributeError(f"Env.{name}: settings are read through their declarations: declare the variable in "
                             "arbees_core/settings/__init__.py and read it with env.get(S.NAME)")

    def is_set(self, setting: Setting[Any]) -> bool:
        """Whether `setting` is set to something other than blanks (an explicit request, not the default)."""
        return bool((setting.raw(self._env) or "").strip())


def redact_dsn(dsn: str) -> str:
    """The DSN with its password masked, in URL (`postgresql://u:pw@h/db`) or key=value (`password=pw`) form."""
    return mask_dsn_passwords(dsn)


def is_secret_name(name: str) -> bool:
    """Whether `name` is a credential (its value is never shown): declared secret, or named like one (a setting
    arbees does not read, e.g. a venue key in `.env` for another tool, is still never shown)."""
    from arbees_core.settings.model import is_declared_secret

    return is_declared_secret(name) or bool(_SECRET_NAME.search(name))


def redact_value(name: str, value: str) -> str:
    """The value safe to show: secrets become `***`, passwords inside URLs are masked."""
    if is_secret_name(name) and value:
        return REDACTED
    return mask_url_passwords(value)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` safe to print or store."""
    return {k: redact_value(k, v) for k, v in env.items()}
