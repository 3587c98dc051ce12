"""LoopWatch: whether the event loop kept answering while a call ran, and its longest stall."""

from __future__ import annotations

import asyncio
import gc
import time
from types import TracebackType


class LoopWatch:
    """A task that ticks every ``interval`` seconds inside the ``async with`` block.

    ``ticks`` counts the ticks, ``longest_stall`` is the longest time between
    two of them (the block's start and end included): a call that holds the
    event loop (a C function keeping the GIL, a blocking read) shows as a stall
    as long as the call, however short the ticks' interval. Entering collects
    the garbage first: a full collection of a test process with a large heap
    (pytest, Hypothesis) takes 150-200 ms, a stall that is not the call's.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.ticks = 0
        self.longest_stall = 0.0
        self._last = 0.0
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _mark(self) -> None:
        now = time.monotonic()
        self.longest_stall = max(self.longest_stall, now - self._last)
        self._last = now

    async def _tick(self) -> None:
        while not self._done.is_set():
            self._mark()
            self.ticks += 1
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> LoopWatch:
        gc.collect()
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # the first tick, before the watched call starts
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._mark()
        self._done.set()
        if self._task is not None:
            await self._task
