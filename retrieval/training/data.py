"""Training data: (query, positive) pairs from qrels, hard negatives mined from an index, a teacher's run."""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lsr import defaults
from lsr.datasets import read_corpus, read_qrels, read_queries
from lsr.errors import DatasetError, LsrError
from lsr.runs import Run


@dataclass
class TrainingData:
    queries: dict[str, str]  # only queries with at least one positive
    documents: dict[str, str]  # doc id → the text an encoder sees
    positives: dict[str, list[str]]
    negatives: dict[str, list[str]] = field(default_factory=dict)  # filled by mine_hard_negatives or negatives_from_run

    def batches(self, batch_size: int, steps: int, seed: int) -> Iterator[Batch]:
        """Each batch: distinct queries, one random positive and one random hard negative each."""
        if batch_size > len(self.queries):
            raise LsrError(f"batch size {batch_size} exceeds the {len(self.queries)} training queries")
        rng = random.Random(seed)
        query_ids = sorted(self.queries)
        document_ids = sorted(self.documents)
        for _ in range(steps):
            chosen = rng.sample(query_ids, batch_size)
            positives = [rng.choice(self.positives[q]) for q in chosen]
            # A query without mined negatives (or before mining) gets a random document that is not a positive.
            negatives = [rng.choice(self.negatives.get(q) or _non_positives(rng, document_ids, self.positives[q])) for q in chosen]
            yield Batch(chosen, positives, negatives)


def _non_positives(rng: random.Random, document_ids: list[str], positives: list[str]) -> list[str]:
    while (candidate := rng.choice(document_ids)) in positives:
        pass
    return [candidate]


@dataclass(frozen=True)
class Batch:
    query_ids: list[str]
    positive_ids: list[str]
    negative_ids: list[str]


def load_training_data(dataset: str | Path, split: str, *, max_queries: int | None = None, seed: int = 0) -> TrainingData:
    """Queries of ``split`` with their positives (relevance > 0); at most ``max_queries``, sampled with ``seed``."""
    qrels = read_qrels(dataset, split)
    all_queries = read_queries(dataset, split)
    documents = {doc.id: doc.contents for doc in read_corpus(dataset).documents}
    positives = {
        q: sorted(d for d, relevance in judged.items() if relevance > 0 and d in documents)
        for q, judged in qrels.items()
        if q in all_queries
    }
    positives = {q: docs for q, docs in positives.items() if docs}
    if not positives:
        raise DatasetError(f"{dataset}: split {split!r} has no query with a relevant document in the corpus")
    kept = sorted(positives)
    if max_queries is not None and max_queries < len(kept):
        kept = sorted(random.Random(seed).sample(kept, max_queries))
    return TrainingData(
        queries={q: all_queries[q] for q in kept},
        documents=documents,
        positives={q: positives[q] for q in kept},
    )


def mine_hard_negatives(data: TrainingData, searcher, depth: int = defaults.NEGATIVES_DEPTH) -> None:
    """Top ``depth`` sparse hits of each query minus its positives (and minus the query's own id, as BEIR does).

    ``searcher`` is a lsr.retrieval.search.Searcher over an index of the same corpus.
    """
    query_ids = sorted(data.queries)
    ranked: dict[str, list[str]] = {}
    for start in range(0, len(query_ids), 64):
        batch = query_ids[start : start + 64]
        for query_id, hits in zip(batch, searcher.search_many([data.queries[q] for q in batch], depth, mode="sparse"), strict=True):
            ranked[query_id] = [hit.id for hit in hits]
    _set_negatives(data, ranked, "the index for hard negatives")


def negatives_from_run(data: TrainingData, run: Run, depth: int = defaults.NEGATIVES_DEPTH) -> None:
    """Top ``depth`` documents of each query in a teacher's run minus its positives: distillation pairs are then
    drawn from what the teacher ranks, so its margins carry the information the (incomplete) qrels lack."""
    ranked = {q: _top_documents(run[q], depth) for q in data.queries if q in run}
    if not ranked:
        raise DatasetError("the teacher run ranks none of the training queries: run the teacher on the training split")
    _set_negatives(data, ranked, "the teacher run")


def score_spread_ratio(student: Run, teacher: Run, depth: int = defaults.NEGATIVES_DEPTH) -> float:
    """How much wider the student's scores spread than the teacher's on the same documents: the median over queries
    of std(student) / std(teacher) over the teacher's top ``depth`` (documents the student's run also holds).

    The teacher scale that puts a teacher's margins in the student's units (TrainingConfig.teacher_scale).
    """
    ratios = []
    for query_id, ranked in teacher.items():
        shared = [doc_id for doc_id in _top_documents(ranked, depth) if doc_id in student.get(query_id, {})]
        if len(shared) < 2:
            continue
        teacher_spread = statistics.pstdev(ranked[d] for d in shared)
        if teacher_spread > 0:
            ratios.append(statistics.pstdev(student[query_id][d] for d in shared) / teacher_spread)
    if not ratios:
        raise LsrError("the student and teacher runs share no query with two or more scored documents")
    return statistics.median(ratios)


def _top_documents(ranked: dict[str, float], depth: int) -> list[str]:
    """A run's ``depth`` best-scored documents of one query, best first."""
    return sorted(ranked, key=ranked.__getitem__, reverse=True)[:depth]


def _set_negatives(data: TrainingData, ranked: dict[str, list[str]], source: str) -> None:
    unknown = 0
    for query_id, doc_ids in ranked.items():
        excluded = {*data.positives[query_id], query_id}
        known = [doc_id for doc_id in doc_ids if doc_id in data.documents]
        unknown += len(doc_ids) - len(known)
        data.negatives[query_id] = [doc_id for doc_id in known if doc_id not in excluded]
    if unknown:
        raise LsrError(f"{source} holds {unknown} hits that are not in the training corpus: use the same dataset")


def teacher_scale(teacher: Run | None, student: Run | None, given: float | None, depth: int) -> float:
    """The factor on the teacher's scores: ``given``, or measured from the starting model's own run (``student``)
    by ``score_spread_ratio``, or 1."""
    if student is None:
        return 1.0 if given is None else given
    if teacher is None or given is not None:
        raise LsrError("--student-run measures the teacher scale: it needs --teacher-run and no --teacher-scale")
    return round(score_spread_ratio(student, teacher, depth), 2)
