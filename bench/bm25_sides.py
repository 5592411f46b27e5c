"""BM25 two ways on each dataset's test queries: Lucene through Pyserini (`lsr index --encoder bm25`, the canonical
BEIR "flat" baseline) and the in-process bm25s side that `lsr index --bm25` stores. Prints nDCG@10, the top-10 overlap
of the two and per-query latency (one query per call, the fastest of --repeat, interleaved), all from the same run.

    python bench/bm25_sides.py --dataset ../shared/data/scifact --dataset ../shared/data/nfcorpus \
        --dataset ../shared/data/cranfield --dataset ../shared/data/cisi

Lucene indexes are built into indexes/<dataset>-bm25 when missing; the bm25s side into a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from search_latency import percentiles, timed  # noqa: E402

from lsr.datasets import read_corpus, read_evaluation_set  # noqa: E402
from lsr.eval.metrics import score_run  # noqa: E402
from lsr.eval.runner import rankings_run  # noqa: E402
from lsr.indexer import IndexFolder, build_bm25_index  # noqa: E402
from lsr.indexer.bm25 import Bm25Settings, Bm25Side  # noqa: E402

MEASURE = "nDCG@10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--indexes", type=Path, default=Path("indexes"))
    parser.add_argument("--stemmer", default=Bm25Settings.stemmer, help="PyStemmer algorithm of the bm25s side")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(
        f"| dataset | queries | Lucene {MEASURE} | bm25s {MEASURE} | Δ | top-10 overlap | Lucene ms/query p50 "
        "| bm25s ms/query p50 | speed-up |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dataset in args.dataset:
        corpus = read_corpus(dataset)
        lucene_path = args.indexes / f"{dataset.name}-bm25"
        if not lucene_path.exists():
            build_bm25_index(corpus, lucene_path)
        lucene = IndexFolder(lucene_path).engine
        with tempfile.TemporaryDirectory() as folder:
            settings = Bm25Settings(stemmer=args.stemmer)
            Bm25Side.build([doc.contents for doc in corpus.documents], Path(folder) / "bm25", settings)
            side = Bm25Side.open(Path(folder) / "bm25", settings)
            evaluation = read_evaluation_set(dataset, "test")
            ids, texts = list(evaluation.queries), list(evaluation.queries.values())
            doc_ids = [doc.id for doc in corpus.documents]
            values, tops = {}, {}
            for name, system in (("lucene", lucene), ("bm25s", side)):
                rankings = system.search_texts(texts, 1001)
                run = rankings_run(ids, rankings, doc_ids, 1000)
                values[name] = score_run(evaluation.qrels, run, [MEASURE]).aggregate[MEASURE]
                tops[name] = [set(r.doc_indices[:10].tolist()) for r in rankings]
            overlap = np.mean([len(a & b) / max(1, len(a)) for a, b in zip(tops["lucene"], tops["bm25s"], strict=True)])
            times: dict[str, list[float]] = {"lucene": [], "bm25s": []}
            for text in texts:
                for name, system in (("lucene", lucene), ("bm25s", side)):
                    times[name].append(min(timed(system.search_texts, [text], 100)[0] for _ in range(args.repeat)))
            lucene_ms, bm25s_ms = percentiles(times["lucene"])[0], percentiles(times["bm25s"])[0]
            print(
                f"| {dataset.name} | {len(ids)} | {values['lucene']:.4f} | {values['bm25s']:.4f} | "
                f"{values['bm25s'] - values['lucene']:+.4f} | {overlap:.3f} | {lucene_ms:.2f} | {bm25s_ms:.2f} | "
                f"{lucene_ms / bm25s_ms:.1f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
