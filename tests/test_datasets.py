import gzip
import json

import pytest

from lsr.datasets import read_corpus, read_evaluation_set, read_qrels, read_queries
from lsr.errors import DatasetError


def write_corpus(folder, lines, name="corpus.jsonl"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def test_reads_title_and_text_and_joins_them(tmp_path):
    folder = write_corpus(tmp_path / "d", ['{"_id": "a", "title": "T", "text": "body"}', '{"_id": 7, "text": "only text"}'])
    corpus = read_corpus(folder)
    assert [d.id for d in corpus.documents] == ["a", "7"]
    assert corpus.documents[0].contents == "T body"
    assert corpus.documents[1].contents == "only text"


def test_reads_gzipped_corpus_and_hashes_decompressed_bytes(tmp_path):
    plain = write_corpus(tmp_path / "plain", ['{"_id": "a", "text": "x"}'])
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    (zipped / "corpus.jsonl.gz").write_bytes(gzip.compress((plain / "corpus.jsonl").read_bytes()))
    assert read_corpus(zipped).sha256 == read_corpus(plain).sha256


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"_id": "a", "text": "x"}', "{not json"], "corpus.jsonl:2: malformed JSON"),
        (['{"_id": "a", "text": "x"}', "", '{"_id": "a", "text": "y"}'], "corpus.jsonl:3: duplicate id 'a' (first seen on line 1)"),
        (['{"text": "x"}'], "corpus.jsonl:1: missing field '_id'"),
        (['{"_id": "a"}'], "corpus.jsonl:1: missing field 'text'"),
        (['{"_id": "a", "text": 3.5}'], "corpus.jsonl:1: field 'text' must be a string"),
        (["[1, 2]"], "corpus.jsonl:1: expected a JSON object"),
        (["", "  "], "the corpus is empty"),
    ],
)
def test_malformed_corpus_names_file_and_line(tmp_path, lines, message):
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_corpus(write_corpus(tmp_path / "d", lines))


def test_empty_documents_are_kept(tmp_path):
    corpus = read_corpus(write_corpus(tmp_path / "d", ['{"_id": "a", "title": "", "text": ""}', '{"_id": "b", "text": "x"}']))
    assert len(corpus) == 2


def test_missing_or_wrong_folders_are_reported(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_corpus(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is not a folder"):
        read_corpus(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no corpus.jsonl or corpus.jsonl.gz"):
        read_corpus(tmp_path / "empty")


def test_qrels_errors_list_available_splits_and_bad_rows(tmp_path):
    folder = tmp_path / "d"
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n")
    with pytest.raises(DatasetError, match=r"test.tsv:3: expected 3 tab-separated columns"):
        read_qrels(folder, "test")
    with pytest.raises(DatasetError, match=r"no qrels for split 'dev' \(available splits: test\)"):
        read_qrels(folder, "dev")


def test_evaluation_set_refuses_judged_queries_without_text(tmp_path):
    folder = tmp_path / "d"
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\nq2\td1\t1\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "hello"}) + "\n")
    with pytest.raises(DatasetError, match="judges 1 queries not in the queries file: q2"):
        read_evaluation_set(folder, "test")


def test_real_scifact_counts_match_its_source_notes():
    from conftest import shared_dataset

    folder = shared_dataset("scifact")
    assert len(read_corpus(folder)) == 5183
    evaluation = read_evaluation_set(folder, "test")
    assert len(evaluation.queries) == 300
    assert sum(len(docs) for docs in evaluation.qrels.values()) == 339
    assert len(read_queries(folder)) == 1109
