import numpy as np
import pytest
import scipy.sparse as sp

from lsr.indexer.engines import ImpactOrderedEngine, MemoryEngine, top_k
from lsr.errors import IndexFolderError
from lsr.indexer.quantization import Quantization
from lsr.indexer.vectors import brute_force_search


def test_top_k_orders_by_score_then_row_and_skips_zeros():
    scores = np.array([0, 5, 3, 5, 0, 3, 3, 9])
    ranking = top_k(scores, 4)
    assert ranking.doc_indices.tolist() == [7, 1, 3, 2]
    assert ranking.scores.tolist() == [9, 5, 5, 3]
    assert top_k(scores, 100).doc_indices.tolist() == [7, 1, 3, 2, 5, 6]
    assert top_k(np.zeros(5, dtype=np.int64), 3).doc_indices.size == 0


def test_quantization_rounds_clips_and_drops_zeros():
    vectors = sp.csr_matrix(np.array([[0.004, 0.006, 1.234, 1000.0]], dtype=np.float32))
    impacts = Quantization(100).quantize(vectors)
    assert impacts.toarray().tolist() == [[0, 1, 123, 65535]]
    assert impacts.nnz == 3
    assert Quantization(100).to_score(np.array([20000])).tolist() == [2.0]


def random_impacts(rows, dim, density, seed):
    rng = np.random.default_rng(seed)
    matrix = sp.random(rows, dim, density=density, format="csr", random_state=rng, data_rvs=lambda n: rng.integers(1, 300, n))
    return matrix.astype(np.int32)


@pytest.mark.parametrize("engine_class", [MemoryEngine, ImpactOrderedEngine])  # impact-ordered: at its default budget 1
@pytest.mark.parametrize("k", [1, 10, 1000])
def test_exact_engines_equal_brute_force(tmp_path, engine_class, k):
    docs = random_impacts(2000, 500, 0.02, seed=1)
    queries = random_impacts(50, 500, 0.01, seed=2)
    engine_class.build(docs, tmp_path / "sparse")
    engine = engine_class.open(tmp_path / "sparse", doc_count=docs.shape[0])
    for got, expected in zip(engine.search(queries, k), brute_force_search(docs, queries, k), strict=True):
        assert got.doc_indices.tolist() == expected.doc_indices.tolist()
        assert got.scores.tolist() == expected.scores.tolist()


def test_memory_engine_spans_ranges_and_mixes_dense_and_sparse_terms(tmp_path):
    """Over 2^16 documents (two ranges, the second partial); frequent terms are stored densely unless an impact
    needs more than a byte, rare ones as postings — every layout must score exactly."""
    from lsr.indexer.engines.memory import RANGE_SIZE

    rng = np.random.default_rng(3)
    rows = RANGE_SIZE + 7_000
    frequent = sp.random(rows, 6, density=0.5, format="csr", random_state=rng, data_rvs=lambda n: rng.integers(1, 256, n))
    too_large = sp.random(rows, 2, density=0.5, format="csr", random_state=rng, data_rvs=lambda n: rng.integers(200, 400, n))
    rare = sp.random(rows, 40, density=0.01, format="csr", random_state=rng, data_rvs=lambda n: rng.integers(1, 300, n))
    docs = sp.hstack([frequent, too_large, rare], format="csr").astype(np.int32)
    queries = random_impacts(30, docs.shape[1], 0.2, seed=4)
    MemoryEngine.build(docs, tmp_path / "sparse")
    dense_starts = np.load(tmp_path / "sparse" / "dense_starts.npy")
    assert dense_starts.shape[0] == 2 and (dense_starts[:, :6] >= 0).all() and (dense_starts[:, 6:] < 0).all()
    engine = MemoryEngine.open(tmp_path / "sparse", doc_count=rows)
    for k in (1, 10, 100):
        for got, expected in zip(engine.search(queries, k), brute_force_search(docs, queries, k), strict=True):
            assert got.doc_indices.tolist() == expected.doc_indices.tolist()
            assert got.scores.tolist() == expected.scores.tolist()


def test_memory_engine_scores_beyond_int32_exactly(tmp_path):
    """Scores that could overflow the int32 accumulator switch it to int64."""
    docs = sp.csr_matrix(np.array([[60_000, 60_000, 60_000], [60_000, 60_000, 1], [1, 0, 60_000]], dtype=np.int32))
    queries = sp.csr_matrix(np.array([[60_000, 60_000, 60_000]], dtype=np.int32))
    MemoryEngine.build(docs, tmp_path / "sparse")
    (got,) = MemoryEngine.open(tmp_path / "sparse", doc_count=3).search(queries, 3)
    assert got.scores.tolist() == [3 * 60_000**2, 2 * 60_000**2 + 60_000, 60_000**2 + 60_000]
    assert got.doc_indices.tolist() == [0, 1, 2]


def test_memory_engine_refuses_an_older_layout(tmp_path):
    (tmp_path / "postings_indptr.npy").touch()
    with pytest.raises(IndexFolderError, match="lsr reindex"):
        MemoryEngine.open(tmp_path, doc_count=1)


@pytest.mark.parametrize("shards", [1, 3])
def test_sharded_engine_equals_brute_force(tmp_path, shards):
    from lsr.indexer.engines import ShardedEngine

    docs = random_impacts(2000, 500, 0.02, seed=1)
    queries = random_impacts(50, 500, 0.01, seed=2)
    ShardedEngine.build(docs, tmp_path / "sparse", ShardedEngine.Settings(shards))
    engine = ShardedEngine.open(tmp_path / "sparse", doc_count=docs.shape[0], settings=ShardedEngine.Settings(shards))
    for k in (1, 10, 1000):
        for got, expected in zip(engine.search(queries, k), brute_force_search(docs, queries, k), strict=True):
            assert got.doc_indices.tolist() == expected.doc_indices.tolist()
            assert got.scores.tolist() == expected.scores.tolist()
    with pytest.raises(IndexFolderError, match="has 3 shards|has 1 shards"):
        ShardedEngine.open(tmp_path / "sparse", doc_count=docs.shape[0], settings=ShardedEngine.Settings(shards + 1))
