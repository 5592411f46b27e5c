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


@pytest.mark.parametrize(("duplicates", "kept"), [("first", "x"), ("last", "z")])
def test_repeated_ids_keep_one_copy_when_asked(tmp_path, duplicates, kept):
    lines = ['{"_id": "a", "text": "x"}', '{"_id": "b", "text": "y"}', '{"_id": "a", "text": "z"}']
    corpus = read_corpus(write_corpus(tmp_path, lines), duplicates=duplicates)
    assert [(doc.id, doc.text) for doc in corpus.documents] == [("a", kept), ("b", "y")]
    assert corpus.duplicates_dropped == ["a"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"_id": "a", "text": "x"}', "{not json"], "corpus.jsonl:2: malformed JSON"),
        (
            ['{"_id": "a", "text": "x"}', "", '{"_id": "a", "text": "y"}'],
            "corpus.jsonl:3: duplicate id 'a' (first seen on line 1)",
        ),
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
    with pytest.raises(DatasetError, match="neither a BEIR folder .* nor an MS MARCO folder"):
        read_corpus(tmp_path / "empty")
    (tmp_path / "queries-only").mkdir()
    (tmp_path / "queries-only" / "queries.jsonl").write_text('{"_id": "q", "text": "x"}\n')
    with pytest.raises(DatasetError, match="no corpus.jsonl or corpus.jsonl.gz"):
        read_corpus(tmp_path / "queries-only")


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


def as_msmarco(beir_folder, target, split="test"):
    """The same real data in the MS MARCO / TREC layout."""
    corpus = read_corpus(beir_folder)
    evaluation = read_evaluation_set(beir_folder, split)
    target.mkdir()
    (target / "collection.tsv").write_text("".join(f"{d.id}\t{d.title}\t{d.text}\n" for d in corpus.documents))
    (target / f"queries.{split}.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in evaluation.queries.items()))
    lines = [f"{q} 0 {d} {r}\n" for q, docs in evaluation.qrels.items() for d, r in docs.items()]
    (target / f"qrels.{split}.txt").write_text("".join(lines))
    return target


def test_msmarco_layout_reads_the_same_records_as_beir(tmp_path, small_dataset):
    msmarco = as_msmarco(small_dataset, tmp_path / "msmarco")
    assert read_corpus(msmarco).documents == read_corpus(small_dataset).documents
    as_tsv, as_beir = read_evaluation_set(msmarco, "test"), read_evaluation_set(small_dataset, "test")
    assert (as_tsv.queries, as_tsv.qrels, as_tsv.split) == (as_beir.queries, as_beir.qrels, as_beir.split)
    from lsr.datasets import available_splits

    assert available_splits(msmarco) == ["test"]


def test_msmarco_two_column_collection_and_plain_queries_file(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "collection.tsv").write_text("0\tfirst passage\n1\tsecond passage\n")
    (folder / "queries.tsv").write_text("q1\tsecond\n")
    (folder / "qrels.dev.tsv").write_text("q1\t0\t1\t1\n")
    assert read_corpus(folder).documents[1].contents == "second passage"
    assert read_evaluation_set(folder, "dev").qrels == {"q1": {"1": 1}}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("collection.tsv", "0\tok\n1\n", "collection.tsv:2: expected id<TAB>text or id<TAB>title<TAB>text, found 1"),
        ("collection.tsv", "0\ta\n0\tb\n", "collection.tsv:2: duplicate id '0'"),
        ("qrels.dev.txt", "q1 0 d1\n", "qrels.dev.txt:1: expected 4 TREC qrels columns"),
    ],
)
def test_malformed_msmarco_files_name_file_and_line(tmp_path, name, content, message):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "collection.tsv").write_text("0\tpassage\n")
    (folder / name).write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_corpus(folder) if name == "collection.tsv" else read_qrels(folder, "dev")
