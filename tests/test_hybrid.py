import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lsr import defaults
from lsr.api.app import create_app
from lsr.datasets import read_corpus, read_evaluation_set
from lsr.errors import IndexFolderError, LsrError
from lsr.eval.tuning import tune_fusion
from lsr.indexer import IndexFolder, add_dense_vectors
from lsr.retrieval.search import LiveSearcher, Searcher
from lsr.retrieval.search.fusion import Fusion


def test_dense_search_equals_exact_cosine_over_the_documents(hybrid_searcher, small_dataset, minilm):
    documents = minilm.encode_documents([doc.contents for doc in read_corpus(small_dataset).documents])
    np.testing.assert_allclose(hybrid_searcher.index.dense.vectors(), documents, atol=1e-6)
    query = "pressure distribution on a cone"
    expected = np.argsort(-(documents @ minilm.encode_queries([query])[0]), kind="stable")[:10]
    hits = hybrid_searcher.search(query, 10, mode="dense")
    assert [hit.id for hit in hits] == [hybrid_searcher.index.docs[row].id for row in expected]
    assert all(-1.0 <= hit.score <= 1.0 for hit in hits)


def test_modes_default_to_hybrid_and_hybrid_differs_from_both_sides(hybrid_searcher):
    query = "heat transfer in hypersonic flow"
    assert hybrid_searcher.default_mode == "hybrid"
    hybrid = [hit.id for hit in hybrid_searcher.search(query, 10)]
    untuned = Fusion.from_dict(defaults.UNTUNED_FUSION["sparse+dense"])  # the index was never tuned
    assert hybrid_searcher.default_fusion == untuned
    assert hybrid == [hit.id for hit in hybrid_searcher.search(query, 10, mode="hybrid", fusion=untuned)]
    sparse = [hit.id for hit in hybrid_searcher.search(query, 10, mode="sparse")]
    dense = [hit.id for hit in hybrid_searcher.search(query, 10, mode="dense")]
    candidates = {hit.id for mode in ("sparse", "dense") for hit in hybrid_searcher.search(query, 100, mode=mode)}
    assert set(hybrid) <= candidates  # fusion only reorders the two sides' top-100 candidates
    assert hybrid != sparse or hybrid != dense


def test_sparse_only_index_refuses_dense_modes(small_searcher):
    assert small_searcher.default_mode == "sparse"
    with pytest.raises(LsrError, match="has no dense vectors, so only sparse search is possible"):
        small_searcher.search("wing", 5, mode="hybrid")
    with pytest.raises(LsrError, match="mode must be one of sparse, dense, hybrid"):
        small_searcher.search("wing", 5, mode="fast")


def test_adding_dense_to_a_sparse_index_keeps_its_sparse_side(tmp_path, small_index, small_hybrid_index, small_dataset, minilm):
    copy = tmp_path / "index"
    shutil.copytree(small_index, copy)
    manifest = add_dense_vectors(copy, read_corpus(small_dataset), minilm, chunk_size=50, progress=False)
    assert manifest.dense_encoder == minilm.spec
    added, built = IndexFolder(copy), IndexFolder(small_hybrid_index)
    np.testing.assert_allclose(added.dense.vectors(), built.dense.vectors(), atol=1e-6)
    assert (added.vectors != IndexFolder(small_index).vectors).nnz == 0
    assert not (tmp_path / "index.partial").exists()


def test_adding_dense_from_another_corpus_is_refused(tmp_path, small_index, cranfield, minilm):
    with pytest.raises(IndexFolderError, match="was built from another corpus"):
        add_dense_vectors(small_index, read_corpus(cranfield), minilm, progress=False)


@pytest.fixture
def train_only_dataset(tmp_path, small_dataset):
    """The small dataset with its judgments as a train split and no test qrels at all."""
    folder = tmp_path / "data"
    shutil.copytree(small_dataset, folder)
    (folder / "qrels" / "test.tsv").rename(folder / "qrels" / "train.tsv")
    return folder


def test_tuning_uses_only_the_given_split_and_never_test(hybrid_searcher, train_only_dataset):
    evaluation = read_evaluation_set(train_only_dataset, "train")
    with pytest.raises(LsrError, match="never on test"):
        tune_fusion(hybrid_searcher, evaluation, "test", progress=False)
    tuning = tune_fusion(hybrid_searcher, evaluation, "train", progress=False)
    values = [value for _, value in tuning.results]
    # 11 weightings × (4 RRF k + 2 normalizations), and the 10 convex ones giving dense a share × 2 dense feedbacks
    assert values == sorted(values, reverse=True) and len(values) == 66 + 10 * 2 * 2
    # Weight 1 is the sparse side alone (convex minmax keeps its order), weight 0 the dense side alone.
    plain = [(f, v) for f, v in tuning.results if f.method == "convex" and not f.dense_feedback]
    results = {(f.method, f.normalization, f.weight): v for f, v in plain}
    assert results[("convex", "minmax", 1.0)] == pytest.approx(tuning.sparse)
    assert results[("convex", "minmax", 0.0)] == pytest.approx(tuning.dense)
    assert tuning.best[1] >= max(tuning.sparse, tuning.dense)


def test_lsr_tune_stores_the_choice_that_search_then_uses(tmp_path, small_hybrid_index, train_only_dataset, splade, minilm):
    from test_cli import lsr

    index = tmp_path / "index"
    shutil.copytree(small_hybrid_index, index)
    result = lsr("tune", str(index), str(train_only_dataset), "--split", "train")
    assert result.returncode == 0, result.stderr
    stored = json.loads((index / "manifest.json").read_text())["fusion"]
    assert stored["tuned_on"]["split"] == "train" and stored["tuned_on"]["measure"] == "nDCG@10"
    assert Searcher(IndexFolder(index), splade, minilm).default_fusion == Fusion.from_dict(stored)
    refused = lsr("tune", str(index), str(train_only_dataset), "--split", "test")
    assert refused.returncode == 2 and "never on test" in refused.stderr


def test_api_modes_and_fusion_overrides(hybrid_searcher, small_searcher):
    client = TestClient(create_app(LiveSearcher.from_searcher(hybrid_searcher)))
    query = "heat transfer in hypersonic flow"
    default = client.post("/search", json={"query": query, "k": 5}).json()
    assert default["mode"] == "hybrid"
    assert [h["id"] for h in default["hits"]] == [h.id for h in hybrid_searcher.search(query, 5)]
    dense = client.post("/search", json={"query": query, "k": 5, "mode": "dense"}).json()
    assert [h["id"] for h in dense["hits"]] == [h.id for h in hybrid_searcher.search(query, 5, mode="dense")]
    body = {"query": query, "k": 5, "fusion": {"method": "convex", "weight": 0.7, "normalization": "zscore"}}
    convex = client.post("/search", json=body).json()
    # Omitted settings keep the index's: its default dense feedback too, unless the request turns it off.
    overridden = hybrid_searcher.default_fusion.changed(method="convex", weight=0.7, normalization="zscore")
    assert overridden.dense_feedback
    expected = hybrid_searcher.search(query, 5, fusion=overridden)
    assert [h["id"] for h in convex["hits"]] == [h.id for h in expected]
    body["fusion"]["dense_feedback"] = 0
    plain = client.post("/search", json=body).json()
    expected = hybrid_searcher.search(query, 5, fusion=Fusion("convex", 0.7, normalization="zscore"))
    assert [h["id"] for h in plain["hits"]] == [h.id for h in expected]
    bad_fusions = ({"weight": 2}, {"method": "max"}, {"depth": 0}, {"dense_feedback": -1}, {"dense_feedback_weight": 0})
    for bad in ({"mode": "fast"}, *({"fusion": fusion} for fusion in bad_fusions)):
        assert client.post("/search", json={"query": query, **bad}).status_code == 422
    # Feedback may take more documents than the depth: the first fused pass holds every signal's top depth together.
    deep_feedback = client.post("/search", json={"query": query, "k": 5, "fusion": {"depth": 5, "dense_feedback": 8}})
    expected = hybrid_searcher.search(query, 5, fusion=hybrid_searcher.default_fusion.changed(depth=5, dense_feedback=8))
    assert [h["id"] for h in deep_feedback.json()["hits"]] == [h.id for h in expected]
    assert client.get("/health").json()["index"]["dense_encoder"] == "all-minilm-l6-v2"
    sparse_only = TestClient(create_app(LiveSearcher.from_searcher(small_searcher))).post(
        "/search", json={"query": query, "mode": "dense"}
    )
    assert sparse_only.status_code == 400 and "no dense vectors" in sparse_only.json()["detail"]


def test_hnsw_dense_index_is_recorded_and_finds_the_exact_neighbours(
    tmp_path, small_index, small_dataset, small_hybrid_index, minilm
):
    from lsr.indexer.dense import DenseIndexSettings

    copy = tmp_path / "index"
    shutil.copytree(small_index, copy)
    manifest = add_dense_vectors(copy, read_corpus(small_dataset), minilm, dense_index=DenseIndexSettings("hnsw"), progress=False)
    saved = json.loads((copy / "manifest.json").read_text())["dense_index"]
    assert saved == {"kind": "hnsw", "hnsw_m": 32, "ef_construction": 200, "ef_search": 128} == manifest.dense_index.to_dict()
    queries = minilm.encode_queries(["pressure distribution on a cone", "heat transfer in hypersonic flow"])
    approximate = IndexFolder(copy).dense.search(queries, 10)
    exact = IndexFolder(small_hybrid_index).dense.search(queries, 10)
    for got, want in zip(approximate, exact, strict=True):  # 120 vectors: the graph search is exhaustive
        assert got.doc_indices.tolist() == want.doc_indices.tolist()


def test_unknown_dense_index_kind_is_a_user_error():
    from lsr.indexer.dense import DenseIndexSettings

    with pytest.raises(IndexFolderError, match="dense index must be one of flat, hnsw"):
        DenseIndexSettings("ivf")
