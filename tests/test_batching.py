"""Concurrent /search requests are searched together, and each gets exactly what it would have got alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from lsr.api.app import create_app
from lsr.api.batching import Batcher
from lsr.api.settings import Settings
from lsr.retrieval.search import LiveSearcher

QUERIES = ["heat transfer in hypersonic flow", "boundary layer transition", "buckling of thin shells", "wing flutter"]


def test_concurrent_requests_share_batches_and_get_their_own_hits(small_searcher):
    expected = {query: [hit.id for hit in small_searcher.search(query, 5)] for query in QUERIES}
    app = create_app(LiveSearcher.from_searcher(small_searcher), Settings(batch_window_ms=20))
    with TestClient(app) as client, ThreadPoolExecutor(16) as pool:
        requests = [QUERIES[i % len(QUERIES)] for i in range(64)]
        responses = list(pool.map(lambda q: client.post("/search", json={"query": q, "k": 5}), requests))
        filtered = client.post("/search", json={"query": QUERIES[0], "k": 5, "filter": {"lang": "fr"}})
    assert all(response.status_code == 200 for response in responses)
    for query, response in zip(requests, responses, strict=True):
        assert [hit["id"] for hit in response.json()["hits"]] == expected[query]
    batcher = app.state.batcher
    assert batcher.requests == 64 + 1  # the filtered request goes through it too
    assert batcher.batches < batcher.requests / 2  # requests were searched together, not one by one
    assert filtered.status_code == 200 and filtered.json()["hits"] == []  # other settings: searched apart


def test_a_failing_group_fails_only_its_own_requests():
    def run(key: str, queries: list[str]) -> list[str]:
        time.sleep(0.02)  # a search takes time: requests that arrive meanwhile form the next batch
        if key == "bad":
            raise ValueError("bad settings")
        return [query.upper() for query in queries]

    model_thread = ThreadPoolExecutor(1)
    batcher: Batcher[str] = Batcher(run, start=model_thread.submit, window_s=0.05, max_batch=8)
    results: dict[str, object] = {}

    def search(key: str, query: str) -> None:
        try:
            results[query] = batcher.search(key, query)
        except ValueError as exc:
            results[query] = exc

    threads = [threading.Thread(target=search, args=("bad" if i % 3 == 0 else "good", f"q{i}")) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for i in range(20):
        if i % 3 == 0:
            assert isinstance(results[f"q{i}"], ValueError)
        else:
            assert results[f"q{i}"] == f"Q{i}"
    assert batcher.requests == 20 and batcher.batches < 20
    model_thread.shutdown()


def test_other_model_calls_take_turns_between_batches():
    """A batch is one task on the model thread: a write queued while a batch runs goes before the next batch, so
    steady search load cannot starve it."""
    model_thread = ThreadPoolExecutor(1)
    order: list[tuple] = []
    first_running, release = threading.Event(), threading.Event()

    def run(key: str, queries: list[str]) -> list[str]:
        order.append(("batch", *queries))
        if queries == ["first"]:
            first_running.set()
            release.wait(5)
        return queries

    batcher: Batcher[str] = Batcher(run, start=model_thread.submit, window_s=0, max_batch=8)
    first = batcher.submit("k", "first")
    assert first_running.wait(5)
    second = batcher.submit("k", "second")  # waits for the running batch
    write = model_thread.submit(order.append, ("write",))
    release.set()
    assert (first.result(5), second.result(5)) == ("first", "second")
    write.result(5)
    model_thread.shutdown()
    assert order == [("batch", "first"), ("write",), ("batch", "second")]
    assert (batcher.batches, batcher.requests) == (2, 2)


@pytest.mark.parametrize("window", ["-1", "soon"])
def test_batch_window_setting_is_validated(monkeypatch, window):
    from lsr.errors import LsrError

    monkeypatch.setenv("LSR_BATCH_WINDOW_MS", window)
    with pytest.raises(LsrError, match="LSR_BATCH_WINDOW_MS"):
        Settings.from_env()
