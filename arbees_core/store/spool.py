"""A durable local append-only spool of executed signals, so no paper trade is lost.

execution_service appends each executed signal (with its leg results) here *before* acknowledging the signal;
a writer thread moves spooled records into PostgreSQL and then advances the committed offset. PostgreSQL being
away, or the process being killed, therefore loses nothing: on restart the uncommitted records are replayed (the
database insert is idempotent per signal id, so replaying a record twice is harmless).

Format: one JSON object per line (`SpoolRecord`, msgspec). Each record is written with a single `os.write` on an
`O_APPEND` descriptor, so a `kill -9` leaves at most one torn last line; it is skipped when read and cut off
when the spool is next opened. The committed offset (end of the last record stored in PostgreSQL) lives in the
sidecar `<path>.committed`, replaced atomically, together with the spool file's inode: after a compaction the
old offset is then recognised as stale. Any doubt about the offset resolves to "replay from the start", which is
safe because inserts are idempotent.

Each record also names the signal's publisher instance and sequence number (`signal_src`, `signal_seq`), so a
restarted execution_service knows the last signal it handled and counts signals published while it was down as
lost (sequence gap) instead of missing them silently. Compaction therefore keeps the newest record (already
committed, so it is not replayed).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import msgspec

from arbees_core.messages import TradeResult

log = logging.getLogger("arbees.store.spool")


class SpoolRecord(msgspec.Struct):
    """One executed signal: what is stored in `executed_signals` and, per leg, in `paper_trades`."""

    signal_id: str
    game_id: str
    transport: str
    executed_ns: int
    results: list[TradeResult]
    edge_pct: float | None = None
    edge_cents: float | None = None
    signal_src: str = ""
    signal_seq: int = 0
    #: An exit's record (`signal_id` is the exit's id): the pair whose legs its sales close; "" for a signal.
    pair_id: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SpoolRecord)


class _IdOnly(msgspec.Struct):
    signal_id: str
    signal_src: str = ""
    signal_seq: int = 0


_id_decoder = msgspec.json.Decoder(_IdOnly)


class TradeSpool:
    """The spool file at `path`. `fsync=True` makes each append survive a power loss (at a latency cost).

    Thread-safe: the execution thread appends while the writer thread reads pending records, marks them
    committed and compacts. Offsets returned by `append`/`pending` are byte offsets of a record's end; they stay
    valid until `compact()`, which only the thread that marks records committed should call.
    """

    def __init__(self, path: Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.committed_path = self.path.with_name(self.path.name + ".committed")
        self._lock = threading.RLock()
        self._warned: set[int] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open()
        self._cut_torn_tail()
        self._committed = self._load_committed()

    # -- writing -----------------------------------------------------------------------------------------------

    def append(self, record: SpoolRecord) -> int:
        """Write one record durably (one `os.write`); return the file offset just past it."""
        data = _encoder.encode(record) + b"\n"
        with self._lock:
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = os.write(self._fd, data)
                while written < len(data):  # only on a short write (disk nearly full): finish the line
                    written += os.write(self._fd, data[written:])
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                os.ftruncate(self._fd, start)  # never leave a half line that the next append would glue onto
                raise
            return os.lseek(self._fd, 0, os.SEEK_CUR)

    def mark_committed(self, offset: int) -> None:
        """Record that everything up to `offset` is in PostgreSQL. Offsets only move forward."""
        with self._lock:
            if offset <= self._committed:
                return
            self._committed = offset
            self._store_committed(offset)

    def compact(self) -> None:
        """Rewrite the file with the last committed record (the sequence seed, see the module docstring) and the
        uncommitted ones; the committed offset becomes the end of that kept record.

        The new file is written beside the old one and renamed over it, so a crash at any point leaves either
        the old file (with its offset) or the new one (whose inode no longer matches the old offset: replayed).
        """
        with self._lock:
            if self._committed == 0:
                return
            size = os.fstat(self._fd).st_size
            with open(self.path, "rb") as f:
                committed = min(self._committed, size)
                back = min(committed, 1 << 16)
                f.seek(committed - back)
                head = f.read(back)
                rest = f.read()
            rest = rest[: rest.rfind(b"\n") + 1]  # a torn tail is not worth keeping
            start = head.rfind(b"\n", 0, len(head) - 1) + 1 if head.endswith(b"\n") else len(head)
            last = head[start:] if start > 0 or back == committed else b""  # a record longer than 64 KiB: dropped
            tmp = self.path.with_name(self.path.name + ".compact")
            with open(tmp, "wb") as f:
                f.write(last + rest)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._fsync_dir()
            os.close(self._fd)
            self._fd = self._open()
            self._committed = len(last)
            self._warned.clear()
            self._store_committed(len(last))
            log.debug("Compacted spool %s: %d bytes kept", self.path, len(rest))

    # -- reading -----------------------------------------------------------------------------------------------

    def pending(self) -> list[tuple[int, SpoolRecord]]:
        """The records after the committed offset, each with its end offset, in append order."""
        with self._lock:
            start = self._committed
            records: list[tuple[int, SpoolRecord]] = []
            for end, line in self._lines(start):
                try:
                    records.append((end, _decoder.decode(line)))
                except (msgspec.DecodeError, msgspec.ValidationError) as e:
                    self._warn_once(end, f"corrupt record ending at byte {end} skipped ({e})")
            return records

    def signal_ids(self) -> set[str]:
        """Every signal id in the spool, committed or not (idempotency across restarts)."""
        return self.scan()[0]

    def scan(self) -> tuple[set[str], dict[str, int]]:
        """Every signal id in the spool, and the highest signal sequence number per publisher instance."""
        with self._lock:
            ids: set[str] = set()
            last_seq: dict[str, int] = {}
            for _, line in self._lines(0):
                try:
                    rec = _id_decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                ids.add(rec.signal_id)
                if rec.signal_src:
                    last_seq[rec.signal_src] = max(rec.signal_seq, last_seq.get(rec.signal_src, 0))
            return ids, last_seq

    @property
    def committed_offset(self) -> int:
        return self._committed

    def size(self) -> int:
        """Current length of the spool file in bytes."""
        with self._lock:
            return os.fstat(self._fd).st_size

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # -- internals ---------------------------------------------------------------------------------------------

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _lines(self, start: int) -> list[tuple[int, bytes]]:
        """(end offset, line) for each complete line from `start`; a torn last line is skipped with a warning."""
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read()
        out: list[tuple[int, bytes]] = []
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                self._warn_once(start + len(data), f"torn last line ({len(data) - pos} bytes) skipped")
                break
            if nl > pos:
                out.append((start + nl + 1, data[pos:nl]))
            pos = nl + 1
        return out

    def _warn_once(self, key: int, what: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("Spool %s: %s", self.path, what)

    def _cut_torn_tail(self) -> None:
        """Remove a partial last line left by a kill: the next append would otherwise glue onto it."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            back = min(size, 1 << 16)
            while True:
                f.seek(size - back)
                chunk = f.read(back)
                nl = chunk.rfind(b"\n")
                if nl >= 0 or back == size:
                    break
                back = min(size, back * 2)
        keep = size - back + nl + 1 if nl >= 0 else 0
        if keep < size:
            log.warning("Spool %s: torn last line (%d bytes, from an interrupted write) removed", self.path,
                        size - keep)
            os.ftruncate(self._fd, keep)

    def _load_committed(self) -> int:
        """The committed offset, or 0 (replay everything) when it is missing, stale or implausible."""
        try:
            state = json.loads(self.committed_path.read_text())
            offset, inode = int(state["offset"]), int(state["inode"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        st = os.fstat(self._fd)
        if inode != st.st_ino or offset < 0 or offset > st.st_size:
            return 0
        if offset > 0:
            with open(self.path, "rb") as f:
                f.seek(offset - 1)
                if f.read(1) != b"\n":
                    return 0
        return offset

    def _store_committed(self, offset: int) -> None:
        state = json.dumps({"offset": offset, "inode": os.fstat(self._fd).st_ino})
        tmp = self.committed_path.with_name(self.committed_path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(state)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.committed_path)

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
