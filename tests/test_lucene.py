"""The Lucene engines (Pyserini's Anserini in a real JVM): agreement with the exact engine, BM25 against Pyserini's
published BEIR numbers, and re-indexing without re-encoding."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from lsr.datasets import read_corpus, read_evaluation_set, read_queries
from lsr.errors import EncoderMismatchError, IndexFolderError
from lsr.eval.metrics import score_run
from lsr.eval.runner import run_queries
from lsr.indexer import IndexFolder, build_bm25_index, reindex
from lsr.retrieval.search import Searcher
from tests.conftest import shared_dataset


@pytest.fixture(scope="module")
def lucene_index(tmp_path_factory, small_index):
    out = tmp_path_factory.mktemp("lucene") / "cranfield-120-lucene"
    reindex(small_index, out, "lucene")
    return out


def test_reindex_shares_the_vectors_and_changes_only_the_engine(small_index, lucene_index):
    source, target = IndexFolder(small_index), IndexFolder(lucene_index)
    assert target.manifest.engine == "lucene" and source.manifest.engine == "memory"
    assert target.manifest.encoder == source.manifest.encoder and target.manifest.nnz == source.manifest.nnz
    for part in ("docs.jsonl", "vectors/impacts.npy"):
        assert os.path.samefile(small_index / part, lucene_index / part)  # hard links: nothing re-encoded or copied


def test_lucene_impact_search_equals_the_exact_engine_on_every_query(small_index, lucene_index, small_dataset, splade):
    """Same integer scores at every rank; the same documents wherever the score is not tied with the k-th."""
    exact, lucene = IndexFolder(small_index), IndexFolder(lucene_index)
    texts = list(read_queries(small_dataset).values())
    queries = exact.manifest.quantization.quantize(splade.encode_queries(texts))
    k = 10
    expected, actual = exact.engine.search(queries, k), lucene.engine.search(queries, k)
    assert len(actual) == len(texts) == 225
    for want, got in zip(expected, actual, strict=True):
        np.testing.assert_array_equal(got.scores, want.scores)
        untied = want.scores > want.scores[-1] if len(want.scores) == k else np.ones(len(want.scores), bool)
        np.testing.assert_array_equal(got.doc_indices[untied], want.doc_indices[untied])
    single = lucene.engine.search(queries[3], k)[0]  # the one-query path, not the batch one
    np.testing.assert_array_equal(single.scores, expected[3].scores)


def test_reindex_refuses_its_own_folder_and_unknown_engines(small_index, tmp_path):
    with pytest.raises(IndexFolderError, match="new folder"):
        reindex(small_index, small_index, "lucene")
    with pytest.raises(IndexFolderError, match="unknown engine"):
        reindex(small_index, tmp_path / "x", "elastic")
    with pytest.raises(IndexFolderError, match="indexes text"):
        reindex(small_index, tmp_path / "x", "lucene-bm25")


@pytest.fixture(scope="module")
def small_bm25_index(tmp_path_factory, small_dataset):
    out = tmp_path_factory.mktemp("bm25") / "cranfield-120-bm25"
    build_bm25_index(read_corpus(small_dataset), out)
    return out


def test_bm25_index_searches_text_and_refuses_vector_encoders(small_bm25_index, tmp_path):
    searcher = Searcher.open(small_bm25_index)
    hits = searcher.search("boundary layer flow over a flat plate", k=5)
    assert len(hits) == 5 and hits[0].score >= hits[-1].score > 0
    assert searcher.search_many(["boundary layer", "heat transfer"], k=3)[1] == searcher.search("heat transfer", k=3)
    with pytest.raises(EncoderMismatchError, match="BM25"):
        Searcher.open(small_bm25_index, "splade-tiny")
    with pytest.raises(IndexFolderError, match="no vectors"):
        reindex(small_bm25_index, tmp_path / "x", "memory")


def test_cli_refuses_sparse_feedback_on_a_bm25_index(small_bm25_index):
    result = subprocess.run(
        [sys.executable, "-m", "lsr", "search", str(small_bm25_index), "heat transfer", "--feedback"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    # Opening the index started the JVM: neither Lucene's nor the JDK's start-up warnings reach the user.
    assert result.stderr.strip() == "error: --feedback expands the encoded sparse query; a Lucene BM25 index encodes none"


def test_cli_refuses_bm25_on_the_memory_engine(small_dataset, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lsr",
            "index",
            str(small_dataset),
            "--out",
            str(tmp_path / "x"),
            "--encoder",
            "bm25",
            "--engine",
            "memory",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: BM25 is scored by Lucene: use --engine lucene (or leave --engine out)"


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "published"), [("scifact", 0.6789), ("nfcorpus", 0.3218)])
def test_bm25_reproduces_pyserini_beir_flat(dataset, published, tmp_path):
    """Pyserini's BEIR (v1.0.0) "flat" BM25 regressions, nDCG@10 on test."""
    folder = shared_dataset(dataset)
    build_bm25_index(read_corpus(folder), tmp_path / "bm25")
    evaluation = read_evaluation_set(folder, "test")
    run = run_queries(Searcher.open(tmp_path / "bm25"), evaluation.queries, k=1000)
    measured = score_run(evaluation.qrels, run, ["nDCG@10"]).aggregate["nDCG@10"]
    assert abs(measured - published) <= 0.005, measured


def test_bm25_index_is_served_over_http_and_refuses_writes(small_bm25_index, monkeypatch):
    from fastapi.testclient import TestClient

    from lsr.api.app import create_app
    from lsr.retrieval.search import LiveSearcher

    monkeypatch.setenv("LSR_API_KEY", "secret")
    with TestClient(create_app(LiveSearcher.from_searcher(Searcher.open(small_bm25_index)))) as client:
        response = client.post("/search", json={"query": "boundary layer flow", "k": 3})
        assert response.status_code == 200, response.text
        assert [hit["id"] for hit in response.json()["hits"]] == [
            h.id for h in Searcher.open(small_bm25_index).search("boundary layer flow", k=3)
        ]
        upsert = client.post(
            "/documents", json={"documents": [{"id": "new", "title": "t", "text": "x"}]}, headers={"x-api-key": "secret"}
        )
        assert 400 <= upsert.status_code < 500, upsert.text
        for refused in (
            client.post("/encode", json={"text": "flow"}),
            client.get("/explain", params={"query": "flow", "id": "1"}),
        ):
            assert refused.status_code == 400 and "BM25" in refused.json()["detail"], refused.text
