"""`arbees prometheus-config`: a Prometheus scrape configuration for the running stack's services."""

from __future__ import annotations

import typer

from arbees_cli.output import fail, parse_duration, print_json
from arbees_cli.stack import JsonOpt, RuntimeOpt, get_runtime
from arbees_core.registry import SERVICES
from arbees_core.runtime.base import Runtime
from arbees_core.topics import METRICS_CONTAINER_PORT


def metrics_targets(rt: Runtime) -> dict[str, str]:
    """service -> `host:port` of its Prometheus endpoint: the local runtime's ports, or each container's 9464 on
    arbees-network (for a Prometheus that runs on that network)."""
    if rt.kind == "compose":
        return {s.name: f"{s.name}:{METRICS_CONTAINER_PORT}" for s in SERVICES}
    return {s.name: f"127.0.0.1:{s.metrics_port}" for s in rt.status() if s.metrics_port}


def register(app: typer.Typer) -> None:
    @app.command("prometheus-config")
    def prometheus_config(interval: str = typer.Option("5s", "--interval", help="Scrape interval (e.g. 1s, 15s)."),
                          runtime: str = RuntimeOpt, as_json: bool = JsonOpt) -> None:
        """Print a prometheus.yml that scrapes every service's metrics (one target per service, labelled with its
        name): `arbees prometheus-config > prometheus.yml; prometheus --config.file=prometheus.yml`. --json: the
        same configuration as JSON (which Prometheus also reads, JSON being YAML)."""
        import yaml

        from arbees_core.telemetry.prometheus import scrape_config

        rt = get_runtime(runtime, as_json)
        targets = metrics_targets(rt)
        if not targets:
            fail("no service of this stack has a metrics port: start it with `arbees up`", as_json=as_json)
        config = scrape_config(targets, parse_duration(interval))
        if as_json:
            print_json(yaml.safe_load(config))
            return
        typer.echo(config, nl=False)
