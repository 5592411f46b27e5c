"""The exact memory engine split by document rows into shards, searched in parallel and merged exactly.

Sparse dot-product scores need no collection statistics, so each shard ranks its own rows and the merge of the
shards' top k is the top k of the whole — every query's work is spread over the cores, not just a batch's.
Shards are self-contained folders, so they can later live on different machines.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lsr.errors import IndexFolderError
from lsr.indexer.engines.base import CORES, BuildExtras, Capabilities, Ranking
from lsr.indexer.engines.memory import MemoryEngine

@dataclass(frozen=True)
class ShardedSettings:
    shards: int = CORES

    def __post_init__(self) -> None:
        if not isinstance(self.shards, int) or self.shards < 1:
            raise IndexFolderError(f"shards must be a positive integer, got {self.shards!r}")


def _shard_bounds(doc_count: int, shards: int) -> np.ndarray:
    return np.linspace(0, doc_count, shards + 1).astype(np.int64)


def merge_rankings(parts: list[Ranking], offsets: np.ndarray, k: int) -> Ranking:
    """The k best of several shards' rankings, ties broken by lower (global) row as in every engine."""
    rows = np.concatenate([part.doc_indices + offset for part, offset in zip(parts, offsets, strict=True)])
    scores = np.concatenate([part.scores for part in parts])
    order = np.lexsort((rows, -scores))[:k]
    return Ranking(doc_indices=rows[order], scores=scores[order])


class ShardedEngine:
    name: ClassVar[str] = "sharded"
    capabilities: ClassVar[Capabilities] = Capabilities()
    Settings: ClassVar[type] = ShardedSettings

    def __init__(self, shards: list[MemoryEngine], offsets: np.ndarray) -> None:
        self._shards = shards
        self._offsets = offsets
        self._pool = ThreadPoolExecutor(len(shards))

    @classmethod
    def build(
        cls, vectors: sp.csr_matrix, folder: Path, settings: ShardedSettings = ShardedSettings(), extras: BuildExtras = BuildExtras()
    ) -> None:
        bounds = _shard_bounds(vectors.shape[0], settings.shards)
        for number, (start, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            MemoryEngine.build(vectors[start:end], folder / f"shard-{number:03d}")

    @classmethod
    def open(cls, folder: Path, doc_count: int, settings: ShardedSettings = ShardedSettings()) -> ShardedEngine:
        shards = settings.shards
        found = sorted(path for path in folder.glob("shard-*") if path.is_dir()) if folder.is_dir() else []
        if len(found) != shards:
            raise IndexFolderError(f"{folder} has {len(found)} shards, the manifest says {shards}")
        bounds = _shard_bounds(doc_count, shards)
        engines = [MemoryEngine.open(path, int(end - start)) for path, start, end in zip(found, bounds[:-1], bounds[1:], strict=True)]
        return cls(engines, bounds[:-1])

    def search(self, queries: sp.csr_matrix, k: int) -> list[Ranking]:
        """Each shard searches the whole batch on its own thread (the scoring loop runs without the GIL)."""
        per_shard = list(self._pool.map(lambda shard: shard.search_serially(queries, k), self._shards))
        return [merge_rankings([rankings[q] for rankings in per_shard], self._offsets, k) for q in range(queries.shape[0])]
