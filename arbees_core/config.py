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
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

from arbees_core.errors import ArbeesError

if TYPE_CHECKING:
    from arbees_core.settings.model import Setting

T = TypeVar("T")
_SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|PASS|TOKEN|PEM|PRIVATE|CREDENTIAL)", re.IGNORECASE)
_ENDPOINT = re.compile(r"^(tcp://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.*-]+):\d{1,5}|ipc://\S+|inproc://\S+)$")
_URL_PASSWORD = re.compile(r"(?P<pre>://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<post>@)")
REDACTED: Final = "***"
_USERINFO = re.compile(r"(?P<pre>(^|[\s/])[^:/@\s]*:)(?!\*\*\*@)[^@\s/]+@")


class ConfigError(ArbeesError, ValueError):
    """A configuration value that cannot be used; the message names the variable and what was expected."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "No default given": the declared default applies.
UNSET: Any = _Unset()


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


def check_endpoint(name: str, value: str) -> str:
    """`value` when it is a ZMQ endpoint (tcp://host:port, ipc://path, inproc://name); else a ConfigError."""
    m = _ENDPOINT.match(value)
    port_ok = not value.startswith("tcp://") or (m is not None and 0 < int(value.rsplit(":", 1)[1]) < 65536)
    if m is None or not port_ok:
        raise ConfigError(f"{name}: {value!r} is not a ZMQ endpoint (expected tcp://host:port, ipc://path or "
                          "inproc://name)")
    return value


def _mask_userinfo(value: str) -> str:
    """`user:secret@host` masked even without a scheme (a malformed URL is shown in its error, never its password)."""
    return _USERINFO.sub(lambda m: m.group("pre") + REDACTED + "@", value)


def check_redis_url(name: str, value: str) -> str:
    """`value` when redis-py can use it: redis:// or rediss:// with a numeric port and database, or unix://.
    Anything else is a ConfigError naming the variable (password masked): a wrong scheme never heals by retrying,
    unlike a server that refuses us for now, so the service stops once instead of waiting (runner.main)."""
    from redis.connection import parse_url

    shown = _mask_userinfo(redact_value(name, value))
    expected = "expected redis://[user:password@]host:port/db, rediss://... or unix:///path?db=N"
    try:
        parse_url(value)
    except ValueError as e:
        raise ConfigError(f"{name}: {shown!r} is not a Redis URL ({e}); {expected}") from None
    database = urlsplit(value).path.strip("/")
    if not value.startswith("unix") and database and not database.isdigit():
        raise ConfigError(f"{name}: {shown!r} names database {database!r}, not a number; {expected}")
    return value


#: A `password=...` setting of a key=value DSN (quoted or not).
_KV_PASSWORD = re.compile(r"(?P<pre>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """The DSN with its password masked, in URL (`postgresql://u:pw@h/db`) or key=value (`password=pw`) form."""
    masked = redact_value("DATABASE_URL", dsn)
    return _KV_PASSWORD.sub(lambda m: m.group("pre") + REDACTED, masked)


def check_database_url(name: str, value: str) -> str:
    """`value` when libpq can parse it: a postgresql:// or postgres:// URL, or key=value settings, with a numeric
    port. Anything else (`mysql://...`) is a ConfigError naming the variable, password masked."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    shown = _mask_userinfo(redact_dsn(value))
    expected = "expected postgresql://user:password@host:port/database or key=value settings (host=... dbname=...)"
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme and scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"{name}: {shown!r} is not a PostgreSQL URL (scheme {scheme}://); {expected}")
    try:
        params = conninfo_to_dict(value)
    except ProgrammingError:  # its message quotes the whole value, password included
        raise ConfigError(f"{name}: {shown!r} cannot be parsed as PostgreSQL connection settings; {expected}") from None
    port = str(params.get("port") or "")
    if port and not all(p.strip().isdigit() for p in port.split(",")):
        raise ConfigError(f"{name}: {shown!r} has port {port!r}, not a number; {expected}")
    return value


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


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it masked (`redis://:***@host`, `http://user:***@proxy`)."""
    return _URL_PASSWORD.sub(lambda m: m.group("pre") + REDACTED + m.group("post"), text)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` safe to print or store."""
    return {k: redact_value(k, v) for k, v in env.items()}
