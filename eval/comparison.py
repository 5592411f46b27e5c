"""Many systems × many datasets: every query of every dataset through every system, scored, tested, timed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import scipy.sparse as sp

from lsr import defaults
from lsr.datasets import EvaluationSet, read_corpus, read_evaluation_set, read_queries
from lsr.errors import LsrError
from lsr.eval.efficiency import Efficiency, TimedEncoder, index_efficiency
from lsr.eval.metrics import Scores, parse_measures, score_run
from lsr.eval.runner import run_queries, time_queries
from lsr.eval.significance import PairedTest, compare_to_baseline
from lsr.eval.systems import INDEX, SystemSpec, cut_run, file_sha256
from lsr.indexer.index_folder import IndexFolder
from lsr.retrieval.search import Searcher
from lsr.runs import Run, read_run


@dataclass
class SystemResult:
    system: str
    kind: str  # INDEX or RUN_FILE
    path: str
    mode: str | None  # index systems: the mode searched
    run: Run
    scores: Scores
    efficiency: Efficiency | None  # index systems only
    provenance: dict  # index: manifest and fusion used; run file: its sha256


@dataclass
class DatasetResult:
    name: str
    path: str
    split: str
    corpus_sha256: str
    judged_queries: int
    systems: dict[str, SystemResult] = field(default_factory=dict)
    significance: dict[str, dict[str, PairedTest]] = field(default_factory=dict)  # measure → system → test


@dataclass
class Comparison:
    systems: list[SystemSpec]
    baseline: str
    measures: list[str]
    split: str
    k: int
    remove_identical_ids: bool
    seed: int
    latency_queries: int  # the first this many queries of each dataset are also timed one per call
    datasets: list[DatasetResult] = field(default_factory=list)


def dataset_names(folders: Sequence[Path]) -> list[str]:
    names = [Path(folder).resolve().name for folder in folders]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LsrError(f"dataset folder names must be unique ({{dataset}} stands for them): {', '.join(duplicates)} twice")
    return names


def _check_index_corpus(system: SystemSpec, index: IndexFolder, dataset: str, corpus_sha256: str) -> None:
    if index.manifest.corpus.get("sha256") != corpus_sha256:
        raise LsrError(
            f"system {system.name!r}: {index.path} was built from {index.manifest.corpus.get('path')}, "
            f"not from dataset {dataset!r} (corpus checksums differ)"
        )


def _evaluate_index(
    system: SystemSpec, path: Path, dataset: str, evaluation: EvaluationSet, comparison: Comparison, progress: bool | None
) -> SystemResult:
    opened = Searcher.open(path, live=True)  # what a server of the index searches, as `lsr eval`
    mode = system.mode or opened.default_mode
    signals = opened.check_mode(mode)
    # No sparse encoder: a BM25 index, whose engine analyses the query text itself (its latency is all retrieval).
    sparse = TimedEncoder(opened.encoder) if opened.encoder is not None else None
    dense = TimedEncoder(opened.dense_encoder) if opened.dense_encoder is not None else None
    searcher = Searcher(opened.index, sparse, dense)
    run = run_queries(
        searcher,
        evaluation.queries,
        k=comparison.k,
        remove_identical_ids=comparison.remove_identical_ids,
        mode=mode,
        progress=progress,
        desc=f"{dataset} · {system.name}: searching",
    )
    manifest = opened.index.manifest
    sparse_queries = (
        manifest.quantization.quantize(sp.vstack(sparse.outputs, format="csr")) if sparse and sparse.outputs else None
    )
    sample = list(evaluation.queries.values())[: comparison.latency_queries]
    depth = comparison.k + 1 if comparison.remove_identical_ids else comparison.k
    timed = [encoder for encoder in (sparse, dense) if encoder is not None]
    latencies = time_queries(
        searcher, sample, timed, depth=depth, mode=mode, progress=progress, desc=f"{dataset} · {system.name}: timing"
    )
    efficiency = index_efficiency(
        # The folder as built (its size, build rate, stored vectors' statistics); its engine is the searcher's to open.
        IndexFolder(path, open_engine=False),
        signals,
        sparse_queries=sparse_queries,
        dense_dim=dense.dim if dense is not None else None,
        encode_ms=latencies.encode_ms,
        retrieve_ms=latencies.retrieve_ms,
    )
    provenance = {"manifest": manifest.to_dict(), "fusion": opened.default_fusion.to_dict() if len(signals) > 1 else None}
    scores = score_run(evaluation.qrels, run, comparison.measures)
    return SystemResult(system.name, INDEX, str(path), mode, run, scores, efficiency, provenance)


def run_comparison(
    systems: list[SystemSpec],
    baseline: str,
    datasets: Sequence[Path],
    *,
    split: str = "test",
    measures: Sequence[str],
    k: int = defaults.RUN_DEPTH,
    remove_identical_ids: bool = True,
    seed: int = 0,
    latency_queries: int = 100,
    progress: bool | None = None,
) -> Comparison:
    """Checks every input (datasets, systems' paths, run files, index corpora) before the first query runs."""
    parse_measures(measures)
    comparison = Comparison(systems, baseline, list(measures), split, k, remove_identical_ids, seed, latency_queries)
    prepared = []
    for name, folder in zip(dataset_names(datasets), datasets, strict=True):
        evaluation = read_evaluation_set(folder, split)
        corpus = read_corpus(folder)
        located = {system.name: system.locate(name) for system in systems}
        runs: dict[str, Run] = {}
        for system in systems:
            kind, path = located[system.name]
            if kind == INDEX:
                _check_index_corpus(system, IndexFolder(path, open_engine=False), name, corpus.sha256)
            else:
                doc_ids = {doc.id for doc in corpus.documents}
                runs[system.name] = cut_run(
                    read_run(path, known_queries=read_queries(folder, split), known_docs=doc_ids), k, remove_identical_ids
                )
        prepared.append((name, folder, evaluation, corpus.sha256, located, runs))

    for name, folder, evaluation, corpus_sha256, located, runs in prepared:
        result = DatasetResult(name, str(folder), split, corpus_sha256, len(evaluation.qrels))
        for system in systems:
            kind, path = located[system.name]
            if kind == INDEX:
                result.systems[system.name] = _evaluate_index(system, path, name, evaluation, comparison, progress)
            else:
                run = runs[system.name]
                scores = score_run(evaluation.qrels, run, measures)
                provenance = {"sha256": file_sha256(path)}
                result.systems[system.name] = SystemResult(system.name, kind, str(path), None, run, scores, None, provenance)
        per_query = {system: outcome.scores.per_query for system, outcome in result.systems.items()}
        result.significance = {measure: compare_to_baseline(per_query, baseline, measure, seed=seed) for measure in measures}
        comparison.datasets.append(result)
    return comparison
