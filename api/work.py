"""A bounded work queue: blocking work waits in a thread pool off the event loop, at most ``workers`` at once, model
calls run on one thread (``ModelThread``), and at most ``max_queue`` requests are admitted (searches waiting for
their batch included); the rest are answered 503 with Retry-After at once, so an overload shows as fast refusals
rather than unbounded latency.

A plain thread pool rather than anyio's limiter: it does not belong to one event loop, so the same app
also works under test clients that run each request on its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Overloaded(Exception):
    pass


class ModelThread:
    """The one thread that runs every model call of a server: open the index with it, then give it to the app.

    torch's CPU kernels run on OpenMP (libgomp), which keeps a team of worker threads for each thread that calls it;
    once it manages more threads than there are cores it cuts its workers' spin-wait to almost nothing, so every
    parallel region then pays for waking them. Measured on 2 cores (splade-tiny, scifact test queries, one at a
    time): 2.8 ms per sparse search from the only thread that ever called torch, 4.4–6 ms from a pool thread after
    another thread had called it.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lsr-model")

    def submit(self, function: Callable[..., T], *args) -> Future[T]:
        """``function(*args)`` queued on the model thread."""
        return self._executor.submit(function, *args)

    def call(self, function: Callable[..., T], *args) -> T:
        """``function(*args)`` on the model thread; blocks until it returns, raises what it raised."""
        return self.submit(function, *args).result()

    async def run(self, function: Callable[..., T], *args) -> T:
        """``function(*args)`` on the model thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(function, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=False)


class WorkQueue:
    def __init__(self, workers: int, max_queue: int, model: ModelThread) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="lsr-work")
        self.model = model
        self._max_queue = max_queue
        self._lock = threading.Lock()
        self.admitted = 0

    async def run(self, function: Callable[..., T], *args) -> T:
        """``function(*args)`` on a pool thread: for blocking work that needs no model."""
        with self.admission():
            return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(function, *args))

    async def run_model(self, function: Callable[..., T], *args) -> T:
        """``function(*args)`` on the model thread, admitted like ``run``."""
        with self.admission():
            return await self.model.run(function, *args)

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Counts as admitted inside; raises Overloaded when ``max_queue`` requests are in already."""
        with self._lock:
            if self.admitted >= self._max_queue:
                raise Overloaded
            self.admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self.admitted -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.model.close()
