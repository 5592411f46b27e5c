"""Indexing throughput and query latency of the default engine, against brute force measured in the same run.

    python bench/search_latency.py --dataset ../shared/data/scifact --index indexes/scifact

Indexing docs/s is measured on the first --docs documents (encode + quantize + build); query latency on
every test query against the full index at --index. Encoding a query is timed apart from retrieval.
Machines here are noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lsr.datasets import read_corpus, read_evaluation_set  # noqa: E402
from lsr.indexer import IndexFolder, build_index  # noqa: E402
from lsr.indexer.vectors import brute_force_search  # noqa: E402
from lsr.retrieval.encoders import load_sparse_encoder  # noqa: E402


def percentiles(seconds: list[float]) -> tuple[float, float]:
    milliseconds = np.asarray(seconds) * 1000
    return float(np.percentile(milliseconds, 50)), float(np.percentile(milliseconds, 99))


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--index", type=Path, required=True, help="an index of --dataset built by `lsr index`")
    parser.add_argument("--docs", type=int, default=500, help="documents to index for the throughput figure")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    index = IndexFolder(args.index)
    spec = index.manifest.encoder
    encoder = load_sparse_encoder(
        spec.name, query_max_length=spec.query_max_length, doc_max_length=spec.doc_max_length, precision=spec.precision
    )

    corpus = read_corpus(args.dataset)
    corpus.documents[:] = corpus.documents[: args.docs]
    with tempfile.TemporaryDirectory() as scratch:
        seconds, _ = timed(lambda: build_index(corpus, encoder, Path(scratch) / "index", progress=False))
    print(f"indexing: {len(corpus)} docs in {seconds:.1f}s = {len(corpus) / seconds:.1f} docs/s (encode + quantize + build)")

    queries = list(read_evaluation_set(args.dataset, "test").queries.values())
    quantization = index.manifest.quantization
    encode_times, engine_times, brute_times = [], [], []
    vectors = index.vectors
    index.engine.search(quantization.quantize(encoder.encode_queries(queries[:1])), args.k)  # load compiled code
    for query in queries:
        seconds, encoded = timed(encoder.encode_queries, [query])
        encode_times.append(seconds)
        query_vector = quantization.quantize(encoded)
        seconds, got = timed(index.engine.search, query_vector, args.k)
        engine_times.append(seconds)
        seconds, expected = timed(brute_force_search, vectors, query_vector, args.k)
        brute_times.append(seconds)
        assert got[0].doc_indices.tolist() == expected[0].doc_indices.tolist(), "engine disagrees with brute force"

    print(f"queries: {len(queries)} test queries of {args.dataset.name}, {index.manifest.doc_count} docs, k={args.k}")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}")
    rows = {
        "query encoding": encode_times,
        f"{index.manifest.engine} engine": engine_times,
        "brute force (baseline)": brute_times,
    }
    for name, times in rows.items():
        p50, p99 = percentiles(times)
        print(f"{name:24}{p50:10.2f}{p99:10.2f}")
    engine_p50, engine_p99 = percentiles(engine_times)
    brute_p50, brute_p99 = percentiles(brute_times)
    print(f"engine speed-up over brute force: p50 {brute_p50 / engine_p50:.1f}x, p99 {brute_p99 / engine_p99:.1f}x")

    all_queries = quantization.quantize(encoder.encode_queries(queries))
    batched, _ = timed(index.engine.search, all_queries, args.k)
    print(
        f"throughput: batched (all {len(queries)} queries in one call, threads) {len(queries) / batched:.0f} q/s, "
        f"one query per call {len(queries) / sum(engine_times):.0f} q/s"
    )


if __name__ == "__main__":
    main()
