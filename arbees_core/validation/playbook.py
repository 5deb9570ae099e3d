"""Playbooks: the plan's phases as YAML data, validated before anything runs, executed step by step (`steps.py`);
and the one reader of every playbook file (`read_document`, also behind the diagnose targets' playbooks).

A playbook is a list of steps. Each step either acts (write `.env`, start or restart services, wait) or checks a
success criterion of the plan and records a `Check` with its evidence (log line found, stream length, SQL rows,
env value...). Step kinds and their fields are typed (msgspec structs, unknown fields forbidden), so a typo in a
playbook is reported with file, line and reason before the first step runs.

Text fields may name the stack's real wiring: `{port:kalshi_monitor}` -> the port it binds,
`{endpoint:game_shard}` -> `tcp://<host>:<port>` as subscribers see it, `{env:MIN_EDGE_PCT}` -> the `.env` value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from arbees_core.errors import ArbeesError
from arbees_core.registry import spec

PLAYBOOK_DIR = Path(__file__).resolve().parents[2] / "playbooks"


class PlaybookError(ArbeesError, ValueError):
    """A playbook that cannot run: `file:line: reason`."""


# -- step kinds -------------------------------------------------------------------------------------------------------


class _Step(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    name: str = ""
    critical: bool = True
    line: int = 0


class SetEnv(_Step, tag="set_env"):
    """Write keys into `.env` (one definition per key). With `restart_running`, running services whose real
    environment differs are restarted so the value takes effect."""

    values: dict[str, str]
    restart_running: bool = True


class Start(_Step, tag="start"):
    """Start services (already running ones are left alone)."""

    services: list[str]


class Restart(_Step, tag="restart"):
    """Restart services (default: all) with the current `.env`; records how long it took."""

    services: list[str] = []


class Sleep(_Step, tag="sleep"):
    seconds: float


class WaitLog(_Step, tag="wait_log"):
    """A line of `service`'s log matching `pattern` (regex unless `literal`) appears within `timeout` seconds.

    since: `process` (default) counts the lines of the service's current process, however long it has run, so a
    phase run on a stack that is already up in the right mode sees its start-up lines; `run` only lines written
    since the playbook started; `all` the whole log, earlier processes included. The evidence is the latest
    matching line. explain: a regex for the lines that say why `pattern` is missing (e.g. `Signal ... rejected:
    <reason>`); when no line matches, their count and the latest of them are the evidence."""

    service: str
    pattern: str
    literal: bool = True
    timeout: float = 30.0
    since: Literal["process", "run", "all"] = "process"
    explain: str = ""


class NoErrors(_Step, tag="no_errors"):
    """No ERROR/CRITICAL lines (or lines matching `pattern`) in the services' logs since the run started."""

    services: list[str]
    pattern: str = r" (ERROR|CRITICAL) "


class StreamLen(_Step, tag="stream_len"):
    """`XLEN stream` >= `min`; with `grows`, it must also grow within `within` seconds (data still flowing)."""

    stream: str
    min: int = 1
    timeout: float = 30.0
    grows: bool = False
    within: float = 10.0


class StreamLatest(_Step, tag="stream_latest"):
    """`XREVRANGE stream + - COUNT 1` holds a message with these fields (the plan: ticker, yes_ask, yes_bid)."""

    stream: str
    fields: list[str]


class PortOpen(_Step, tag="port_open"):
    """The service's ZMQ port accepts a TCP connection (the plan's `nc -zv kalshi_monitor 5555`)."""

    service: str


class EnvEquals(_Step, tag="env_equals"):
    """The running service's real environment has `var` = `value` (the plan's `docker exec <svc> env`)."""

    service: str
    var: str
    value: str


class Counter(_Step, tag="counter"):
    """A counter of the service's metrics reaches `min` within `timeout` (or stays <= `max`)."""

    service: str
    counter: str
    min: int | None = None
    max: int | None = None
    timeout: float = 30.0


class Sql(_Step, tag="sql"):
    """A query against DATABASE_URL; `min_rows`, and per column `max`/`not_null` expectations on every row."""

    query: str
    min_rows: int = 1
    not_null: list[str] = []
    max: dict[str, float] = {}
    timeout: float = 30.0
    show: int = 5


class Running(_Step, tag="running"):
    """The services run (none restarting, none exited)."""

    services: list[str] = []


class Collect(_Step, tag="collect"):
    """Hand over to a measurement collector (`latency` for phase 4, `soak` for phase 5); options are defaults the
    CLI may override (windows, window_seconds, warmup_seconds / duration_seconds, interval_seconds)."""

    collector: Literal["latency", "soak"]
    options: dict[str, float] = {}


class Stop(_Step, tag="stop"):
    """Stop services (and keep them stopped: no restart) until a later `start`."""

    services: list[str]


class Window(_Step, tag="window"):
    """Watch the stack for `seconds` (the CLI's `--window` overrides it): prices reach game_shard, at least
    `min_trades` signals are executed, nothing is lost, no service restarts."""

    seconds: float = 60.0
    min_trades: int = 1


class Diagnose(_Step, tag="diagnose"):
    """`arbees diagnose <target>` for each target: one check each, passing when the diagnosis finds no fault."""

    targets: list[str]


class Dashboard(_Step, tag="dashboard"):
    """The api's view: it answers, reads the live feed from `source` (zmq | redis), shows every service's health
    and a trade executed within `timeout` seconds."""

    source: Literal["zmq", "redis"]
    timeout: float = 60.0


class Decide(_Step, tag="decide"):
    """`arbees decide` on the stored results: it reads them and gives a decision (whichever)."""


Step = SetEnv | Start | Restart | Sleep | WaitLog | NoErrors | StreamLen | StreamLatest | PortOpen | EnvEquals | \
    Counter | Sql | Running | Collect | Stop | Window | Diagnose | Dashboard | Decide
STEP_KINDS = ("set_env", "start", "restart", "sleep", "wait_log", "no_errors", "stream_len", "stream_latest",
              "port_open", "env_equals", "counter", "sql", "running", "collect", "stop", "window", "diagnose",
              "dashboard", "decide")


class Playbook(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    title: str
    goal: str = ""
    steps: list[Step]
    path: str = ""


# -- loading ----------------------------------------------------------------------------------------------------------
# The one reader of playbook files: the phases' (below) and the diagnose targets' (diagnose/playbooks.py) both go
# through `read_document`, so a missing file, bad YAML or a document that is not a mapping is the same
# PlaybookError naming file and line, whichever kind of playbook it is.

_LOADERS: dict[str, type[yaml.SafeLoader]] = {}


def _line_loader(key: str) -> type[yaml.SafeLoader]:
    """A safe YAML loader that adds `line` (1-based) to every mapping holding `key` (a phase's steps: `kind`; a
    diagnose target's probes: `id`), so errors can point at it. Other mappings (a step's `values`) stay as written."""
    if key not in _LOADERS:
        class Loader(yaml.SafeLoader):
            pass

        def construct(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
            mapping = loader.construct_mapping(node, deep=True)
            if key in mapping:
                mapping["line"] = node.start_mark.line + 1
            return mapping

        Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct)
        _LOADERS[key] = Loader
    return _LOADERS[key]


def read_document(path: Path, item_key: str, shape: str) -> dict[str, Any]:
    """The YAML mapping in `path`, each mapping holding `item_key` carrying its `line`; `shape` says what the
    document should be when it is not a mapping."""
    try:
        raw = yaml.load(path.read_text(), Loader=_line_loader(item_key))
    except FileNotFoundError as e:
        raise PlaybookError(f"{path}: no such playbook") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PlaybookError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from e
    if not isinstance(raw, dict):
        raise PlaybookError(f"{path}:1: {shape}")
    return raw


def load_playbook(path: Path) -> Playbook:
    """Parse and validate one phase playbook file; every problem is a PlaybookError naming file and line."""
    raw = read_document(path, "kind", "a playbook is a mapping with name, title and steps")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise PlaybookError(f"{path}:1: `steps` must be a non-empty list")
    for i, step in enumerate(steps, 1):
        _check_step(path, i, step)
    try:
        book = msgspec.convert({**raw, "path": str(path)}, Playbook)
    except msgspec.ValidationError as e:
        raise PlaybookError(f"{path}:1: {e}") from e
    return book


def _check_step(path: Path, index: int, step: Any) -> None:
    if not isinstance(step, dict):
        raise PlaybookError(f"{path}: step {index} is not a mapping")
    line = step.get("line", 0)
    where = f"{path}:{line}: step {index}"
    kind = step.get("kind")
    if kind not in STEP_KINDS:
        raise PlaybookError(f"{where}: unknown step kind {kind!r} (known: {', '.join(STEP_KINDS)})")
    try:
        parsed = msgspec.convert(step, Step)
    except msgspec.ValidationError as e:
        raise PlaybookError(f"{where} ({kind}): {e}") from e
    for attr in ("service", "services"):
        names = getattr(parsed, attr, None)
        for name in [names] if isinstance(names, str) else names or []:
            try:
                spec(name)
            except KeyError as e:
                raise PlaybookError(f"{where} ({kind}): {e.args[0]}") from e
    for attr in ("pattern", "explain"):
        pattern = getattr(parsed, attr, None)
        if pattern and (attr == "explain" or not getattr(parsed, "literal", False)):
            try:
                re.compile(pattern)
            except re.error as e:
                raise PlaybookError(f"{where} ({kind}): bad regex {pattern!r}: {e}") from e


def playbook_path(name: str, folder: Path | None = None) -> Path:
    return (folder or PLAYBOOK_DIR) / f"{name}.yaml"
