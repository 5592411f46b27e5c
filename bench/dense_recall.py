"""Approximate (HNSW) dense search against exact (flat) search: recall@k and latency, same vectors, same run.

    python bench/dense_recall.py --index indexes/scifact --copies 20

Uses the dense document vectors of an index built with `--dense-encoder` (or `--add-dense`). ``--copies N``
grows the corpus to N times its size by adding each document vector again with small Gaussian noise
(σ = 0.05 per dimension, then re-normalized): a larger, realistically clustered corpus made from real
embeddings. Queries are the dataset's test queries, encoded by the index's dense encoder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from search_latency import percentiles, timed  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.indexer.dense import DenseIndex, DenseIndexSettings  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402


def grown(vectors: np.ndarray, copies: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = [vectors] + [vectors + rng.normal(0, 0.05, vectors.shape).astype(np.float32) for _ in range(copies - 1)]
    corpus = np.vstack(noisy)
    return corpus / np.linalg.norm(corpus, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    searcher = Searcher.open(args.index)
    searcher.check_mode("dense")
    corpus = grown(searcher.index.dense.vectors(), args.copies)
    queries = searcher.dense_encoder.encode_queries(list(read_evaluation_set(args.dataset, "test").queries.values()))
    print(f"{len(queries)} queries over {len(corpus)} vectors ({args.copies}× {args.dataset.name}), k={args.k}")
    print(f"{'index':22}{'build s':>9}{'p50 ms':>9}{'p99 ms':>9}{'recall@k':>10}")
    with tempfile.TemporaryDirectory() as scratch:
        exact = None
        for settings in (DenseIndexSettings("flat"), *(DenseIndexSettings("hnsw", ef_search=ef) for ef in (16, 64, 128))):
            folder = Path(scratch) / f"{settings.kind}-{settings.ef_search}"
            started = time.perf_counter()
            DenseIndex.build(corpus, folder, settings)
            build = time.perf_counter() - started
            index = DenseIndex.open(folder, settings)
            seconds, results = [], []
            for query in queries:
                elapsed, (ranking,) = timed(index.search, query[None, :], args.k)
                seconds.append(elapsed)
                results.append(set(ranking.doc_indices.tolist()))
            exact = exact or results
            recall = np.mean([len(got & want) / len(want) for got, want in zip(results, exact, strict=True)])
            p50, p99 = percentiles(seconds)
            name = "flat (exact, baseline)" if settings.kind == "flat" else f"hnsw ef_search={settings.ef_search}"
            print(f"{name:22}{build:9.1f}{p50:9.3f}{p99:9.3f}{recall:10.4f}")


if __name__ == "__main__":
    main()
