"""`lsr tune` takes two shortcuts through its grid: each fusion's run is cut at the measure's cutoff, ties kept
(``head_with_ties``: nDCG@10 reads 10 hits, not the 100 fused), and a fusion with dense feedback reuses the first pass
of the same fusion without it, fused earlier in the grid. Does each fusion still get the value it gets without them,
and how much time do they save?

    python bench/tune_shortcuts.py --index indexes/scifact --dataset ../shared/data/scifact --split train

Runs ``tune_fusion`` over the whole grid twice in one process, with the shortcuts and with both turned off (the run
cut at 100 hits, every first pass fused again); prints the seconds of each, their ratio, and how many of the grid's
values are identical (to the last bit).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lsr.eval.tuning as tuning  # noqa: E402
from lsr.datasets import read_evaluation_set  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="an index with two or more signals")
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()

    searcher = Searcher.open(args.index, live=True)
    evaluation = read_evaluation_set(args.dataset, args.split)
    started = time.perf_counter()
    shortcut = tuning.tune_fusion(searcher, evaluation, args.split, progress=False)
    shortcut_seconds = time.perf_counter() - started

    tuning.measure_depth = lambda measure: tuning.TUNING_DEPTH
    tuning._without_feedback = lambda fusion: object()  # a key no fusion is stored under: every first pass fused again
    started = time.perf_counter()
    whole = tuning.tune_fusion(searcher, evaluation, args.split, progress=False)
    whole_seconds = time.perf_counter() - started

    identical = sum(a == b for a, b in zip(shortcut.results, whole.results, strict=True))
    print(f"{len(shortcut.results)} fusions, {len(evaluation.queries)} queries")
    print(f"with the shortcuts {shortcut_seconds:.1f} s, without {whole_seconds:.1f} s: {whole_seconds / shortcut_seconds:.2f}×")
    print(f"identical values: {identical}/{len(whole.results)}; best {shortcut.best[0]} = {shortcut.best[1]}")


if __name__ == "__main__":
    main()
