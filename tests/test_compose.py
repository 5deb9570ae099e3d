"""The compose side: docker-compose.yml / the VPN override / the Dockerfile checked against the service registry,
and ComposeRuntime against recorded Docker Engine API answers.

No Docker engine is needed: `tests/data/docker/` holds Engine API v1.44 answers (see its README), served by a small
HTTP server on 127.0.0.1 that records every request, and a real `docker.DockerClient` talks to it. The compose
actions (up/down/restart) run against a fake `docker` executable that records its command line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import docker
import pytest
import yaml

from arbees_core.registry import COMMON_ENV, SERVICES, ServiceSpec
from arbees_core.runtime import base
from arbees_core.runtime.base import RuntimeError_
from arbees_core.runtime.compose import ComposeRuntime, engine_available

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "docker"
COMPOSE_FILE = ROOT / "docker-compose.yml"
VPN_FILE = ROOT / "docker-compose.vpn.yml"

#: Names the compose file may set beyond what the registry lists: the image's service selector (read by the
#: Dockerfile's CMD, not by a service).
COMPOSE_ONLY_ENV = {"ARBEES_SERVICE"}
INFRA = {"timescaledb", "redis", "orchestrator", "vpn"}


# --------------------------------------------------------------------------------------------------------------
# A recorded Docker engine


class FakeEngine:
    """Serves the recordings the way the engine does: `/v1.xx` prefixes, `all` and `label` filters on
    /containers/json, lookup by id, id prefix or name, and logs (raw for Tty containers, else multiplexed)."""

    def __init__(self) -> None:
        self.listing: list[dict] = json.loads((DATA / "containers.json").read_text())
        self.inspect: dict[str, dict] = {p.stem: json.loads(p.read_text())
                                         for p in (DATA / "containers").glob("*.json")}
        self.version = json.loads((DATA / "version.json").read_text())
        self.ping = json.loads((DATA / "_ping.json").read_text())
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                engine.handle(self, head=True)

            def do_GET(self) -> None:
                engine.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeEngine":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [p for _, p, _ in self.requests]

    def queries(self, suffix: str) -> list[dict[str, list[str]]]:
        return [q for _, p, q in self.requests if p.endswith(suffix)]

    def remove(self, name: str) -> None:
        """Make a container disappear from the engine."""
        cid = self.find(name)["Id"]
        self.listing = [c for c in self.listing if c["Id"] != cid]
        del self.inspect[cid]

    def find(self, ref: str) -> dict | None:
        for cid, body in self.inspect.items():
            if ref == cid or (len(ref) >= 12 and cid.startswith(ref)) or body["Name"].lstrip("/") == ref:
                return body
        return None

    # -- request handling

    def handle(self, h: BaseHTTPRequestHandler, head: bool = False) -> None:
        split = urlsplit(h.path)
        path = re.sub(r"^/v1\.\d+", "", split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        self.requests.append((h.command, path, query))
        if path == "/_ping":
            return self.send(h, self.ping["status"], self.ping["body"].encode(), self.ping["headers"], head=head)
        if path == "/version":
            return self.send_json(h, self.version)
        if path == "/containers/json":
            return self.send_json(h, self.list_containers(query))
        m = re.fullmatch(r"/containers/([^/]+)/(json|logs)", path)
        if m:
            body = self.find(m.group(1))
            if body is None:
                return self.send_json(h, {"message": f"No such container: {m.group(1)}"}, 404)
            if m.group(2) == "json":
                return self.send_json(h, body)
            return self.send_logs(h, body, query)
        self.send_json(h, {"message": "page not found"}, 404)

    def list_containers(self, query: dict[str, list[str]]) -> list[dict]:
        every = query.get("all", ["0"])[0] in ("1", "true", "True")
        filters = json.loads(query.get("filters", ["{}"])[0] or "{}")
        labels = filters.get("label", [])
        labels = list(labels) if isinstance(labels, list) else [k for k, v in labels.items() if v]
        out = []
        for c in self.listing:
            if not every and c["State"] != "running":
                continue
            ok = True
            for want in labels:
                key, sep, value = want.partition("=")
                if key not in c["Labels"] or (sep and c["Labels"][key] != value):
                    ok = False
            if ok:
                out.append(c)
        return out

    def send_logs(self, h: BaseHTTPRequestHandler, body: dict, query: dict[str, list[str]]) -> None:
        name = body["Name"].lstrip("/")
        log_file = DATA / "logs" / f"{name}.log"
        lines = log_file.read_text().splitlines(keepends=True) if log_file.exists() else []
        tail = query.get("tail", ["all"])[0]
        if tail != "all":
            lines = lines[-int(tail):] if int(tail) > 0 else []
        if body["Config"]["Tty"]:
            payload = "".join(lines).encode()
            ctype = "application/vnd.docker.raw-stream"
        else:  # the services log to stderr: stream type 2
            payload = b"".join(struct.pack(">BxxxL", 2, len(b)) + b for b in (ln.encode() for ln in lines))
            ctype = "application/vnd.docker.multiplexed-stream"
        self.send(h, 200, payload, {"Content-Type": ctype, "Api-Version": "1.44"})

    def send_json(self, h: BaseHTTPRequestHandler, obj: object, status: int = 200) -> None:
        self.send(h, status, json.dumps(obj).encode(), {"Content-Type": "application/json", "Api-Version": "1.44"})

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str],
             head: bool = False) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if not head:
            h.wfile.write(payload)


@pytest.fixture()
def engine() -> Iterator[FakeEngine]:
    with FakeEngine() as e:
        yield e


@pytest.fixture()
def runtime(engine: FakeEngine) -> ComposeRuntime:
    return ComposeRuntime(ROOT, COMPOSE_FILE, client=docker.DockerClient(base_url=engine.url, timeout=10))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------------------
# ComposeRuntime reads


def test_status_maps_recorded_containers(runtime: ComposeRuntime, engine: FakeEngine) -> None:
    statuses = runtime.status()
    by = {s.name: s for s in statuses}
    # every registry service first, in registry order, then the project's other services
    assert [s.name for s in statuses[: len(SERVICES)]] == [s.name for s in SERVICES]
    assert set(by) == {s.name for s in SERVICES} | {"redis", "timescaledb"}

    k = by["kalshi_monitor"]
    assert (k.state, k.health, k.restarts, k.exit_code) == ("running", "healthy", 0, None)
    assert k.container == "kalshi_monitor"  # the real container, not the `compose run` one-off
    assert k.started_at == "2026-01-27T12:01:12.482913377Z"
    assert k.ports == [5555]  # ZMQ mode: the PUB port is bound

    assert (by["polymarket_monitor"].state, by["polymarket_monitor"].health) == ("running", "starting")

    g = by["game_shard"]
    assert (g.state, g.health, g.restarts, g.exit_code) == ("restarting", "unhealthy", 4, 1)
    assert "state=stopped" in g.detail  # the last healthcheck output says why

    x = by["execution_service"]
    assert (x.state, x.restarts, x.exit_code) == ("exited", 2, 137)
    assert "OOM" in x.detail

    z = by["zmq_listener"]
    assert (z.state, z.health, z.restarts, z.ports) == ("running", "healthy", 1, [])
    m = by["market_discovery"]  # compose key market-discovery, registry name market_discovery
    assert (m.state, m.container) == ("running", "market_discovery")
    assert (by["redis"].container, by["timescaledb"].container) == ("arbees-redis", "arbees-timescaledb")
    assert all(s.to_dict()["name"] == s.name for s in statuses)

    # one listing of the project's containers (all states), filtered by the compose project label
    (q,) = engine.queries("/containers/json")
    assert q["all"] == ["1"]
    assert json.loads(q["filters"][0]) == {"label": ["com.docker.compose.project=arbees"]}
    assert not any("otherstack" in p for p in engine.paths())


def test_status_reports_missing_services(runtime: ComposeRuntime, engine: FakeEngine) -> None:
    engine.remove("execution_service")
    by = {s.name: s for s in runtime.status()}
    assert by["execution_service"].state == "missing"
    assert by["execution_service"].container == ""
    assert by["game_shard"].state == "restarting"


def test_redis_mode_binds_no_port(runtime: ComposeRuntime, engine: FakeEngine) -> None:
    body = engine.find("kalshi_monitor")
    body["Config"]["Env"] = [e.replace("ZMQ_ENABLED=true", "ZMQ_ENABLED=false") for e in body["Config"]["Env"]]
    assert {s.name: s for s in runtime.status()}["kalshi_monitor"].ports == []


def test_env_returns_container_env(runtime: ComposeRuntime, engine: FakeEngine) -> None:
    env = runtime.env("kalshi_monitor")
    assert env["ZMQ_ENABLED"] == "true"
    assert env["ZMQ_PUB_PORT"] == "5555"
    assert env["DATABASE_URL"] == "postgresql://arbees:arbees@timescaledb:5432/arbees"
    assert env["ARBEES_SERVICE"] == "kalshi_monitor"
    assert env["PATH"].startswith("/usr/local/bin")
    q = engine.queries("/containers/json")[-1]
    assert json.loads(q["filters"][0]) == {"label": ["com.docker.compose.project=arbees",
                                                      "com.docker.compose.service=kalshi_monitor"]}

    # registry name or compose key, `-` or `_`
    assert runtime.env("market_discovery") == runtime.env("market-discovery")
    assert runtime.env("market-discovery")["ARBEES_SERVICE"] == "market_discovery"
    q = engine.queries("/containers/json")[-1]
    assert "com.docker.compose.service=market-discovery" in json.loads(q["filters"][0])["label"]
    assert runtime.env("redis")["REDIS_VERSION"] == "7.2.4"


def test_env_of_missing_service_is_a_clear_error(runtime: ComposeRuntime, engine: FakeEngine) -> None:
    engine.remove("game_shard")
    with pytest.raises(RuntimeError_, match=r"no container for service 'game_shard'.*arbees up game_shard"):
        runtime.env("game_shard")


def test_logs_multiplexed_with_since_and_tail(runtime: ComposeRuntime, engine: FakeEngine) -> None:
    full = (DATA / "logs" / "kalshi_monitor.log").read_text()
    assert runtime.logs("kalshi_monitor") == full
    q = engine.queries("/logs")[-1]
    assert q["tail"] == ["all"] and "since" not in q and q["stdout"] == ["1"] and q["stderr"] == ["1"]

    before = time.time()
    text = runtime.logs("kalshi_monitor", since_s=300, tail=2)
    assert text == "".join(full.splitlines(keepends=True)[-2:])
    assert "Published prices.kalshi.KXNBAGAME-26JAN27MIABOS-MIA" in text
    q = engine.queries("/logs")[-1]
    assert q["tail"] == ["2"]
    assert before - 300 - 1 <= float(q["since"][0]) <= time.time() - 300 + 1


def test_logs_of_tty_container_are_raw_text(runtime: ComposeRuntime) -> None:
    text = runtime.logs("zmq_listener")
    assert text == (DATA / "logs" / "zmq_listener.log").read_text(encoding="utf-8")
    assert "Mirrored signals.trade.arb-7c1e to signals:trades — été ✓" in text
    assert runtime.logs("execution_service", tail=10) == ""


def test_follow_yields_lines(runtime: ComposeRuntime, engine: FakeEngine) -> None:
    assert list(runtime.follow("kalshi_monitor")) == (DATA / "logs" / "kalshi_monitor.log").read_text().splitlines()
    assert engine.queries("/logs")[-1]["follow"] == ["1"]
    tty_lines = list(runtime.follow("zmq_listener", tail=2))
    assert tty_lines == (DATA / "logs" / "zmq_listener.log").read_text(encoding="utf-8").splitlines()[-2:]


def test_is_up_and_engine_available(runtime: ComposeRuntime, engine: FakeEngine) -> None:
    client = runtime.client
    assert engine_available(client) is True
    assert "/_ping" in engine.paths()
    assert runtime.is_up() is True
    # the engine answers but the project has no container
    assert ComposeRuntime(ROOT, COMPOSE_FILE, project="nothing-here", client=client).is_up() is False


def test_default_client_from_environment(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", engine.url)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    assert engine_available() is True
    rt = ComposeRuntime(ROOT, COMPOSE_FILE)
    assert rt.is_up() is True
    assert "/version" in engine.paths()  # the SDK negotiated the API version with the recording


def test_closed_port_means_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"tcp://127.0.0.1:{closed_port()}"
    client = docker.DockerClient(base_url=url, version="1.44", timeout=2)
    assert engine_available(client) is False
    rt = ComposeRuntime(ROOT, COMPOSE_FILE, client=client)
    assert rt.is_up() is False
    with pytest.raises(RuntimeError_, match="Docker engine not reachable"):
        rt.status()
    with pytest.raises(RuntimeError_, match="Docker engine not reachable"):
        rt.logs("kalshi_monitor")
    # no client given: docker.from_env() itself fails (it asks the engine for its API version)
    monkeypatch.setenv("DOCKER_HOST", url)
    assert engine_available() is False
    rt = ComposeRuntime(ROOT, COMPOSE_FILE)
    assert rt.is_up() is False
    with pytest.raises(RuntimeError_, match="Docker engine not reachable"):
        rt.env("kalshi_monitor")


def test_implements_the_runtime_protocol() -> None:
    rt = ComposeRuntime(ROOT, COMPOSE_FILE, client=object())
    assert rt.kind == "compose"
    for name in ("is_up", "up", "down", "restart", "status", "logs", "follow", "env"):
        assert callable(getattr(rt, name)), name
        assert name in base.Runtime.__dict__
    assert rt.compose_key("market_discovery") == "market-discovery"
    assert rt.compose_key("kalshi-monitor") == "kalshi_monitor"
    assert rt.compose_key("redis") == "redis"


# --------------------------------------------------------------------------------------------------------------
# ComposeRuntime actions through a fake `docker` CLI


def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compose_ok: bool = True,
                fail_up: bool = False) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls.txt"
    version = ("echo 'Docker Compose version v2.24.5'; exit 0" if compose_ok
               else "echo \"docker: 'compose' is not a docker command.\" >&2; exit 1")
    up_error = 'echo "service \\"game_shard\\" refers to undefined network arbees-network: invalid compose project" >&2'
    script = "\n".join([
        "#!/bin/sh",
        f'printf \'%s\\n\' "$*" >> "{calls}"',
        'if [ "$1 $2" = "compose version" ]; then',
        f"  {version}",
        "fi",
        'for a in "$@"; do',
        f'  if [ "$a" = "up" ] && [ "{int(fail_up)}" = "1" ]; then {up_error}; exit 15; fi',
        "done",
        "exit 0",
        "",
    ])
    exe = bin_dir / "docker"
    exe.write_text(script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    return calls


def compose_calls(calls: Path) -> list[list[str]]:
    return [line.split() for line in calls.read_text().splitlines() if line != "compose version"]


def test_up_down_restart_command_lines(runtime: ComposeRuntime, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_docker(tmp_path, monkeypatch)
    prefix = ["compose", "-p", "arbees", "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]

    statuses = runtime.up(["kalshi_monitor", "market_discovery"])
    assert {s.name for s in statuses} >= {s.name for s in SERVICES}
    assert compose_calls(calls)[-1] == prefix + ["--profile", "full", "up", "-d", "kalshi_monitor", "market-discovery"]

    runtime.up()
    assert compose_calls(calls)[-1] == prefix + ["--profile", "full", "up", "-d"]

    # restart = recreate, so a changed .env (rollback: ZMQ_ENABLED=false) takes effect
    runtime.restart()
    assert compose_calls(calls)[-1] == prefix + ["--profile", "full", "up", "-d", "--force-recreate",
                                                 *[s.compose_key for s in SERVICES]]
    runtime.restart(["game_shard"])
    assert compose_calls(calls)[-1] == prefix + ["--profile", "full", "up", "-d", "--force-recreate", "game_shard"]

    runtime.down()
    assert compose_calls(calls)[-1] == prefix + ["--profile", "full", "--profile", "vpn", "down", "--remove-orphans"]
    assert not any("restart" in c for c in compose_calls(calls))
    assert not any("-v" in c or "--volumes" in c for c in compose_calls(calls))


def test_vpn_override_files_are_passed(engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_docker(tmp_path, monkeypatch)
    rt = ComposeRuntime(ROOT, ["docker-compose.yml", "docker-compose.vpn.yml"], profiles=("full", "vpn"),
                        client=docker.DockerClient(base_url=engine.url))
    rt.up(["polymarket_monitor"])
    assert compose_calls(calls)[-1][5:] == ["-f", str(COMPOSE_FILE), "-f", str(VPN_FILE), "--profile", "full",
                                            "--profile", "vpn", "up", "-d", "polymarket_monitor"]


def test_compose_failure_is_reported(runtime: ComposeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_docker(tmp_path, monkeypatch, fail_up=True)
    with pytest.raises(RuntimeError_, match=r"failed \(exit 15\):\n.*undefined network arbees-network"):
        runtime.up()


def test_missing_compose_plugin_or_docker_cli(runtime: ComposeRuntime, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake_docker(tmp_path, monkeypatch, compose_ok=False)
    with pytest.raises(RuntimeError_, match="Compose v2"):
        runtime.restart()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError_, match="`docker` CLI not found"):
        runtime.down()


def test_missing_compose_file(engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_docker(tmp_path, monkeypatch)
    rt = ComposeRuntime(tmp_path, client=docker.DockerClient(base_url=engine.url))
    with pytest.raises(RuntimeError_, match="compose file not found"):
        rt.up()


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
    assert set(services) == {s.compose_key for s in SERVICES} | INFRA
    for spec in SERVICES:
        svc = services[spec.compose_key]
        assert svc["container_name"] == spec.name, spec.name  # the plan's `docker logs kalshi_monitor`
        assert svc["profiles"] == [spec.profile] == ["full"]
        assert svc["build"] == "."
        assert svc["restart"] == "unless-stopped"
        assert "arbees-network" in networks_of(svc)
        assert {"path": ".env", "required": False} in svc["env_file"]
        hc = svc["healthcheck"]
        assert hc["test"][0] in ("CMD", "CMD-SHELL") and len(hc["test"]) > 1
        if spec.port:
            assert [str(p) for p in svc["expose"]] == [str(spec.port)], spec.name
        else:
            assert not svc.get("expose") and not svc.get("ports"), spec.name


def test_compose_env_names_are_registry_names(compose: dict) -> None:
    for spec in SERVICES:
        env = service_env(compose["services"][spec.compose_key])
        allowed = set(COMMON_ENV) | set(spec.env) | COMPOSE_ONLY_ENV
        assert set(env) <= allowed, f"{spec.name}: not in registry.py: {sorted(set(env) - allowed)}"
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
    assert s["redis"]["image"] == "redis:7-alpine"
    assert "redis-cli" in s["redis"]["healthcheck"]["test"]
    db = s["timescaledb"]
    assert db["container_name"] == "arbees-timescaledb"
    assert db["image"] == "timescale/timescaledb:latest-pg16"
    assert db["environment"]["POSTGRES_DB"] == "arbees" and db["environment"]["POSTGRES_USER"] == "arbees"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    for name in ("redis", "timescaledb"):  # `docker compose up -d timescaledb redis` works without a profile
        assert "profiles" not in s[name]
        assert "arbees-network" in networks_of(s[name])
        for port in s[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), "infrastructure is published on loopback only"
    assert compose["networks"]["arbees-network"]["name"] == "arbees-network"
    orch = s["orchestrator"]
    assert orch["profiles"] == ["full"] and orch["healthcheck"] and "arbees-network" in networks_of(orch)
    assert s["vpn"]["profiles"] == ["vpn"]
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
