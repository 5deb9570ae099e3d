"""Every service module answers `--help` (what it does, the settings it reads from the registry) and exits 0
without starting; anything else on its command line is a usage error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arbees_core.registry import SERVICES, ServiceSpec


def _run(spec: ServiceSpec, arg: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", spec.module, arg], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_service_help_says_what_it_does_and_every_setting_it_reads_then_exits(spec: ServiceSpec,
                                                                                tmp_path: Path) -> None:
    done = _run(spec, "--help", tmp_path)
    assert done.returncode == 0 and done.stderr == ""  # no log line: nothing started
    assert done.stdout.startswith(f"usage: python -m {spec.module}") and f"{spec.name}:" in done.stdout
    listed = done.stdout.split("settings it reads", 1)[1].replace("\n", " ").replace(",", " ").split()
    assert set(spec.env) <= set(listed) and "ZMQ_ENABLED" in listed
    assert not (tmp_path / ".arbees").exists()


def test_service_rejects_an_unknown_argument(tmp_path: Path) -> None:
    done = _run(SERVICES[0], "--bogus", tmp_path)
    assert done.returncode == 2 and "unrecognized arguments: --bogus" in done.stderr
