"""Does pseudo-relevance feedback on the sparse side pay? Every shared dataset, leave-one-dataset-out.

    python bench/feedback.py --index indexes/scifact --dataset ../shared/data/scifact \
        --index indexes/nfcorpus --dataset ../shared/data/nfcorpus ...

One --index (a sparse splade-tiny index of the dataset) per --dataset, in the same order. Each dataset's test
queries are encoded once; for each setting of a grid (documents × terms × weight, lsr.retrieval.search.Feedback)
the queries are expanded with ``expand_queries`` — the function the Searcher calls — and searched again, top 1000,
scored by nDCG@10 (a hit whose id is the query's dropped, as BEIR does). For each fold, the setting with the best mean
over the other datasets is scored on the left-out one, so no fold's number saw its own judgments; the last line says
whether that beats no feedback on average (then feedback should be on by default).
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.eval.metrics import score_run  # noqa: E402
from lsr.eval.runner import rankings_run  # noqa: E402
from lsr.retrieval.search import Feedback, Searcher, expand_queries  # noqa: E402

DEPTH = 1000
GRID = [Feedback(d, t, w) for d, t, w in itertools.product((3, 5, 10), (10, 20, 50), (0.25, 0.5, 1.0))]


def ndcg(searcher: Searcher, folder: Path, settings: list[Feedback | None]) -> list[float]:
    evaluation = read_evaluation_set(folder, "test")
    ids, texts = list(evaluation.queries), list(evaluation.queries.values())
    doc_ids = [doc.id for doc in searcher.index.docs]
    engine = searcher.index.engine
    queries = searcher.sparse_queries(texts)
    first_pass = engine.search(queries, max(setting.documents for setting in settings if setting))
    scores = []
    for setting in settings:
        expanded = queries if setting is None else expand_queries(queries, first_pass, searcher.index.vector, setting)
        rankings = engine.search(expanded, DEPTH)
        run = rankings_run(ids, rankings, doc_ids, DEPTH)
        scores.append(score_run(evaluation.qrels, run, ["nDCG@10"]).aggregate["nDCG@10"])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, action="append", required=True)
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    args = parser.parse_args()
    if len(args.index) != len(args.dataset):
        parser.error("give one --index per --dataset")
    settings: list[Feedback | None] = [None, *GRID]
    table = {}
    for index, folder in zip(args.index, args.dataset, strict=True):
        table[folder.name] = ndcg(Searcher.open(index), folder, settings)
        print(
            f"{folder.name}: no feedback {table[folder.name][0]:.4f}, best setting {max(table[folder.name][1:]):.4f}", flush=True
        )
    names = list(table)
    scores = np.array([table[name] for name in names])  # datasets × (no feedback, grid…)
    print(f"\n{'setting (documents, terms, weight)':>36} " + " ".join(f"{name:>9}" for name in names) + f" {'mean':>7}")
    for column, setting in enumerate(settings):
        label = "no feedback" if setting is None else f"{setting.documents}, {setting.terms}, {setting.weight:g}"
        print(f"{label:>36} " + " ".join(f"{value:>9.4f}" for value in scores[:, column]) + f" {scores[:, column].mean():>7.4f}")
    print("\nleave one dataset out (setting chosen on the other datasets, scored on the one left out):")
    folds = []
    for held_out in range(len(names)):
        others = [row for row in range(len(names)) if row != held_out]
        chosen = 1 + int(np.argmax(scores[others, 1:].mean(axis=0)))
        folds.append((scores[held_out, 0], scores[held_out, chosen]))
        setting = settings[chosen]
        gained, without = scores[held_out, chosen], scores[held_out, 0]
        print(
            f"  {names[held_out]:>10}: chose {setting.documents}, {setting.terms}, {setting.weight:g} → "
            f"{gained:.4f} against {without:.4f} without ({gained - without:+.4f})"
        )
    without, with_feedback = np.mean(folds, axis=0)
    verdict = "wins" if with_feedback > without else "does not win"
    print(f"mean over folds: {with_feedback:.4f} with feedback, {without:.4f} without: feedback {verdict}")
    overall = settings[1 + int(np.argmax(scores[:, 1:].mean(axis=0)))]
    print(f"best setting over all datasets (a new fold's choice): {overall}")


if __name__ == "__main__":
    main()
