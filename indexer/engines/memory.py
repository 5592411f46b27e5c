"""The default engine: an exact, in-process inverted index, memory-mapped from .npy files.

Term-at-a-time: each query term adds weight × impact over its postings list into a score array, in a
numba-compiled loop (a Python loop over terms costs more than the arithmetic).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numba
import numpy as np
import scipy.sparse as sp

from lsr.indexer.engines.base import Ranking, query_rows, search_rows, top_k
from lsr.indexer.quantization import IMPACT_DTYPE

_FILES = ("postings_indptr", "postings_docs", "postings_impacts")


@numba.njit(cache=True, nogil=True)
def _accumulate(indptr, docs, impacts, terms, weights, scores) -> None:
    for i in range(terms.size):
        weight = np.int64(weights[i])
        for position in range(indptr[terms[i]], indptr[terms[i] + 1]):
            scores[docs[position]] += weight * impacts[position]


class MemoryEngine:
    name: ClassVar[str] = "memory"

    def __init__(self, indptr: np.ndarray, docs: np.ndarray, impacts: np.ndarray, doc_count: int) -> None:
        self._indptr = indptr
        self._docs = docs
        self._impacts = impacts
        self.doc_count = doc_count
        self.dim = indptr.size - 1

    @classmethod
    def build(cls, vectors: sp.csr_matrix, folder: Path) -> None:
        postings = vectors.tocsc()
        postings.sort_indices()
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "postings_indptr.npy", postings.indptr.astype(np.int64))
        np.save(folder / "postings_docs.npy", postings.indices.astype(np.int32))
        np.save(folder / "postings_impacts.npy", postings.data.astype(IMPACT_DTYPE))

    @classmethod
    def open(cls, folder: Path, doc_count: int) -> MemoryEngine:
        # np.asarray: a plain ndarray view of each memory map (no copy), the type numba compiles for.
        arrays = [np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r")) for name in _FILES]
        return cls(*arrays, doc_count=doc_count)

    def search(self, queries: sp.csr_matrix, k: int) -> list[Ranking]:
        """Batches are spread over the machine's cores: scoring and top-k run without the GIL."""
        return search_rows(queries, lambda terms, weights: self._search_one(terms, weights, k))

    def search_serially(self, queries: sp.csr_matrix, k: int) -> list[Ranking]:
        """On the calling thread: for callers that spread work over threads themselves (the sharded engine)."""
        return [self._search_one(terms, weights, k) for terms, weights in query_rows(queries)]

    def _search_one(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Ranking:
        scores = np.zeros(self.doc_count, dtype=np.int64)
        _accumulate(self._indptr, self._docs, self._impacts, terms, weights, scores)
        return top_k(scores, k)
