"""Approximate (HNSW) dense search against exact (flat) search: recall@k and latency, same vectors, same run.

    python bench/dense_recall.py --index indexes/scifact --copies 20

Uses the dense document vectors of an index built with `--dense-encoder` (or `--add-dense`). ``--copies N``
grows the corpus to N times its size by adding each document vector again with small Gaussian noise
(σ = 0.05 per dimension, then re-normalized): a larger, realistically clustered corpus made from real
embeddings. Queries are the dataset's test queries, encoded by the index's dense encoder. ``--built`` searches an
HNSW index's own graph at each ef_search instead (a real corpus too large to build a graph per setting):

    python bench/dense_recall.py --index indexes/packages --dataset ../shared/data/packages --built
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
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
    parser.add_argument(
        "--built",
        action="store_true",
        help="search the index's own HNSW graph at each ef_search instead of building one per setting (a corpus too "
        "large to rebuild); only the flat baseline is built",
    )
    args = parser.parse_args()

    searcher = Searcher.open(args.index)
    searcher.check_mode("dense")
    if args.built and (args.copies != 1 or searcher.index.dense.settings.kind != "hnsw"):
        raise SystemExit("--built measures an index's own HNSW graph: build it with --dense-index hnsw; no --copies")
    corpus = grown(searcher.index.dense.vectors(), args.copies)
    queries = searcher.dense_encoder.encode_queries(list(read_evaluation_set(args.dataset, "test").queries.values()))
    print(f"{len(queries)} queries over {len(corpus)} vectors ({args.copies}× {args.dataset.name}), k={args.k}")
    print(f"{'index':22}{'build s':>9}{'p50 ms':>9}{'p99 ms':>9}{'recall@k':>10}")
    with tempfile.TemporaryDirectory() as scratch:
        exact = None
        for name, build, index in candidates(corpus, Path(scratch), searcher.index.dense.settings, args):
            seconds, results = [], []
            for query in queries:
                elapsed, (ranking,) = timed(index.search, query[None, :], args.k)
                seconds.append(elapsed)
                results.append(set(ranking.doc_indices.tolist()))
            exact = exact or results
            recall = np.mean([len(got & want) / len(want) for got, want in zip(results, exact, strict=True)])
            p50, p99 = percentiles(seconds)
            built = "–" if build is None else f"{build:.1f}"
            print(f"{name:22}{built:>9}{p50:9.3f}{p99:9.3f}{recall:10.4f}")


def candidates(
    corpus: np.ndarray, scratch: Path, own: DenseIndexSettings, args: argparse.Namespace
) -> Iterator[tuple[str, float | None, DenseIndex]]:
    """Exact flat search first (the baseline), then HNSW at ef_search 16, 64 and 128: graphs built here from
    ``corpus``, or with ``--built`` the index's own graph (build s: –)."""
    for settings in (DenseIndexSettings("flat"), *(replace(own, kind="hnsw", ef_search=ef) for ef in (16, 64, 128))):
        name = "flat (exact, baseline)" if settings.kind == "flat" else f"hnsw ef_search={settings.ef_search}"
        if args.built and settings.kind == "hnsw":
            yield name, None, DenseIndex.open(args.index / "dense", settings)
            continue
        folder = scratch / f"{settings.kind}-{settings.ef_search}"
        started = time.perf_counter()
        DenseIndex.build(corpus, folder, settings)
        build = time.perf_counter() - started
        yield name, build, DenseIndex.open(folder, settings)


if __name__ == "__main__":
    main()
