"""The index's canonical copy of its quantized document vectors, and exact brute-force search over them.

Engines are built from these vectors, so an index can be rebuilt into another engine without
re-encoding; brute force is the reference every engine must equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lsr.errors import IndexFolderError
from lsr.indexer.engines.base import Ranking, top_k
from lsr.indexer.quantization import IMPACT_DTYPE


def save_vectors(vectors: sp.csr_matrix, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "indptr.npy", vectors.indptr.astype(np.int64))
    np.save(folder / "terms.npy", vectors.indices.astype(np.int32))
    np.save(folder / "impacts.npy", vectors.data.astype(IMPACT_DTYPE))


def _open_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three arrays, memory-mapped, checked for what CSR rows rely on (cheap: no pass over the postings)."""
    try:
        indptr, terms, impacts = (np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("indptr", "terms", "impacts"))
    except (OSError, ValueError, EOFError) as exc:  # a truncated file fails to map
        raise IndexFolderError(f"{folder} is damaged: {exc}") from exc
    problem = None
    if any(array.ndim != 1 for array in (indptr, terms, impacts)) or indptr.size == 0:
        problem = "its arrays are not 1-d"
    elif indptr.dtype != np.int64 or terms.dtype != np.int32 or impacts.dtype != IMPACT_DTYPE:
        problem = f"unexpected dtypes {indptr.dtype}, {terms.dtype}, {impacts.dtype}"
    elif terms.size != impacts.size or indptr[0] != 0 or indptr[-1] != terms.size:
        problem = f"indptr ends at {indptr[-1]}, but there are {terms.size} terms and {impacts.size} impacts"
    elif (np.diff(indptr) < 0).any():
        problem = "indptr is not ascending"
    if problem:
        raise IndexFolderError(f"{folder} is damaged: {problem}")
    return indptr, terms, impacts


def check_vectors(folder: Path, doc_count: int) -> None:
    """Raises IndexFolderError unless the stored vectors are whole and hold ``doc_count`` rows."""
    indptr, _, _ = _open_arrays(folder)
    if indptr.size - 1 != doc_count:
        raise IndexFolderError(f"{folder} is damaged: it holds {indptr.size - 1} rows, the manifest says {doc_count}")


def stored_terms(folder: Path, rows: np.ndarray | None = None) -> np.ndarray:
    """The term ids of the stored vectors (of ``rows`` only, when given), memory-mapped: no impact is read."""
    indptr, terms, _ = _open_arrays(folder)
    if rows is None:
        return terms
    return np.concatenate([terms[indptr[row] : indptr[row + 1]] for row in rows]) if len(rows) else terms[:0]


def load_vectors(folder: Path, dim: int) -> sp.csr_matrix:
    indptr, terms, impacts = _open_arrays(folder)
    return sp.csr_matrix((impacts.astype(np.int32), terms, indptr), shape=(indptr.size - 1, dim))


def brute_force_search(vectors: sp.csr_matrix, queries: sp.csr_matrix, k: int) -> list[Ranking]:
    """Scores every document with a full sparse dot product: slow, simple, obviously exact."""
    documents = vectors.astype(np.int64)
    rankings = []
    for row in range(queries.shape[0]):
        query = np.asarray(queries[row].todense(), dtype=np.int64).ravel()
        rankings.append(top_k(documents @ query, k))
    return rankings
