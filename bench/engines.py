"""Index engines on real and synthetic corpora, with Pyserini's Lucene impact search as the baseline in the same run.

    python bench/engines.py --index indexes/scifact --sizes 100000 1000000

    python bench/engines.py --dataset ../shared/data/packages --index indexes/packages --sizes \
        --engines memory sharded impact-ordered seismic lucene

For each corpus — the real index at --index, then a synthetic corpus per --sizes — and each engine (--engines:
memory, the exact in-process default; sharded, the same split into one shard per core; impact-ordered, exact at
budget 1 and approximate below it, one row per --budgets value; seismic, pyseismic-lsr's pruned and blocked
postings, one row per --seismic query_cut:heap_factor setting; lucene, Anserini's impact index through Pyserini)
prints build time, size on disk, resident memory added by opening the index and running every query (RSS), time
to open, single-query p50/p99 latency on one thread, batched throughput, recall@10 against the exact memory
engine, RR@10 and R@100 on the split's qrels (real corpus only), and the ratio of Lucene's p50 to the row's p50.
The memory engine is also checked against brute force on a sample of queries (same top-k).
Builds of the --keep engines (default: lucene, ~50 min at 1M docs on 2 cores) are kept in --keep-dir, keyed by a
digest of the corpus, and reused by later runs; their build time is the one measured when they were built.

Synthetic corpora are generated from the real index's quantized document vectors so that each term keeps its
document frequency and its impact distribution: term t appears in each synthetic document independently with
probability df_t / N (so its expected document frequency is the real one, scaled), and each of its impacts is
drawn from t's real impacts. Document lengths come out close to the real mean, with less spread. Terms are
independent of each other, unlike in real text, which makes approximate search harder than on real data.
Queries are the dataset's real test queries, encoded by the index's encoder and weighted as the index says.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ir_measures
import numpy as np
import scipy.sparse as sp

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from search_latency import percentiles, timed  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.indexer.engines import ENGINES, ImpactOrderedEngine, MemoryEngine, SeismicEngine  # noqa: E402
from lsr.indexer.vectors import brute_force_search  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402


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


def resident_mib() -> float:
    with open("/proc/self/statm") as handle:  # Linux: resident pages are the second field
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Row:
    engine: str
    build_s: float
    disk_mib: float
    ram_mib: float
    open_ms: float
    p50: float
    p99: float
    qps: float
    recall: float
    rr10: float | None
    r100: float | None


def corpus_digest(documents: sp.csr_matrix) -> str:
    digest = hashlib.sha256()
    for array in (documents.indptr, documents.indices, documents.data):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def build_once(engine_class, documents: sp.csr_matrix, folder: Path, settings: tuple = ()) -> float:
    """Builds the engine into ``folder`` unless a kept build of the same corpus is there; returns the build time
    (the kept one's, measured when it was built)."""
    record = folder / "bench-build.json"
    if record.exists():
        return json.loads(record.read_text())["build_seconds"]
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    build, _ = timed(engine_class.build, documents, staging, *settings)
    (staging / "bench-build.json").write_text(json.dumps({"build_seconds": build}))
    staging.rename(folder)
    return build


def measure_engine(engine_class, knobs: dict, documents, queries, k: int, folder: Path, built: bool, build_settings):
    """Builds (once per engine) and opens the engine, then times single queries and a batch; also returns the
    top-100 of every query (for R@100)."""
    build = 0.0
    if not built:
        build = build_once(engine_class, documents, folder, build_settings)
    before = resident_mib()
    opening, engine = timed(engine_class.open, folder, documents.shape[0])
    search = functools.partial(engine.search, **knobs)
    search(queries, k)  # before timing: numba's compiled code loaded, the JVM's JIT warmed up, pages cached
    single = [timed(search, queries[row], k)[0] for row in range(queries.shape[0])]
    batched, rankings = timed(search, queries, k)
    return build, opening, single, batched, rankings, search(queries, 100), resident_mib() - before


def effectiveness(deep, judged) -> tuple[float | None, float | None]:
    """RR@10 and R@100 of the top-100 rankings on the qrels (BEIR: a hit whose id is the query's is dropped)."""
    if judged is None:
        return None, None
    query_ids, doc_ids, qrels = judged
    run = {
        query: {doc_ids[row]: float(score) for row, score in zip(r.doc_indices, r.scores, strict=True) if doc_ids[row] != query}
        for query, r in zip(query_ids, deep, strict=True)
    }
    scores = ir_measures.calc_aggregate([ir_measures.RR @ 10, ir_measures.R @ 100], qrels, run)
    return scores[ir_measures.RR @ 10], scores[ir_measures.R @ 100]


def recall_at_k(rankings, exact) -> float:
    found = [
        len(set(r.doc_indices.tolist()) & set(e.doc_indices.tolist())) / max(1, len(e.doc_indices))
        for r, e in zip(rankings, exact, strict=True)
    ]
    return float(np.mean(found))


def engine_knobs(engine_name: str, args) -> list[tuple[str, dict]]:
    """One (label, search keyword arguments) per row of an engine."""
    if engine_name == ImpactOrderedEngine.name:
        return [(f"{engine_name} b={budget:g}", {"budget": budget}) for budget in args.budgets]
    if engine_name == SeismicEngine.name:
        settings = [setting.split(":") for setting in args.seismic]
        return [(f"seismic {cut}:{heap}", {"query_cut": int(cut), "heap_factor": float(heap)}) for cut, heap in settings]
    return [(engine_name, {})]


def measure(name: str, documents: sp.csr_matrix, queries: sp.csr_matrix, args, scratch: Path, judged=None) -> None:
    rows: list[Row] = []
    digest = corpus_digest(documents)
    for engine_name in args.engines:
        engine_class = ENGINES[engine_name]
        kept = engine_name in args.keep
        folder = (args.keep_dir if kept else scratch) / f"{name}-{digest}-{engine_name}"
        build_settings = (SeismicEngine.Settings(n_postings=args.seismic_postings),) if engine_class is SeismicEngine else ()
        for number, (label, knobs) in enumerate(engine_knobs(engine_name, args)):
            build, opening, single, batched, rankings, deep, ram = measure_engine(
                engine_class, knobs, documents, queries, args.k, folder, number > 0, build_settings
            )
            if engine_name == MemoryEngine.name:  # the first engine: the exact reference
                exact = rankings
                for row in range(min(args.brute_sample, queries.shape[0])):
                    (expected,) = brute_force_search(documents, queries[row], args.k)
                    assert rankings[row].doc_indices.tolist() == expected.doc_indices.tolist(), (
                        "memory engine disagrees with brute force"
                    )
            p50, p99 = percentiles(single)
            rows.append(
                Row(
                    label,
                    build,
                    folder_bytes(folder) / 2**20,
                    ram,
                    opening * 1000,
                    p50,
                    p99,
                    queries.shape[0] / batched,
                    recall_at_k(rankings, exact),
                    *effectiveness(deep, judged),
                )
            )
        if not kept:
            shutil.rmtree(folder)
    lucene = next((row.p50 for row in rows if row.engine == "lucene"), None)
    for row in rows:
        ratio = f"{lucene / row.p50:>7.1f}x" if lucene else "      –"
        quality = f"{row.rr10:>7.4f} {row.r100:>7.4f}" if row.rr10 is not None else f"{'–':>7} {'–':>7}"
        print(
            f"{name:>10} {documents.shape[0]:>8} {row.engine:>20} {row.build_s:>8.1f} {row.disk_mib:>8.0f} {row.ram_mib:>8.0f} "
            f"{row.open_ms:>8.1f} {row.p50:>8.2f} {row.p99:>8.2f} {row.qps:>8.0f} {row.recall:>8.3f} {quality} {ratio}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument(
        "--engines", nargs="+", default=["memory", "sharded", "impact-ordered", "lucene"], choices=sorted(ENGINES)
    )
    parser.add_argument("--budgets", type=float, nargs="+", default=[1.0, 0.3, 0.1], help="impact-ordered budgets")
    parser.add_argument(
        "--seismic", nargs="+", default=["5:0.9", "10:0.9", "10:0.8", "20:0.6"], help="seismic query_cut:heap_factor rows"
    )
    parser.add_argument("--seismic-postings", type=int, default=SeismicEngine.Settings().n_postings)
    parser.add_argument("--split", default="test", help="qrels split whose queries are run")
    parser.add_argument("--brute-sample", type=int, default=20, help="queries also run by brute force")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument(
        "--keep",
        nargs="*",
        default=["lucene"],
        choices=sorted(ENGINES),
        help="engines whose builds are kept in --keep-dir and reused by later runs on the same corpus",
    )
    parser.add_argument("--keep-dir", type=Path, default=Path("indexes/bench-engines"))
    args = parser.parse_args()
    if args.engines[0] != "memory":
        parser.error("--engines must start with memory: it is the exact reference for recall")

    searcher = Searcher.open(args.index)
    index = searcher.index
    evaluation = read_evaluation_set(args.dataset, args.split)
    texts = list(evaluation.queries.values())
    queries = searcher.sparse_queries(texts)  # encoded and weighted as `lsr search` does
    real = index.vectors
    print(
        f"{len(texts)} {args.split} queries of {args.dataset.name} ({queries.nnz / len(texts):.0f} terms each), k={args.k}; "
        f"single queries on one thread, batches on {os.cpu_count()}; x = Lucene p50 / p50"
    )
    print(
        f"{'corpus':>10} {'docs':>8} {'engine':>20} {'build s':>8} {'disk MiB':>8} {'RSS MiB':>8} {'open ms':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'batch/s':>8} {'exact@10':>8} {'RR@10':>7} {'R@100':>7} {'vs Lucene':>8}",
        flush=True,
    )
    args.keep_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.index.parent) as scratch:
        judged = (list(evaluation.queries), [doc.id for doc in index.docs], evaluation.qrels)
        measure(args.dataset.name, real, queries, args, Path(scratch), judged)
        for size in args.sizes:
            started = time.perf_counter()
            documents = synthetic_postings(real, size).tocsr()
            print(
                f"{'':>10} (synthetic {size} docs, {documents.nnz / size:.0f} terms each, generated in "
                f"{time.perf_counter() - started:.0f} s)",
                flush=True,
            )
            measure(f"synth-{size // 1000}k", documents, queries, args, Path(scratch))
            del documents


if __name__ == "__main__":
    main()
