"""The servers a service depends on (Redis, PostgreSQL) as this process sees them: unusable is a state, not a crash.

A peer is "not usable yet" whatever the cause: refused or timed-out connections, and a server that answers with an
error (Redis `DENIED` in protected mode, `NOAUTH` / `WRONGPASS`, an ACL user's `NOPERM`, `DB index is out of range`,
`LOADING`, `READONLY`; PostgreSQL's `password authentication failed`, `database "x" does not exist`). A service
never exits for it (under a supervisor or compose's `restart:` that exit became a restart loop with a traceback
each time): every component that talks to the peer paces its own retries with a `PeerLink` (exponential backoff,
capped) and reports to the one `Peer` of the process, which logs

- `Redis unavailable at 127.0.0.1:6379/0: <the server's own reason>; <what the component does meanwhile>` when the
  first component fails,
- `Redis still unavailable at 127.0.0.1:6379/0: now <reason>` when a reason not yet logged in this outage appears,
- `Redis back after 3.2s at 127.0.0.1:6379/0` once no component fails any more.

So an outage costs one line per distinct reason however many components retry (health reporter, publisher,
readers, kill switch, trade writer). Locations are host:port/database, never a password. The state of every peer
goes into the service's metrics snapshot (`peers_view`), where `arbees status` reads it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

log = logging.getLogger("arbees.peers")

#: First wait after a failure, and the cap of the doubling waits, seconds.
BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 5.0
#: Longest server reason kept in a log line (Redis' DENIED explanation runs to 1 400 characters), characters.
REASON_MAX = 300
_QUOTED = re.compile(r"'[^']*'")


def describe(error: BaseException) -> str:
    """The server's own reason, on one line: `reason` when the error carries one (StoreUnavailable), else the
    error's type and the first line of its message (libpq repeats its message per address tried; redis-py drops
    the reply's code, `NOAUTH`, `NOPERM`, ..., and says it by the type: `AuthenticationError`, `NoPermissionError`)."""
    reason = getattr(error, "reason", "")
    if not reason:
        text = str(error).strip()
        first = text.splitlines()[0].strip() if text else ""
        reason = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"


def _reason_key(reason: str) -> str:
    """What makes two reasons the same: Redis' NOPERM names the refused command (`'info'`, `'xadd'`), and one
    user without permissions should read as one reason, not one per command."""
    return _QUOTED.sub("'…'", reason)


class Peer:
    """One server (kind + location) shared by every component of the process that uses it. Thread-safe."""

    def __init__(self, kind: str, location: str) -> None:
        self.kind, self.location = kind, location
        self._lock = threading.Lock()
        self._failing: dict[int, str] = {}  # id(link) -> its last reason
        self._logged: set[str] = set()
        self.down_since: float | None = None
        self.reason = ""

    @property
    def usable(self) -> bool:
        return self.down_since is None

    def failed(self, link: object, error: BaseException, context: str = "") -> None:
        """`link` could not use the peer: log when the outage starts, or when its reason is new in this outage."""
        reason = describe(error)
        with self._lock:
            self._failing[id(link)] = reason
            self.reason = reason
            key = _reason_key(reason)
            if self.down_since is None:
                self.down_since = time.monotonic()
                self._logged = {key}
                log.error("%s unavailable at %s: %s; %s", self.kind, self.location, reason,
                          context or "retrying with backoff")
            elif key not in self._logged:
                self._logged.add(key)
                log.error("%s still unavailable at %s: now %s", self.kind, self.location, reason)

    def ok(self, link: object) -> None:
        """`link` used the peer: when no component fails any more, log the end of the outage once."""
        with self._lock:
            self._failing.pop(id(link), None)
            if self.down_since is not None and not self._failing:
                log.info("%s back after %.1fs at %s", self.kind, time.monotonic() - self.down_since, self.location)
                self.down_since, self.reason, self._logged = None, "", set()

    def forget(self, link: object) -> None:
        """A component that stops using the peer no longer holds its outage open (no line: nothing was proven)."""
        with self._lock:
            self._failing.pop(id(link), None)
            if self.down_since is not None and not self._failing:
                self.down_since, self.reason, self._logged = None, "", set()

    def view(self) -> dict[str, Any]:
        """For the metrics snapshot: usable, and while not: the reason and for how long (seconds)."""
        with self._lock:
            if self.down_since is None:
                return {"kind": self.kind, "location": self.location, "usable": True}
            return {"kind": self.kind, "location": self.location, "usable": False, "reason": self.reason,
                    "down_s": round(time.monotonic() - self.down_since, 1)}


_registry: dict[tuple[str, str], Peer] = {}
_registry_lock = threading.Lock()


def peer(kind: str, location: str) -> Peer:
    """The process's one `Peer` for this server."""
    with _registry_lock:
        return _registry.setdefault((kind, location), Peer(kind, location))


def peers_view() -> list[dict[str, Any]]:
    """Every peer this process has used, for the metrics snapshot (`arbees status` shows the unusable ones)."""
    with _registry_lock:
        peers = list(_registry.values())
    return [p.view() for p in peers]


def reset_peers() -> None:
    """Forget every peer (tests run many components in one process)."""
    with _registry_lock:
        _registry.clear()


class PeerLink:
    """One component's use of a peer: paces its retries (doubling waits from BACKOFF_START_S, capped at
    BACKOFF_MAX_S) and reports failures and successes to the shared `Peer`, which does the logging."""

    def __init__(self, target: Peer, what: str = "") -> None:
        self.peer, self.what = target, what
        self.down_since: float | None = None
        self.next_try = 0.0
        self.delay = BACKOFF_START_S
        self.errors = 0

    def may_try(self) -> bool:
        return self.down_since is None or time.monotonic() >= self.next_try

    def wait_s(self) -> float:
        """Seconds until the next attempt is due (0 when it may try now)."""
        return 0.0 if self.down_since is None else max(0.0, self.next_try - time.monotonic())

    def failed(self, error: BaseException, context: str = "") -> None:
        """context: what this component does meanwhile, for the outage's first line (`trades are spooled to ...`)."""
        self.errors += 1
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
        self.next_try = now + self.delay
        self.delay = min(self.delay * 2, BACKOFF_MAX_S)
        self.peer.failed(self, error, context)

    def ok(self) -> float | None:
        """Mark success; returns how long this component's own outage lasted (seconds) when one just ended."""
        if self.down_since is None:  # the common case, on every successful call: no lock taken
            return None
        took = time.monotonic() - self.down_since
        self.down_since, self.delay = None, BACKOFF_START_S
        self.peer.ok(self)
        return took

    def close(self) -> None:
        self.peer.forget(self)
