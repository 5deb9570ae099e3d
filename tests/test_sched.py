"""ARBEES_RT_PRIORITY: the hot path's receiving threads under SCHED_FIFO when the OS allows it, one clear
warning and normal scheduling when it does not, and never for the services off the hot path.

Real service processes; the policy is read back from /proc. Whether this machine allows real-time scheduling
decides which of the two behaviours a test can see: a root process may, and `setpriv` takes the capability
away for the other case.
"""

from __future__ import annotations

import os
import resource
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbees_core.config import ConfigError, Env
from arbees_core.harness import ProcessStack, pipeline_env
from arbees_core.polling import eventually
from arbees_core.services.execution_support import BookCache, PriceFeedThread
from arbees_core.services.sched import DEFAULT_PRIORITY, rt_explicit, rt_permitted, rt_priority
from arbees_core.telemetry.metrics import Metrics
from arbees_core.topics import Family
from arbees_core.transport import Inbox, TransportSettings, make_subscriber

PRIORITY = 7
pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="Linux scheduling policies only")


def thread_policies(pid: int) -> dict[str, tuple[int, int]]:
    """{"<thread name>/<tid>": (policy, priority)} of every thread of a process."""
    out: dict[str, tuple[int, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            out[f"{name}/{tid}"] = (os.sched_getscheduler(int(tid)), os.sched_getparam(int(tid)).sched_priority)
        except OSError:
            continue
    return out


def test_rt_priority_is_on_by_default_where_permitted_and_rejects_what_sched_fifo_cannot_take() -> None:
    assert rt_priority(Env({})) == DEFAULT_PRIORITY and not rt_explicit(Env({}))
    assert rt_priority(Env({"ARBEES_RT_PRIORITY": "0"})) == 0 and rt_explicit(Env({"ARBEES_RT_PRIORITY": "0"}))
    assert rt_priority(Env({"ARBEES_RT_PRIORITY": "10"})) == 10
    for bad in ("99", "-1", "high"):
        with pytest.raises(ConfigError, match="ARBEES_RT_PRIORITY"):
            rt_priority(Env({"ARBEES_RT_PRIORITY": bad}))


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[ProcessStack]:
    env = pipeline_env(True, redis_url, database_url, tmp_path) | {"ARBEES_RT_PRIORITY": str(PRIORITY)}
    s = ProcessStack(tmp_path, env)
    yield s
    s.stop_all()


def _running(stack: ProcessStack, name: str) -> int:
    eventually(lambda: stack.metrics(name).get("state") == "running", 30, what=f"{name} running\n{stack.log(name)}")
    return stack.procs[name].pid


@pytest.mark.skipif(not rt_permitted(PRIORITY), reason="this process may not use SCHED_FIFO")
def test_with_permission_game_shard_receives_under_sched_fifo_and_a_monitor_only_sends_from_it(
        stack: ProcessStack) -> None:
    for name in ("game_shard", "kalshi_monitor", "zmq_listener"):
        stack.start(name)
    shard = thread_policies(_running(stack, "game_shard"))
    main = next(v for k, v in shard.items() if k.endswith(f"/{stack.procs['game_shard'].pid}"))
    assert main == (os.SCHED_FIFO, PRIORITY), shard  # the receive loop
    assert all(v == (os.SCHED_FIFO, PRIORITY) for k, v in shard.items() if k.startswith("ZMQbg/IO")), shard
    assert (os.SCHED_OTHER, 0) in shard.values(), shard  # the health reporter, started before, stays normal

    monitor = thread_policies(_running(stack, "kalshi_monitor"))
    main = next(v for k, v in monitor.items() if k.endswith(f"/{stack.procs['kalshi_monitor'].pid}"))
    assert main == (os.SCHED_OTHER, 0), monitor  # the parsing thread is not allowed to hog a core
    io = [v for k, v in monitor.items() if k.startswith("ZMQbg/IO")]
    assert io and all(v == (os.SCHED_FIFO, PRIORITY) for v in io), monitor

    listener = thread_policies(_running(stack, "zmq_listener"))  # off the hot path: never real-time
    assert all(policy != os.SCHED_FIFO for policy, _ in listener.values()), listener
    assert "Real-time scheduling: SCHED_FIFO priority 7" in stack.log("game_shard")


def _unprivileged_wrapper() -> tuple[str, ...]:
    """How to start a service that may not use SCHED_FIFO: as it is when this process may not either; as root,
    under setpriv without CAP_SYS_NICE (and prlimit with an rtprio limit of 0)."""
    if not rt_permitted(PRIORITY):
        return ()
    setpriv, prlimit = shutil.which("setpriv"), shutil.which("prlimit")
    if setpriv is None or (prlimit is None and resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0):
        pytest.skip("this process may use SCHED_FIFO, and no setpriv/prlimit here to take that away")
    limit = (prlimit, "--rtprio=0") if prlimit else ()
    return (setpriv, "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", *limit)


def test_without_permission_a_service_warns_once_and_runs_with_normal_scheduling(stack: ProcessStack) -> None:
    stack.wrapper = _unprivileged_wrapper()
    stack.start("game_shard")
    pid = _running(stack, "game_shard")
    assert all(policy == os.SCHED_OTHER for policy, _ in thread_policies(pid).values())
    log = stack.log("game_shard")
    assert log.count("is not permitted for this process") == 1, log
    assert "WARNING game_shard: Real-time scheduling (ARBEES_RT_PRIORITY=" in log  # asked for: a warning
    assert "Real-time scheduling: SCHED_FIFO" not in log


def test_by_default_real_time_is_taken_where_permitted_and_its_absence_is_one_quiet_line(
        tmp_path: Path, redis_url: str, database_url: str) -> None:
    """Unset ARBEES_RT_PRIORITY: SCHED_FIFO at the default priority where the process may use it (one line saying
    it is the default and how to turn it off); where it may not, one INFO line and normal scheduling."""
    env = pipeline_env(True, redis_url, database_url, tmp_path)
    env.pop("ARBEES_RT_PRIORITY", None)
    stack = ProcessStack(tmp_path, env)
    try:
        if rt_permitted(DEFAULT_PRIORITY):
            stack.start("game_shard")
            pid = _running(stack, "game_shard")
            assert any(policy == os.SCHED_FIFO for policy, _ in thread_policies(pid).values())
            assert "the default where permitted; ARBEES_RT_PRIORITY=0 turns it off" in stack.log("game_shard")
            stack.stop("game_shard")
        stack.wrapper = _unprivileged_wrapper()
        stack.start("game_shard")
        pid = _running(stack, "game_shard")
        assert all(policy == os.SCHED_OTHER for policy, _ in thread_policies(pid).values())
        log = stack.log("game_shard")
        assert "INFO game_shard: Real-time scheduling (the default where permitted" in log, log
        assert "WARNING game_shard: Real-time" not in log
    finally:
        stack.stop_all()


def _autogroup(pid: int) -> str | None:
    """The process's autogroup, or None for the kernel's default group: the file reads empty for a session that
    never got an autogroup of its own (a container's init session, as on CI), and is absent without
    CONFIG_SCHED_AUTOGROUP. Processes of one session always share whichever it is."""
    try:
        fields = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return None
    return fields[0] if fields else None


def test_the_services_of_one_stack_share_its_session_each_in_a_process_group_of_its_own(
        tmp_path: Path, redis_url: str, database_url: str) -> None:
    """One session = one scheduling group (Linux autogroup): the services' threads compete as peers, so the
    niceness and policies above mean what they say; own process groups keep a terminal's Ctrl-C off them."""
    stack = ProcessStack(tmp_path, pipeline_env(True, redis_url, database_url, tmp_path))
    try:
        for name in ("game_shard", "zmq_listener"):
            stack.start(name)
        pids = [_running(stack, name) for name in ("game_shard", "zmq_listener")]
        assert {os.getsid(pid) for pid in pids} == {os.getsid(0)}
        assert [os.getpgid(pid) for pid in pids] == pids
        assert len({_autogroup(pid) for pid in pids} | {_autogroup(os.getpid())}) == 1
    finally:
        stack.stop_all()


@pytest.mark.skipif(not rt_permitted(PRIORITY), reason="this process may not use SCHED_FIFO")
def test_redis_mode_book_cache_thread_leaves_sched_fifo_so_the_monitors_keep_their_cpu(redis_url: str) -> None:
    """Redis mode's execution_service reads every price on a thread of its own; started from the real-time loop it
    inherited SCHED_FIFO and took the monitors' CPU (game_shard got 1 650 of 2 000 prices/s in the benchmark)."""
    settings = TransportSettings.from_env(Env({"ZMQ_ENABLED": "false", "REDIS_URL": redis_url}))
    policies: dict[str, int] = {}

    def realtime_loop() -> None:  # stands in for the service's receive loop under ARBEES_RT_PRIORITY
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITY))
        sub = make_subscriber(settings, [Family.PRICES_KALSHI], [], last_value=True)
        feed = PriceFeedThread(Inbox(sub, Metrics("execution_service", "test")), BookCache(), 50)
        feed.start()
        eventually(lambda: feed.native_id is not None and os.sched_getscheduler(feed.native_id) == os.SCHED_OTHER,
                   10, what="the price-feed thread under SCHED_OTHER")
        policies["loop"], policies["feed"] = os.sched_getscheduler(0), os.sched_getscheduler(feed.native_id)
        feed.close()

    loop = threading.Thread(target=realtime_loop)
    loop.start()
    loop.join(30)
    assert policies == {"loop": os.SCHED_FIFO, "feed": os.SCHED_OTHER}
