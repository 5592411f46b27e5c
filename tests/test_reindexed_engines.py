"""Engines built by `lsr reindex` from a real index: impact-ordered (approximate below budget 1, exact at 1) and
sharded search like the memory engine; their settings are recorded in the manifest."""

from __future__ import annotations

import numpy as np
import pytest

from lsr.datasets import read_queries
from lsr.errors import IndexFolderError, LsrError
from lsr.indexer import IndexFolder, reindex
from lsr.indexer.engines import ImpactOrderedEngine, SeismicEngine
from lsr.indexer.vectors import brute_force_search
from lsr.retrieval.search import Searcher
from tests.test_engines import random_impacts


def test_a_smaller_budget_reads_fewer_postings_and_returns_exact_scores_of_what_it_finds(tmp_path):
    docs = random_impacts(3000, 300, 0.05, seed=3)
    queries = random_impacts(40, 300, 0.05, seed=4)
    ImpactOrderedEngine.build(docs, tmp_path / "sparse")
    engine = ImpactOrderedEngine.open(tmp_path / "sparse", doc_count=docs.shape[0])
    exact = brute_force_search(docs, queries, 10)
    recalls = []
    for budget in (1.0, 0.5, 0.05):
        found = engine.search(queries, 10, budget=budget)
        recalls.append(np.mean([len(set(f.doc_indices) & set(e.doc_indices)) / 10 for f, e in zip(found, exact, strict=True)]))
        for row, ranking in enumerate(found):  # candidates are rescored exactly from the forward index
            true_scores = (docs[ranking.doc_indices] @ queries[row].T).toarray().ravel()
            assert ranking.scores.tolist() == true_scores.tolist()
    assert recalls[0] == 1.0 and recalls[0] >= recalls[1] >= recalls[2] and recalls[2] < 1.0
    with pytest.raises(LsrError, match="budget"):
        engine.search(queries, 10, budget=0)


def test_reindexed_real_index_searches_like_the_memory_engine(small_index, small_dataset, tmp_path):
    exact_folder, approximate_folder = tmp_path / "exact", tmp_path / "approximate"
    reindex(small_index, exact_folder, "impact-ordered")
    reindex(small_index, approximate_folder, "impact-ordered", settings={"budget": 0.2})
    assert IndexFolder(approximate_folder).manifest.engine_settings == {"budget": 0.2}
    queries = list(read_queries(small_dataset).values())
    memory, exact, approximate = (Searcher.open(f) for f in (small_index, exact_folder, approximate_folder))
    expected = memory.search_many(queries, 10)
    assert exact.search_many(queries, 10) == expected
    overlap = [
        len({h.id for h in a} & {h.id for h in e}) / max(1, len(e))
        for a, e in zip(approximate.search_many(queries, 10), expected, strict=True)
    ]
    assert 0.5 < np.mean(overlap) <= 1.0
    with pytest.raises(IndexFolderError, match="takes no setting budget"):
        reindex(small_index, tmp_path / "x", "memory", settings={"budget": 0.5})
    sharded = tmp_path / "sharded"
    reindex(small_index, sharded, "sharded", settings={"shards": 2})
    assert Searcher.open(sharded).search_many(queries, 10) == expected
    with pytest.raises(LsrError, match="budget must be in"):
        reindex(small_index, tmp_path / "y", "impact-ordered", settings={"budget": 2.0})
    assert not (tmp_path / "y").exists()


def test_an_index_whose_engine_cannot_be_opened_is_rebuilt_by_reindex(small_index, small_dataset, tmp_path):
    """An index written with an older memory-engine layout is refused with the command that mends it, which works."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(small_index, old)
    shutil.rmtree(old / "sparse")
    (old / "sparse").mkdir()
    np.save(old / "sparse" / "postings_indptr.npy", np.zeros(1, dtype=np.int64))
    with pytest.raises(IndexFolderError, match="lsr reindex"):
        IndexFolder(old)
    reindex(old, tmp_path / "mended", "memory")
    queries = list(read_queries(small_dataset).values())
    assert Searcher.open(tmp_path / "mended").search_many(queries, 10) == Searcher.open(small_index).search_many(queries, 10)


def test_seismic_returns_exact_scores_and_finds_most_of_the_exact_top_10(tmp_path):
    docs = random_impacts(3000, 300, 0.05, seed=3)
    queries = random_impacts(40, 300, 0.05, seed=4)
    SeismicEngine.build(docs, tmp_path / "sparse", SeismicEngine.Settings(n_postings=500))
    engine = SeismicEngine.open(tmp_path / "sparse", doc_count=docs.shape[0])
    exact = brute_force_search(docs, queries, 10)
    recalls = {}
    for query_cut, heap_factor in ((100, 1.0), (3, 0.5)):
        found = engine.search(queries, 10, query_cut=query_cut, heap_factor=heap_factor)
        recalls[query_cut] = np.mean(
            [len(set(f.doc_indices) & set(e.doc_indices)) / 10 for f, e in zip(found, exact, strict=True)]
        )
        for row, ranking in enumerate(found):  # survivors are scored exactly from Seismic's forward index
            true_scores = (docs[ranking.doc_indices] @ queries[row].T).toarray().ravel()
            assert ranking.scores.tolist() == true_scores.tolist()
            assert ranking.scores.tolist() == sorted(ranking.scores.tolist(), reverse=True)
    # Random, independent terms are Seismic's worst case (no co-occurrence to block on); real text does better.
    assert recalls[100] >= 0.8 and recalls[3] < recalls[100]


def test_reindexed_seismic_index_records_its_settings_and_searches_close_to_exact(small_index, small_dataset, tmp_path):
    folder = tmp_path / "seismic"
    reindex(small_index, folder, "seismic", settings={"query_cut": 20, "heap_factor": 0.9})
    manifest = IndexFolder(folder).manifest
    assert manifest.engine_settings["query_cut"] == 20 and manifest.engine_settings["heap_factor"] == 0.9
    queries = list(read_queries(small_dataset).values())
    expected = Searcher.open(small_index).search_many(queries, 10)
    found = Searcher.open(folder).search_many(queries, 10)
    overlap = [len({h.id for h in f} & {h.id for h in e}) / max(1, len(e)) for f, e in zip(found, expected, strict=True)]
    assert np.mean(overlap) > 0.9
    with pytest.raises(IndexFolderError, match="heap_factor must be in"):
        reindex(small_index, tmp_path / "z", "seismic", settings={"heap_factor": 0})
    assert not (tmp_path / "z").exists()
