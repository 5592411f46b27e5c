"""Runs a dataset's queries through a Searcher into a run: {query id: {doc id: score}}."""

from __future__ import annotations

from tqdm.auto import tqdm

from lsr.retrieval.search import Searcher

Run = dict[str, dict[str, float]]


def run_queries(
    searcher: Searcher,
    queries: dict[str, str],
    *,
    k: int = 1000,
    remove_identical_ids: bool = True,
    batch_size: int = 64,
    progress: bool | None = None,
) -> Run:
    """``remove_identical_ids`` drops a hit whose doc id equals the query id (BEIR's ``ignore_identical_ids``)."""
    ids = list(queries)
    depth = k + 1 if remove_identical_ids else k  # keep k hits after dropping the query's own doc
    run: Run = {}
    with tqdm(total=len(ids), unit="query", desc="searching", disable=None if progress is None else not progress) as bar:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            for query_id, hits in zip(batch, searcher.search_many([queries[q] for q in batch], depth), strict=True):
                kept = [hit for hit in hits if not (remove_identical_ids and hit.id == query_id)][:k]
                run[query_id] = {hit.id: hit.score for hit in kept}
            bar.update(len(batch))
    return run
