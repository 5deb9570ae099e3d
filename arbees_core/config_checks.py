"""What the configuration (`config`) and the settings' declarations (`settings.model`) both need, importing
neither: the error a malformed value raises, the "no default given" marker, the mask shown for a secret, and the
checks of endpoint and server URL values (a URL's password masked in their messages).
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

from arbees_core.errors import ArbeesError

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

    shown = _mask_userinfo(mask_url_passwords(value))
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


def mask_dsn_passwords(dsn: str) -> str:
    """The DSN with its password masked, in URL (`postgresql://u:pw@h/db`) or key=value (`password=pw`) form."""
    return _KV_PASSWORD.sub(lambda m: m.group("pre") + REDACTED, mask_url_passwords(dsn))


def check_database_url(name: str, value: str) -> str:
    """`value` when libpq can parse it: a postgresql:// or postgres:// URL, or key=value settings, with a numeric
    port. Anything else (`mysql://...`) is a ConfigError naming the variable, password masked."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    shown = _mask_userinfo(mask_dsn_passwords(value))
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


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it masked (`redis://:***@host`, `http://user:***@proxy`)."""
    return _URL_PASSWORD.sub(lambda m: m.group("pre") + REDACTED + m.group("post"), text)
