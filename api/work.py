"""A bounded work queue: model calls run in a thread pool off the event loop, at most ``workers`` at once,
and at most ``max_queue`` requests are admitted; the rest are answered 503 with Retry-After at once, so an
overload shows as fast refusals rather than unbounded latency."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class Overloaded(Exception):
    pass


class WorkQueue:
    def __init__(self, workers: int, max_queue: int) -> None:
        self._limiter = anyio.CapacityLimiter(workers)
        self._max_queue = max_queue
        self.admitted = 0  # only touched on the event loop thread, so no lock is needed

    async def run(self, function: Callable[..., T], *args) -> T:
        if self.admitted >= self._max_queue:
            raise Overloaded
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)
        finally:
            self.admitted -= 1
