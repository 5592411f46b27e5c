"""What filling a term-matching signal's top with the zeros of the documents it did not return changes.

    python bench/fusion_fill.py --indexes indexes/full --dataset ../shared/data/scifact --dataset ../shared/data/nfcorpus \
        --dataset ../shared/data/cranfield --dataset ../shared/data/cisi

Each index's default fusion without its dense feedback (the fill is measured alone) on its dataset's test queries,
nDCG@10, with the fill (what search does) and without it (``documents=0``: no document counted beyond those a signal
returned, lsr's fusion before the fill), and the paired tests of the difference (lsr.eval.significance).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fusion_default import MEASURE, Dataset, K  # noqa: E402

from lsr.eval.metrics import score_run  # noqa: E402
from lsr.eval.runner import rankings_run  # noqa: E402
from lsr.eval.significance import paired_test  # noqa: E402
from lsr.retrieval.search import SIGNALS, Fusion, Searcher, fuse_signals  # noqa: E402


def per_query(dataset: Dataset, fusion: Fusion, documents: int) -> list[float]:
    fused = [
        fuse_signals(
            {signal: dataset.candidates.rankings[signal][number] for signal in SIGNALS}, fusion, K + 1, documents=documents
        )
        for number in range(len(dataset.ids))
    ]
    run = rankings_run(dataset.ids, fused, dataset.doc_ids, K)
    values = score_run(dataset.evaluation.qrels, run, [MEASURE]).per_query
    return [values[query_id][MEASURE] for query_id in dataset.evaluation.qrels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--indexes", type=Path, default=Path("indexes"))
    args = parser.parse_args()
    print(f"| dataset | fusion | {MEASURE} without the fill | with it | t-test p | permutation p | wins / ties / losses |")
    print("|---|---|---:|---:|---:|---:|---|")
    for folder in args.dataset:
        searcher = Searcher.open(args.indexes / folder.name)
        dataset = Dataset(folder, searcher, searcher.default_fusion.depth)
        fusion = searcher.default_fusion.changed(dense_feedback=0)
        without = per_query(dataset, fusion, documents=0)
        filled = per_query(dataset, fusion, documents=len(searcher.index.docs))
        test = paired_test(filled, without)
        print(
            f"| {dataset.name} | {fusion.describe()} | {sum(without) / len(without):.4f} | "
            f"{sum(filled) / len(filled):.4f} | {test.t_p:.4f} | {test.permutation_p:.4f} | "
            f"{test.wins} / {test.ties} / {test.losses} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
