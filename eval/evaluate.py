"""One system on one dataset split: run its queries, score the run, and describe how it was made."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lsr import __version__, defaults
from lsr.datasets import EvaluationSet
from lsr.errors import LsrError
from lsr.eval.metrics import DEFAULT_MEASURES, parse_measures, score_run
from lsr.eval.report import Report
from lsr.eval.runner import run_queries
from lsr.retrieval.search import Fusion, Searcher, check_k
from lsr.runs import Run


@dataclass(frozen=True)
class Evaluation:
    report: Report
    run: Run


def judged_documents_missing(searcher: Searcher, evaluation: EvaluationSet) -> int:
    """How many of the documents the split judges relevant the index does not hold (they count as never retrieved).
    Refuses an index that holds none of them: it was built from another corpus, and every score would be 0."""
    relevant = {doc_id for judged in evaluation.qrels.values() for doc_id, grade in judged.items() if grade > 0}
    missing = sum(searcher.index.row(doc_id) is None for doc_id in relevant)
    if relevant and missing == len(relevant):
        raise LsrError(
            f"{searcher.index.path} holds none of the {len(relevant)} documents that {evaluation.name} {evaluation.split} "
            f"judges relevant: it was built from {searcher.index.manifest.corpus.get('path')}, not from that dataset's "
            "corpus"
        )
    return missing


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
    missing = judged_documents_missing(searcher, evaluation)
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
        "query_idf": searcher.query_idf,  # the index's, or the one the command gave
        "remove_identical_ids": remove_identical_ids,
        "judged_relevant_missing": missing,
        "search_seconds": round(elapsed, 3),
        "queries_per_second": round(len(run) / elapsed, 2) if elapsed > 0 else None,
        "lsr_version": __version__,
        "command": command,
    }
    system = f"{Path(searcher.index.path).resolve().name} ({mode})"
    report = Report(system=system, dataset=evaluation.name, split=evaluation.split, scores=scores, details=details)
    return Evaluation(report, run)
