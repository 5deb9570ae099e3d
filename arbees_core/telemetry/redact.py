"""Credentials never reach a log line, at any level, from any logger (ours or a library's).

`SecretFilter` sits on every handler that `setup_logging` installs, so it sees each record of the process: our
loggers and the third-party ones that propagate to the root (websockets, httpx, httpcore, urllib3, psycopg,
redis). It renders the record once and masks, wherever they appear:

- the values of credential headers (`KALSHI-ACCESS-KEY`, `-SIGNATURE`, `-TIMESTAMP`, `Authorization`,
  `Proxy-Authorization`, `Cookie`), in `Name: value` lines (websockets' DEBUG handshake dump) and in dict reprs;
- PEM blocks (`-----BEGIN ... KEY-----` to its END line, or to the end of the text when cut short);
- passwords inside URLs (`scheme://user:***@host`) and in libpq key=value strings (`password=***`);
- every value registered with `register_secret` (the Kalshi key id, each line of the loaded private key, the
  values of secret-named environment variables), so a fragment of the key is masked even without context;
- long base64 runs (>= 100 characters with letters of both cases and digits), the shape of an RSA signature
  (344 characters for a 2048-bit key) wherever one lands without its header name.

The record's message is replaced by the masked text (arguments dropped), and its traceback text is masked too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from arbees_core.config import REDACTED as MASK
from arbees_core.config import mask_url_passwords

#: Values shorter than this are not registered: masking "1" or "true" everywhere would wreck every line.
MIN_SECRET_LEN: Final = 8

_HEADER = re.compile(
    r"(?i)(?P<name>kalshi-access-(?:key|signature|timestamp)|proxy-authorization|authorization|set-cookie|cookie"
    r"|x-api-key)(?P<sep>['\"]?\s*[:=]\s*(?:b?['\"])?)(?P<value>[^'\"\r\n,}]+)")
_PEM = re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ]+)-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
_KV_PASSWORD = re.compile(r"(?i)(?P<pre>\b(?:password|passwd|pwd)\s*=\s*)(?P<pw>'[^']*'|\S+)")
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{100,}={0,2}")
_PEM_LINE = re.compile(r"^[A-Za-z0-9+/=]{16,}$")


class SecretRegistry:
    """Literal secret values known to this process; masked wherever they appear, with or without context."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Mask `value` from now on (ignored when shorter than MIN_SECRET_LEN). A PEM text registers each line
        of its body too, so a fragment of the key is masked on its own."""
        text = (value or "").replace("\\n", "\n").strip()
        parts = [text] if len(text) >= MIN_SECRET_LEN else []
        if "-----BEGIN" in text:
            parts += [ln.strip() for ln in text.splitlines() if _PEM_LINE.match(ln.strip())]
        new = {p for p in parts if len(p) >= MIN_SECRET_LEN} - self._values
        if new:
            with self._lock:
                self._values |= new
                ordered = sorted(self._values, key=len, reverse=True)  # the longest match wins
                self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def register_env(self, environ: Mapping[str, str], is_secret_name: Callable[[str], bool]) -> None:
        """Register the values of secret-named variables (not *_PATH / *_FILE: those name a file, not a secret)."""
        for name, value in environ.items():
            if is_secret_name(name) and not name.upper().endswith(("_PATH", "_FILE")):
                self.register(value)

    def mask(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


#: The process's registry: the signer and `setup_logging` fill it, `SecretFilter` reads it.
SECRETS: Final = SecretRegistry()


def register_secret(value: str) -> None:
    """Never log `value` (nor, for a PEM key, any line of it) from now on."""
    SECRETS.register(value)


def _mixed_base64(match: re.Match[str]) -> str:
    run = match.group(0)
    has_all = any(c.islower() for c in run) and any(c.isupper() for c in run) and any(c.isdigit() for c in run)
    return MASK if has_all else run


def redact_text(text: str, registry: SecretRegistry = SECRETS) -> str:
    """`text` with every credential the module docstring lists masked."""
    if not text:
        return text
    out = _PEM.sub(lambda m: f"-----BEGIN {m.group('kind')}----- {MASK}", text)
    out = registry.mask(out)
    out = _HEADER.sub(lambda m: m.group("name") + m.group("sep") + MASK, out)
    out = mask_url_passwords(out)
    out = _KV_PASSWORD.sub(lambda m: m.group("pre") + MASK, out)
    return _BASE64_RUN.sub(_mixed_base64, out)


class SecretFilter(logging.Filter):
    """Masks credentials in every record it sees (message, arguments and traceback); never drops a record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "arbees_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the logging module's to report, not ours
            return True
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        record.arbees_redacted = True
        return True


def install(handlers: Iterable[logging.Handler]) -> SecretFilter:
    """Put the one SecretFilter on each of `handlers` and on every handler any named logger already has."""
    secret_filter = next((f for h in logging.getLogger().handlers for f in h.filters
                          if isinstance(f, SecretFilter)), SecretFilter())
    every = list(handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        every += getattr(logger, "handlers", [])
    for handler in every:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(secret_filter)
    return secret_filter
