"""Scoring runs with ir-measures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ir_measures

from lsr.datasets import Qrels
from lsr.errors import LsrError

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")


@dataclass(frozen=True)
class Scores:
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]


def parse_measures(names: Sequence[str]) -> list:
    measures = []
    for name in names:
        try:
            measures.append(ir_measures.parse_measure(name))
        except (ValueError, NameError, SyntaxError, AttributeError) as exc:
            raise LsrError(f"unknown measure {name!r} (ir-measures syntax, e.g. nDCG@10, RR@10, R@100)") from exc
    return measures


def score_run(qrels: Qrels, run: dict[str, dict[str, float]], measures: Sequence[str] = DEFAULT_MEASURES) -> Scores:
    """Per-query and mean values over every judged query.

    ir-measures (like trec_eval) skips queries with no retrieved document; BEIR counts them as 0, and so
    do we, so a system cannot gain by returning nothing.
    """
    parsed = parse_measures(measures)
    per_query = {query_id: {str(m): 0.0 for m in parsed} for query_id in qrels}
    for metric in ir_measures.iter_calc(parsed, qrels, {q: hits for q, hits in run.items() if q in qrels and hits}):
        per_query[metric.query_id][str(metric.measure)] = float(metric.value)
    aggregate = {str(m): sum(values[str(m)] for values in per_query.values()) / len(per_query) for m in parsed}
    return Scores(aggregate=aggregate, per_query=per_query)
