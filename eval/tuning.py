"""Choosing hybrid fusion settings by grid search on a train or dev split — never on test."""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

from tqdm.auto import tqdm

from lsr.datasets import EvaluationSet
from lsr.indexer.index_folder import write_manifest
from lsr.errors import LsrError
from lsr.eval.metrics import score_run
from lsr.eval.runner import run_entry
from lsr.retrieval.search.fusion import Fusion, fuse
from lsr.retrieval.search import Searcher

WEIGHTS = tuple(step / 10 for step in range(11))
RRF_KS = (10, 30, 60, 100)
TUNING_DEPTH = 100  # hits per query scored while tuning: enough for any measure up to @100


def fusion_grid(depth: int) -> list[Fusion]:
    grid = [Fusion("rrf", weight, rrf_k=rrf_k, depth=depth) for rrf_k in RRF_KS for weight in WEIGHTS]
    grid += [Fusion("convex", weight, normalization=n, depth=depth) for n in ("minmax", "zscore") for weight in WEIGHTS]
    return grid


@dataclass(frozen=True)
class Tuning:
    measure: str
    sparse: float  # the measure for each side alone, on the same split
    dense: float
    results: list[tuple[Fusion, float]]  # every grid point, best first

    @property
    def best(self) -> tuple[Fusion, float]:
        return self.results[0]


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
    """Scores every grid point on ``evaluation``; each side is searched once, fusion reuses its candidates."""
    check_tuning_split(split)
    ids = list(evaluation.queries)
    sparse, dense = [], []
    with tqdm(total=len(ids), unit="query", desc="searching", disable=None if progress is None else not progress) as bar:
        for start in range(0, len(ids), batch_size):
            texts = [evaluation.queries[q] for q in ids[start : start + batch_size]]
            sparse += searcher.rankings(texts, "sparse", depth)
            dense += searcher.rankings(texts, "dense", depth)
            bar.update(len(texts))

    def value(rankings) -> float:
        run = {q: run_entry(q, searcher.hits(r), TUNING_DEPTH, remove_identical_ids) for q, r in zip(ids, rankings, strict=True)}
        return score_run(evaluation.qrels, run, [measure]).aggregate[measure]

    k = TUNING_DEPTH + 1  # one spare for a dropped identical id
    results = [(fusion, value([fuse(s, d, fusion, k) for s, d in zip(sparse, dense, strict=True)])) for fusion in fusion_grid(depth)]
    results.sort(key=lambda item: -item[1])  # stable: among equal values the grid's earlier point wins
    return Tuning(measure=measure, sparse=value(sparse), dense=value(dense), results=results)


def store_tuned_fusion(searcher: Searcher, evaluation: EvaluationSet, tuning: Tuning, dataset: str) -> None:
    """Records the best fusion, and what it was tuned on, in the index's manifest: the index's default from now on."""
    best, value = tuning.best
    tuned_on = {"dataset": dataset, "split": evaluation.split, "queries": len(evaluation.queries), "measure": tuning.measure, "value": value}
    manifest = dataclasses.replace(searcher.index.manifest, fusion={**best.to_dict(), "tuned_on": tuned_on})
    write_manifest(searcher.index.path, manifest)
