"""Runs a dataset's queries through a Searcher into a run: {query id: {doc id: score}}."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from lsr.retrieval.fusion import Fusion
from lsr.retrieval.search import Hit, Searcher

Run = dict[str, dict[str, float]]


def run_entry(query_id: str, hits: Sequence[Hit], k: int, remove_identical_ids: bool) -> dict[str, float]:
    """``remove_identical_ids`` drops a hit whose doc id equals the query id (BEIR's ``ignore_identical_ids``)."""
    kept = [hit for hit in hits if not (remove_identical_ids and hit.id == query_id)][:k]
    return {hit.id: hit.score for hit in kept}


def run_queries(
    searcher: Searcher,
    queries: dict[str, str],
    *,
    k: int = 1000,
    remove_identical_ids: bool = True,
    mode: str | None = None,
    fusion: Fusion | None = None,
    batch_size: int = 64,
    progress: bool | None = None,
) -> Run:
    ids = list(queries)
    depth = k + 1 if remove_identical_ids else k  # keep k hits after dropping the query's own doc
    run: Run = {}
    with tqdm(total=len(ids), unit="query", desc="searching", disable=None if progress is None else not progress) as bar:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            results = searcher.search_many([queries[q] for q in batch], depth, mode=mode, fusion=fusion)
            for query_id, hits in zip(batch, results, strict=True):
                run[query_id] = run_entry(query_id, hits, k, remove_identical_ids)
            bar.update(len(batch))
    return run
