"""A bounded work queue: model calls run in a thread pool off the event loop, at most ``workers`` at once,
and at most ``max_queue`` requests are admitted; the rest are answered 503 with Retry-After at once, so an
overload shows as fast refusals rather than unbounded latency.

A plain thread pool rather than anyio's limiter: it does not belong to one event loop, so the same app
also works under test clients that run each request on its own loop.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Overloaded(Exception):
    pass


class WorkQueue:
    def __init__(self, workers: int, max_queue: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="lsr-work")
        self._max_queue = max_queue
        self._lock = threading.Lock()
        self.admitted = 0

    async def run(self, function: Callable[..., T], *args) -> T:
        with self._lock:
            if self.admitted >= self._max_queue:
                raise Overloaded
            self.admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(function, *args))
        finally:
            with self._lock:
                self.admitted -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False)
