"""One system on one dataset split: run its queries, score the run, and describe how it was made."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lsr import __version__, defaults
from lsr.datasets import EvaluationSet
from lsr.eval.metrics import DEFAULT_MEASURES, parse_measures, score_run
from lsr.eval.report import Report
from lsr.eval.runner import run_queries
from lsr.retrieval.search import Fusion, Searcher, check_k
from lsr.runs import Run


@dataclass(frozen=True)
class Evaluation:
    report: Report
    run: Run


def evaluate(
    searcher: Searcher,
    evaluation: EvaluationSet,
    *,
    measures: list[str] | None = None,
    k: int = defaults.RUN_DEPTH,
    mode: str | None = None,
    fusion: Fusion | None = None,
    remove_identical_ids: bool = True,
    command: str | None = None,
    progress: bool | None = None,
) -> Evaluation:
    """Scores with ir-measures (``DEFAULT_MEASURES`` unless given); the report's details hold the manifest, the
    settings, the timing and the ``command`` that produced it."""
    check_k(k)
    measures = measures or list(DEFAULT_MEASURES)
    parse_measures(measures)  # fail before searching
    mode = mode or searcher.default_mode
    fused = len(searcher.check_mode(mode)) > 1
    fusion = fusion or searcher.default_fusion
    started = time.perf_counter()
    run = run_queries(
        searcher, evaluation.queries, k=k, remove_identical_ids=remove_identical_ids, mode=mode, fusion=fusion, progress=progress
    )
    elapsed = time.perf_counter() - started
    scores = score_run(evaluation.qrels, run, measures)
    details = {
        "index": str(searcher.index.path),
        "manifest": searcher.index.manifest.to_dict(),
        "k": k,
        "mode": mode,
        "fusion": fusion.to_dict() if fused else None,
        "remove_identical_ids": remove_identical_ids,
        "search_seconds": round(elapsed, 3),
        "queries_per_second": round(len(run) / elapsed, 2) if elapsed > 0 else None,
        "lsr_version": __version__,
        "command": command,
    }
    system = f"{Path(searcher.index.path).resolve().name} ({mode})"
    report = Report(system=system, dataset=evaluation.name, split=evaluation.split, scores=scores, details=details)
    return Evaluation(report, run)
