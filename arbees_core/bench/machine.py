"""The machine a benchmark ran on: CPU, cores, load, how idle CPUs wait, and the versions of what it measured."""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arbees_core.bench.common import Servers


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def idle_info() -> str | None:
    """How an idle CPU waits, which sets what waking it costs: on a VM, waking a halted vCPU can be half of a bare
    pyzmq hop, so runs on hosts that differ in this differ in every figure. `haltpoll/haltpoll, guest halt polling 0 ns`; None where the OS does not say."""
    root = "/sys/devices/system/cpu/cpuidle/"
    driver, governor = _read(root + "current_driver"), _read(root + "current_governor_ro") or _read(
        root + "current_governor")
    if driver is None:
        return None
    text = f"{driver}/{governor}"
    halt_poll = _read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    return text + (f", guest halt polling {halt_poll} ns" if halt_poll is not None else "")


def machine_info(srv: "Servers | None" = None) -> dict[str, Any]:
    """CPU, cores, load, how idle CPUs wait, Python, pyzmq/libzmq and Redis versions."""
    import zmq

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                            "kernel": platform.release(),
                            "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "platform": platform.platform(),
                            "load_avg_1m": round(os.getloadavg()[0], 2), "cpuidle": idle_info()}
    if srv is not None:
        import redis

        try:
            client = redis.Redis.from_url(srv.redis_url)
            info["redis"] = client.info("server").get("redis_version")
            client.close()
        except redis.RedisError:
            info["redis"] = None
        info["servers"] = "embedded " + ", ".join(srv.embedded) if srv.embedded else "REDIS_URL / DATABASE_URL"
    return info
