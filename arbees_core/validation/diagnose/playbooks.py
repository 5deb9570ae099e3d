"""`playbooks/diagnose/<target>.yaml`: which probes a target runs, their names and the plan's fixes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbees_core.validation.diagnose import flow  # noqa: F401 - registers the flow probes
from arbees_core.validation.diagnose import shards  # noqa: F401 - registers the shards probe
from arbees_core.validation.playbook import PlaybookError, read_document  # one reader, one error type
from arbees_core.validation.diagnose.context import PLAYBOOK_DIR, TARGETS
from arbees_core.validation.diagnose.probes import PROBES


# -- playbooks -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of a playbook: the implemented probe `id`, the check's `name`, the plan's `fix`, and `params`."""

    id: str
    name: str
    fix: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Playbook:
    target: str
    issue: str
    symptom: str
    path: Path
    probes: list[ProbeSpec]


def normalize_target(target: str) -> str:
    """`game_shard` / `Game-Shard` -> `game-shard`; an unknown target is a ValueError listing the known ones."""
    key = target.strip().lower().replace("_", "-")
    if key not in TARGETS:
        raise ValueError(f"unknown diagnose target {target!r}: expected one of {', '.join(TARGETS)}")
    return key


def load_playbook(target: str, folder: Path | None = None) -> Playbook:
    """Read and check `<folder>/<target>.yaml` (through the playbooks' one reader, `playbook.read_document`):
    every probe id must be implemented here and carry a fix; an error names the file and the probe's line."""
    key = normalize_target(target)
    path = (folder or PLAYBOOK_DIR) / f"{key}.yaml"
    doc = read_document(path, "id", "expected a mapping with a non-empty `probes` list")
    if not isinstance(doc.get("probes"), list) or not doc["probes"]:
        raise PlaybookError(f"{path}:1: expected a mapping with a non-empty `probes` list")
    probes = [_probe(path, i, raw) for i, raw in enumerate(doc["probes"], 1)]
    return Playbook(key, str(doc.get("issue", "")), str(doc.get("symptom", "")).strip(), path, probes)


def _probe(path: Path, index: int, raw: Any) -> ProbeSpec:
    """One probe entry, checked: an implemented `id`, a `fix`, `params` a mapping."""
    if not isinstance(raw, dict) or not raw.get("id"):
        line = raw.get("line", 1) if isinstance(raw, dict) else 1
        raise PlaybookError(f"{path}:{line}: probe #{index} has no `id`")
    pid, where = str(raw["id"]), f"{path}:{raw.get('line', 1)}"
    if pid not in PROBES:
        raise PlaybookError(f"{where}: unknown probe id {pid!r} (implemented: {', '.join(sorted(PROBES))})")
    fix = str(raw.get("fix") or "").strip()
    if not fix:
        raise PlaybookError(f"{where}: probe {pid!r} has no `fix`")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise PlaybookError(f"{where}: probe {pid!r}: `params` must be a mapping")
    return ProbeSpec(pid, str(raw.get("name") or pid), fix, dict(params))


def load_all_playbooks(folder: Path | None = None) -> dict[str, Playbook]:
    """Every target's playbook, checked (a bad one raises before any probe runs)."""
    return {t: load_playbook(t, folder) for t in TARGETS}


