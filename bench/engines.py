"""The embedded exact engine on real and synthetic corpora, against brute force measured in the same run.

    python bench/engines.py --index indexes/scifact --sizes 100000 1000000

For each corpus — the real index at --index, then a synthetic corpus per --sizes — prints build time, size on
disk, time to open, single-query p50/p99 latency, batched throughput, and brute force's p50 on a sample of
queries (checking that both return the same top-k).

Synthetic corpora are generated from the real index's quantized document vectors so that each term keeps its
document frequency and its impact distribution: term t appears in each synthetic document independently with
probability df_t / N (so its expected document frequency is the real one, scaled), and each of its impacts is
drawn from t's real impacts. Document lengths come out close to the real mean, with less spread. Queries are the
dataset's real test queries, encoded by the index's encoder.

The Lucene (Pyserini) baseline the engines issue asks for is not in this script yet.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from search_latency import percentiles, timed  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.indexer import IndexFolder  # noqa: E402
from lsr.indexer.engines import MemoryEngine  # noqa: E402
from lsr.indexer.vectors import brute_force_search  # noqa: E402
from lsr.retrieval.encoders import load_sparse_encoder  # noqa: E402


def synthetic_postings(real: sp.csr_matrix, size: int, seed: int = 0) -> sp.csc_matrix:
    """A (size × terms) matrix, built column by column from each real term's df and impacts."""
    rng = np.random.default_rng(seed)
    columns = real.tocsc()
    document_frequency = np.diff(columns.indptr)
    counts = rng.binomial(size, document_frequency / real.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rows = np.empty(indptr[-1], dtype=np.int32)
    impacts = np.empty(indptr[-1], dtype=np.int32)
    for term in np.flatnonzero(counts):
        start, end = indptr[term], indptr[term + 1]
        rows[start:end] = np.sort(rng.choice(size, counts[term], replace=False))
        real_impacts = columns.data[columns.indptr[term] : columns.indptr[term + 1]]
        impacts[start:end] = rng.choice(real_impacts, counts[term])
    return sp.csc_matrix((impacts, rows, indptr), shape=(size, real.shape[1]))


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure(name: str, documents: sp.csr_matrix, queries: sp.csr_matrix, k: int, brute_sample: int, scratch: Path) -> None:
    folder = scratch / name
    build, _ = timed(MemoryEngine.build, documents, folder)
    opening, engine = timed(MemoryEngine.open, folder, documents.shape[0])
    engine.search(queries[:1], k)  # load the compiled code before timing
    single = [timed(engine.search, queries[row], k)[0] for row in range(queries.shape[0])]
    batched, rankings = timed(engine.search, queries, k)
    brute = []
    for row in range(min(brute_sample, queries.shape[0])):
        seconds, (expected,) = timed(brute_force_search, documents, queries[row], k)
        brute.append(seconds)
        assert rankings[row].doc_indices.tolist() == expected.doc_indices.tolist(), "engine disagrees with brute force"
    p50, p99 = percentiles(single)
    brute_p50, _ = percentiles(brute)
    print(
        f"{name:>10} {documents.shape[0]:>9} {documents.nnz / documents.shape[0]:>6.0f} {build:>8.1f} "
        f"{folder_bytes(folder) / 2**20:>8.0f} {opening * 1000:>8.1f} {p50:>8.2f} {p99:>8.2f} "
        f"{queries.shape[0] / batched:>9.0f} {brute_p50:>9.1f} {brute_p50 / p50:>7.0f}x"
    )
    shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--brute-sample", type=int, default=20, help="queries also run by brute force")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    index = IndexFolder(args.index)
    spec = index.manifest.encoder
    encoder = load_sparse_encoder(spec.name, query_max_length=spec.query_max_length, doc_max_length=spec.doc_max_length)
    texts = list(read_evaluation_set(args.dataset, "test").queries.values())
    queries = index.manifest.quantization.quantize(encoder.encode_queries(texts))
    real = index.vectors
    print(f"{len(texts)} test queries of {args.dataset.name}, k={args.k}; single queries on one thread, batches on {os.cpu_count()}")
    print(
        f"{'corpus':>10} {'docs':>9} {'terms':>6} {'build s':>8} {'disk MiB':>8} {'open ms':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'batch q/s':>9} {'brute ms':>9} {'speedup':>8}"
    )
    with tempfile.TemporaryDirectory(dir=args.index.parent) as scratch:
        measure(args.dataset.name, real, queries, args.k, args.brute_sample, Path(scratch))
        for size in args.sizes:
            started = time.perf_counter()
            documents = synthetic_postings(real, size).tocsr()
            print(f"{'':>10} (synthetic {size} docs generated in {time.perf_counter() - started:.0f} s)")
            measure(f"synth-{size // 1000}k", documents, queries, args.k, args.brute_sample, Path(scratch))
            del documents


if __name__ == "__main__":
    main()
