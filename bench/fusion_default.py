"""Which fusion should an index that was never tuned use? Leave-one-dataset-out over the shared datasets.

    python bench/fusion_default.py --indexes indexes --dataset ../shared/data/scifact --dataset ../shared/data/nfcorpus \
        --dataset ../shared/data/cranfield --dataset ../shared/data/cisi

Each index (indexes/<dataset>) needs all three signals: `lsr index DATASET --out indexes/<dataset> --dense-encoder
all-minilm-l6-v2 --bm25`. Every candidate — `lsr tune`'s grid over sparse, dense and bm25 (RRF k ∈ 10, 30, 60, 100;
convex min-max and z-score; weights on the 0.1 simplex, a weight of 0 leaving a signal out) plus equal weights for each
method — is scored by nDCG@10 on each dataset's test queries, each signal's top --depth fused. For each fold, the
candidate with the best mean over the other datasets is chosen and scored on the left-out one, so no fold's number
saw its own judgments. The default is the candidate with the best mean over all datasets (what a new fold would
choose). Reference rows: each signal alone, lsr's former default (RRF k=60, sparse + dense, equal weights) and the
untuned convex min-max of all three with equal weights.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.eval.metrics import score_run  # noqa: E402
from lsr.eval.runner import keep_hits  # noqa: E402
from lsr.eval.tuning import RRF_KS, fusion_grid  # noqa: E402
from lsr.retrieval.search import SIGNALS, Fusion, Searcher, fuse_signals  # noqa: E402

MEASURE = "nDCG@10"
K = 10


def candidates(depth: int) -> list[Fusion]:
    equal = [Fusion("rrf", rrf_k=rrf_k, depth=depth) for rrf_k in RRF_KS]
    equal += [Fusion("convex", normalization=n, depth=depth) for n in ("minmax", "zscore")]
    return equal + fusion_grid(SIGNALS, depth)


class Dataset:
    """One dataset's test queries with each signal's candidates, searched once and fused for every candidate."""

    def __init__(self, folder: Path, index: Path, depth: int) -> None:
        self.name = folder.name
        searcher = Searcher.open(index)
        searcher.check_mode("+".join(SIGNALS))  # a clear error when the index lacks a signal
        self.evaluation = read_evaluation_set(folder, "test")
        self.ids = list(self.evaluation.queries)
        texts = list(self.evaluation.queries.values())
        self.doc_ids = [doc.id for doc in searcher.index.docs]
        rankings = {signal: searcher.rankings(texts, signal, depth) for signal in SIGNALS}
        self.per_query = [{signal: rankings[signal][number] for signal in SIGNALS} for number in range(len(self.ids))]

    def value(self, fusion: Fusion, signals: tuple[str, ...] = SIGNALS) -> float:
        run = {}
        for query_id, rankings in zip(self.ids, self.per_query, strict=True):
            fused = fuse_signals({s: rankings[s] for s in signals}, fusion, K + 1) if len(signals) > 1 else rankings[signals[0]]
            hits = zip((self.doc_ids[row] for row in fused.doc_indices[: K + 1]), fused.scores.tolist(), strict=False)
            run[query_id] = keep_hits(query_id, hits, K, remove_identical_ids=True)
        return score_run(self.evaluation.qrels, run, [MEASURE]).aggregate[MEASURE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--indexes", type=Path, default=Path("indexes"))
    parser.add_argument("--depth", type=int, default=100, help="candidates fused from each signal")
    args = parser.parse_args()

    datasets = [Dataset(folder, args.indexes / folder.name, args.depth) for folder in args.dataset]
    grid = candidates(args.depth)
    values = np.array([[dataset.value(fusion) for dataset in datasets] for fusion in grid])  # candidate × dataset
    former = Fusion("rrf", rrf_k=60, depth=args.depth)
    references = {
        **{f"{signal} alone": (former, (signal,)) for signal in SIGNALS},
        "former default: rrf k=60, sparse+dense": (former, ("sparse", "dense")),
        "convex minmax, equal thirds": (Fusion("convex", depth=args.depth), SIGNALS),
    }
    reference_values = {name: [d.value(f, signals) for d in datasets] for name, (f, signals) in references.items()}

    names = [dataset.name for dataset in datasets]
    print(f"{MEASURE} on each dataset's test queries; {len(grid)} candidates, top {args.depth} of each signal fused.\n")
    print("## Leave one dataset out\n")
    print(f"| left out | chosen on the other {len(datasets) - 1} | their mean | {MEASURE} on the left-out | former default | best on it (oracle) |")
    print("|---|---|---:|---:|---:|---:|")
    held_out = []
    for column, name in enumerate(names):
        others = [c for c in range(len(names)) if c != column]
        chosen = int(np.argmax(values[:, others].mean(axis=1)))  # first of equals: the grid's order
        held_out.append(values[chosen, column])
        print(
            f"| {name} | {grid[chosen].describe()} | {values[chosen, others].mean():.4f} | {values[chosen, column]:.4f} | "
            f"{reference_values['former default: rrf k=60, sparse+dense'][column]:.4f} | {values[:, column].max():.4f} |"
        )
    former_mean = float(np.mean(reference_values["former default: rrf k=60, sparse+dense"]))
    print(f"| **mean** | | | **{np.mean(held_out):.4f}** | {former_mean:.4f} | {values.max(axis=0).mean():.4f} |")

    best = int(np.argmax(values.mean(axis=1)))
    default = grid[best]
    print(f"\n## The default: the best mean over all {len(names)} datasets\n")
    print(f"`{default.describe()}` — to_dict: `{default.to_dict()}`\n")
    print(f"| system | {' | '.join(names)} | mean |")
    print(f"|---|{'---:|' * (len(names) + 1)}")
    rows = {**reference_values, f"**default: {default.describe()}**": list(values[best])}
    # The default on an index without a BM25 side: bm25 drops out, sparse and dense keep their proportions.
    rows["default without bm25 (sparse+dense index)"] = [d.value(default, ("sparse", "dense")) for d in datasets]
    for name, row in rows.items():
        print(f"| {name} | {' | '.join(f'{v:.4f}' for v in row)} | {np.mean(row):.4f} |")
    print("\n## The ten best candidates by mean\n")
    print(f"| candidate | {' | '.join(names)} | mean |")
    print(f"|---|{'---:|' * (len(names) + 1)}")
    for number in np.argsort(-values.mean(axis=1), kind="stable")[:10]:
        print(f"| {grid[number].describe()} | {' | '.join(f'{v:.4f}' for v in values[number])} | {values[number].mean():.4f} |")


if __name__ == "__main__":
    main()
