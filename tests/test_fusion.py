import numpy as np
import pytest

from lsr.errors import LsrError
from lsr.indexer.engines.base import Ranking
from lsr.retrieval.search.fusion import Fusion, fuse

QUERIES = ["boundary layer transition at high mach numbers", "heat transfer to blunt bodies", "flutter of panels", "xyzzy"]


def reference_fuse(sparse: Ranking, dense: Ranking, fusion: Fusion, k: int) -> list[tuple[int, float]]:
    """The textbook definitions, written out with dicts."""
    fused: dict[int, float] = {}
    sides = [(sparse, fusion.weight), (dense, 1 - fusion.weight)]
    for ranking, _ in sides:
        for row in ranking.doc_indices.tolist():
            fused.setdefault(row, 0.0)
    for ranking, weight in sides:
        rows, scores = ranking.doc_indices.tolist(), ranking.scores.astype(float).tolist()
        if not rows:
            continue
        if fusion.method == "rrf":
            values = {row: 1 / (fusion.rrf_k + rank) for rank, row in enumerate(rows, start=1)}
            missing = 0.0
        elif fusion.normalization == "minmax":
            low, high = min(scores), max(scores)
            values = {row: (s - low) / (high - low) if high > low else 1.0 for row, s in zip(rows, scores)}
            missing = 0.0
        else:
            mean = sum(scores) / len(scores)
            std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
            values = {row: (s - mean) / std if std > 0 else 0.0 for row, s in zip(rows, scores)}
            missing = min(values.values())
        for row in fused:
            fused[row] += weight * values.get(row, missing)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]


@pytest.mark.parametrize(
    "fusion",
    [
        Fusion("rrf", 0.5, rrf_k=60),
        Fusion("rrf", 0.8, rrf_k=10),
        Fusion("convex", 0.3, normalization="minmax"),
        Fusion("convex", 0.6, normalization="zscore"),
        Fusion("convex", 1.0, normalization="minmax"),
    ],
)
def test_fusion_matches_the_reference_on_real_rankings(hybrid_searcher, fusion):
    sparse = hybrid_searcher.rankings(QUERIES, "sparse", 30)
    dense = hybrid_searcher.rankings(QUERIES, "dense", 30)
    for s, d in zip(sparse, dense, strict=True):
        got = fuse(s, d, fusion, 20)
        expected = reference_fuse(s, d, fusion, 20)
        assert got.doc_indices.tolist() == [row for row, _ in expected]
        np.testing.assert_allclose(got.scores, [score for _, score in expected], rtol=1e-9, atol=1e-12)


def test_rrf_by_hand():
    sparse = Ranking(np.array([3, 1]), np.array([9.0, 5.0]))
    dense = Ranking(np.array([1, 2]), np.array([0.9, 0.8]))
    fused = fuse(sparse, dense, Fusion("rrf", 0.5, rrf_k=0), 10)
    # doc 1: 0.5/2 + 0.5/1 = 0.75; doc 3: 0.5/1 = 0.5; doc 2: 0.5/2 = 0.25
    assert fused.doc_indices.tolist() == [1, 3, 2]
    np.testing.assert_allclose(fused.scores, [0.75, 0.5, 0.25])


def test_weight_one_keeps_the_sparse_order_and_zero_the_dense_order(hybrid_searcher):
    sparse, dense = hybrid_searcher.rankings(QUERIES[:1], "sparse", 50)[0], hybrid_searcher.rankings(QUERIES[:1], "dense", 50)[0]
    assert fuse(sparse, dense, Fusion("convex", 1.0), 10).doc_indices.tolist() == sparse.doc_indices[:10].tolist()
    assert fuse(sparse, dense, Fusion("rrf", 0.0), 10).doc_indices.tolist() == dense.doc_indices[:10].tolist()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "max"}, "fusion method must be one of rrf, convex"),
        ({"weight": 1.5}, "fusion weight must be between 0 and 1"),
        ({"normalization": "l2"}, "normalization must be one of minmax, zscore"),
        ({"depth": 0}, "fusion depth must be ≥ 1"),
    ],
)
def test_bad_fusion_settings_are_user_errors(settings, message):
    with pytest.raises(LsrError, match=message):
        Fusion(**settings)
