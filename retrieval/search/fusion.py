"""Fusing a sparse and a dense ranking into one: reciprocal rank fusion or a convex combination.

Written by hand rather than through ranx: it runs once per request on ~100 candidates per side, where
building ranx Run objects would cost more than the fusion itself; compiled with numba because a chain of
small numpy calls cost more than both searches' difference (measured in bench/hybrid_latency.py).

Scores of a fused ranking:
- ``rrf``: Σ_side w_side / (rrf_k + rank_side), a side that did not return the document adds 0;
  in (0, 1/(rrf_k + 1)] since the weights sum to 1.
- ``convex``: Σ_side w_side · normalized score, with ``minmax`` (into [0, 1]) or ``zscore`` normalization
  over that side's candidates; a side that did not return the document adds its lowest normalized score.
  ``minmax`` fused scores lie in [0, 1].
The sparse side's weight is ``weight``, the dense side's ``1 - weight``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numba
import numpy as np

from lsr.errors import LsrError
from lsr.indexer.engines.base import Ranking

METHODS = ("rrf", "convex")
NORMALIZATIONS = ("minmax", "zscore")


@dataclass(frozen=True)
class Fusion:
    method: str = "rrf"
    weight: float = 0.5  # the sparse side's share; the dense side gets 1 - weight
    rrf_k: int = 60
    normalization: str = "minmax"  # convex only
    depth: int = 100  # candidates taken from each side

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise LsrError(f"fusion method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.normalization not in NORMALIZATIONS:
            raise LsrError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {self.normalization!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise LsrError(f"fusion weight must be between 0 and 1, got {self.weight}")
        if self.rrf_k < 0:
            raise LsrError(f"rrf_k must be ≥ 0, got {self.rrf_k}")
        if self.depth < 1:
            raise LsrError(f"fusion depth must be ≥ 1, got {self.depth}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Fusion:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    def describe(self) -> str:
        if self.method == "rrf":
            return f"rrf(k={self.rrf_k}, sparse weight {self.weight:g})"
        return f"convex({self.normalization}, sparse weight {self.weight:g})"


@numba.njit(cache=True, nogil=True)
def _contributions(scores: np.ndarray, convex: bool, rrf_k: int, zscore: bool) -> tuple[np.ndarray, float]:
    """Each candidate's contribution, and what a document missing from this side gets.

    Candidates come best first, so the first score is the maximum and the last the minimum.
    """
    n = scores.size
    values = np.empty(n, dtype=np.float64)
    if not convex:
        for i in range(n):
            values[i] = 1.0 / (rrf_k + i + 1)
        return values, 0.0
    if zscore:
        mean = scores.mean()
        deviation = np.sqrt(((scores - mean) ** 2).mean())
        for i in range(n):
            values[i] = (scores[i] - mean) / deviation if deviation > 0 else 0.0
    else:
        spread = scores[0] - scores[n - 1]
        for i in range(n):
            values[i] = (scores[i] - scores[n - 1]) / spread if spread > 0 else 1.0
    return values, values[n - 1]


@numba.njit(cache=True, nogil=True)
def _fuse(rows_a, scores_a, weight_a, rows_b, scores_b, weight_b, convex, rrf_k, zscore, k):
    base = 0.0  # what every document gets from the sides that did not return it
    rows = np.concatenate((rows_a, rows_b))
    extra = np.zeros(rows.size, dtype=np.float64)
    for offset, side_scores, weight in ((0, scores_a, weight_a), (rows_a.size, scores_b, weight_b)):
        if side_scores.size:
            values, missing = _contributions(side_scores, convex, rrf_k, zscore)
            base += weight * missing
            extra[offset : offset + side_scores.size] = weight * (values - missing)
    fused_rows = np.empty(rows.size, dtype=np.int64)
    fused = np.empty(rows.size, dtype=np.float64)
    count = 0
    for i in np.argsort(rows, kind="mergesort"):
        if count and fused_rows[count - 1] == rows[i]:
            fused[count - 1] += extra[i]
        else:
            fused_rows[count] = rows[i]
            fused[count] = base + extra[i]
            count += 1
    # Rows are ascending, so a stable sort on the score breaks ties by lower row.
    top = np.argsort(-fused[:count], kind="mergesort")[:k]
    return fused_rows[top], fused[top]


def fuse(sparse: Ranking, dense: Ranking, fusion: Fusion, k: int) -> Ranking:
    """The top k of the fused ranking (each side's candidates best first); ties broken by lower row, like the engines."""
    rows, scores = _fuse(
        sparse.doc_indices.astype(np.int64),
        sparse.scores.astype(np.float64),
        fusion.weight,
        dense.doc_indices.astype(np.int64),
        dense.scores.astype(np.float64),
        1.0 - fusion.weight,
        fusion.method == "convex",
        fusion.rrf_k,
        fusion.normalization == "zscore",
        k,
    )
    return Ranking(doc_indices=rows, scores=scores)
