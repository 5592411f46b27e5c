"""Which fusion should an index that was never tuned use? Leave-one-dataset-out over the shared datasets.

    python bench/fusion_default.py --indexes indexes --dataset ../shared/data/scifact --dataset ../shared/data/nfcorpus \
        --dataset ../shared/data/cranfield --dataset ../shared/data/cisi

Each index (indexes/<dataset>) needs all three signals: `lsr index DATASET --out indexes/<dataset> --dense-encoder
all-minilm-l6-v2 --bm25`. A default is chosen for each set of signals an index can fuse: sparse+dense+bm25,
sparse+dense and sparse+bm25. Every candidate — `lsr tune`'s grid over the set (RRF k ∈ 10, 30, 60, 100; convex
min-max and z-score; weights on the 0.1 simplex, a weight of 0 leaving a signal out) plus equal weights for each
method — is scored by nDCG@10 on each dataset's test queries, each signal's top --depth fused. For each fold, the
candidate with the best mean over the other datasets is chosen and scored on the left-out one, so no fold's number
saw its own judgments. The default is the candidate with the best mean over all datasets (what a new fold would
choose). Reference rows: each signal alone, lsr's former default (RRF k=60, equal weights) and convex min-max with
equal weights. The last lines are `lsr.defaults.UNTUNED_FUSION`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.eval.metrics import score_run  # noqa: E402
from lsr.eval.runner import rankings_run  # noqa: E402
from lsr.eval.tuning import RRF_KS, fusion_grid  # noqa: E402
from lsr.retrieval.search import SIGNALS, Candidates, Fusion, Searcher  # noqa: E402

MEASURE = "nDCG@10"
K = 10


# The signal sets an index can fuse by default (sparse is always there): a default is chosen for each.
INDEX_SIGNALS = (("sparse", "dense", "bm25"), ("sparse", "dense"), ("sparse", "bm25"))


def candidates(signals: tuple[str, ...], depth: int) -> list[Fusion]:
    equal = [Fusion("rrf", rrf_k=rrf_k, depth=depth) for rrf_k in RRF_KS]
    equal += [Fusion("convex", normalization=n, depth=depth) for n in ("minmax", "zscore")]
    return equal + fusion_grid(signals, depth)


class Dataset:
    """One dataset's test queries with each signal's candidates, searched once and fused for every candidate."""

    def __init__(self, folder: Path, searcher: Searcher, depth: int) -> None:
        self.name = folder.name
        searcher.check_mode("+".join(SIGNALS))  # a clear error when the index lacks a signal
        self.evaluation = read_evaluation_set(folder, "test")
        self.ids = list(self.evaluation.queries)
        self.doc_ids = [doc.id for doc in searcher.index.docs]
        self.searcher = searcher
        self.candidates = searcher.candidates(list(self.evaluation.queries.values()), SIGNALS, depth)

    def value(self, fusion: Fusion, signals: tuple[str, ...] = SIGNALS) -> float:
        if len(signals) > 1:
            rankings = {signal: self.candidates.rankings[signal] for signal in signals}
            dense_queries = self.candidates.dense_queries if "dense" in signals else None
            fused = self.searcher.fused(Candidates(rankings, dense_queries, self.candidates.depth), fusion, K + 1)
        else:
            fused = self.candidates.rankings[signals[0]]
        run = rankings_run(self.ids, fused, self.doc_ids, K)
        return score_run(self.evaluation.qrels, run, [MEASURE]).aggregate[MEASURE]


def row(values) -> str:
    return f"{' | '.join(f'{value:.4f}' for value in values)} | {np.mean(values):.4f} |"


def choose(datasets: list[Dataset], signals: tuple[str, ...], depth: int) -> Fusion:
    """Prints the leave-one-dataset-out folds for one signal set; returns the candidate best over all datasets."""
    names = [dataset.name for dataset in datasets]
    grid = candidates(signals, depth)
    values = np.array([[dataset.value(fusion, signals) for dataset in datasets] for fusion in grid])  # candidate × dataset
    former = Fusion("rrf", rrf_k=60, depth=depth)
    references = {f"{signal} alone": (former, (signal,)) for signal in signals}
    references["rrf k=60, equal weights (the former default)"] = (former, signals)
    references["convex minmax, equal weights"] = (Fusion("convex", depth=depth), signals)
    reference_values = {name: [d.value(f, s) for d in datasets] for name, (f, s) in references.items()}
    former_values = reference_values["rrf k=60, equal weights (the former default)"]

    print(f"## {'+'.join(signals)}: {len(grid)} candidates\n")
    print(f"| left out | chosen on the other {len(names) - 1} (their mean) | {MEASURE} on the left-out | rrf k=60 | oracle |")
    print("|---|---|---:|---:|---:|")
    held_out = []
    for column, name in enumerate(names):
        others = [c for c in range(len(names)) if c != column]
        chosen = int(np.argmax(values[:, others].mean(axis=1)))  # first of equals: the grid's order
        held_out.append(values[chosen, column])
        print(
            f"| {name} | {grid[chosen].describe()} ({values[chosen, others].mean():.4f}) | {values[chosen, column]:.4f} | "
            f"{former_values[column]:.4f} | {values[:, column].max():.4f} |"
        )
    print(f"| **mean** | | **{np.mean(held_out):.4f}** | {np.mean(former_values):.4f} | {values.max(axis=0).mean():.4f} |")

    best = int(np.argmax(values.mean(axis=1)))
    print(f"\nChosen on all {len(names)}: **{grid[best].describe()}**\n")
    print(f"| system | {' | '.join(names)} | mean |")
    print(f"|---|{'---:|' * (len(names) + 1)}")
    for name, reference in reference_values.items():
        print(f"| {name} | {row(reference)}")
    print(f"| **default: {grid[best].describe()}** | {row(values[best])}")
    print("\nThe five best candidates by mean:\n")
    print(f"| candidate | {' | '.join(names)} | mean |")
    print(f"|---|{'---:|' * (len(names) + 1)}")
    for number in np.argsort(-values.mean(axis=1), kind="stable")[:5]:
        print(f"| {grid[number].describe()} | {row(values[number])}")
    print()
    return grid[best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--indexes", type=Path, default=Path("indexes"))
    parser.add_argument("--depth", type=int, default=100, help="candidates fused from each signal")
    parser.add_argument("--query-idf", type=float, help="the sparse queries' IDF exponent; default: each index's own")
    args = parser.parse_args()

    # Each index with the encoders that built it (adapted indexes each have their own sparse encoder).
    datasets = [
        Dataset(folder, Searcher.open(args.indexes / folder.name, query_idf=args.query_idf), args.depth)
        for folder in args.dataset
    ]
    print(f"{MEASURE} on each dataset's test queries; the top {args.depth} of each signal fused.\n")
    defaults = {"+".join(signals): choose(datasets, signals, args.depth).to_dict() for signals in INDEX_SIGNALS}
    print(f"UNTUNED_FUSION = {json.dumps(defaults, indent=4)}")


if __name__ == "__main__":
    main()
