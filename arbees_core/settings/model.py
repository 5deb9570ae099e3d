"""What a setting is: one typed declaration per environment variable, and how its value is parsed.

A declaration carries everything a reader of the code, an operator and the README need: the name, the type (its
class), the default, the unit, which services read it, one line of doc, and whether it is a secret. Declaring one
registers it (`DECLARED`), so `arbees_core/settings/__init__.py` is the one list, and the registry's per-service
settings, the preflight check, `--help` and the README table all derive from it.

Parsing never guesses: `ZMQ_SNDHWM=1.9` is `ZMQ_SNDHWM: expected an integer, was '1.9'`, not 1; a secret's value
never appears in an error or a repr.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from arbees_core.config_checks import REDACTED, UNSET, ConfigError, check_database_url, check_endpoint, check_redis_url

T = TypeVar("T")
#: Every declared setting by name, in declaration order.
DECLARED: dict[str, Setting[Any]] = {}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, eq=False)
class Setting(Generic[T]):
    """One environment variable. readers: the services (or `arbees`, the CLI and its runtimes) that read it;
    shown_default: the README's text when the default is computed (per service, from the state folder);
    also: other spellings read when `name` is unset (`https_proxy`)."""

    name: str
    default: T
    doc: str
    readers: tuple[str, ...]
    unit: str = ""
    secret: bool = False
    shown_default: str = ""
    also: tuple[str, ...] = ()
    #: What a value must look like, in an error and the README ("an integer", "true/false").
    expected: ClassVar[str] = "a string"
    #: Whether a blank value means the default (else it is parsed like any other value).
    blank_is_default: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.name in DECLARED:
            raise ValueError(f"{self.name} is declared twice (arbees_core/settings)")
        DECLARED[self.name] = self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"

    def read(self, environ: Mapping[str, str], default: Any = UNSET) -> T:
        """The value in `environ` (`default`, else the declared default, when unset); ConfigError when malformed."""
        raw = self.raw(environ)
        if raw is None or (self.blank_is_default and not raw.strip()):
            return self.default if default is UNSET else default
        return self.parse(raw)

    def raw(self, environ: Mapping[str, str]) -> str | None:
        """The value as set (under `name`, else the first of `also` that is set), None when unset."""
        for name in (self.name, *self.also):
            if environ.get(name) is not None:
                return environ[name]
        return None

    def parse(self, raw: str) -> T:
        return raw.strip()  # type: ignore[return-value]

    def problem(self, raw: str, expected: str = "") -> ConfigError:
        """The one error: the variable, what was expected, the value (never a secret's)."""
        shown = REDACTED if self.secret else raw
        return ConfigError(f"{self.name}: expected {expected or self.expected}, was {shown!r}")

    def describe(self) -> str:
        """The type as the README says it."""
        return self.expected


@dataclass(frozen=True, eq=False, repr=False)
class Str(Setting[str]):
    """Text. empty_ok: an empty value is kept (it turns the thing off) instead of meaning the default."""

    empty_ok: bool = False

    def read(self, environ: Mapping[str, str], default: Any = UNSET) -> str:
        raw = self.raw(environ)
        if raw is not None and self.empty_ok:
            return raw.strip()
        return super().read(environ, default)


@dataclass(frozen=True, eq=False, repr=False)
class Bool(Setting[bool]):
    """true/false (1/0, yes/no, on/off); set but blank is false."""

    expected: ClassVar[str] = "true/false"
    blank_is_default: ClassVar[bool] = False

    def parse(self, raw: str) -> bool:
        value = raw.strip().lower()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        raise self.problem(raw)


@dataclass(frozen=True, eq=False, repr=False)
class Int(Setting[int]):
    """An integer; `1e4` or `10000.0` are read as 10000, `1.9` is an error (never truncated)."""

    minimum: int | None = None
    maximum: int | None = None
    expected: ClassVar[str] = "an integer"

    def parse(self, raw: str) -> int:
        text = raw.strip()
        try:
            value = int(text)
        except ValueError:
            value = _integral(text)
            if value is None:
                raise self.problem(raw) from None
        _check_range(self, value, raw)
        return value

    def describe(self) -> str:
        return _ranged("integer", self.minimum, self.maximum)


def _integral(text: str) -> int | None:
    """`text` as an int when it is a whole number written as a float (`1e4`, `100.0`), else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _check_range(setting: Int | Float, value: float, raw: str) -> None:
    low, high = setting.minimum, setting.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        shown = REDACTED if setting.secret else raw.strip()
        raise ConfigError(f"{setting.name}: expected {_ranged(setting.expected, low, high)}, was {shown!r}")


def _ranged(what: str, low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{what} from {low:g} to {high:g}"
    if low is not None:
        return f"{what} >= {low:g}"
    return f"{what} <= {high:g}" if high is not None else what


@dataclass(frozen=True, eq=False, repr=False)
class Float(Setting[float]):
    """A number (not NaN)."""

    minimum: float | None = None
    maximum: float | None = None
    expected: ClassVar[str] = "a number"

    def parse(self, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise self.problem(raw) from None
        if math.isnan(value):
            raise self.problem(raw)
        _check_range(self, value, raw)
        return value

    def describe(self) -> str:
        return _ranged("number", self.minimum, self.maximum)


@dataclass(frozen=True, eq=False, repr=False)
class Choice(Setting[str]):
    """One of `choices` (case-insensitive; `aliases` map other spellings), returned as spelled in `choices`."""

    choices: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)

    def parse(self, raw: str) -> str:
        by_key = {c.lower(): c for c in self.choices} | {a.lower(): c for a, c in self.aliases.items()}
        value = by_key.get(raw.strip().lower())
        if value is None:
            raise self.problem(raw)
        return value

    def describe(self) -> str:
        return " | ".join(self.choices)

    def problem(self, raw: str, expected: str = "") -> ConfigError:
        choices = list(self.choices)
        return super().problem(raw, expected or f"{', '.join(choices[:-1])} or {choices[-1]}")


@dataclass(frozen=True, eq=False, repr=False)
class StrList(Setting[tuple[str, ...]]):
    """A comma list (blank items dropped)."""

    expected: ClassVar[str] = "a comma list"

    def parse(self, raw: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True, eq=False, repr=False)
class FloatList(Setting[tuple[float, ...]]):
    """A comma list of numbers."""

    expected: ClassVar[str] = "a comma list of numbers"

    def parse(self, raw: str) -> tuple[float, ...]:
        try:
            values = tuple(float(item) for item in raw.split(",") if item.strip())
        except ValueError:
            raise self.problem(raw) from None
        if any(math.isnan(v) for v in values):
            raise self.problem(raw)
        return values


@dataclass(frozen=True, eq=False, repr=False)
class Endpoint(Setting[str]):
    """One ZMQ endpoint (tcp://host:port, ipc://path, inproc://name)."""

    expected: ClassVar[str] = "a ZMQ endpoint"

    def parse(self, raw: str) -> str:
        return check_endpoint(self.name, raw.strip())


@dataclass(frozen=True, eq=False, repr=False)
class Endpoints(Setting[tuple[str, ...]]):
    """A comma list of ZMQ endpoints, each checked at start."""

    expected: ClassVar[str] = "a comma list of ZMQ endpoints"

    def parse(self, raw: str) -> tuple[str, ...]:
        return tuple(check_endpoint(self.name, item.strip()) for item in raw.split(",") if item.strip())


@dataclass(frozen=True, eq=False, repr=False)
class RedisUrl(Setting[str]):
    """A Redis URL (redis://, rediss://, unix://), password masked in its error."""

    expected: ClassVar[str] = "a Redis URL"

    def parse(self, raw: str) -> str:
        return check_redis_url(self.name, raw.strip())


@dataclass(frozen=True, eq=False, repr=False)
class DatabaseUrl(Setting[str]):
    """A PostgreSQL URL or key=value DSN, password masked in its error; "" when unset."""

    expected: ClassVar[str] = "a PostgreSQL URL"

    def parse(self, raw: str) -> str:
        return check_database_url(self.name, raw.strip())


def declared(name: str) -> Setting[Any]:
    """The declaration of `name`; KeyError saying where to declare it."""
    try:
        return DECLARED[name]
    except KeyError:
        raise KeyError(f"{name} is not a declared setting: declare it in arbees_core/settings/__init__.py") from None


def read_by(reader: str) -> list[Setting[Any]]:
    """The settings `reader` (a service name, or `arbees`) reads, in declaration order."""
    return [s for s in DECLARED.values() if reader in s.readers]


def is_declared_secret(name: str) -> bool:
    setting = DECLARED.get(name)
    return setting is not None and setting.secret
