"""docker-compose.yml, the VPN override and the Dockerfile checked against the service registry (no engine
needed). The stack itself is tested on a real Docker engine in `test_compose_engine.py`."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from arbees_core.registry import SERVICES, ServiceSpec

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
VPN_FILE = ROOT / "docker-compose.vpn.yml"

#: Names the compose file may set beyond what the registry lists: the image's service selector (read by the
#: Dockerfile's CMD, not by a service).
COMPOSE_ONLY_ENV = {"ARBEES_SERVICE"}
INFRA = {"timescaledb", "redis", "vpn"}
#: Services for the plan's own commands: `market-discovery-rust` (Phase 2) and the `zmqtools` image.
PLAN_EXTRAS = {"market-discovery-rust", "zmqtools"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------------------
# docker-compose.yml against the registry


class _Reset:
    """`!reset` / `!override` of Compose v2.24+ (yaml.safe_load does not know them)."""

    def __init__(self, tag: str, value: object) -> None:
        self.tag, self.value = tag, value


class ComposeLoader(yaml.SafeLoader):
    pass


for _tag in ("!reset", "!override"):
    def _construct(loader: yaml.SafeLoader, node: yaml.Node, tag: str = _tag) -> _Reset:
        if isinstance(node, yaml.MappingNode):
            return _Reset(tag, loader.construct_mapping(node, deep=True))
        if isinstance(node, yaml.SequenceNode):
            return _Reset(tag, loader.construct_sequence(node, deep=True))
        return _Reset(tag, loader.construct_scalar(node))

    ComposeLoader.add_constructor(_tag, _construct)


def load_compose(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=ComposeLoader)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose(COMPOSE_FILE)


def networks_of(svc: dict) -> set[str]:
    nets = svc.get("networks") or []
    return set(nets) if isinstance(nets, (list, dict)) else set()


def service_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_has_every_registry_service(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {s.compose_key for s in SERVICES} | INFRA | PLAN_EXTRAS
    for spec in SERVICES:
        svc = services[spec.compose_key]
        assert svc["container_name"] == spec.name, spec.name  # the plan's `docker logs kalshi_monitor`
        assert svc["profiles"] == [spec.profile] == ["full"]
        assert svc["build"]["context"] == "."
        assert svc["build"]["args"]["PYTHON_IMAGE"] == "${PYTHON_IMAGE:-python:3.11-slim}"
        assert svc["restart"] == "unless-stopped"
        assert "arbees-network" in networks_of(svc)
        assert {"path": ".env", "required": False} in svc["env_file"]
        hc = svc["healthcheck"]
        assert hc["test"][0] in ("CMD", "CMD-SHELL") and len(hc["test"]) > 1
        if spec.port:
            assert [str(p) for p in svc["expose"]] == [str(spec.port)], spec.name
        else:
            assert not svc.get("expose"), spec.name
        if spec.http_port:  # the dashboard: published on the host's loopback only, 8000 unless moved
            assert svc["ports"] == [f"127.0.0.1:${{ARBEES_API_HOST_PORT:-{spec.http_port}}}:{spec.http_port}"]
        else:
            assert not svc.get("ports"), spec.name


def test_compose_env_names_are_registry_names(compose: dict) -> None:
    for spec in SERVICES:
        env = service_env(compose["services"][spec.compose_key])
        allowed = set(spec.env) | COMPOSE_ONLY_ENV
        assert set(env) <= allowed, f"{spec.name}: not read by it (arbees_core/settings readers): {sorted(set(env) - allowed)}"
        assert env["ZMQ_ENABLED"] == "${ZMQ_ENABLED:-false}"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["ZMQ_BIND_HOST"] == "0.0.0.0"
        if "DATABASE_URL" in spec.env:
            assert env["DATABASE_URL"] == "postgresql://arbees:arbees@timescaledb:5432/arbees"
        # the image's CMD runs python -m arbees_core.services.$ARBEES_SERVICE: it must be this service's module
        assert f"arbees_core.services.{env['ARBEES_SERVICE']}" == spec.module
        assert importlib.util.find_spec(spec.module) is not None
        if spec.port:
            assert env.get("ZMQ_PUB_PORT", str(spec.port)) == str(spec.port)
        # every service's Prometheus endpoint, on the container's network interface
        assert env["METRICS_PORT"] == "9464" and env["METRICS_HOST"] == "0.0.0.0"


def test_compose_zmq_endpoints_point_at_publishers(compose: dict) -> None:
    services = compose["services"]
    by = {s.name: s for s in SERVICES}
    publishers = {s.name: s.port for s in SERVICES if s.port}

    def endpoints(name: str, var: str) -> list[str]:
        return service_env(services[by[name].compose_key])[var].split(",")

    ep = lambda name: f"tcp://{name}:{publishers[name]}"  # noqa: E731
    assert endpoints("game_shard", "ZMQ_SUB_ENDPOINTS") == [ep("kalshi_monitor"), ep("polymarket_monitor")]
    assert endpoints("execution_service", "ZMQ_SUB_ENDPOINT") == [ep("game_shard")]
    assert endpoints("execution_service", "ZMQ_PRICE_ENDPOINTS") == [ep("kalshi_monitor"), ep("polymarket_monitor")]
    listener = service_env(services[by["zmq_listener"].compose_key])
    assert {v for k, v in listener.items() if k.endswith("_ENDPOINT")} == {ep(n) for n in publishers}

    # every tcp:// endpoint anywhere names a container on arbees-network and the port it exposes
    names = {svc.get("container_name"): svc for svc in services.values()}
    for key, svc in services.items():
        for value in service_env(svc).values():
            for host, port in re.findall(r"tcp://([\w.-]+):(\d+)", value):
                assert host in names, f"{key}: {value}"
                assert port in [str(p) for p in names[host].get("expose", [])], f"{key}: {value}"


def test_compose_depends_on_follows_registry(compose: dict) -> None:
    services = compose["services"]
    by = {s.name: s for s in SERVICES}
    for spec in SERVICES:
        deps = services[spec.compose_key]["depends_on"]
        assert isinstance(deps, dict), "long form, with conditions"
        for d in spec.depends_on:
            assert deps[by[d].compose_key]["condition"] == "service_healthy", (spec.name, d)
        assert deps["redis"]["condition"] == "service_healthy"
        if "DATABASE_URL" in spec.env:
            assert deps["timescaledb"]["condition"] == "service_healthy"
        for target, cond in deps.items():
            assert target in services and "healthcheck" in services[target], (spec.name, target)
            assert cond["condition"] in ("service_healthy", "service_started", "service_completed_successfully")


def test_compose_infrastructure(compose: dict) -> None:
    s = compose["services"]
    assert s["redis"]["container_name"] == "arbees-redis"
    assert s["redis"]["image"] == "${ARBEES_REDIS_IMAGE:-redis:7-alpine}"  # the public image unless set
    assert "redis-cli" in s["redis"]["healthcheck"]["test"]
    db = s["timescaledb"]
    assert db["container_name"] == "arbees-timescaledb"
    assert db["image"] == "${ARBEES_TIMESCALEDB_IMAGE:-timescale/timescaledb:latest-pg16}"
    assert db["environment"]["POSTGRES_DB"] == "arbees" and db["environment"]["POSTGRES_USER"] == "arbees"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    for name in ("redis", "timescaledb"):  # `docker compose up -d timescaledb redis` works without a profile
        assert "profiles" not in s[name]
        assert "arbees-network" in networks_of(s[name])
        for port in s[name].get("ports", []):
            # loopback only, on a free port unless one is fixed: the machine's own Redis/PostgreSQL keep theirs
            assert re.fullmatch(r"127\.0\.0\.1:\$\{ARBEES_(REDIS|POSTGRES)_HOST_PORT:-\}:\d+", str(port)), port
    assert compose["networks"]["arbees-network"]["name"] == "arbees-network"
    assert s["vpn"]["profiles"] == ["vpn"]
    assert s["vpn"]["image"] == "${ARBEES_VPN_IMAGE:-qmcgaw/gluetun:v3}"
    alias = s["market-discovery-rust"]  # the plan's `up -d orchestrator market-discovery-rust game_shard`
    assert alias["profiles"] == ["plan"] and alias["depends_on"]["market-discovery"]["condition"] == "service_healthy"
    assert s["zmqtools"]["image"] == "zmqtools" and s["zmqtools"]["profiles"] == ["tools"]
    # in the base file polymarket_monitor is itself on the network; nobody else claims its name
    assert "arbees-network" in networks_of(s["polymarket_monitor"])
    assert "network_mode" not in s["polymarket_monitor"]
    for key, svc in s.items():
        nets = svc.get("networks")
        if isinstance(nets, dict):
            for cfg in nets.values():
                assert "polymarket_monitor" not in ((cfg or {}).get("aliases") or []), key


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, _Reset):
        node = node.value
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_compose_interpolations_are_well_formed(compose: dict) -> None:
    """Compose interpolates `$` in every value: each one is a `${NAME}` / `${NAME:-default}` (or `$$`)."""
    for text in [*_strings(compose), *_strings(load_compose(VPN_FILE))]:
        for m in re.finditer(r"\$+\{?[^}\s\"]*\}?", text):
            if m.group(0).startswith("$$"):
                continue
            assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}", m.group(0)), m.group(0)


def test_service_healthcheck_script(compose: dict, tmp_path: Path) -> None:
    """The pipeline healthcheck passes on a fresh `running` metrics snapshot and fails on a stale, stopped or
    missing one, and in ZMQ mode when the PUB port does not answer."""
    test = compose["services"]["game_shard"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    script = test[3]
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    snap = metrics / "game_shard.json"
    env = {**os.environ, "ARBEES_STATE_DIR": str(tmp_path), "ARBEES_SERVICE": "game_shard", "ZMQ_ENABLED": "false",
           "PYTHONPATH": str(ROOT)}
    env.pop("ZMQ_PUB_ENDPOINT", None)
    run = lambda **extra: subprocess.run([sys.executable, "-c", script], env={**env, **extra},  # noqa: E731
                                         capture_output=True, timeout=30).returncode
    assert run() != 0  # no snapshot yet
    snap.write_text(json.dumps({"state": "running"}))
    assert run() == 0
    assert run(ZMQ_ENABLED="true", ZMQ_PUB_PORT=str(closed_port())) != 0
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        assert run(ZMQ_ENABLED="true", ZMQ_PUB_PORT=str(srv.getsockname()[1])) == 0
    old = time.time() - 60
    os.utime(snap, (old, old))
    assert run() != 0  # stale: the service stopped heartbeating
    snap.write_text(json.dumps({"state": "stopped"}))
    assert run() != 0


def test_vpn_override() -> None:
    vpn = load_compose(VPN_FILE)["services"]
    assert "polymarket_monitor" in vpn["vpn"]["networks"]["arbees-network"]["aliases"]
    pm = vpn["polymarket_monitor"]
    assert pm["network_mode"] == "service:vpn"
    assert isinstance(pm["networks"], _Reset) and not pm["networks"].value  # its own networks removed
    assert isinstance(pm["expose"], _Reset)  # exposing ports conflicts with a container network mode
    assert pm["depends_on"]["vpn"]["condition"] == "service_healthy"
    assert set(vpn) == {"vpn", "polymarket_monitor"}


# --------------------------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f in ("python:3.11-slim", "${PYTHON_IMAGE}") for f in froms)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    installs = " ".join(re.findall(r"apt-get install[^\n]*(?:\\\n[^\n]*)*", text))
    assert "netcat-openbsd" in installs  # `nc -zv kalshi_monitor 5555`
    assert "redis-tools" in installs
    assert "iputils-ping" in installs  # `docker exec game_shard ping kalshi_monitor`
    assert re.search(r"pip (wheel|install)[^\n]* \.", text)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    cmd = re.findall(r"^CMD\s+(.+)$", text, re.M)[-1]
    assert "arbees_core.services.${ARBEES_SERVICE" in cmd and "exec python -m" in cmd
    ignore = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".arbees", ".git", "**/__pycache__", ".env"):
        assert entry in ignore, entry


def test_registry_specs_are_well_formed() -> None:
    """What the compose file test relies on."""
    assert all(isinstance(s, ServiceSpec) and s.module.startswith("arbees_core.services.") for s in SERVICES)
    assert len({s.compose_key for s in SERVICES}) == len(SERVICES)


def test_further_game_shards_are_copies_of_game_shard_with_their_own_id(tmp_path: Path) -> None:
    """GAME_SHARDS=3 under compose: game_shard keeps its name (`docker logs game_shard`), game_shard_2 and
    game_shard_3 are copies with their own container name, SHARD_ID and advertised endpoint, and compose accepts
    the two files together."""
    import shutil
    import subprocess

    from arbees_core.runtime.compose_shards import write_override

    override = write_override(tmp_path, COMPOSE_FILE, 3, folder=tmp_path)
    assert write_override(tmp_path, COMPOSE_FILE, 1, folder=tmp_path) is None
    extra = yaml.safe_load(override.read_text())["services"]
    assert list(extra) == ["game_shard_2", "game_shard_3"]
    for k, name in ((2, "game_shard_2"), (3, "game_shard_3")):
        env = service_env(extra[name])
        assert extra[name]["container_name"] == name
        assert env["SHARD_ID"] == str(k) and env["ZMQ_ADVERTISE_HOST"] == name
        assert env["GAME_ASSIGNMENT"] == "orchestrator" and env["ARBEES_SERVICE"] == "game_shard"
    has_compose = shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                            timeout=60).returncode == 0
    if has_compose:  # Compose v2 reads the two files as `docker compose up` would
        done = subprocess.run(["docker", "compose", "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "-f",
                               str(override), "--profile", "full", "config", "--services"], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert {"game_shard", "game_shard_2", "game_shard_3", "orchestrator"} <= set(done.stdout.split())
