"""A peer's outage as the process logs it (one line per reason, one when it ends), what a healthcheck makes of a
snapshot, and which URLs are configuration errors. The servers' side is in test_startup_errors.py."""

from __future__ import annotations

import logging
import re

import pytest
import redis

from arbees_core.config import ConfigError, check_database_url, check_redis_url
from arbees_core.services.startup import config_error_snapshot, health_problem
from arbees_core.telemetry.peers import PeerLink, peer, peers_view


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "arbees.peers"]


def test_an_outage_seen_by_several_components_is_one_line_per_reason_and_one_when_all_are_through(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="arbees.peers")
    target = peer("Redis", "10.0.0.5:6379/0")
    health, publisher = PeerLink(target, "health"), PeerLink(target, "publishing")
    denied = redis.ResponseError("DENIED Redis is running in protected mode because protected mode is enabled")
    health.failed(denied)
    publisher.failed(denied, "buffering")
    health.failed(redis.exceptions.NoPermissionError("this user has no permissions to run the 'set' command"))
    publisher.failed(redis.exceptions.NoPermissionError("this user has no permissions to run the 'xadd' command"))
    health.ok()  # the publisher still fails: the outage is not over
    assert [p["usable"] for p in peers_view()] == [False]
    publisher.ok()
    lines = _lines(caplog)
    assert lines[:2] == [
        "Redis unavailable at 10.0.0.5:6379/0: ResponseError: DENIED Redis is running in protected mode because "
        "protected mode is enabled; retrying with backoff",
        "Redis still unavailable at 10.0.0.5:6379/0: now NoPermissionError: this user has no permissions to run the "
        "'set' command",  # the 'xadd' refusal is the same reason: not logged again
    ]
    assert len(lines) == 3 and re.fullmatch(r"Redis back after \d+\.\ds at 10\.0\.0\.5:6379/0", lines[2])
    assert peers_view() == [{"kind": "Redis", "location": "10.0.0.5:6379/0", "usable": True}]


def test_a_link_backs_off_doubling_to_the_cap_and_resets_when_through() -> None:
    link = PeerLink(peer("PostgreSQL", "db:5432/arbees"))
    delays = []
    for _ in range(8):
        link.failed(ConnectionRefusedError("refused"))
        delays.append(link.delay)
    assert delays == [0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0] and not link.may_try()
    assert link.ok() is not None and link.may_try() and link.delay == 0.2


def test_a_component_that_stops_does_not_hold_the_outage_open(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="arbees.peers")
    target = peer("Redis", "r:6379/0")
    probe = PeerLink(target)
    probe.failed(ConnectionRefusedError("refused"))
    probe.close()
    assert target.usable and len(_lines(caplog)) == 1  # nothing proved it back: no `back` line
    PeerLink(target).failed(ConnectionRefusedError("refused"))
    assert len(_lines(caplog)) == 2  # a later outage is a new one


def test_health_problem_names_a_configuration_error_a_wait_and_a_stale_snapshot() -> None:
    waiting = {"state": "waiting", "peers": [{"kind": "Redis", "location": "r:6379/0", "usable": False,
                                              "reason": "AuthenticationError: invalid password"}]}
    assert health_problem({"state": "running", "peers": []}, 1.0) == ""
    assert health_problem(waiting, 1.0) == ("waiting: Redis unavailable at r:6379/0: AuthenticationError: "
                                            "invalid password")
    assert health_problem({"state": "running"}, 20.0) == "state=running, metrics snapshot 20s old"
    held = config_error_snapshot("game_shard", "configuration error: REDIS_URL: 'http://r' is not a Redis URL")
    assert health_problem(held, 3600.0) == ("config_error: configuration error: REDIS_URL: 'http://r' is not a "
                                            "Redis URL")
    assert health_problem(None, 0.0) == "no metrics snapshot yet"


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://u:p@h:6380/3", "redis://h",
                                 "unix:///tmp/r.sock?db=2", "redis://h:6379/0?db=5"])
def test_usable_redis_urls_pass(url: str) -> None:
    assert check_redis_url("REDIS_URL", url) == url


@pytest.mark.parametrize("url", ["postgresql://u:p@h:5432/db", "postgres://h/db", "host=h dbname=d password=x",
                                 "postgresql://postgres@/postgres?host=/tmp/pg", "postgresql://h:5432,h2:5433/db"])
def test_usable_database_urls_pass(url: str) -> None:
    assert check_database_url("DATABASE_URL", url) == url


@pytest.mark.parametrize("check,url", [(check_redis_url, "http://u:s3cret@h:6379/0"),
                                       (check_redis_url, "redis://u:s3cret@h:port/0"),
                                       (check_database_url, "mysql://u:s3cret@h/db"),
                                       (check_database_url, "u:s3cret@h/db"),
                                       (check_database_url, "host=h password=s3cret port=x")])
def test_unusable_urls_are_configuration_errors_without_the_password(check, url: str) -> None:
    with pytest.raises(ConfigError) as err:
        check("X_URL", url)
    assert str(err.value).startswith("X_URL: ") and "s3cret" not in str(err.value)
