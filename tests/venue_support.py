"""What the live-venue tests share: driving a live source into its feed the way the
monitor does until a scripted outcome holds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from arbees_core.polling import eventually_async
from arbees_core.venues.book import BookChange

T = TypeVar("T")


async def drive(source: Any, feed: Any, until: Callable[[Any, Any], object], timeout: float) -> list[BookChange]:
    """Run the monitor-side loop (source -> feed) until `until(source, feed)` holds or the source ends; the
    top-of-book changes the feed produced on the way."""
    changes: list[BookChange] = []
    stop = asyncio.Event()

    async def read() -> None:
        async for raw in source.stream(stop):
            changes.extend(feed.handle(raw, time.time_ns()))

    reader = asyncio.create_task(read())
    try:
        await eventually_async(lambda: until(source, feed) or reader.done(), timeout, "the scripted outcome")
    finally:
        stop.set()
        await asyncio.wait_for(reader, 5)
    return changes


class LoopThread:
    """An asyncio loop in a thread of its own: local venue servers that a test's subprocesses talk to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="venue-servers", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
