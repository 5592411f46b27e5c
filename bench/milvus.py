"""The Milvus engine (milvus-lite 2.5, the C++ engine in a local process) against the exact in-process memory
engine, in the same run: build time, single-query p50/p99, batch throughput, agreement with the exact top k.

    nice -n 15 python bench/milvus.py --index indexes/scifact --sizes 100000

First the real index at --index (its test queries through `Searcher`, sparse and, when the index has dense
vectors, hybrid: how many queries get the same top k as the memory engine, ties aside), then one synthetic
corpus per --sizes value, generated from the real index's vectors as bench/engines.py does (`synthetic_postings`).
"x" is Milvus's p50 over the memory engine's p50 (above 1: Milvus is slower). Milvus runs in another process,
so its memory is not in this process's RSS and is not reported.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engines import measure_engine, recall_at_k, synthetic_postings  # noqa: E402
from search_latency import percentiles, timed  # noqa: E402

from lsr.datasets import (
    Document,  # noqa: E402
    read_evaluation_set,  # noqa: E402
)
from lsr.indexer import reindex  # noqa: E402
from lsr.indexer.engines import BuildExtras, MemoryEngine, MilvusEngine  # noqa: E402
from lsr.indexer.engines.base import Ranking  # noqa: E402
from lsr.indexer.engines.milvus import milvus_settings  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402


def same_top_k(found: Ranking, expected: Ranking) -> bool:
    """Equal scores rank for rank and the same rows above the last score (which of a tie makes the cut may differ)."""
    if found.scores.shape != expected.scores.shape or not np.allclose(found.scores, expected.scores, rtol=1e-6):
        return False
    above = expected.scores > expected.scores[-1] if expected.scores.size else expected.scores > 0
    return found.doc_indices[: above.sum()].tolist() == expected.doc_indices[above].tolist()


def real_index(args, scratch: Path) -> None:
    out = scratch / "milvus-index"
    settings = milvus_settings(str(scratch / "real.db"), None, out)
    took, _ = timed(functools.partial(reindex, settings=settings), args.index, out, "milvus")
    texts = list(read_evaluation_set(args.dataset, "test").queries.values())
    memory, milvus = Searcher.open(args.index), Searcher.open(out)
    modes = ["sparse", "hybrid"] if memory.dense_encoder else ["sparse"]
    print(f"{args.index}: {memory.index.manifest.doc_count} docs copied into Milvus in {took:.1f} s; {len(texts)} test queries")
    for mode in modes:
        depth = max(args.k, memory.default_fusion.depth) if mode == "hybrid" else args.k
        rankings = {}
        for name, searcher in (("memory", memory), ("milvus", milvus)):
            sides = ["sparse", "dense"] if mode == "hybrid" else [mode]
            search = functools.partial(searcher.search_many, mode=mode)
            search(texts[:1], args.k)  # compile and warm up before timing
            single = [timed(search, [text], args.k)[0] for text in texts]
            p50, p99 = percentiles(single)
            print(f"  {mode:>6} {name:>7}: p50 {p50:7.2f} ms  p99 {p99:7.2f} ms (encoding included)")
            rankings[name] = [searcher.rankings(texts, side, depth) for side in sides]
        if mode == "sparse":
            pairs = zip(rankings["milvus"][0], rankings["memory"][0], strict=True)
        else:
            fusion, searchers = memory.default_fusion, {"memory": memory, "milvus": milvus}
            fused = {
                name: [searchers[name].fuse({"sparse": s, "dense": d}, fusion, args.k) for s, d in zip(*sides, strict=True)]
                for name, sides in rankings.items()
            }
            pairs = zip(fused["milvus"], fused["memory"], strict=True)
        pairs = list(pairs)
        identical = sum(f.doc_indices.tolist() == e.doc_indices.tolist() for f, e in pairs)
        agreeing = sum(same_top_k(f, e) for f, e in pairs)
        print(
            f"  {mode:>6} top-{args.k}: identical for {identical}/{len(pairs)} queries, same ties aside for "
            f"{agreeing}/{len(pairs)}"
        )


def synthetic(args, real: sp.csr_matrix, queries: sp.csr_matrix, size: int, scratch: Path) -> None:
    started = time.perf_counter()
    documents = synthetic_postings(real, size).tocsr()
    print(f"synthetic {size} docs, {documents.nnz / size:.0f} terms each (generated in {time.perf_counter() - started:.0f} s)")
    docs = [Document(str(row), "") for row in range(size)]
    settings = MilvusEngine.Settings(str(scratch / f"synthetic-{size}.db"), f"synthetic_{size}")
    milvus = SimpleNamespace(
        build=functools.partial(MilvusEngine.build, settings=settings, extras=BuildExtras(docs)),
        open=functools.partial(MilvusEngine.open, settings=settings),
    )
    results = {}
    for name, engine in (("memory", MemoryEngine), ("milvus", milvus)):
        build, _, single, batched, rankings, _ = measure_engine(
            engine, None, documents, queries, args.k, scratch / f"{name}-{size}", built=False
        )
        results[name] = (build, *percentiles(single), queries.shape[0] / batched, rankings)
    exact = results["memory"][-1]
    for name, (build, p50, p99, qps, rankings) in results.items():
        agreeing = sum(same_top_k(f, e) for f, e in zip(rankings, exact, strict=True))
        ratio = p50 / results["memory"][1]
        print(
            f"  {name:>7}: build {build:7.1f} s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  batch {qps:7.0f} q/s  "
            f"R@{args.k} {recall_at_k(rankings, exact):.3f}  same top-{args.k} (ties aside) {agreeing}/{len(exact)}  x "
            f"{ratio:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--index", type=Path, required=True, help="an index of --dataset built by `lsr index` (read only)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        real_index(args, Path(scratch))
        memory = Searcher.open(args.index)
        texts = list(read_evaluation_set(args.dataset, "test").queries.values())
        queries = memory.sparse_queries(texts)
        print(
            f"engines alone (queries encoded beforehand), k={args.k}, single queries one at a time, x = Milvus p50 / memory p50"
        )
        for size in args.sizes:
            synthetic(args, memory.index.vectors, queries, size, Path(scratch))


if __name__ == "__main__":
    main()
