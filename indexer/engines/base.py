"""The engine interface: build from quantized document vectors, open from disk, search in batches."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numba
import numpy as np
import scipy.sparse as sp

from lsr.errors import IndexFolderError

if TYPE_CHECKING:
    from lsr.datasets import Document


@dataclass(frozen=True)
class Ranking:
    """One query's results: row numbers in the index, best first, with their scores."""

    doc_indices: np.ndarray  # int64
    scores: np.ndarray  # int64 quantized units for sparse engines, float32 for dense search


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, so that callers ask instead of special-casing engine classes."""

    live_updates: bool = False  # serves the API's upserts and deletes (through the index's write-ahead log)
    # Upserts and deletes go into the engine's own store (``write``): searches need no query-time delta merge, and
    # nothing is compacted. The store also holds the documents and dense vectors (``BuildExtras``).
    stores_updates: bool = False
    serves_dense: bool = False  # its store holds the dense vectors too, and searches them (``dense_side``)
    approximate: bool = False  # some settings trade recall for speed


@dataclass(frozen=True)
class NoSettings:
    """For engines with nothing to set."""


@dataclass(frozen=True)
class BuildExtras:
    """What an engine that ``stores_updates`` keeps besides the sparse vectors; the others ignore it."""

    docs: Sequence[Document] = ()
    dense: np.ndarray | None = None


class Engine(Protocol):
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Settings: ClassVar[type]  # a frozen dataclass: the manifest records its fields, ``open`` and ``build`` take it

    @classmethod
    def build(cls, vectors: sp.csr_matrix, folder: Path, settings: Any = None, extras: BuildExtras = BuildExtras()) -> None:
        """Writes the engine's files for these (documents × terms) integer impacts into ``folder``."""
        ...

    @classmethod
    def open(cls, folder: Path, doc_count: int, settings: Any = None) -> Engine: ...

    def search(self, queries: sp.csr_matrix, k: int) -> list[Ranking]:
        """Top-k documents with a positive score for each row of ``queries`` (integer weights)."""
        ...


def parse_settings(engine: type, data: dict[str, Any]) -> Any:
    """An engine's typed settings from a manifest's (or a command line's) key/value pairs, with clear errors."""
    known = {field.name for field in dataclasses.fields(engine.Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise IndexFolderError(f"the {engine.name} engine takes no setting {', '.join(unknown)}")
    try:
        return engine.Settings(**data)
    except TypeError as exc:  # a required setting is missing
        raise IndexFolderError(f"the {engine.name} engine needs more settings: {exc}") from None


CORES = os.cpu_count() or 1
# One pool for the whole process: its threads live on, so per-thread scratch buffers are allocated once, not per batch.
_POOL = ThreadPoolExecutor(CORES, thread_name_prefix="lsr-search")


def query_rows(queries: sp.csr_matrix) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(terms, weights) of each row of a CSR batch of query vectors."""
    for start, end in zip(queries.indptr[:-1], queries.indptr[1:], strict=True):
        yield queries.indices[start:end], queries.data[start:end]


def search_rows(queries: sp.csr_matrix, search_one: Callable[[np.ndarray, np.ndarray], Ranking]) -> list[Ranking]:
    """``search_one(terms, weights)`` for every query; a batch is spread over the cores (the scoring loops run
    without the GIL), a single query runs on the calling thread."""
    rows = list(query_rows(queries))
    if len(rows) < 2 or CORES < 2:
        return [search_one(*row) for row in rows]
    return list(_POOL.map(lambda row: search_one(*row), rows))


@numba.njit(cache=True, nogil=True)
def best_of(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best candidate rows and their scores, best first, ties broken by lower row as in every engine."""
    if rows.size > k:
        kth = np.partition(scores, rows.size - k)[rows.size - k]
        above = rows[scores > kth]
        tied = np.sort(rows[scores == kth])[: k - above.size]
        rows = np.concatenate((above, tied))
        scores = np.concatenate((scores[scores > kth], np.full(tied.size, kth, dtype=scores.dtype)))
    by_row = np.argsort(rows)
    rows, scores = rows[by_row], scores[by_row]
    order = np.argsort(-scores, kind="mergesort")  # stable: equal scores stay in row order
    return rows[order], scores[order]


@numba.njit(cache=True, nogil=True)
def best_candidates(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``best_of`` for Python callers; compiled functions call ``best_of`` itself.

    A cached function must never be called both from Python and from other cached functions: each cached caller
    carries its own compilation of the callee, and numba names a compilation's constants by function, signature and
    a per-process counter, so two processes' compilations can share one name in a third process. The first loaded
    wins, and a Python call then read the other's constants (CI: "'descr' is NULL", once a segfault).
    tests/test_architecture.py keeps the two kinds of callers apart.
    """
    return best_of(rows, scores, k)


@numba.njit(cache=True, nogil=True)
def _top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    candidates = np.flatnonzero(scores > 0)
    return best_of(candidates, scores[candidates], k)


def top_k(scores: np.ndarray, k: int) -> Ranking:
    """The k best positive scores, ties broken by lower row number, so every engine ranks alike.

    Compiled without the GIL, so queries can be scored on several threads.
    """
    rows, found = _top_k_rows(scores, k)
    return Ranking(doc_indices=rows.astype(np.int64), scores=found.astype(np.int64))
