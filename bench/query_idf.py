"""Does weighting sparse queries by corpus IDF pay, and with which exponent? Leave-one-dataset-out.

    python bench/query_idf.py --index indexes/full/scifact --dataset ../shared/data/scifact \
        --index indexes/full/nfcorpus --dataset ../shared/data/nfcorpus ... \
        [--check-index indexes/packages --check-dataset ../shared/data/packages]

One --index (a sparse index of a plain SPLADE encoder) per --dataset, in the same order. Each dataset's test queries
are searched on the sparse side through ``Searcher.rankings`` — the product's query path — with each exponent of the
grid (``lsr search|eval --query-idf``; 0 is no weighting), top 1000, scored by nDCG@10 (a hit whose id is the query's
dropped, as BEIR does). For each fold, the exponent with the best mean over the other datasets is scored on the
left-out one, with a paired randomization test against no weighting, so no fold's number saw its own judgments. The
exponent best over all of them (a new collection's choice) is then scored on each --check-dataset, which chose nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.eval.metrics import score_run  # noqa: E402
from lsr.eval.runner import rankings_run  # noqa: E402
from lsr.eval.significance import paired_test  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402

DEPTH = 1000
EXPONENTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def per_query(index: Path, folder: Path, split: str, measure: str) -> np.ndarray:
    """exponents × queries: the measure of each query at each exponent."""
    searcher = Searcher.open(index, query_idf=0.0)  # refuses an index whose queries the weighting does not apply to
    evaluation = read_evaluation_set(folder, split)
    ids, texts = list(evaluation.queries), list(evaluation.queries.values())
    doc_ids = [doc.id for doc in searcher.index.docs]
    values = []
    for exponent in EXPONENTS:
        searcher.query_idf = exponent
        run = rankings_run(ids, searcher.rankings(texts, "sparse", DEPTH), doc_ids, DEPTH)
        scores = score_run(evaluation.qrels, run, [measure]).per_query
        values.append([scores[query][measure] for query in sorted(scores)])
    return np.array(values)


def compared(name: str, values: np.ndarray, chosen: int, why: str) -> str:
    test = paired_test(values[chosen], values[0])
    return (
        f"  {name:>10}: {why} {EXPONENTS[chosen]:g} → {values[chosen].mean():.4f} against {values[0].mean():.4f} without "
        f"({test.mean_delta:+.4f}, {test.wins} wins / {test.losses} losses, randomization p = {test.permutation_p:.4f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, action="append", required=True)
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--check-index", type=Path, action="append", default=[])
    parser.add_argument("--check-dataset", type=Path, action="append", default=[])
    parser.add_argument("--split", default="test")
    parser.add_argument("--measure", default="nDCG@10")
    args = parser.parse_args()
    if len(args.index) != len(args.dataset) or len(args.check_index) != len(args.check_dataset):
        parser.error("give one --index per --dataset, and one --check-index per --check-dataset")
    table = {}
    for index, folder in zip(args.index, args.dataset, strict=True):
        table[folder.name] = per_query(index, folder, args.split, args.measure)
        grid = zip(EXPONENTS, table[folder.name].mean(axis=1), strict=True)
        print(f"{folder.name}: " + ", ".join(f"{exponent:g} {value:.4f}" for exponent, value in grid), flush=True)
    names = list(table)
    means = np.array([table[name].mean(axis=1) for name in names])  # datasets × exponents
    print(f"\n{args.measure} on {args.split}\n{'exponent':>9} " + " ".join(f"{name:>10}" for name in names) + f" {'mean':>7}")
    for column, exponent in enumerate(EXPONENTS):
        values = means[:, column]
        print(f"{exponent:>9g} " + " ".join(f"{value:>10.4f}" for value in values) + f" {values.mean():>7.4f}")
    print("\nleave one dataset out (exponent chosen on the other datasets, scored on the one left out):")
    folds = []
    for held_out, name in enumerate(names):
        chosen = int(np.argmax(np.delete(means, held_out, axis=0).mean(axis=0)))
        folds.append((means[held_out, 0], means[held_out, chosen]))
        print(compared(name, table[name], chosen, "chose"))
    without, weighted = np.mean(folds, axis=0)
    print(f"mean over folds: {weighted:.4f} weighted, {without:.4f} without")
    overall = int(np.argmax(means.mean(axis=0)))
    print(f"best exponent over all datasets (a new collection's choice): {EXPONENTS[overall]:g}")
    for index, folder in zip(args.check_index, args.check_dataset, strict=True):
        print(compared(folder.name, per_query(index, folder, args.split, args.measure), overall, "at"), flush=True)


if __name__ == "__main__":
    main()
