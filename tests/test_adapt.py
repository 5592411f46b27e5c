"""Adaptation without qrels: pseudo-queries from real documents, and `lsr adapt` distilling an index's hybrid into its
sparse encoder with the real splade-tiny and a real BM25 side."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from lsr.datasets import Document, read_corpus
from lsr.errors import LsrError
from lsr.indexer.live import Delete, LiveIndex
from lsr.retrieval.training import PseudoQuerySettings, TrainingData, learn_from_other_documents, pseudo_queries
from lsr.retrieval.training.pseudo_queries import QUERY_ID_PREFIX, candidate_queries


def lsr(*args):
    return subprocess.run([sys.executable, "-m", "lsr", *args], capture_output=True, text=True, timeout=600)


def test_each_pseudo_query_is_a_span_of_its_source_document(small_dataset):
    documents = read_corpus(small_dataset).documents
    settings = PseudoQuerySettings(count=50, min_words=4, max_words=12, per_document=1, seed=3)
    data = pseudo_queries(documents, settings)
    by_id = {doc.id: doc for doc in documents}
    assert len(data.queries) == 50 and set(data.queries) == set(data.positives)
    assert data.documents == {doc.id: doc.contents for doc in documents}
    for query_id, text in data.queries.items():
        assert query_id.startswith(QUERY_ID_PREFIX) and query_id not in by_id
        [source] = data.positives[query_id]
        words = text.split()
        assert 4 <= len(words) <= 12
        assert " ".join(words) in " ".join(by_id[source].contents.split())
    assert len({source for [source] in data.positives.values()}) == 50  # one query per document
    assert pseudo_queries(documents, settings).queries == data.queries  # the seed decides
    assert pseudo_queries(documents, PseudoQuerySettings(count=50, seed=4)).queries != data.queries


def test_several_pseudo_queries_per_document_come_from_different_sentences(small_dataset):
    documents = read_corpus(small_dataset).documents
    settings = PseudoQuerySettings(count=60, min_words=4, max_words=1000, per_document=3, seed=1)
    data = pseudo_queries(documents, settings)
    assert len(data.queries) == 60
    by_source: dict[str, list[str]] = {}
    for query_id, [source] in data.positives.items():
        by_source.setdefault(source, []).append(data.queries[query_id])
    assert max(len(texts) for texts in by_source.values()) == 3 and len(by_source) < 60
    for source, texts in by_source.items():
        assert len(set(texts)) == len(texts)  # no sentence twice (each is whole: none has 1000 words)
        sentences = {" ".join(words) for words in candidate_queries(next(d for d in documents if d.id == source), 4)}
        assert all(text in sentences for text in texts)
    one_each = pseudo_queries(documents, PseudoQuerySettings(count=60, min_words=4, max_words=1000, per_document=1, seed=1))
    assert len({source for [source] in one_each.positives.values()}) == 60
    with pytest.raises(LsrError, match="per document must be positive"):
        PseudoQuerySettings(per_document=0)


def test_uniform_lengths_cut_windows_of_every_length_from_the_same_sentences(small_dataset):
    documents = read_corpus(small_dataset).documents
    by_id = {doc.id: doc for doc in documents}
    longest = pseudo_queries(documents, PseudoQuerySettings(count=200, min_words=3, max_words=12, seed=2))
    uniform = pseudo_queries(documents, PseudoQuerySettings(count=200, min_words=3, max_words=12, length="uniform", seed=2))
    assert len(uniform.queries) == 200
    longest_lengths = [len(text.split()) for text in longest.queries.values()]
    uniform_lengths = [len(text.split()) for text in uniform.queries.values()]
    assert min(uniform_lengths) == 3 and max(uniform_lengths) == 12 and set(range(3, 13)) <= set(uniform_lengths)
    assert sum(uniform_lengths) < sum(longest_lengths)  # drawn lengths, not the sentence up to the longest
    for query_id, text in uniform.queries.items():
        [source] = uniform.positives[query_id]
        assert text in " ".join(by_id[source].contents.split())
    with pytest.raises(LsrError, match="one of longest, uniform"):
        PseudoQuerySettings(length="short")


def test_short_spans_are_not_queries():
    document = Document("d", "A title of five words", "Results. The intervention lowered blood pressure in adults! Ok?")
    assert candidate_queries(document, 4) == [
        ["A", "title", "of", "five", "words"],
        ["The", "intervention", "lowered", "blood", "pressure", "in", "adults!"],
    ]
    with pytest.raises(LsrError, match="no document has a title or sentence of 4"):
        pseudo_queries([Document("d", "", "Too short. Really.")], PseudoQuerySettings(count=1))
    with pytest.raises(LsrError, match="min words ≤ max words"):
        PseudoQuerySettings(min_words=10, max_words=5)


def test_training_learns_the_teachers_ranking_of_the_other_documents():
    data = TrainingData(
        queries={"pseudo-0": "a sentence", "pseudo-1": "another", "pseudo-2": "alone"},
        documents={"a": "A", "b": "B", "c": "C"},
        positives={"pseudo-0": ["a"], "pseudo-1": ["b"], "pseudo-2": ["c"]},
    )
    teacher = {"pseudo-0": {"a": 9.0, "c": 2.0, "b": 3.0}, "pseudo-1": {"b": 5.0, "a": 1.0}, "pseudo-2": {"c": 4.0}}
    others = learn_from_other_documents(data, teacher)
    assert others == {"pseudo-0": {"c": 2.0, "b": 3.0}, "pseudo-1": {"a": 1.0}}
    assert data.positives == {"pseudo-0": ["b"], "pseudo-1": ["a"]} and set(data.queries) == {"pseudo-0", "pseudo-1"}
    with pytest.raises(LsrError, match="ranked no document besides"):
        learn_from_other_documents(TrainingData({"pseudo-0": "q"}, {"a": "A"}, {"pseudo-0": ["a"]}), {"pseudo-0": {"a": 1.0}})


@pytest.mark.slow
def test_adapt_distills_the_hybrid_into_the_sparse_encoder_without_qrels(tmp_path, small_dataset):
    index, model = tmp_path / "index", tmp_path / "adapted"
    sparse_only = tmp_path / "sparse-only"
    built = lsr("index", str(small_dataset), "--out", str(index), "--bm25", "--doc-max-length", "64")
    assert built.returncode == 0, built.stderr
    # Deleted live (as through the API): adaptation learns from the documents a server of the index searches.
    live = LiveIndex(index)
    live.write([Delete(doc.id) for doc in read_corpus(small_dataset).documents[:30]])
    live.close()

    adapted = lsr(
        "adapt",
        str(index),
        "--out",
        str(model),
        "--queries",
        "500",
        "--queries-per-document",
        "2",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--query-min-words",
        "2",
        "--query-max-words",
        "6",
    )
    assert adapted.returncode == 0, adapted.stderr
    # The 90 documents left give at most 180 pseudo-queries, and the user is told so rather than silently getting fewer.
    made = re.search(r"warning: 500 pseudo-queries asked, (\d+) made: at most 2 per document", adapted.stdout)
    assert made is not None and 90 < int(made.group(1)) <= 180, adapted.stdout
    assert f"{made.group(1)} pseudo-queries (the teacher ranks their own document first for" in adapted.stdout
    summary = json.loads((model / "training.json").read_text())
    config = summary["config"]
    assert 0 < summary["training_queries"] <= int(made.group(1))
    assert (config["distillation"], config["ranking_weight"], config["base"]) == ("kl", 0.0, "splade-tiny")
    assert config["teacher_scale"] > 0
    log = [json.loads(line) for line in (model / "training_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3] and all(entry["distillation"] > 0 for entry in log)

    reindexed = lsr("index", str(small_dataset), "--out", str(tmp_path / "adapted-index"), "--encoder", str(model))
    assert reindexed.returncode == 0, reindexed.stderr

    assert lsr("index", str(small_dataset), "--out", str(sparse_only), "--doc-max-length", "64").returncode == 0
    refused = lsr("adapt", str(sparse_only), "--out", str(tmp_path / "never"))
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("error:") and "second signal" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "never").exists()
    inverted = lsr("adapt", str(index), "--out", str(tmp_path / "never"), "--query-min-words", "6", "--query-max-words", "3")
    assert inverted.returncode == 2 and "min words ≤ max words, got 6 and 3" in inverted.stderr
    assert "Traceback" not in inverted.stderr and not (tmp_path / "never").exists()
