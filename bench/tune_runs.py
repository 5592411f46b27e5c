"""`lsr tune` scores every fusion of its grid over the same candidates; how much faster is building each fusion's run
from engine rows (``rankings_run``, what tuning does) than from ``Hit`` objects (``Searcher.hits`` + ``run_entry``,
what ``lsr eval`` does for one run, and what tuning did before)?

    python bench/tune_runs.py --index indexes/scifact --dataset ../shared/data/scifact --split train --fusions 60

The index's signals are searched once (``Searcher.candidates``, as ``tune_fusion``); then, for every ``--fusions``-th
point of the grid spread evenly, the fused rankings are computed once and turned into a scored run both ways
(``score_run``, the tuned measure nDCG@10, 100 hits per query as in tuning), alternating which goes first. Prints the
seconds each way, their ratio, and that both give the same value for every fusion.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.eval.metrics import score_run  # noqa: E402
from lsr.eval.runner import rankings_run, run_entry  # noqa: E402
from lsr.eval.tuning import TUNING_DEPTH, fusion_grid  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402

MEASURE = "nDCG@10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="an index with two or more signals")
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--fusions", type=int, default=60, help="grid points timed (spread over the grid)")
    args = parser.parse_args()

    searcher = Searcher.open(args.index, live=True)
    evaluation = read_evaluation_set(args.dataset, args.split)
    signals = searcher.check_mode("hybrid")
    ids = list(evaluation.queries)
    depth = searcher.default_fusion.depth
    candidates = searcher.candidates([evaluation.queries[q] for q in ids], signals, depth)
    doc_ids = [doc.id for doc in searcher.index.docs]
    grid = fusion_grid(signals, depth)
    chosen = grid[:: max(1, len(grid) // args.fusions)][: args.fusions]

    def from_hits(rankings) -> float:
        run = {q: run_entry(q, searcher.hits(r), TUNING_DEPTH, True) for q, r in zip(ids, rankings, strict=True)}
        return score_run(evaluation.qrels, run, [MEASURE]).aggregate[MEASURE]

    def from_rows(rankings) -> float:
        return score_run(evaluation.qrels, rankings_run(ids, rankings, doc_ids, TUNING_DEPTH), [MEASURE]).aggregate[MEASURE]

    seconds = {"hits": 0.0, "rows": 0.0}
    for number, fusion in enumerate(chosen):
        rankings = searcher.fused(candidates, fusion, TUNING_DEPTH + 1)
        values = {}
        ways = [("hits", from_hits), ("rows", from_rows)]
        for name, build in ways if number % 2 == 0 else ways[::-1]:
            started = time.perf_counter()
            values[name] = build(rankings)
            seconds[name] += time.perf_counter() - started
        if values["hits"] != values["rows"]:
            raise SystemExit(f"{fusion.describe()}: {MEASURE} {values['hits']} from hits, {values['rows']} from rows")
    print(f"{len(chosen)} of the grid's {len(grid)} fusions, {len(ids)} {args.split} queries, {TUNING_DEPTH} hits each")
    ratio = seconds["hits"] / seconds["rows"]
    print(f"runs from hits: {seconds['hits']:.2f} s; from rows: {seconds['rows']:.2f} s; ratio {ratio:.2f}×")
    print(f"the same {MEASURE} both ways for every fusion")


if __name__ == "__main__":
    main()
