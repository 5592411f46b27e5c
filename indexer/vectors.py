"""The index's canonical copy of its quantized document vectors, and exact brute-force search over them.

Engines are built from these vectors, so an index can be rebuilt into another engine without
re-encoding; brute force is the reference every engine must equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lsr.indexer.engines.base import Ranking, top_k
from lsr.indexer.quantization import IMPACT_DTYPE


def save_vectors(vectors: sp.csr_matrix, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "indptr.npy", vectors.indptr.astype(np.int64))
    np.save(folder / "terms.npy", vectors.indices.astype(np.int32))
    np.save(folder / "impacts.npy", vectors.data.astype(IMPACT_DTYPE))


def load_vectors(folder: Path, dim: int) -> sp.csr_matrix:
    indptr, terms, impacts = (np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("indptr", "terms", "impacts"))
    return sp.csr_matrix((impacts.astype(np.int32), terms, indptr), shape=(indptr.size - 1, dim))


def brute_force_search(vectors: sp.csr_matrix, queries: sp.csr_matrix, k: int) -> list[Ranking]:
    """Scores every document with a full sparse dot product: slow, simple, obviously exact."""
    documents = vectors.astype(np.int64)
    rankings = []
    for row in range(queries.shape[0]):
        query = np.asarray(queries[row].todense(), dtype=np.int64).ravel()
        rankings.append(top_k(documents @ query, k))
    return rankings
