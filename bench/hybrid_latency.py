"""Hybrid retrieval latency against each single side, all measured in the same run, encoding excluded.

    python bench/hybrid_latency.py --dataset ../shared/data/scifact --index indexes/scifact

Query vectors are encoded first; then, per test query, the sparse engine and faiss are timed at depth k,
and hybrid as what it does: both sides at the fusion depth plus the fusion itself, without and with dense feedback
(the index's, else top 3 at weight 0.5: a first fusion, a second dense search, the fusion again). Each is timed
--repeat times per query, interleaved, and the fastest kept, which filters out this noisy machine's hiccups.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from search_latency import percentiles, timed  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.retrieval.search import Candidates, Searcher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--index", type=Path, required=True, help="an index with dense vectors (`lsr index … --dense-encoder`)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    searcher = Searcher.open(args.index)
    searcher.check_mode("hybrid")
    index, fusion = searcher.index, searcher.default_fusion.changed(dense_feedback=0)
    feedback = searcher.default_fusion
    if not feedback.dense_feedback:
        feedback = fusion.changed(dense_feedback=3, dense_feedback_weight=0.5)
    depth = max(args.k, fusion.depth)
    queries = list(read_evaluation_set(args.dataset, "test").queries.values())
    sparse_vectors = searcher.sparse_queries(queries)
    dense_vectors = searcher.dense_encoder.encode_queries(queries)

    def hybrid(sparse_query, dense_query, fusion=fusion):
        sides = {"sparse": [index.engine.search(sparse_query, depth)[0]], "dense": index.dense.search(dense_query, depth)}
        return searcher.fused(Candidates(sides, dense_query, depth), fusion, args.k)[0]

    times: dict[str, list[float]] = {"sparse": [], "dense": [], "hybrid": [], "hybrid + dense feedback": []}
    for row in range(len(queries)):
        sparse_query, dense_query = sparse_vectors[row], dense_vectors[row : row + 1]
        fastest = {name: float("inf") for name in times}
        for _ in range(args.repeat):
            fastest["sparse"] = min(fastest["sparse"], timed(index.engine.search, sparse_query, args.k)[0])
            fastest["dense"] = min(fastest["dense"], timed(index.dense.search, dense_query, args.k)[0])
            fastest["hybrid"] = min(fastest["hybrid"], timed(hybrid, sparse_query, dense_query)[0])
            with_feedback = timed(hybrid, sparse_query, dense_query, feedback)[0]
            fastest["hybrid + dense feedback"] = min(fastest["hybrid + dense feedback"], with_feedback)
        for name, seconds in fastest.items():
            times[name].append(seconds)

    print(
        f"{len(queries)} test queries of {args.dataset.name}, {index.manifest.doc_count} docs, k={args.k}, {feedback.describe()} "
        f"over {depth} per side (sparse + dense only)"
    )
    print(f"{'retrieval (no encoding)':24}{'p50 ms':>10}{'p99 ms':>10}")
    for name, seconds in times.items():
        p50, p99 = percentiles(seconds)
        print(f"{name:24}{p50:10.3f}{p99:10.3f}")
    slower = max(percentiles(times["sparse"])[0], percentiles(times["dense"])[0])
    print(f"hybrid p50 / slower single side p50: {percentiles(times['hybrid'])[0] / slower:.2f}x")
    with_feedback = percentiles(times["hybrid + dense feedback"])[0] / percentiles(times["hybrid"])[0]
    print(f"hybrid + dense feedback p50 / hybrid p50: {with_feedback:.2f}x")


if __name__ == "__main__":
    main()
