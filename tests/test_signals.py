"""Three signals of one index: the BM25 side (`--bm25`, `--add-bm25`), fusion of any subset, their naming in the
CLI and the API, and tuning over them (never on test). Real encoders and real Cranfield text throughout."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from conftest import reference_fuse
from fastapi.testclient import TestClient
from test_cli import assert_one_line_error, lsr

from lsr.api.app import create_app
from lsr.datasets import Document, read_corpus, read_evaluation_set
from lsr.errors import LsrError
from lsr.eval.metrics import score_run
from lsr.eval.runner import rankings_run
from lsr.eval.tuning import head_with_ties, measure_depth, tune_fusion
from lsr.indexer import IndexFolder, add_bm25_side, build_bm25_index
from lsr.indexer.bm25 import Bm25Settings, Bm25Side, LiveBm25, TermCounts
from lsr.indexer.engines.base import Ranking
from lsr.indexer.index_folder import write_manifest
from lsr.indexer.live import LiveIndex, LiveUpdateError
from lsr.retrieval.search import SIGNALS, Fusion, LiveSearcher, Searcher, fuse_signals

QUERIES = ["boundary layer transition at high mach numbers", "heat transfer to blunt bodies", "flutter of panels", "xyzzy"]


@pytest.fixture(scope="module")
def three_signal_index(tmp_path_factory, small_hybrid_index, small_dataset):
    """The small hybrid index with a BM25 side added through the command line."""
    index = tmp_path_factory.mktemp("three") / "index"
    shutil.copytree(small_hybrid_index, index)
    result = lsr("index", str(small_dataset), "--out", str(index), "--add-bm25")
    assert result.returncode == 0, result.stderr
    return index


@pytest.fixture(scope="module")
def three_signal_searcher(three_signal_index, splade, minilm):
    return Searcher(IndexFolder(three_signal_index), splade, minilm)


def test_add_bm25_records_the_side_and_shares_the_other_files(three_signal_index, small_hybrid_index):
    manifest = json.loads((three_signal_index / "manifest.json").read_text())
    assert manifest["bm25"] == Bm25Settings().to_dict() and manifest["fusion"] is None
    assert (three_signal_index / "bm25").is_dir()
    assert IndexFolder(three_signal_index).bm25.size == IndexFolder(small_hybrid_index).manifest.doc_count


@pytest.mark.parametrize(
    "fusion",
    [
        Fusion("rrf"),
        Fusion("rrf", rrf_k=10, weights={"sparse": 0.2, "dense": 0.5, "bm25": 0.3}),
        Fusion("convex", weights={"sparse": 0.4, "dense": 0.4, "bm25": 0.2}),
        Fusion("convex", normalization="zscore", weights={"sparse": 1, "dense": 3, "bm25": 2}),
        Fusion("convex", weights={"bm25": 1.0}),
    ],
)
def test_three_signal_fusion_matches_the_reference(three_signal_searcher, fusion):
    per_signal = {signal: three_signal_searcher.rankings(QUERIES, signal, fusion.depth) for signal in SIGNALS}
    documents = len(three_signal_searcher.index.docs)
    for number in range(len(QUERIES)):
        rankings = {signal: per_signal[signal][number] for signal in per_signal}
        got = fuse_signals(rankings, fusion, 20, documents=documents)
        expected = reference_fuse(rankings, fusion, 20, documents)
        assert got.doc_indices.tolist() == [row for row, _ in expected]
        np.testing.assert_allclose(got.scores, [score for _, score in expected], rtol=1e-9, atol=1e-12)


def test_modes_name_signals_and_hybrid_fuses_all_three(three_signal_searcher, hybrid_searcher):
    searcher, query = three_signal_searcher, QUERIES[1]
    assert searcher.signals == ("sparse", "dense", "bm25") and searcher.default_mode == "hybrid"

    def ids(mode: str | None, **options) -> list[str]:
        return [hit.id for hit in searcher.search(query, 10, mode=mode, **options)]

    assert ids(None) == ids("hybrid") == ids("bm25+sparse+dense") == ids("dense+bm25+sparse")
    bm25 = searcher.index.bm25.search_texts([query], 10)[0]
    assert ids("bm25") == [searcher.index.docs[row].id for row in bm25.doc_indices]
    # Weights that leave a signal out give the fusion of the others.
    assert ids("hybrid", fusion=Fusion("convex", weights={"sparse": 0.5, "dense": 0.5, "bm25": 0})) != ids("hybrid")
    two = Fusion("rrf", 0.5)
    assert ids("sparse+dense", fusion=two) == [hit.id for hit in hybrid_searcher.search(query, 10, fusion=two)]
    for mode, message in [
        ("sparse+sparse", "names sparse more than once"),
        ("bm25+splade", "mode must be one of sparse, dense, hybrid, bm25, or signals joined by +"),
        ("sparse+", "mode must be one of"),
    ]:
        with pytest.raises(LsrError, match=message):
            searcher.search(query, 5, mode=mode)
    with pytest.raises(LsrError, match="has no BM25 side; add one with `lsr index … --add-bm25`"):
        hybrid_searcher.search(query, 5, mode="bm25+dense")
    with pytest.raises(LsrError, match="give sparse and bm25 no weight"):
        searcher.search(query, 5, mode="sparse+bm25", fusion=Fusion(weights={"dense": 1}))


def test_bm25_side_agrees_with_lucene_bm25_on_every_cranfield_query(cranfield, tmp_path):
    """Measured (bench/bm25_sides.py): nDCG@10 0.3518 against Lucene's 0.3506, top-10 overlap 0.987."""
    corpus = read_corpus(cranfield)
    build_bm25_index(corpus, tmp_path / "lucene")
    Bm25Side.build([doc.contents for doc in corpus.documents], tmp_path / "bm25")
    lucene, side = IndexFolder(tmp_path / "lucene").engine, Bm25Side.open(tmp_path / "bm25", Bm25Settings())
    evaluation = read_evaluation_set(cranfield, "test")
    ids, texts = list(evaluation.queries), list(evaluation.queries.values())
    doc_ids = [doc.id for doc in corpus.documents]
    values, tops = [], []
    for system in (lucene, side):
        rankings = system.search_texts(texts, 11)
        run = rankings_run(ids, rankings, doc_ids, 10)
        values.append(score_run(evaluation.qrels, run, ["nDCG@10"]).aggregate["nDCG@10"])
        tops.append([set(r.doc_indices[:10].tolist()) for r in rankings])
    overlap = np.mean([len(a & b) / max(1, len(a)) for a, b in zip(*tops, strict=True)])
    assert abs(values[0] - values[1]) <= 0.005 and overlap >= 0.95, (values, overlap)


def test_api_names_signals_and_validates_them(three_signal_searcher):
    client = TestClient(create_app(LiveSearcher.from_searcher(three_signal_searcher)))
    query = QUERIES[0]
    weights = {"bm25": 0.3, "sparse": 0.7}
    body = {"query": query, "k": 5, "mode": "bm25+sparse", "fusion": {"method": "convex", "weights": weights}}
    response = client.post("/search", json=body)
    assert response.status_code == 200, response.text
    expected = three_signal_searcher.search(query, 5, mode="bm25+sparse", fusion=Fusion("convex", weights=weights))
    assert [hit["id"] for hit in response.json()["hits"]] == [hit.id for hit in expected]
    assert response.json()["mode"] == "bm25+sparse"
    for bad in (
        {"mode": "bm25+bm25"},
        {"mode": "lexical"},
        {"fusion": {"weights": {"lexical": 1}}},
        {"fusion": {"weights": {"bm25": 0, "sparse": 0}}},
        {"fusion": {"weight": 0.5, "weights": {"bm25": 1}}},
        {"fusion": {"weights": {"bm25": -1}}},
    ):
        response = client.post("/search", json={"query": query, **bad})
        assert response.status_code == 422, (bad, response.text)
    assert "more than once" in client.post("/search", json={"query": query, "mode": "bm25+bm25"}).text
    # Settings the search would ignore are refused, not dropped: a mode without dense, a single signal.
    for bad, message in (
        ({"mode": "bm25+sparse", "fusion": {"dense_feedback": 3}}, "dense feedback searches the dense signal again"),
        ({"mode": "sparse", "fusion": {"depth": 10}}, "this search ranks by sparse alone"),
    ):
        response = client.post("/search", json={"query": query, **bad})
        assert response.status_code == 400 and message in response.text, (bad, response.text)


def test_cli_names_signals_with_one_line_errors(three_signal_index, small_dataset, tmp_path):
    result = lsr("search", str(three_signal_index), "heat transfer", "--mode", "bm25+dense", "--weights", "bm25=0.3,dense=0.7")
    assert result.returncode == 0, result.stderr
    assert_one_line_error(lsr("search", str(three_signal_index), "heat", "--mode", "bm25+lexical"), "mode must be one of")
    assert_one_line_error(lsr("search", str(three_signal_index), "heat", "--weights", "bm25:1"), "SIGNAL=WEIGHT pairs")
    assert_one_line_error(lsr("search", str(three_signal_index), "heat", "--weights", "title=1"), "unknown signals title")
    assert_one_line_error(lsr("search", str(three_signal_index), "heat", "--weight", "0.5", "--weights", "bm25=1"), "not both")
    assert_one_line_error(
        lsr("search", str(three_signal_index), "heat", "--mode", "bm25+sparse", "--weights", "dense=1,bm25=1"),
        "the fusion weights name dense, which this search (sparse + bm25) does not fuse",
    )
    assert_one_line_error(
        lsr("search", str(three_signal_index), "heat", "--mode", "bm25+dense", "--feedback"),
        "--feedback expands the sparse query; this search (dense + bm25) does not use it",
    )
    assert_one_line_error(
        lsr("search", str(three_signal_index), "heat", "--mode", "dense", "--query-idf", "0.5"),
        "--query-idf weighs the sparse query; this search (dense) does not use it",
    )
    assert_one_line_error(
        lsr("index", str(small_dataset), "--out", str(tmp_path / "x"), "--encoder", "bm25", "--bm25"), "Lucene BM25 index already"
    )


def test_tuning_searches_the_three_signal_simplex_and_never_test(three_signal_searcher, small_dataset, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(small_dataset, folder)
    (folder / "qrels" / "test.tsv").rename(folder / "qrels" / "train.tsv")
    evaluation = read_evaluation_set(folder, "train")
    with pytest.raises(LsrError, match="never on test"):
        tune_fusion(three_signal_searcher, evaluation, "test", progress=False)
    tuning = tune_fusion(three_signal_searcher, evaluation, "train", progress=False)
    # 66 weightings × (4 RRF k + 2 normalizations), and the 55 convex ones giving dense a share × 2 dense feedbacks
    assert len(tuning.results) == 66 * 6 + 55 * 2 * 2 and set(tuning.alone) == {"sparse", "dense", "bm25"}
    assert sum(f.dense_feedback > 0 for f, _ in tuning.results) == 55 * 2 * 2
    assert all(abs(sum(dict(f.weights).values()) - 1) < 1e-9 for f, _ in tuning.results)
    assert tuning.best[1] >= max(tuning.alone.values())
    # Tuning scores each ranking's head (the measure's cutoff, ties kept) and reuses first passes of dense feedback:
    # every value must be what the whole ranking scores, searched in the same batches.
    ids = list(evaluation.queries)
    batches = [
        three_signal_searcher.candidates([evaluation.queries[q] for q in ids[i : i + 64]], SIGNALS, 100)
        for i in range(0, len(ids), 64)
    ]
    doc_ids = [doc.id for doc in three_signal_searcher.index.docs]
    for fusion, value in tuning.results[::5]:
        rankings = [ranking for batch in batches for ranking in three_signal_searcher.fused(batch, fusion, 101)]
        assert score_run(evaluation.qrels, rankings_run(ids, rankings, doc_ids, 100), ["nDCG@10"]).aggregate["nDCG@10"] == value


def test_a_ranking_head_keeps_every_hit_tied_with_its_last():
    ranking = Ranking(doc_indices=np.arange(7), scores=np.array([5.0, 4.0, 3.0, 3.0, 3.0, 2.0, 1.0]))
    assert head_with_ties(ranking, 2).doc_indices.tolist() == [0, 1, 2, 3, 4]  # 2 + 1 spare, then the ties of 3.0
    assert head_with_ties(ranking, 4).doc_indices.tolist() == [0, 1, 2, 3, 4]
    assert head_with_ties(ranking, 5).doc_indices.tolist() == [0, 1, 2, 3, 4, 5]
    assert head_with_ties(ranking, 6) is ranking
    assert measure_depth("nDCG@10") == 10 and measure_depth("R@1000") == 100 and measure_depth("AP") == 100


def bm25_hits(searcher: Searcher, query: str) -> list[tuple[str, float]]:
    return [(hit.id, hit.score) for hit in searcher.search(query, 30, mode="bm25")]


def rebuilt_bm25_hits(docs: list[Document], folder, query: str) -> list[tuple[str, float]]:
    """BM25 (bm25s) built from scratch on ``docs``."""
    folder.mkdir()
    Bm25Side.build([doc.contents for doc in docs], folder)
    ranking = Bm25Side.open(folder, Bm25Settings()).search_texts([query], 30)[0]
    return [(docs[row].id, score) for row, score in zip(ranking.doc_indices, ranking.scores, strict=True)]


def assert_same_ranking(found: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [doc_id for doc_id, _ in found] == [doc_id for doc_id, _ in expected]
    np.testing.assert_allclose([score for _, score in found], [score for _, score in expected], rtol=1e-5)


def test_a_bm25_side_takes_live_updates_and_ranks_like_a_side_rebuilt_from_scratch(three_signal_index, tmp_path, splade, minilm):
    copy = tmp_path / "index"
    shutil.copytree(three_signal_index, copy)
    side = IndexFolder(copy).bm25
    for query in QUERIES:  # the query-time scorer computes what bm25s precomputed
        bm25s_scores = np.zeros(side.size)
        ranking = side.search_texts([query], side.size)[0]
        bm25s_scores[ranking.doc_indices] = ranking.scores
        np.testing.assert_allclose(LiveBm25.unchanged(side).scores(query), bm25s_scores, rtol=1e-5)

    service = LiveSearcher(LiveIndex(copy), splade, minilm)
    base_docs = list(IndexFolder(copy).docs)
    added = [
        Document("new-1", "xyzzy panels", "flutter of xyzzy panels at supersonic speed", {"lang": "en"}),
        Document("new-2", "transition", "boundary layer transition on a cone at high mach numbers", {"lang": "fr"}),
    ]
    replaced = Document(base_docs[3].id, "heat transfer", "heat transfer to blunt bodies in hypersonic flow")
    service.upsert(added)
    service.upsert([replaced])
    deleted = [doc.id for doc in base_docs[10:20]]
    for doc_id in deleted:
        assert service.delete(doc_id)
    now = [doc for doc in base_docs if doc.id not in deleted and doc.id != replaced.id] + added + [replaced]

    for number, query in enumerate(QUERIES):
        expected = rebuilt_bm25_hits(now, tmp_path / f"rebuilt-{number}", query)
        assert_same_ranking(bm25_hits(service.searcher(), query), expected)
        # A filter hides documents without changing the statistics they are scored with.
        filtered = bm25_hits(service.searcher(filter={"lang": "fr"}), query)
        assert filtered == [hit for hit in bm25_hits(service.searcher(), query) if hit[0] == "new-2"]
    assert bm25_hits(service.searcher(), "xyzzy")[0][0] == "new-1"  # a term the side was built without
    assert service.searcher().search("xyzzy panels", 3, mode="hybrid")[0].id == "new-1"

    before = {query: bm25_hits(service.searcher(), query) for query in QUERIES}
    service.live.close()
    reopened = LiveSearcher(LiveIndex(copy), splade, minilm)  # the log replayed
    assert {query: bm25_hits(reopened.searcher(), query) for query in QUERIES} == before
    assert reopened.live.compact()  # the side is built afresh from the documents as they are
    for query in QUERIES:
        assert_same_ranking(bm25_hits(reopened.searcher(), query), before[query])
    reopened.live.close()


def test_a_bm25_side_without_term_counts_asks_to_be_rebuilt_and_keeps_its_tuning(
    three_signal_index, small_dataset, tmp_path, splade, minilm
):
    copy = tmp_path / "index"
    shutil.copytree(three_signal_index, copy)
    for name in TermCounts.FILES:  # as lsr wrote the side before it kept term counts
        (copy / "bm25" / name).unlink()
    tuned = {"method": "convex", "weights": {"sparse": 0.2, "dense": 0.5, "bm25": 0.3}}
    write_manifest(copy, dataclasses.replace(IndexFolder(copy).manifest, fusion=tuned))
    service = LiveSearcher(LiveIndex(copy), splade, minilm)
    with pytest.raises(LiveUpdateError, match=r"BM25 side was built before .* `lsr index <dataset> --out .* --add-bm25`"):
        service.upsert([Document("new", "wing", "a wing")])
    service.live.close()

    add_bm25_side(copy, read_corpus(small_dataset))  # the same settings: the tuned fusion still applies
    assert IndexFolder(copy).manifest.fusion == tuned
    service = LiveSearcher(LiveIndex(copy), splade, minilm)
    service.upsert([Document("new", "zorblax", "a zorblax wing")])
    assert bm25_hits(service.searcher(), "zorblax wing")[0][0] == "new"
    service.live.close()


@pytest.mark.parametrize(
    "fusion",
    [
        Fusion("rrf", rrf_k=60, depth=20),
        Fusion("convex", normalization="minmax", depth=20, weights={"sparse": 0.2, "dense": 0.5, "bm25": 0.3}),
        Fusion("convex", normalization="zscore", depth=20, weights={"sparse": 0.1, "dense": 0.5, "bm25": 0.4}),
    ],
)
def test_a_deeper_search_keeps_the_top_of_a_depth_search(three_signal_searcher, fusion):
    """`lsr eval` asks for 1000 hits, a user for 10: both must see the same top. Each signal's candidates past the
    fusion depth count as missing in the fused score and only order the documents below."""
    deep = {signal: three_signal_searcher.rankings(QUERIES, signal, 60) for signal in SIGNALS}
    documents = len(three_signal_searcher.index.docs)
    for number in range(len(QUERIES)):
        rankings = {signal: deep[signal][number] for signal in deep}
        cut = {s: Ranking(r.doc_indices[: fusion.depth], r.scores[: fusion.depth]) for s, r in rankings.items()}
        shallow = fuse_signals(cut, fusion, 10, documents=documents)
        expected = reference_fuse(cut, fusion, 10, documents)
        deeper = fuse_signals(rankings, fusion, 60, documents=documents)
        assert deeper.doc_indices[:10].tolist() == shallow.doc_indices.tolist() == [row for row, _ in expected]
        np.testing.assert_allclose(deeper.scores[:10], [score for _, score in expected], rtol=1e-9, atol=1e-12)
        assert np.all(np.diff(deeper.scores) <= 1e-12)
        beyond = set(deeper.doc_indices.tolist()) - {row for r in cut.values() for row in r.doc_indices.tolist()}
        assert beyond and set(deeper.doc_indices[-len(beyond) :].tolist()) == beyond  # past depth everywhere: last


def test_dense_feedback_searches_dense_again_from_the_first_fused_pass(three_signal_searcher):
    """The dense query plus the mean stored vector of the first fused pass's top 3, searched again, then fused: written
    out with the index's own parts and the dict reference."""
    searcher, index = three_signal_searcher, three_signal_searcher.index
    fusion = Fusion("convex", normalization="zscore", weights={"sparse": 0.1, "dense": 0.6, "bm25": 0.3}, dense_feedback=3)
    documents, moved = len(index.docs), 0
    for query in QUERIES[:3]:
        first = {signal: three_signal_searcher.rankings([query], signal, fusion.depth)[0] for signal in SIGNALS}
        top = [row for row, _ in reference_fuse(first, fusion, 3, documents)]
        expanded = searcher.dense_encoder.encode_queries([query])[0] + index.dense.vectors()[top].mean(axis=0)
        again = index.dense.search(expanded[None, :], fusion.depth)[0]
        moved += again.doc_indices[:10].tolist() != first["dense"].doc_indices[:10].tolist()
        expected = reference_fuse({**first, "dense": again}, fusion, 10, documents)
        hits = searcher.search(query, 10, fusion=fusion)
        assert [hit.id for hit in hits] == [index.docs[row].id for row, _ in expected]
        np.testing.assert_allclose([hit.score for hit in hits], [score for _, score in expected], rtol=1e-6)
    assert moved  # the feedback changed some dense ranking, so the test tells the two apart
