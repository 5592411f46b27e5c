import math

import numpy as np
import pytest
from conftest import reference_fuse

from lsr.errors import LsrError
from lsr.indexer.engines.base import Ranking
from lsr.retrieval.search.fusion import Fusion, fuse_signals, with_overrides

QUERIES = ["boundary layer transition at high mach numbers", "heat transfer to blunt bodies", "flutter of panels", "xyzzy"]


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
    sparse = hybrid_searcher.rankings(QUERIES, "sparse", fusion.depth)
    dense = hybrid_searcher.rankings(QUERIES, "dense", fusion.depth)
    documents = len(hybrid_searcher.index.docs)
    assert any(s.doc_indices.size < min(fusion.depth, documents) for s in sparse)  # the zero fill is exercised
    for s, d in zip(sparse, dense, strict=True):
        got = hybrid_searcher.fuse({"sparse": s, "dense": d}, fusion, 20)
        expected = reference_fuse({"sparse": s, "dense": d}, fusion, 20, documents)
        assert got.doc_indices.tolist() == [row for row, _ in expected]
        np.testing.assert_allclose(got.scores, [score for _, score in expected], rtol=1e-9, atol=1e-12)


def test_rrf_by_hand():
    sparse = Ranking(np.array([3, 1]), np.array([9.0, 5.0]))
    dense = Ranking(np.array([1, 2]), np.array([0.9, 0.8]))
    fused = fuse_signals({"sparse": sparse, "dense": dense}, Fusion("rrf", 0.5, rrf_k=0), 10, documents=4)
    # doc 1: 0.5/2 + 0.5/1 = 0.75; doc 3: 0.5/1 = 0.5; doc 2: 0.5/2 = 0.25
    assert fused.doc_indices.tolist() == [1, 3, 2]
    np.testing.assert_allclose(fused.scores, [0.75, 0.5, 0.25])


def test_weight_one_keeps_the_sparse_order_and_zero_the_dense_order(hybrid_searcher):
    sparse, dense = hybrid_searcher.rankings(QUERIES[:1], "sparse", 50)[0], hybrid_searcher.rankings(QUERIES[:1], "dense", 50)[0]
    sides = {"sparse": sparse, "dense": dense}
    assert hybrid_searcher.fuse(sides, Fusion("convex", 1.0), 10).doc_indices.tolist() == sparse.doc_indices[:10].tolist()
    assert hybrid_searcher.fuse(sides, Fusion("rrf", 0.0), 10).doc_indices.tolist() == dense.doc_indices[:10].tolist()


def test_a_term_matching_signal_that_returns_few_documents_counts_the_rest_as_zeros():
    """bm25 returned 2 of 10 documents: its z-scores are over its top 4 with two zeros, [4, 2, 0, 0] (mean 1.5); dense
    scores every document, so its 2 are all it has (mean 0.7, deviation 0.2)."""
    bm25 = Ranking(np.array([7, 3]), np.array([4.0, 2.0]))
    dense = Ranking(np.array([3, 5]), np.array([0.9, 0.5]))
    fusion = Fusion("convex", normalization="zscore", depth=4, weights={"dense": 1, "bm25": 1})
    deviation = math.sqrt((2.5**2 + 0.5**2 + 2 * 1.5**2) / 4)
    bm25_z = {7: 2.5 / deviation, 3: 0.5 / deviation, "missing": -1.5 / deviation}
    dense_z = {3: 1.0, 5: -1.0, "missing": -1.0}
    fused = fuse_signals({"bm25": bm25, "dense": dense}, fusion, 10, documents=10)
    assert fused.doc_indices.tolist() == [3, 7, 5]
    expected = [(bm25_z[3] + dense_z[3]) / 2, (bm25_z[7] + dense_z["missing"]) / 2, (bm25_z["missing"] + dense_z[5]) / 2]
    np.testing.assert_allclose(fused.scores, expected)
    # A corpus of 2 documents has no others to count: bm25's own two are its top (z-scores ±1, missing -1).
    small = fuse_signals({"bm25": bm25, "dense": dense}, fusion, 10, documents=2)
    np.testing.assert_allclose(small.scores, [0.0, 0.0, -1.0], atol=1e-12)
    minmax = fuse_signals({"bm25": bm25}, Fusion("convex", depth=4, weights={"bm25": 1}), 10, documents=10)
    np.testing.assert_allclose(minmax.scores, [1.0, 0.5])  # (s - 0) / (4 - 0): the zeros are its low


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "max"}, "fusion method must be one of rrf, convex"),
        ({"weight": 1.5}, "fusion weight must be between 0 and 1"),
        ({"normalization": "l2"}, "normalization must be one of minmax, zscore"),
        ({"depth": 0}, "fusion depth must be ≥ 1"),
        ({"dense_feedback": 1001}, "dense feedback must take between 0 and 1000 documents, got 1001"),
        ({"dense_feedback": -1}, "dense feedback must take between 0 and 1000 documents"),
        ({"dense_feedback_weight": 0.0}, "the dense feedback weight must be finite and > 0"),
    ],
)
def test_bad_fusion_settings_are_user_errors(settings, message):
    with pytest.raises(LsrError, match=message):
        Fusion(**settings)


def test_dense_feedback_settings_round_trip_and_older_manifests_have_it_off():
    fusion = Fusion("convex", normalization="zscore", weights={"sparse": 0.1, "dense": 0.6}, dense_feedback=3)
    assert Fusion.from_dict(fusion.to_dict()) == fusion
    assert "dense feedback from the top 3, weight 1" in fusion.describe()
    older = {key: value for key, value in fusion.to_dict().items() if not key.startswith("dense_feedback")}
    assert Fusion.from_dict(older).dense_feedback == 0


THREE = ("sparse", "dense", "bm25")
UNTUNED = Fusion("convex", normalization="zscore", weights={"sparse": 0.1, "dense": 0.6, "bm25": 0.3}, dense_feedback=3)


@pytest.mark.parametrize(
    ("overrides", "signals", "message"),
    [
        ({"depth": 50}, ("sparse",), r"fusion settings \(depth\) apply when several signals are fused; .* sparse alone"),
        ({"weights": {"sparse": 1, "dense": 1}}, ("sparse", "bm25"), "the fusion weights name dense, which this search"),
        ({"weight": 0.3}, THREE, r"the fusion weight is sparse's share of sparse \+ dense"),
        ({"dense_feedback": 5}, ("sparse", "bm25"), "dense feedback searches the dense signal again"),
        ({"dense_feedback_weight": 2.0}, ("bm25", "sparse"), "dense feedback searches the dense signal again"),
        ({"rrf_k": 10}, THREE, "rrf k applies to rrf fusion; this fusion is convex"),
        ({"method": "rrf", "normalization": "minmax"}, THREE, "normalization applies to convex fusion; this fusion is rrf"),
    ],
)
def test_fusion_settings_that_would_change_nothing_are_refused(overrides, signals, message):
    with pytest.raises(LsrError, match=message):
        with_overrides(UNTUNED, overrides, signals)


@pytest.mark.parametrize(
    ("overrides", "signals"),
    [
        ({}, ("sparse",)),  # nothing given: the index's own fusion, whatever the mode
        ({"method": "rrf", "rrf_k": 10}, THREE),
        ({"normalization": "minmax", "depth": 50}, THREE),
        ({"weight": 0.3, "dense_feedback": 5}, ("sparse", "dense")),
        ({"weights": {"bm25": 1.0, "sparse": 2.0}, "dense_feedback": 0}, ("sparse", "bm25")),  # feedback off: applies
    ],
)
def test_fusion_settings_that_apply_change_the_fusion_as_given(overrides, signals):
    assert with_overrides(UNTUNED, overrides, signals) == UNTUNED.changed(**overrides)
