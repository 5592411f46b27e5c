"""Live updates against the real splade-tiny on real Cranfield documents: a live-updated index must rank
exactly like an index built from scratch on the same documents, before and after compaction."""

import json
import shutil

import numpy as np
import pytest

from lsr.datasets import Document, read_corpus
from lsr.errors import IndexFolderError
from lsr.indexer import IndexFolder, add_bm25_side, add_dense_vectors, build_index, reindex
from lsr.indexer.live import LiveIndex, LiveUpdateError
from lsr.indexer.searchable import current_documents
from lsr.retrieval.search import Searcher
from lsr.retrieval.search.explain import explain
from lsr.retrieval.search.live import LiveSearcher, matches

QUERIES = ["heat transfer in hypersonic flow", "wing flutter", "boundary layer transition", "shock wave interaction"]


@pytest.fixture(scope="module")
def corpus(small_dataset):
    return read_corpus(small_dataset)


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, corpus, splade):
    """The first 80 documents; the other 40 arrive as live updates."""
    corpus_80 = type(corpus)(corpus.path, corpus.documents[:80], corpus.sha256)
    out = tmp_path_factory.mktemp("live") / "base"
    build_index(corpus_80, splade, out, chunk_size=40, progress=False)
    return out


@pytest.fixture
def live(tmp_path, base_index, splade):
    copy = tmp_path / "index"
    shutil.copytree(base_index, copy)
    service = LiveSearcher(LiveIndex(copy), splade)
    yield service
    service.live.close()


def as_doc(document, **metadata) -> Document:
    return Document(document.id, document.title, document.text, metadata)


def ranking(searcher: Searcher, query: str, k: int = 20) -> list[tuple[str, float]]:
    return [(hit.id, hit.score) for hit in searcher.search(query, k, mode="sparse")]


def test_live_index_ranks_exactly_like_a_rebuilt_index(live, corpus, splade, tmp_path):
    live.upsert([as_doc(doc) for doc in corpus.documents[80:]])
    deleted = [doc.id for doc in corpus.documents[5:15]]
    for doc_id in deleted:
        assert live.delete(doc_id)
    replaced = corpus.documents[20]
    live.upsert([Document(replaced.id, "wing flutter", "flutter of a swept wing at transonic speed")])

    documents = [doc for doc in corpus.documents if doc.id not in deleted and doc.id != replaced.id]
    rebuilt_corpus = type(corpus)(
        corpus.path,
        documents + [type(replaced)(replaced.id, "wing flutter", "flutter of a swept wing at transonic speed")],
        corpus.sha256,
    )
    rebuilt_path = tmp_path / "rebuilt"
    build_index(rebuilt_corpus, splade, rebuilt_path, chunk_size=200, progress=False)
    rebuilt = Searcher(IndexFolder(rebuilt_path), splade)

    for query in QUERIES:
        assert ranking(live.searcher(), query) == ranking(rebuilt, query)
    # The queries' corpus-IDF weights count exactly the documents a rebuilt index holds.
    statistics, rebuilt_statistics = live.view.term_statistics, rebuilt.index.term_statistics
    assert statistics.documents == rebuilt_statistics.documents == len(rebuilt_corpus)
    np.testing.assert_array_equal(statistics.document_frequencies, rebuilt_statistics.document_frequencies)
    assert any(hit.id == replaced.id for hit in live.searcher().search("wing flutter", 3, mode="sparse"))
    assert live.view.doc_count == len(rebuilt_corpus)
    # What `lsr adapt` learns from: each current document once, deleted and replaced rows left out.
    current = current_documents(live.view)
    assert len(current) == len(rebuilt_corpus)
    assert {(d.id, d.title, d.text) for d in current} == {(d.id, d.title, d.text) for d in rebuilt_corpus.documents}

    assert live.live.compact()
    assert live.live.pending == 0
    assert IndexFolder(live.live.path).manifest.doc_count == len(rebuilt_corpus)
    for query in QUERIES:
        assert ranking(live.searcher(), query) == ranking(rebuilt, query)


def test_updates_survive_reopening_and_a_torn_log_tail_is_dropped(live, corpus, splade):
    live.upsert([as_doc(doc) for doc in corpus.documents[80:90]])
    live.delete(corpus.documents[0].id)
    expected = {query: ranking(live.searcher(), query) for query in QUERIES}
    wal = live.live.path / "live" / "wal.jsonl"
    live.live.close()
    with wal.open("ab") as handle:  # a batch cut short by a crash: never acknowledged
        handle.write(json.dumps({"batch": [{"op": "delete", "id": corpus.documents[1].id}]}).encode()[:20])
    reopened = LiveSearcher(LiveIndex(live.live.path), splade)
    try:
        assert {query: ranking(reopened.searcher(), query) for query in QUERIES} == expected
        assert reopened.get(corpus.documents[1].id) is not None
        assert reopened.get(corpus.documents[0].id) is None
        assert wal.read_bytes().endswith(b"\n")
    finally:
        reopened.live.close()


def test_a_corrupt_log_line_is_a_clear_error(live, corpus):
    live.upsert([as_doc(corpus.documents[90])])
    live.live.close()
    wal = live.live.path / "live" / "wal.jsonl"
    wal.write_bytes(b"not json\n" + wal.read_bytes())
    with pytest.raises(LiveUpdateError, match="wal.jsonl:1 is corrupt"):
        LiveIndex(live.live.path)


def test_a_second_writer_is_refused(live, corpus, splade):
    live.upsert([as_doc(corpus.documents[90])])
    other = LiveSearcher(LiveIndex(live.live.path), splade)
    with pytest.raises(LiveUpdateError, match="locked by another process"):
        other.upsert([as_doc(corpus.documents[91])])


def test_metadata_filter(live, corpus):
    live.upsert([as_doc(doc, lang="fr" if i % 2 else "en", year=1960 + i) for i, doc in enumerate(corpus.documents[80:100])])
    hits = live.searcher(filter={"lang": "fr"}).search("flow", 50, mode="sparse")
    assert hits and all(live.get(hit.id).metadata["lang"] == "fr" for hit in hits)
    unfiltered = [
        hit.id
        for hit in live.searcher().search("flow", 200, mode="sparse")
        if live.get(hit.id).metadata and live.get(hit.id).metadata["lang"] == "fr"
    ]
    assert [hit.id for hit in hits] == unfiltered[:50]
    scores = {hit.id: hit.score for hit in live.searcher().search("flow", 200, mode="sparse")}
    assert all(hit.score == scores[hit.id] for hit in hits)  # hidden documents still count in the IDF weights
    assert not live.searcher(filter={"lang": "de"}).search("flow", 5, mode="sparse")
    assert matches({"year": 1961}, {"year": [1961, 1962]}) and not matches({"year": 1961}, {"year": "1961"})


def test_explanation_adds_up_to_the_sparse_score_and_flags_expansions(live, corpus):
    doc = Document("jet", "jet noise", "the noise of a jet engine exhaust")
    live.upsert([doc])
    searcher = live.searcher()
    hits = searcher.search("jet engine noise", 3, mode="sparse")
    explanations = explain(searcher, "jet engine noise", [hit.id for hit in hits])
    for hit, explanation in zip(hits, explanations, strict=True):
        assert explanation.score == pytest.approx(hit.score)
        assert explanation.score == pytest.approx(sum(m.score for m in explanation.matches))
    mine = explain(searcher, "jet engine noise", ["jet"])[0]
    flags = {term.term: term.in_text for term in mine.document_terms}
    assert flags["jet"] is True and flags["noise"] is True
    assert False in flags.values()  # SPLADE expands beyond the words of the text
    with pytest.raises(KeyError):
        explain(searcher, "jet", ["no-such-doc"])


def test_hybrid_live_index_searches_delta_dense_vectors(tmp_path, small_hybrid_index, splade, minilm):
    copy = tmp_path / "hybrid"
    shutil.copytree(small_hybrid_index, copy)
    live = LiveSearcher(LiveIndex(copy), splade, minilm)
    live.upsert([Document("new", "propeller blade icing", "ice accretion on propeller blades in cold weather")])
    assert live.searcher().search("ice on propellers", 1, mode="dense")[0].id == "new"
    assert "new" in [hit.id for hit in live.searcher().search("ice on propellers", 3, mode="hybrid")]
    dense = live.view.delta.dense[0]
    assert np.isclose(np.linalg.norm(dense), 1.0, atol=1e-4)
    # Dense feedback reads stored vectors of base and delta rows alike.
    view, base = live.view, IndexFolder(small_hybrid_index)
    rows = np.array([view.row("new"), 0, 5])
    np.testing.assert_array_equal(view.dense.vectors_of(rows), np.stack([dense, *base.dense.vectors()[[0, 5]]]))
    live.live.close()


def test_sides_added_or_engines_rebuilt_after_live_updates_cover_the_index_documents(live, corpus, minilm, splade, tmp_path):
    live.upsert([Document("new", "wing flutter", "flutter of a swept wing at transonic speed")])
    assert live.delete(corpus.documents[0].id)
    path = live.live.path
    live.live.close()
    query = "flutter of a swept wing at transonic speed"
    # The log's upserts carry no dense vector, and seismic never reads the log: both would leave them out.
    with pytest.raises(IndexFolderError, match="live updates not yet compacted and their upserts carry no dense vector"):
        add_dense_vectors(path, corpus, minilm, progress=False)
    with pytest.raises(IndexFolderError, match="the seismic engine would never read them: run `lsr compact"):
        reindex(path, tmp_path / "seismic", "seismic")
    add_bm25_side(path, corpus)  # the corpus the index was built from; the side takes the logged updates in
    reopened = LiveSearcher(LiveIndex(path), splade)
    assert reopened.searcher().search(query, 1, mode="bm25")[0].id == "new"
    assert reopened.live.compact()
    reopened.live.close()

    add_bm25_side(path, corpus)  # after compaction the index's documents are no longer the corpus's
    add_dense_vectors(path, corpus, minilm, progress=False)
    index = IndexFolder(path)
    ids = [doc.id for doc in index.docs]
    searcher = Searcher.open(path)
    for mode in ("bm25", "dense"):
        hits = searcher.search(query, 3, mode=mode)
        assert hits[0].id == "new", mode
        assert all(hit.id in ids for hit in hits)
    assert corpus.documents[0].id not in ids
    reindex(path, tmp_path / "seismic", "seismic")
    assert [doc.id for doc in IndexFolder(tmp_path / "seismic").docs] == ids
