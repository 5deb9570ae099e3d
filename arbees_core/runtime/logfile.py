"""A service's log file as the local runtime reads it: the lines since a time or the last N (a traceback line
belongs to the record above it), new lines as they are written, and the error that ended a process."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

_LOG_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3})Z ")
_ERROR_LINE = re.compile(r"^\S+ (?:ERROR|CRITICAL) \S+: (.*)$")


def last_error(lines: list[str]) -> str:
    """The last error of a log: its ERROR / CRITICAL line's message, or, when a traceback follows it, the
    traceback's last line (the exception and its message: "Uncaught FileNotFoundError" says less)."""
    for i in range(len(lines) - 1, -1, -1):
        m = _ERROR_LINE.match(lines[i])
        if m:
            traceback = [ln.strip() for ln in lines[i + 1:] if ln.strip() and not _LOG_TS.match(ln)]
            return traceback[-1] if traceback else m.group(1)
    return ""


def read_log(path: Path, since_s: float | None = None, tail: int | None = None) -> str:
    """The log's lines of the last `since_s` seconds and/or its last `tail` lines; everything when both are None."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    if since_s is not None:
        cutoff = (datetime.now(timezone.utc) - timedelta(seconds=since_s)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]
        keep, last_ts = [], ""
        for line in lines:
            m = _LOG_TS.match(line)
            last_ts = m.group(1) if m else last_ts  # a traceback line belongs to the record above it
            if last_ts >= cutoff:
                keep.append(line)
        lines = keep
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return "\n".join(lines) + ("\n" if lines else "")


def follow_log(path: Path, poll_s: float = 0.2) -> Iterator[str]:
    """Lines appended to the log from now on (like `docker logs -f`), until the caller stops."""
    pos = path.stat().st_size if path.exists() else 0
    buf = ""
    while True:
        try:
            with path.open("r", errors="replace") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except FileNotFoundError:
            chunk = ""
        if chunk:
            buf += chunk
            *lines, buf = buf.split("\n")
            yield from lines
        else:
            time.sleep(poll_s)
