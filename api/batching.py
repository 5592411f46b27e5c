"""Continuous batching of /search requests: concurrent requests are encoded and searched together.

A request that finds no batch running or queued starts one on the model thread (``ModelThread``): under concurrent
load (the last batch held more than one request) that batch first waits ``window_s`` for others to join; then it
runs every pending request (up to ``max_batch``), grouped by the settings a search call shares (filter, mode, fusion,
depth), one ``search_many`` per group. Requests that arrive meanwhile wait for that batch to end, and the next
batch, queued on the model thread behind it (waiting the window again, as the load is concurrent), takes them all.
So model calls never run two at a time (each uses all of torch's threads, which are not oversubscribed), other
model calls (writes) take turns between batches, and under load a batch holds whatever queued while the previous
one ran: the encoder's matrix products and the engine's batched search pay their fixed costs once per batch, not
once per request.

A request is a future resolved on the model thread, so an async route awaits it with no thread of its own: a lone
query crosses threads twice (event loop → model thread → event loop), where a worker thread waiting on the batch
cost two more crossings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Result = TypeVar("Result")


@dataclass
class _Request(Generic[Result]):
    key: Hashable
    query: str
    result: Future[Result] = field(default_factory=Future)


class Batcher(Generic[Result]):
    def __init__(
        self,
        run: Callable[[Hashable, list[str]], Sequence[Result]],
        *,
        start: Callable[[Callable[[], None]], object],
        window_s: float,
        max_batch: int,
    ) -> None:
        """``run(key, queries)`` searches queries that share the settings ``key`` stands for, one result each;
        ``start(task)`` queues ``task`` on the thread that runs the model (``ModelThread.submit``)."""
        self._run = run
        self._start = start
        self._window_s = window_s
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Request[Result]] = []
        self._running = False  # a batch is running or queued on the model thread: it (or the next) takes new requests
        self._last_batch = 0  # requests in the last batch: more than one means requests arrive concurrently
        self.batches = 0  # batches run, and requests in them: their ratio is the mean batch size
        self.requests = 0

    def submit(self, key: Hashable, query: str) -> Future[Result]:
        """This query's result, or the error its batch raised, once its batch has run."""
        request: _Request[Result] = _Request(key, query)
        with self._lock:
            self._pending.append(request)
            first = not self._running
            self._running = True
        if first:
            self._queue(self._windowed_batch)
        return request.result

    def search(self, key: Hashable, query: str) -> Result:
        """Blocks until this query's result is ready; raises what its batch raised."""
        return self.submit(key, query).result()

    def _queue(self, batch: Callable[[], None]) -> None:
        try:
            self._start(batch)
        except BaseException as exc:  # the model thread is gone (the server is closing): fail what waits, not hang
            with self._lock:
                failed, self._pending, self._running = self._pending, [], False
            for request in failed:
                request.result.set_exception(exc)
            raise

    def _windowed_batch(self) -> None:
        if self._last_batch > 1:  # alone (one client at a time) there is nobody to wait for
            time.sleep(self._window_s)
        self._batch()

    def _batch(self) -> None:
        with self._lock:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        groups: dict[Hashable, list[_Request[Result]]] = {}
        for request in batch:
            groups.setdefault(request.key, []).append(request)
        for key, requests in groups.items():
            try:
                results = self._run(key, [request.query for request in requests])
            except Exception as exc:  # every request of the group gets the error, as it would have alone
                for request in requests:
                    request.result.set_exception(exc)
            else:
                for request, result in zip(requests, results, strict=True):
                    request.result.set_result(result)
        with self._lock:
            self.batches += 1
            self.requests += len(batch)
            self._last_batch = len(batch)
            more = bool(self._pending)
            self._running = more
        if more:  # behind whatever else waits for the model thread
            self._queue(self._windowed_batch)
