"""Dense vectors of an index in faiss, searched by inner product (cosine on normalized vectors).

``flat`` is exact; ``hnsw`` is an approximate graph index for large corpora (its recall against flat is
measured by ``bench/dense_recall.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from lsr.errors import IndexFolderError
from lsr.indexer.engines.base import Ranking

INDEX_FILE = "index.faiss"
KINDS = ("flat", "hnsw")


@dataclass(frozen=True)
class DenseIndexSettings:
    kind: str = "flat"
    hnsw_m: int = 32  # graph neighbours per node
    ef_construction: int = 200
    ef_search: int = 128  # candidates explored per query: higher is slower and more exact

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise IndexFolderError(f"dense index must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if min(self.hnsw_m, self.ef_construction, self.ef_search) < 1:
            raise IndexFolderError("hnsw_m, ef_construction and ef_search must be positive")

    def to_dict(self) -> dict:
        return asdict(self) if self.kind == "hnsw" else {"kind": "flat"}

    @classmethod
    def from_dict(cls, data: dict | None) -> DenseIndexSettings:
        data = data or {}
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class DenseIndex:
    def __init__(self, index: faiss.Index, settings: DenseIndexSettings) -> None:
        self._index = index
        self.settings = settings
        self.dim = index.d
        self.size = index.ntotal
        if settings.kind == "hnsw":
            index.hnsw.efSearch = settings.ef_search

    @staticmethod
    def build(vectors: np.ndarray, folder: Path, settings: DenseIndexSettings = DenseIndexSettings()) -> None:
        dim = vectors.shape[1]
        if settings.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = settings.ef_construction
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(folder / INDEX_FILE))

    @classmethod
    def open(cls, folder: Path, settings: DenseIndexSettings = DenseIndexSettings()) -> DenseIndex:
        # A flat index is memory-mapped (processes share its pages); a graph index is read into memory.
        flags = faiss.IO_FLAG_MMAP if settings.kind == "flat" else 0
        return cls(faiss.read_index(str(folder / INDEX_FILE), flags), settings)

    def vectors(self) -> np.ndarray:
        return self._index.reconstruct_n(0, self.size)

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        return self._index.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> list[Ranking]:
        scores, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.size))
        kept = rows >= 0  # faiss pads with -1 when it finds fewer than k vectors
        return [Ranking(doc_indices=r[m].astype(np.int64), scores=s[m]) for r, s, m in zip(rows, scores, kept, strict=True)]
