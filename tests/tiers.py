"""The test suite in its tiers, as CI runs it: `python -m tests.tiers [--serial]`.

1. The fast tier (`-m "not e2e and not docker"`: unit and in-process tests) first; a failure stops the run there.
2. Then the end-to-end tier (real processes on this machine) and the Docker tier (the compose stack on a real
   engine) side by side: the Docker tests spend most of their time waiting for containers to be created, become
   healthy and stop, so running them beside the end-to-end tests takes about as long as the longer of the two
   instead of their sum. `--serial` runs them one after the other (a very small or busy machine).

The Docker tier's output is kept in a file and printed when it ends, after the end-to-end tier's own output. The
exit code is 0 when every tier passed, else 1 (or pytest's own code when only one tier ran and it could not).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["-q", "-x", "-m", "not e2e and not docker"]
E2E = ["-q", "-m", "e2e and not docker", "--durations=15"]
DOCKER = ["-q", "-m", "docker", "--durations=15"]


@dataclass
class Tier:
    name: str
    code: int
    seconds: float


def pytest(args: list[str], **popen: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT, **popen)  # type: ignore[call-overload]


def run_tier(name: str, args: list[str]) -> Tier:
    """One tier with its output on this terminal."""
    print(f"==== {name} tier: pytest {' '.join(args)}", flush=True)
    t0 = time.monotonic()
    code = pytest(args).wait()
    return Tier(name, code, time.monotonic() - t0)


def run_side_by_side() -> list[Tier]:
    """The Docker tier in the background (output to a file, printed at its end), the end-to-end tier in front."""
    with tempfile.NamedTemporaryFile("w+", prefix="arbees-docker-tier-", suffix=".log", delete=False) as log:
        print(f"==== docker tier: pytest {' '.join(DOCKER)} (in the background; output in {log.name}, printed "
              "when it ends)", flush=True)
        t0 = time.monotonic()
        docker = pytest(DOCKER, stdout=log, stderr=subprocess.STDOUT)
        e2e = run_tier("e2e", E2E)
        code = docker.wait()
        docker_tier = Tier("docker", code, time.monotonic() - t0)
        log.seek(0)
        print("==== docker tier output", flush=True)
        sys.stdout.write(log.read())
        sys.stdout.flush()
    return [e2e, docker_tier]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tiers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serial", action="store_true", help="run the end-to-end and Docker tiers one after the "
                        "other instead of side by side")
    options = parser.parse_args(argv)
    tiers = [run_tier("fast", FAST)]
    if tiers[0].code == 0:
        tiers += [run_tier("e2e", E2E), run_tier("docker", DOCKER)] if options.serial else run_side_by_side()
    print("==== tiers: " + ", ".join(f"{t.name} {'passed' if t.code == 0 else f'FAILED (exit {t.code})'} in "
                                     f"{t.seconds / 60:.1f} min" for t in tiers), flush=True)
    return 0 if all(t.code == 0 for t in tiers) else 1


if __name__ == "__main__":
    sys.exit(main())
