"""`playbooks/diagnose/<target>.yaml`: which probes a target runs, their names and the plan's fixes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from arbees_core.validation.diagnose import flow  # noqa: F401 - registers the flow probes
from arbees_core.validation.diagnose import shards  # noqa: F401 - registers the shards probe
from arbees_core.validation.playbook import PlaybookError  # one error type for every playbook
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
    """Read and check `<folder>/<target>.yaml`: every probe id must be implemented here and carry a fix."""
    key = normalize_target(target)
    path = (folder or PLAYBOOK_DIR) / f"{key}.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PlaybookError(f"{path}: playbook not found") from None
    except yaml.YAMLError as e:
        raise PlaybookError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("probes"), list) or not doc["probes"]:
        raise PlaybookError(f"{path}: expected a mapping with a non-empty `probes` list")
    probes = []
    for i, raw in enumerate(doc["probes"]):
        if not isinstance(raw, dict) or not raw.get("id"):
            raise PlaybookError(f"{path}: probe #{i + 1} has no `id`")
        pid = str(raw["id"])
        if pid not in PROBES:
            raise PlaybookError(f"{path}: unknown probe id {pid!r} (implemented: {', '.join(sorted(PROBES))})")
        fix = str(raw.get("fix") or "").strip()
        if not fix:
            raise PlaybookError(f"{path}: probe {pid!r} has no `fix`")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise PlaybookError(f"{path}: probe {pid!r}: `params` must be a mapping")
        probes.append(ProbeSpec(pid, str(raw.get("name") or pid), fix, dict(params)))
    return Playbook(key, str(doc.get("issue", "")), str(doc.get("symptom", "")).strip(), path, probes)


def load_all_playbooks(folder: Path | None = None) -> dict[str, Playbook]:
    return {t: load_playbook(t, folder) for t in TARGETS}


