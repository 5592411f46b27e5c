"""Fusing the rankings of several signals (sparse, dense, bm25) into one: reciprocal rank fusion or a convex
combination.

Written by hand rather than through ranx: it runs once per request on ~100 candidates per signal, where
building ranx Run objects would cost more than the fusion itself; compiled with numba because a chain of
small numpy calls cost more than both searches' difference (measured in bench/hybrid_latency.py).

Scores of a fused ranking, each signal's weight w being its share of the fused signals' weights (they sum to 1):
- ``rrf``: Σ_signal w / (rrf_k + rank), a signal that did not return the document adds 0;
  in (0, 1/(rrf_k + 1)].
- ``convex``: Σ_signal w · normalized score, with ``minmax`` (into [0, 1]) or ``zscore`` normalization
  over that signal's top ``depth`` documents; a signal that did not return the document adds its lowest normalized
  score. ``minmax`` fused scores lie in [0, 1].
  A term-matching signal (``MATCHING_SIGNALS``: sparse, bm25) returns only the documents that share a term with the
  query, and every other document scores 0. When it returns fewer than ``depth``, its top ``depth`` is filled with those
  zeros, so the statistics describe the same number of documents for every query: without them, a one-word query
  matching three documents had its bm25 z-scores spread over ±1.2 as if those three were all there was, and the
  signal outweighed the others (nDCG@10 of the untuned hybrid on nfcorpus, whose queries are often one or two words:
  0.3420 without, 0.3572 with, p = 0.0004, at the default's weights; bench/fusion_fill.py).
``dense_feedback`` > 0 (a searcher's work, not this module's): fuse once, add ``dense_feedback_weight`` × the mean dense
vector of that first pass's top ``dense_feedback`` documents to each query's dense vector, search dense again with it and
fuse again (Rocchio, with the fused ranking as the feedback).
Weights name signals (``weights``); ``weight`` is the two-signal shorthand: sparse gets it, dense ``1 - weight``.
Without either, the fused signals weigh the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numba
import numpy as np

from lsr.errors import LsrError
from lsr.indexer.engines.base import Ranking
from lsr.retrieval.search.modes import MATCHING_SIGNALS, SIGNALS

METHODS = ("rrf", "convex")
NORMALIZATIONS = ("minmax", "zscore")
Weights = tuple[tuple[str, float], ...]  # (signal, weight) in SIGNALS order: hashable, one spelling per value
# The first fused pass holds at least ``depth`` documents and up to each signal's ``depth`` together, so the feedback
# is not bound to the depth; this bound only keeps a typo from averaging a whole corpus.
MAX_DENSE_FEEDBACK = 1000


def _weights(weight: float | None, weights: Mapping[str, float] | Weights | None) -> Weights | None:
    if weight is not None:
        if weights is not None:
            raise LsrError("give the fusion weight (sparse's, with dense) or the weights of named signals, not both")
        if not 0.0 <= weight <= 1.0:
            raise LsrError(f"fusion weight must be between 0 and 1, got {weight}")
        return (("sparse", weight), ("dense", 1.0 - weight))
    if weights is None:
        return None
    given = dict(weights)
    unknown = sorted(set(given) - set(SIGNALS))
    if unknown:
        raise LsrError(f"fusion weights name unknown signals {', '.join(unknown)} (signals: {', '.join(SIGNALS)})")
    bad = {signal: value for signal, value in given.items() if not (math.isfinite(value) and value >= 0)}
    if bad:
        raise LsrError(f"fusion weights must be finite and ≥ 0, got {bad}")
    if not any(given.values()):
        raise LsrError("fusion weights must not all be 0")
    return tuple((signal, float(given[signal])) for signal in SIGNALS if signal in given)


def parse_weights(text: str) -> dict[str, float]:
    """``SIGNAL=WEIGHT,…`` as a command line gives it (``sparse=0.4,dense=0.4,bm25=0.2``); checked by ``Fusion``."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        signal, equals, value = (piece.strip() for piece in part.partition("="))
        try:
            if not equals or signal in weights:
                raise ValueError
            weights[signal] = float(value)
        except ValueError:
            example = "sparse=0.4,dense=0.4,bm25=0.2"
            raise LsrError(f"weights must be SIGNAL=WEIGHT pairs, each signal once, such as {example}; got {text!r}") from None
    return weights


@dataclass(frozen=True, init=False)
class Fusion:
    """How signals are fused."""

    method: str
    weights: Weights | None  # None: the fused signals weigh the same
    rrf_k: int
    normalization: str  # convex only
    depth: int  # candidates taken from each signal
    dense_feedback: int  # Rocchio on the dense side from the first fused pass's top documents; 0: off
    dense_feedback_weight: float  # of their mean dense vector, against 1 for the query's

    def __init__(
        self,
        method: str = "rrf",
        weight: float | None = None,
        rrf_k: int = 60,
        normalization: str = "minmax",
        depth: int = 100,
        *,
        weights: Mapping[str, float] | Weights | None = None,
        dense_feedback: int = 0,
        dense_feedback_weight: float = 1.0,
    ) -> None:
        if method not in METHODS:
            raise LsrError(f"fusion method must be one of {', '.join(METHODS)}, got {method!r}")
        if normalization not in NORMALIZATIONS:
            raise LsrError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
        if rrf_k < 0:
            raise LsrError(f"rrf_k must be ≥ 0, got {rrf_k}")
        if depth < 1:
            raise LsrError(f"fusion depth must be ≥ 1, got {depth}")
        if not 0 <= dense_feedback <= MAX_DENSE_FEEDBACK:
            raise LsrError(f"dense feedback must take between 0 and {MAX_DENSE_FEEDBACK} documents, got {dense_feedback}")
        if not (math.isfinite(dense_feedback_weight) and dense_feedback_weight > 0):
            raise LsrError(f"the dense feedback weight must be finite and > 0, got {dense_feedback_weight}")
        settings = {
            "method": method,
            "weights": _weights(weight, weights),
            "rrf_k": rrf_k,
            "normalization": normalization,
            "depth": depth,
            "dense_feedback": dense_feedback,
            "dense_feedback_weight": float(dense_feedback_weight),
        }
        for name, value in settings.items():
            object.__setattr__(self, name, value)  # frozen: the dataclass way of setting fields in __init__

    def changed(self, **changes: object) -> Fusion:
        """A copy with these settings changed; a new ``weight`` or ``weights`` replaces the weights."""
        settings = self.to_dict()
        if "weight" in changes:
            settings["weights"] = None
        return Fusion(**{**settings, **changes})

    def signal_weights(self, signals: tuple[str, ...]) -> tuple[float, ...]:
        """The weights of these signals, scaled to sum to 1 (a signal the weights do not name gets 0)."""
        named = dict(self.weights) if self.weights is not None else dict.fromkeys(signals, 1.0)
        raw = [named.get(signal, 0.0) for signal in signals]
        total = sum(raw)
        if total <= 0:
            raise LsrError(f"the fusion weights give {' and '.join(signals)} no weight")
        return tuple(value / total for value in raw)

    @property
    def weight(self) -> float:
        """The two-signal shorthand: sparse's share of a sparse + dense fusion."""
        return self.signal_weights(("sparse", "dense"))[0]

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "weights": dict(self.weights) if self.weights is not None else None,
            "rrf_k": self.rrf_k,
            "normalization": self.normalization,
            "depth": self.depth,
            "dense_feedback": self.dense_feedback,
            "dense_feedback_weight": self.dense_feedback_weight,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Fusion:
        """Also reads manifests written before fusion named its signals (``weight``: sparse's, with dense) or had
        dense feedback (off for them)."""
        names = ("method", "weight", "rrf_k", "normalization", "depth", "weights", "dense_feedback", "dense_feedback_weight")
        return cls(**{key: data[key] for key in names if data.get(key) is not None})

    def describe(self) -> str:
        weights = ", ".join(f"{signal} {value:g}" for signal, value in self.weights) if self.weights else "equal weights"
        if self.dense_feedback:
            weights += f"; dense feedback from the top {self.dense_feedback}, weight {self.dense_feedback_weight:g}"
        if self.method == "rrf":
            return f"rrf(k={self.rrf_k}, {weights})"
        return f"convex({self.normalization}, {weights})"


def with_overrides(fusion: Fusion, overrides: Mapping[str, object], signals: tuple[str, ...]) -> Fusion:
    """``fusion`` with the settings a user gave (a command line's options, an API body's fields) changed, for a search
    of ``signals``. A given setting that would change nothing there is refused rather than silently ignored: the
    user meant something else (a mode without the signal, a method without the setting)."""
    if not overrides:
        return fusion
    changed = fusion.changed(**overrides)
    given = ", ".join(name.replace("_", " ") for name in overrides)
    if len(signals) == 1:
        raise LsrError(f"fusion settings ({given}) apply when several signals are fused; this search ranks by {signals[0]} alone")
    searched = " + ".join(signals)
    unfused = sorted(set(dict(overrides.get("weights") or {})) - set(signals))
    if unfused:
        raise LsrError(f"the fusion weights name {', '.join(unfused)}, which this search ({searched}) does not fuse")
    if "weight" in overrides and set(signals) != {"sparse", "dense"}:
        raise LsrError(f"the fusion weight is sparse's share of sparse + dense; to weigh {searched}, give a weight per signal")
    feedback_given = overrides.get("dense_feedback") or "dense_feedback_weight" in overrides
    if feedback_given and "dense" not in signals:
        raise LsrError(f"dense feedback searches the dense signal again, which this search ({searched}) does not fuse")
    if "rrf_k" in overrides and changed.method != "rrf":
        raise LsrError(f"rrf k applies to rrf fusion; this fusion is {changed.method} (set the method to rrf)")
    if "normalization" in overrides and changed.method != "convex":
        raise LsrError(f"normalization applies to convex fusion; this fusion is {changed.method} (set the method to convex)")
    return changed


@numba.njit(cache=True, nogil=True)
def _contributions(
    scores: np.ndarray, convex: bool, rrf_k: int, zscore: bool, depth: int, zeros: int
) -> tuple[np.ndarray, float]:
    """Each candidate's contribution, and what a document missing from the signal's top ``depth`` gets.

    Candidates come best first, so the first score is the maximum. The normalization's statistics come from the top
    ``depth`` alone, so candidates past it (a search for more than ``depth`` hits) change nothing above them. ``zeros``:
    documents the signal did not return that fill its top ``depth`` with a score of 0 (see the module's docstring).
    """
    n = scores.size
    head = min(n, depth)
    values = np.empty(n, dtype=np.float64)
    if not convex:
        for i in range(n):
            values[i] = 1.0 / (rrf_k + i + 1)
        return values, 0.0
    lowest = 0.0 if zeros else scores[head - 1]
    if zscore:
        mean = scores[:head].sum() / (head + zeros)
        deviation = np.sqrt((((scores[:head] - mean) ** 2).sum() + zeros * mean**2) / (head + zeros))
        for i in range(n):
            values[i] = (scores[i] - mean) / deviation if deviation > 0 else 0.0
        return values, (lowest - mean) / deviation if deviation > 0 else 0.0
    spread = scores[0] - lowest
    for i in range(n):
        values[i] = (scores[i] - lowest) / spread if spread > 0 else 1.0
    return values, 0.0 if spread > 0 else 1.0


@numba.njit(cache=True, nogil=True)
def _fuse(rows, scores, bounds, weights, zeros, convex, rrf_k, zscore, depth, k):
    """Signal i's candidates are ``rows[bounds[i]:bounds[i + 1]]``, best first; ``zeros[i]`` fill its top ``depth``.

    A candidate past its signal's top ``depth`` counts as missing from that signal in the fused score, so the top of
    a deep search is the top of a ``depth`` search, ties included; what the candidates past ``depth`` would have added
    only orders the documents that are past it in every signal (all tied at the bottom)."""
    base = 0.0  # what every document gets from the signals that did not return it
    extra = np.zeros(rows.size, dtype=np.float64)
    deeper = np.zeros(rows.size, dtype=np.float64)  # past depth: orders the bottom only
    in_head = np.zeros(rows.size, dtype=np.bool_)
    for signal in range(weights.size):
        start, end = bounds[signal], bounds[signal + 1]
        if end > start:
            values, missing = _contributions(scores[start:end], convex, rrf_k, zscore, depth, zeros[signal])
            base += weights[signal] * missing
            for i in range(end - start):
                if i < depth:
                    extra[start + i] = weights[signal] * (values[i] - missing)
                    in_head[start + i] = True
                else:
                    deeper[start + i] = weights[signal] * (values[i] - missing)
    fused_rows = np.empty(rows.size, dtype=np.int64)
    fused = np.empty(rows.size, dtype=np.float64)
    tie_break = np.empty(rows.size, dtype=np.float64)
    in_any_head = np.empty(rows.size, dtype=np.bool_)
    count = 0
    for i in np.argsort(rows, kind="mergesort"):
        if count and fused_rows[count - 1] == rows[i]:
            fused[count - 1] += extra[i]
            tie_break[count - 1] += deeper[i]
            in_any_head[count - 1] |= in_head[i]
        else:
            fused_rows[count] = rows[i]
            fused[count] = base + extra[i]
            tie_break[count] = deeper[i]
            in_any_head[count] = in_head[i]
            count += 1
    for i in range(count):
        if in_any_head[i]:
            tie_break[i] = 0.0  # ties among documents of some signal's top depth stay by lower row, as at depth
    # Rows are ascending, so stable sorts by the tie-break and then by the score leave remaining ties by lower row.
    by_tie_break = np.argsort(-tie_break[:count], kind="mergesort")
    top = by_tie_break[np.argsort(-fused[:count][by_tie_break], kind="mergesort")][:k]
    return fused_rows[top], fused[top]


def fuse_signals(rankings: Mapping[str, Ranking], fusion: Fusion, k: int, *, documents: int) -> Ranking:
    """The top k of the fused ranking of signal → its candidates (best first); ties broken by lower row, like the
    engines. Each signal's top ``fusion.depth`` decide the fused scores (see ``_fuse``). ``documents``: how many the
    index searched holds (a term-matching signal's unreturned ones score 0)."""
    signals = tuple(signal for signal in SIGNALS if signal in rankings)
    ordered = [rankings[signal] for signal in signals]
    top = min(fusion.depth, documents)
    zeros = [max(0, top - rankings[signal].doc_indices.size) if signal in MATCHING_SIGNALS else 0 for signal in signals]
    rows, scores = _fuse(
        np.concatenate([ranking.doc_indices.astype(np.int64) for ranking in ordered]),
        np.concatenate([ranking.scores.astype(np.float64) for ranking in ordered]),
        np.cumsum([0] + [ranking.doc_indices.size for ranking in ordered]).astype(np.int64),
        np.array(fusion.signal_weights(signals), dtype=np.float64),
        np.array(zeros, dtype=np.int64),
        fusion.method == "convex",
        fusion.rrf_k,
        fusion.normalization == "zscore",
        fusion.depth,
        k,
    )
    return Ranking(doc_indices=rows, scores=scores)
