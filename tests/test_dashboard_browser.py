"""The dashboard in a real browser (Debian's chromium, headless, driven by Selenium through Debian's chromedriver)
against a real local stack: a late joiner sees the trades made before it opened the page; an injected mispricing
shows up as a paper trade on the page within a few seconds of its fill; a killed service shows up restarting.

Needs the `chromium` and `chromium-driver` packages (skipped, with the reason, when they are absent)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from arbees_core.polling import eventually
from arbees_core.runtime.local import LocalRuntime

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: How soon after its paper fill a trade must be on the page (the issue: "within a few seconds").
SHOWN_WITHIN_S = 5.0
#: Chromium as root, headless, offline, with a profile of its own.
CHROMIUM_ARGS = ("--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1500,1700")


@pytest.fixture
def browser() -> Iterator[object]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(f"no {', '.join(missing)}: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="arbees-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _cells(driver: object, css: str) -> list[str]:
    """The text of every element matching `css`, read in one script (the page redraws its tables on every update,
    so elements found in one call may be gone by the next)."""
    return driver.execute_script(  # type: ignore[attr-defined]
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", css)


def _trade_rows(driver: object) -> dict[str, str]:
    """signal id -> the row's text, as the page shows the trades table."""
    rows = driver.execute_script(  # type: ignore[attr-defined]
        "return [...document.querySelectorAll('#trades tbody tr')].map(e => [e.dataset.signalId, e.textContent])")
    return dict(rows)


def _fills(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT signal_id, max(ts_fill_ns) FROM paper_trades GROUP BY signal_id").fetchall())


def test_dashboard_shows_an_injected_mispricing_as_a_trade_and_a_killed_service_restarting(
        local_project: Callable[[str], Path], database_url: str, browser: object, tmp_path: Path) -> None:
    project = local_project("ZMQ_ENABLED=true\nSIM_RATE=50\nSIM_GAMES=3\nSIM_MISPRICE_EVERY_S=0\n"
                            "SIM_MISPRICE_AT_S=4\nSIM_MISPRICE_DURATION_MS=600\nGAME_COOLDOWN_MS=1000\n"
                            "HEARTBEAT_INTERVAL_SECS=0.5\n")
    rt = LocalRuntime(project)
    rt.up()
    before = eventually(lambda: _fills(database_url), 60, what="the first injected mispricing traded")
    browser.get(rt.urls()["API_URL"])  # type: ignore[attr-defined]

    # a late joiner: the trade made before the page opened is there at once, from the snapshot
    eventually(lambda: set(_trade_rows(browser)) >= set(before), 15, what="the earlier trade on the page")
    assert "live feed: ZMQ (4/4 publishers connected)" in eventually(lambda: _cells(browser, "#source")[0]
                                                                      if "4/4" in _cells(browser, "#source")[0]
                                                                      else "", 20, what="the source badge")
    eventually(lambda: len(_cells(browser, "#games tbody tr")) >= 6, 15, what="both teams of three games")

    # a new mispricing (4 s after kalshi_monitor's stream restarts) becomes a trade on the page within seconds
    rt.restart(["kalshi_monitor"])
    shown: dict[str, int] = {}

    def new_row() -> str | None:
        for signal_id in _trade_rows(browser):
            if signal_id not in before:
                shown.setdefault(signal_id, time.time_ns())
                return signal_id
        return None

    signal_id = eventually(new_row, 60, interval=0.1, what="a new trade on the page")
    fill_ns = eventually(lambda: _fills(database_url).get(signal_id), 30, what="its row in paper_trades")
    delay_s = (shown[signal_id] - fill_ns) / 1e9
    assert delay_s < SHOWN_WITHIN_S, f"trade {signal_id} shown {delay_s:.2f}s after its fill"
    row = _trade_rows(browser)[signal_id]
    assert "zmq" in row and "kalshi" in row and "polymarket" in row and "filled" in row
    browser.save_screenshot(str(tmp_path / "dashboard.png"))  # type: ignore[attr-defined]

    # the health panel follows a killed service through its restart
    victim = next(s for s in rt.status() if s.name == "game_shard")
    os.kill(victim.pid, signal.SIGKILL)
    restarted = "#health tbody tr[data-service=game_shard]"
    eventually(lambda: _cells(browser, f"{restarted} td.restarts") == ["1"] and
               _cells(browser, f"{restarted} td.state") == ["running"], 30, interval=0.2,
               what="game_shard shown running again with 1 restart")
    assert next(s for s in rt.status() if s.name == "game_shard").restarts == 1
    assert (tmp_path / "dashboard.png").read_bytes()[:4] == b"\x89PNG"
