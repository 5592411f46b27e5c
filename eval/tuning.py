"""Choosing hybrid fusion settings by grid search on a train or dev split — never on test."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from lsr.datasets import EvaluationSet
from lsr.errors import LsrError
from lsr.eval.evaluate import judged_documents_missing
from lsr.eval.metrics import parse_measures, score_run
from lsr.eval.runner import rankings_run
from lsr.indexer.engines import Ranking
from lsr.indexer.index_folder import write_manifest
from lsr.retrieval.search import Searcher
from lsr.retrieval.search.fusion import Fusion

STEPS = 10  # weights in steps of 0.1: 11 points for two signals, 66 for three
RRF_KS = (10, 30, 60, 100)
TUNING_DEPTH = 100  # hits per query scored while tuning: enough for any measure up to @100
# (documents, weight) of dense feedback tried with every convex weighting that gives dense a share.
DENSE_FEEDBACK = ((3, 0.5), (3, 1.0))


def _compositions(total: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every way of writing ``total`` as ``parts`` non-negative integers, the first falling from ``total`` to 0."""
    if parts == 1:
        yield (total,)
        return
    for first in range(total, -1, -1):
        for rest in _compositions(total - first, parts - 1):
            yield (first, *rest)


def weight_grid(signals: tuple[str, ...], steps: int = STEPS) -> list[dict[str, float]]:
    """Every weighting of the signals in steps of 1/steps that sums to 1: the simplex grid."""
    compositions = _compositions(steps, len(signals))
    return [dict(zip(signals, (count / steps for count in counts), strict=True)) for counts in compositions]


def fusion_grid(signals: tuple[str, ...], depth: int) -> list[Fusion]:
    weightings = weight_grid(signals)
    grid = [Fusion("rrf", rrf_k=rrf_k, depth=depth, weights=weights) for rrf_k in RRF_KS for weights in weightings]
    convex = [
        Fusion("convex", normalization=n, depth=depth, weights=weights) for n in ("minmax", "zscore") for weights in weightings
    ]
    with_feedback = [
        fusion.changed(dense_feedback=documents, dense_feedback_weight=weight)
        for documents, weight in DENSE_FEEDBACK
        for fusion in convex
        if dict(fusion.weights).get("dense")
    ]
    return grid + convex + with_feedback


@dataclass(frozen=True)
class Tuning:
    measure: str
    alone: dict[str, float]  # the measure for each signal alone, on the same split
    results: list[tuple[Fusion, float]]  # every grid point, best first

    @property
    def best(self) -> tuple[Fusion, float]:
        return self.results[0]

    @property
    def sparse(self) -> float:
        return self.alone["sparse"]

    @property
    def dense(self) -> float:
        return self.alone["dense"]


def _without_feedback(fusion: Fusion) -> Fusion:
    return fusion.changed(dense_feedback=0, dense_feedback_weight=1.0)  # the weight means nothing without feedback


def measure_depth(measure: str) -> int:
    """Hits per query the measure reads: its cutoff (nDCG@10 reads 10), else all ``TUNING_DEPTH``."""
    cutoff = parse_measures([measure])[0].params.get("cutoff")
    return min(cutoff, TUNING_DEPTH) if cutoff else TUNING_DEPTH


def head_with_ties(ranking: Ranking, depth: int) -> Ranking:
    """The first ``depth`` + 1 hits (one spare for a dropped identical id) and every hit tied with the last of them.

    A run cut there scores as the whole ranking does: the measure orders tied hits its own way (trec_eval's: by doc
    id), and each it could pick is kept. Scoring ~600 fusions of 100 hits per query was half of ``lsr tune``'s time."""
    scores = ranking.scores
    if scores.size <= depth + 1:
        return ranking
    end = depth + 1 + int(np.searchsorted(-scores[depth + 1 :], -scores[depth], side="right"))
    return Ranking(doc_indices=ranking.doc_indices[:end], scores=scores[:end])


def check_tuning_split(split: str) -> None:
    if split == "test":
        raise LsrError("fusion is tuned on a train or dev split, never on test (that would overfit the reported numbers)")


def tune_fusion(
    searcher: Searcher,
    evaluation: EvaluationSet,
    split: str,
    *,
    measure: str = "nDCG@10",
    depth: int = 100,
    remove_identical_ids: bool = True,
    batch_size: int = 64,
    progress: bool | None = None,
) -> Tuning:
    """Scores every grid point over the index's signals (``hybrid``) on ``evaluation``; each signal is searched once,
    fusion reuses its candidates."""
    check_tuning_split(split)
    judged_documents_missing(searcher, evaluation)  # an index of another corpus would store a fusion chosen on zeros
    signals = searcher.check_mode("hybrid")
    ids = list(evaluation.queries)
    batches = []
    hidden = None if progress is None else not progress
    with tqdm(total=len(ids), unit="query", desc="searching", disable=hidden) as bar:
        for start in range(0, len(ids), batch_size):
            texts = [evaluation.queries[q] for q in ids[start : start + batch_size]]
            batches.append(searcher.candidates(texts, signals, depth))
            bar.update(len(texts))

    doc_ids = [doc.id for doc in searcher.index.docs]

    depth_read = measure_depth(measure)

    def value(rankings) -> float:
        heads = [head_with_ties(ranking, depth_read) for ranking in rankings]
        run = rankings_run(ids, heads, doc_ids, TUNING_DEPTH, remove_identical_ids)
        return score_run(evaluation.qrels, run, [measure]).aggregate[measure]

    k = TUNING_DEPTH + 1  # one spare for a dropped identical id
    feedback_documents = max(documents for documents, _ in DENSE_FEEDBACK)
    # Each batch's rows fused without feedback, by fusion: the first pass of the same fusion with feedback.
    first_passes: dict[Fusion, list[list[np.ndarray]]] = {}

    def fused(fusion: Fusion) -> list[Ranking]:
        first = first_passes.get(_without_feedback(fusion)) if fusion.dense_feedback else None
        per_batch = [
            searcher.fused(batch, fusion, k, first_pass=first[number] if first else None) for number, batch in enumerate(batches)
        ]
        if not fusion.dense_feedback:
            first_passes[_without_feedback(fusion)] = [[r.doc_indices[:feedback_documents] for r in b] for b in per_batch]
        return [r for rankings in per_batch for r in rankings]

    grid = fusion_grid(signals, depth)  # a fusion comes before its variants with feedback
    results = [
        (fusion, value(fused(fusion)))
        for fusion in tqdm(grid, unit="fusion", desc="scoring fusions", disable=hidden)  # most of the time goes here
    ]
    results.sort(key=lambda item: -item[1])  # stable: among equal values the grid's earlier point wins
    alone = {signal: value([r for batch in batches for r in batch.rankings[signal]]) for signal in signals}
    return Tuning(measure=measure, alone=alone, results=results)


def store_tuned_fusion(searcher: Searcher, evaluation: EvaluationSet, tuning: Tuning, dataset: str) -> None:
    """Records the best fusion, and what it was tuned on, in the index's manifest: the index's default from now on."""
    best, value = tuning.best
    tuned_on = {
        "dataset": dataset,
        "split": evaluation.split,
        "queries": len(evaluation.queries),
        "measure": tuning.measure,
        "value": value,
    }
    manifest = dataclasses.replace(searcher.index.manifest, fusion={**best.to_dict(), "tuned_on": tuned_on})
    write_manifest(searcher.index.path, manifest)
