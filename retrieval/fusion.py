"""Fusing a sparse and a dense ranking into one: reciprocal rank fusion or a convex combination.

Written by hand rather than through ranx: it runs once per request on ~100 candidates per side, where
building ranx Run objects would cost more than the fusion itself.

Scores of a fused ranking:
- ``rrf``: Σ_side w_side / (rrf_k + rank_side), a side that did not return the document adds 0;
  in (0, 1/(rrf_k + 1)] since the weights sum to 1.
- ``convex``: Σ_side w_side · normalized score, with ``minmax`` (into [0, 1]) or ``zscore`` normalization
  over that side's candidates; a side that did not return the document adds its lowest normalized score.
  ``minmax`` fused scores lie in [0, 1].
The sparse side's weight is ``weight``, the dense side's ``1 - weight``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

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


def _normalized(candidates: Ranking, fusion: Fusion) -> tuple[np.ndarray, float]:
    """Each candidate's contribution, and what a document missing from this side gets.

    Candidates come best first, so the first score is the maximum and the last the minimum.
    """
    scores = candidates.scores.astype(np.float64)
    if fusion.method == "rrf":
        return 1.0 / (fusion.rrf_k + np.arange(1, scores.size + 1)), 0.0
    if fusion.normalization == "minmax":
        spread = scores[0] - scores[-1]
        normalized = (scores - scores[-1]) / spread if spread > 0 else np.ones_like(scores)
    else:
        deviation = scores.std()
        normalized = (scores - scores.mean()) / deviation if deviation > 0 else np.zeros_like(scores)
    return normalized, float(normalized[-1])


def fuse(sparse: Ranking, dense: Ranking, fusion: Fusion, k: int) -> Ranking:
    """The top k of the fused ranking (each side's candidates best first); ties broken by lower row, like the engines."""
    sides: Sequence[tuple[Ranking, float]] = [(sparse, fusion.weight), (dense, 1.0 - fusion.weight)]
    base = 0.0  # what every document gets from the sides that did not return it
    parts = []
    for candidates, weight in sides:
        if candidates.doc_indices.size:
            contribution, missing = _normalized(candidates, fusion)
            base += weight * missing
            parts.append((candidates.doc_indices, weight * (contribution - missing)))
    if not parts:
        return Ranking(doc_indices=np.zeros(0, dtype=np.int64), scores=np.zeros(0))
    rows, position = np.unique(np.concatenate([rows for rows, _ in parts]), return_inverse=True)
    fused = np.bincount(position, weights=np.concatenate([extra for _, extra in parts]), minlength=rows.size) + base
    order = np.lexsort((rows, -fused))[:k]
    return Ranking(doc_indices=rows[order], scores=fused[order])
