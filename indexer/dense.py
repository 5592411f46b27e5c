"""Dense vectors of an index, searched exactly by inner product with faiss (cosine on normalized vectors)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from lsr.indexer.engines.base import Ranking

INDEX_FILE = "index.faiss"


class FlatDenseIndex:
    def __init__(self, index: faiss.Index) -> None:
        self._index = index
        self.dim = index.d
        self.size = index.ntotal

    @staticmethod
    def build(vectors: np.ndarray, folder: Path) -> None:
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(folder / INDEX_FILE))

    @classmethod
    def open(cls, folder: Path) -> FlatDenseIndex:
        return cls(faiss.read_index(str(folder / INDEX_FILE), faiss.IO_FLAG_MMAP))

    def vectors(self) -> np.ndarray:
        return self._index.reconstruct_n(0, self.size)

    def search(self, queries: np.ndarray, k: int) -> list[Ranking]:
        scores, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.size))
        kept = rows >= 0  # faiss pads with -1 when fewer than k vectors exist
        return [Ranking(doc_indices=r[m].astype(np.int64), scores=s[m]) for r, s, m in zip(rows, scores, kept, strict=True)]
