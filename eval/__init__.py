"""Offline evaluation: run a dataset's queries through a Searcher, score with ir-measures, write reports."""

from lsr.eval.evaluate import Evaluation, evaluate
from lsr.eval.metrics import DEFAULT_MEASURES, Scores, score_run
from lsr.eval.report import Report, write_report
from lsr.eval.runner import run_queries

__all__ = ["DEFAULT_MEASURES", "Evaluation", "Report", "evaluate", "Scores", "run_queries", "score_run", "write_report"]
