"""`arbees settings`: every declared setting, its default, who reads it, and the value set here (secrets `***`)."""

from __future__ import annotations

import os
from typing import Any, Optional

import typer
from rich.table import Table

from arbees_cli.output import EXIT_FAIL, console, fail, print_json
from arbees_core import settings as S
from arbees_core.config import ConfigError, project_root, read_dotenv, redact_value
from arbees_core.settings.render import as_dict, shown_default


def settings_here(service: str | None = None) -> list[dict[str, Any]]:
    """Each declared setting (those `service` reads, when given) with the value set here (the environment over
    `.env`, as a service started here would see it; secrets masked) and its error when malformed."""
    if service is not None and service != S.ARBEES and not S.read_by(service):
        raise KeyError(f"unknown reader {service!r}: a service name or {S.ARBEES!r}")
    environ = {**read_dotenv(project_root() / ".env"), **os.environ}
    rows = []
    for setting in (S.read_by(service) if service else S.DECLARED.values()):
        raw = setting.raw(environ)
        try:
            setting.read(environ)
            error = ""
        except ConfigError as e:
            error = str(e)
        rows.append({**as_dict(setting), "value": None if raw is None else redact_value(setting.name, raw),
                     "error": error})
    return rows


def register(app: typer.Typer) -> None:
    @app.command("settings")
    def settings_cmd(service: Optional[str] = typer.Argument(None, help="Only the settings this service (or "
                                                             "`arbees`) reads."),
                     as_json: bool = typer.Option(False, "--json",
                                                  help="One JSON object: {settings, errors, passed}.")) -> None:
        """List every setting arbees reads (declared in arbees_core/settings): type, default, unit, readers, and
        the value set here (environment over `.env`; secrets `***`). Exit 1 when a value set here is malformed."""
        try:
            rows = settings_here(service)
        except KeyError as e:
            fail(str(e.args[0]), as_json=as_json)
        errors = [r["error"] for r in rows if r["error"]]
        if as_json:
            print_json({"settings": rows, "errors": errors, "passed": not errors})
        else:
            _render(rows)
        if errors:
            raise typer.Exit(EXIT_FAIL)


def _render(rows: list[dict[str, Any]]) -> None:
    table = Table("setting", "type", "default", "unit", "set here", "read by", "what")
    for r in rows:
        value = "" if r["value"] is None else r["value"]
        shown = f"[red]{r['error']}[/]" if r["error"] else value
        table.add_row(r["name"], r["type"], shown_default(S.declared(r["name"])).strip("`"), r["unit"], shown,
                      ", ".join(r["readers"]), r["doc"])
    console.print(table)
