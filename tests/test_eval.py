import ir_measures
import pytest

from lsr.errors import LsrError
from lsr.eval import run_queries, score_run
from lsr.runs import write_run


def test_scores_equal_ir_measures_when_every_query_has_results():
    qrels = {"q1": {"d1": 1, "d3": 2}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d1": 2.0, "d2": 1.0}}
    names = ["nDCG@10", "RR@10", "R@100"]
    expected = ir_measures.calc_aggregate([ir_measures.parse_measure(n) for n in names], qrels, run)
    scores = score_run(qrels, run, names)
    for name in names:
        assert scores.aggregate[name] == pytest.approx(expected[ir_measures.parse_measure(name)])


def test_queries_without_results_count_as_zero():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    scores = score_run(qrels, {"q1": {"d1": 1.0}, "q2": {}}, ["RR@10"])
    assert scores.aggregate["RR@10"] == pytest.approx(0.5)
    assert scores.per_query["q2"]["RR@10"] == 0.0


def test_unknown_measure_is_a_user_error():
    with pytest.raises(LsrError, match="unknown measure 'nDCG@ten'"):
        score_run({"q": {"d": 1}}, {"q": {"d": 1.0}}, ["nDCG@ten"])


def test_identical_ids_are_dropped_by_default_and_kept_on_request(small_searcher):
    # A query whose id is a document id, with that document's text: its own document ranks first.
    doc = small_searcher.index.docs[7]
    queries = {doc.id: doc.title}
    assert small_searcher.search(doc.title, 1)[0].id == doc.id
    dropped = run_queries(small_searcher, queries, k=10, progress=False)[doc.id]
    kept = run_queries(small_searcher, queries, k=10, remove_identical_ids=False, progress=False)[doc.id]
    assert doc.id not in dropped and len(dropped) == 10
    assert next(iter(kept)) == doc.id and len(kept) == 10
    assert list(dropped)[:9] == [d for d in kept if d != doc.id]  # same order, own doc removed, one more appended


def test_trec_run_file_format(tmp_path):
    write_run({"q1": {"d2": 0.5, "d1": 1.25}}, tmp_path / "run.trec", tag="sys")
    assert (tmp_path / "run.trec").read_text().splitlines() == ["q1 Q0 d1 1 1.250000 sys", "q1 Q0 d2 2 0.500000 sys"]
    assert len(list(ir_measures.read_trec_run(str(tmp_path / "run.trec")))) == 2


def test_an_index_of_another_corpus_is_refused_and_missing_judged_documents_are_counted(small_searcher):
    from lsr.datasets import EvaluationSet
    from lsr.eval import evaluate
    from lsr.eval.tuning import tune_fusion

    foreign = EvaluationSet(queries={"q": "flow"}, qrels={"q": {"not-in-the-index": 1}}, name="other", split="train")
    for run_it in (lambda: evaluate(small_searcher, foreign), lambda: tune_fusion(small_searcher, foreign, "train")):
        with pytest.raises(LsrError, match="holds none of the 1 documents that other train judges relevant"):
            run_it()
    held = small_searcher.index.docs[0].id
    qrels = {"q": {held: 1, "not-in-the-index": 2, "judged-not-relevant": 0}}
    partly = EvaluationSet(queries={"q": "flow"}, qrels=qrels, name="other", split="test")
    assert evaluate(small_searcher, partly).report.details["judged_relevant_missing"] == 1
