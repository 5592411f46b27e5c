"""Runs a dataset's queries through a Searcher into a run: {query id: {doc id: score}}."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from lsr import defaults
from lsr.indexer.engines import Ranking
from lsr.retrieval.search import Hit, Searcher
from lsr.retrieval.search.fusion import Fusion
from lsr.runs import Run


def keep_hits(query_id: str, ranked: Iterable[tuple[str, float]], k: int, remove_identical_ids: bool) -> dict[str, float]:
    """The first ``k`` of ranked (doc id, score) pairs; ``remove_identical_ids`` drops the query's own id
    (BEIR's ``ignore_identical_ids``)."""
    kept = [(doc_id, score) for doc_id, score in ranked if not (remove_identical_ids and doc_id == query_id)][:k]
    return dict(kept)


def run_entry(query_id: str, hits: Sequence[Hit], k: int, remove_identical_ids: bool) -> dict[str, float]:
    return keep_hits(query_id, ((hit.id, hit.score) for hit in hits), k, remove_identical_ids)


def rankings_run(
    query_ids: Sequence[str], rankings: Sequence[Ranking], doc_ids: Sequence[str], k: int, remove_identical_ids: bool = True
) -> Run:
    """A run from engine rankings (rows and scores), each row named through ``doc_ids``, with no ``Hit`` built: what
    scores many fusions of the same queries (``lsr tune`` builds ~600 runs; hits made half its time)."""
    return {
        query_id: keep_hits(
            query_id,
            zip((doc_ids[row] for row in ranking.doc_indices.tolist()), ranking.scores.tolist()),
            k,
            remove_identical_ids,
        )
        for query_id, ranking in zip(query_ids, rankings, strict=True)
    }


def run_queries(
    searcher: Searcher,
    queries: dict[str, str],
    *,
    k: int = defaults.RUN_DEPTH,
    remove_identical_ids: bool = True,
    mode: str | None = None,
    fusion: Fusion | None = None,
    batch_size: int = 64,
    progress: bool | None = None,
    desc: str = "searching",
) -> Run:
    ids = list(queries)
    depth = k + 1 if remove_identical_ids else k  # keep k hits after dropping the query's own doc
    run: Run = {}
    with tqdm(total=len(ids), unit="query", desc=desc, disable=None if progress is None else not progress) as bar:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            results = searcher.search_many([queries[q] for q in batch], depth, mode=mode, fusion=fusion)
            for query_id, hits in zip(batch, results, strict=True):
                run[query_id] = run_entry(query_id, hits, k, remove_identical_ids)
            bar.update(len(batch))
    return run


@dataclass
class Latencies:
    encode_ms: list[float] = field(default_factory=list)  # per query
    retrieve_ms: list[float] = field(default_factory=list)  # the rest of each call: quantization, engine, fusion, hits


def time_queries(
    searcher: Searcher,
    texts: Sequence[str],
    encoders: Sequence,
    *,
    depth: int,
    mode: str | None = None,
    progress: bool | None = None,
    desc: str = "timing",
) -> Latencies:
    """One query per call, as a user's request arrives; each call's time is split into the time ``encoders``
    (the searcher's :class:`~lsr.eval.efficiency.TimedEncoder` wrappers) spent encoding and the rest."""
    latencies = Latencies()
    if not texts:
        return latencies
    searcher.search_many([texts[0]], depth, mode=mode)  # warm-up: compiled code and caches, not a user's latency
    for encoder in encoders:
        encoder.take()
    for text in tqdm(texts, unit="query", desc=desc, disable=None if progress is None else not progress):
        started = time.perf_counter()
        searcher.search_many([text], depth, mode=mode)
        total = time.perf_counter() - started
        encoding = sum(encoder.take() for encoder in encoders)
        if encoders:  # without a query encoder there is no encoding step to report
            latencies.encode_ms.append(encoding * 1000)
        latencies.retrieve_ms.append((total - encoding) * 1000)
    return latencies
