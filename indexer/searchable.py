"""What a searcher reads from an index: the interface between indexing and search.

Two things implement it: ``IndexFolder`` (an index as written on disk) and ``LiveView`` (a snapshot of an
index with its live updates applied). Search code depends on this Protocol only, never on how an index was
written or updated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import scipy.sparse as sp

from lsr.indexer.engines.base import Ranking

if TYPE_CHECKING:
    from lsr.datasets import Document
    from lsr.indexer.index_folder import Manifest
    from lsr.indexer.term_statistics import TermStatistics


class VectorSearch(Protocol):
    def search(self, queries: sp.csr_matrix | np.ndarray, k: int) -> list[Ranking]:
        """Top-k rows of each query (a CSR row of integer impacts, or a dense vector)."""
        ...


class TextSearch(Protocol):
    def search_texts(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """Top-k rows of each query text: a BM25 engine, or an index's BM25 side."""
        ...


class DenseSide(VectorSearch, Protocol):
    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """The stored dense vectors of these rows (rows × dim, float32), in their order."""
        ...


class SparseSide(VectorSearch, TextSearch, Protocol):
    """An engine: searches vectors, or text for engines that analyse it themselves (Lucene BM25)."""


class SearchableIndex(Protocol):
    path: Path
    manifest: Manifest
    has_text_engine: bool  # a BM25 index: queries are text, not vectors

    @property
    def engine(self) -> SparseSide: ...

    @property
    def dense(self) -> DenseSide | None: ...

    @property
    def bm25(self) -> TextSearch | None: ...

    @property
    def docs(self) -> Sequence[Document]: ...

    @property
    def term_statistics(self) -> TermStatistics:
        """Of the sparse side's visible documents (a metadata filter hides none from them)."""
        ...

    def row(self, doc_id: str) -> int | None:
        """The row of a document, None when the index does not hold it."""
        ...

    def vector(self, row: int) -> sp.csr_matrix:
        """The quantized sparse vector of one row (1 × dim)."""
        ...


def current_documents(index: SearchableIndex) -> list[Document]:
    """The documents a search of ``index`` can return, in row order. A live update leaves the row it replaced or
    deleted in place, hidden: only the row a document's id maps to is current."""
    return [doc for row, doc in enumerate(index.docs) if index.row(doc.id) == row]
