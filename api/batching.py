"""Continuous batching of /search requests: concurrent requests are encoded and searched together.

A request that finds no batch running leads: under concurrent load (the last batch held more than one request) it
first waits ``window_s`` for others to join; then it runs every pending request (up to ``max_batch``), grouped
by the settings a search call shares (filter, mode, fusion, depth), one ``search_many`` per group. Requests that
arrive meanwhile wait for that batch to end; the first of them then leads the next. So model calls never run two
at a time (each uses all of torch's threads, which are not oversubscribed), and under load a batch holds whatever
queued while the previous one ran: the encoder's matrix products and the engine's batched search pay their fixed
costs once per batch, not once per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Result = TypeVar("Result")


@dataclass
class _Request(Generic[Result]):
    key: Hashable
    query: str
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # handed the lead of the next batch
    result: Result | None = None
    error: BaseException | None = None


class Batcher(Generic[Result]):
    def __init__(self, run: Callable[[Hashable, list[str]], Sequence[Result]], *, window_s: float, max_batch: int) -> None:
        """``run(key, queries)`` searches queries that share the settings ``key`` stands for, one result each."""
        self._run = run
        self._window_s = window_s
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Request[Result]] = []
        self._leading = False
        self._last_batch = 0  # requests in the last batch: more than one means requests arrive concurrently
        self.batches = 0  # batches run, and requests in them: their ratio is the mean batch size
        self.requests = 0

    def search(self, key: Hashable, query: str) -> Result:
        """Blocks until this query's result is ready; raises what its batch raised."""
        request: _Request[Result] = _Request(key, query)
        with self._lock:
            self._pending.append(request)
            lead = not self._leading
            self._leading = True
        if lead:
            if self._last_batch > 1:  # alone (one client at a time) there is nobody to wait for
                time.sleep(self._window_s)
        else:
            request.done.wait()
        if request.lead:  # woken to lead: a batch ran meanwhile, and this request waited for it
            request.done.clear()
            lead = True
        if lead:
            self._lead()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        groups: dict[Hashable, list[_Request[Result]]] = {}
        for request in batch:
            groups.setdefault(request.key, []).append(request)
        for key, requests in groups.items():
            try:
                results = self._run(key, [request.query for request in requests])
                for request, result in zip(requests, results, strict=True):
                    request.result = result
            except Exception as exc:  # every request of the group gets the error, as it would have alone
                for request in requests:
                    request.error = exc
        with self._lock:
            self.batches += 1
            self.requests += len(batch)
            self._last_batch = len(batch)
            if self._pending:  # hand the lead on: the oldest waiting request runs the next batch
                self._pending[0].lead = True
                self._pending[0].done.set()
            else:
                self._leading = False
        for request in batch:
            if not request.lead:
                request.done.set()
