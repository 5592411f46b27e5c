"""TREC run files (query-id Q0 doc-id rank score tag): the one reader and writer, and the ``Run`` record.

Parsed here rather than with ``ir_measures.read_trec_run`` so that every error names the file and line.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from lsr.errors import DatasetError

Run = dict[str, dict[str, float]]  # query id → doc id → score


def read_run(
    path: str | Path, *, known_queries: Collection[str] | None = None, known_docs: Collection[str] | None = None
) -> Run:
    """A run, checked against a dataset's query and document ids when they are given."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"run file {path} does not exist")
    run: Run = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            columns = line.split()
            if len(columns) != 6:
                raise DatasetError(
                    f"{path}:{lineno}: expected 6 columns (query-id Q0 doc-id rank score tag), got {len(columns)}"
                )
            query_id, _, doc_id, _, score, _ = columns
            if known_queries is not None and query_id not in known_queries:
                raise DatasetError(
                    f"{path}:{lineno}: query {query_id!r} is not a query of this dataset (wrong run file for it?)"
                )
            if known_docs is not None and doc_id not in known_docs:
                raise DatasetError(f"{path}:{lineno}: document {doc_id!r} is not in this dataset's corpus")
            try:
                value = float(score)
            except ValueError as exc:
                raise DatasetError(f"{path}:{lineno}: score {score!r} is not a number") from exc
            hits = run.setdefault(query_id, {})
            if doc_id in hits:
                raise DatasetError(f"{path}:{lineno}: document {doc_id!r} is ranked twice for query {query_id!r}")
            hits[doc_id] = value
    if not run:
        raise DatasetError(f"{path}: the run file is empty")
    return run


def write_run(run: Run, path: Path, tag: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for query_id, hits in run.items():
            ranked = sorted(hits.items(), key=lambda item: -item[1])  # stable: keeps the engine's tie order
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
