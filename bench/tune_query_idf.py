"""Should `lsr tune` choose the query-IDF exponent with the fusion? Tune both on train/dev, score test once.

    python bench/tune_query_idf.py --index indexes/qidf/scifact --dataset ../shared/data/scifact --split train
    python bench/tune_query_idf.py --index indexes/qidf/nfcorpus --dataset ../shared/data/nfcorpus --split dev

The index: a hybrid of a plain SPLADE encoder (its sparse queries take the weighting). For each exponent of
bench/query_idf.py's grid, `lsr tune`'s own grid search (``tune_fusion``) runs on the tuning split; each exponent's
best fusion is then scored on test, and the pair best on the tuning split is the one such a `lsr tune` would store.
Test scores of the other exponents are printed to show how far the tuning split's choice is from noise.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from query_idf import EXPONENTS  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.eval.evaluate import evaluate  # noqa: E402
from lsr.eval.tuning import tune_fusion  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402

MEASURE = "nDCG@10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="train", help="train or dev: what the tuning reads")
    args = parser.parse_args()
    tuning_set = read_evaluation_set(args.dataset, args.split)
    test_set = read_evaluation_set(args.dataset, "test")
    results = []
    for exponent in EXPONENTS:
        searcher = Searcher.open(args.index, query_idf=exponent, live=True)
        started = time.perf_counter()
        best, tuned = tune_fusion(searcher, tuning_set, args.split, measure=MEASURE, progress=False).best
        seconds = time.perf_counter() - started
        test = evaluate(searcher, test_set, measures=[MEASURE], fusion=best, progress=False).report.scores.aggregate[MEASURE]
        results.append((tuned, exponent, test))
        print(f"exponent {exponent:<4}: {args.split} {tuned:.4f}  test {test:.4f}  {best.describe()}  (tuned in {seconds:.0f} s)")
    tuned, exponent, test = max(results)
    print(f"chosen on {args.split}: exponent {exponent} ({tuned:.4f}) → test {test:.4f}")


if __name__ == "__main__":
    main()
