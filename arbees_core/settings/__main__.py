"""`python -m arbees_core.settings [--markdown | --json | --write-readme README.md]`: the declared settings."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from arbees_core.settings.model import DECLARED
from arbees_core.settings.render import as_dict, markdown, write_readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arbees_core.settings", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--markdown", action="store_true", help="the README's table (the default)")
    group.add_argument("--json", action="store_true", help="one JSON object: {settings: [...]}")
    group.add_argument("--write-readme", metavar="README", type=Path, help="replace the table in this README")
    args = parser.parse_args(argv)
    if args.json:
        print(json.dumps({"settings": [as_dict(s) for s in DECLARED.values()]}, indent=2))
    elif args.write_readme:
        print(f"{args.write_readme}: {'updated' if write_readme(args.write_readme) else 'already current'}")
    else:
        print(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
