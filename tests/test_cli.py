"""The `lsr` command as a user runs it: a real process, one-line errors, no tracebacks."""

import subprocess
import sys

import pytest


def lsr(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lsr", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(result, message):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr


def test_index_of_a_missing_folder(tmp_path):
    assert_one_line_error(lsr("index", str(tmp_path / "nope"), "--out", str(tmp_path / "i")), "does not exist")


def test_index_of_a_malformed_corpus_names_the_line(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n')
    result = lsr("index", str(tmp_path / "d"), "--out", str(tmp_path / "i"))
    assert_one_line_error(result, "corpus.jsonl:2: malformed JSON")


def test_index_with_an_unknown_encoder(tmp_path, small_dataset):
    result = lsr("index", str(small_dataset), "--out", str(tmp_path / "i"), "--encoder", "nobody/nothing-here")
    assert_one_line_error(result, "unknown encoder 'nobody/nothing-here'")
    assert not (tmp_path / "i").exists()


def test_index_of_a_corpus_with_a_repeated_id_keeps_one_copy_when_asked(tmp_path):
    (tmp_path / "d").mkdir()
    lines = ['{"_id": "a", "text": "first"}', '{"_id": "b", "text": "other"}', '{"_id": "a", "text": "second"}']
    (tmp_path / "d" / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    refused = lsr("index", str(tmp_path / "d"), "--out", str(tmp_path / "i"))
    assert_one_line_error(refused, "corpus.jsonl:3: duplicate id 'a' (first seen on line 1); to keep one copy")
    kept = lsr("index", str(tmp_path / "d"), "--out", str(tmp_path / "i"), "--duplicates", "last")
    assert kept.returncode == 0, kept.stderr
    assert "1 ids repeat; kept the last text of each, dropped 1 copies: a" in kept.stderr
    docs = (tmp_path / "i" / "docs.jsonl").read_text()
    assert '"second"' in docs and '"first"' not in docs


def test_index_on_a_missing_gpu(tmp_path, small_dataset):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = lsr("index", str(small_dataset), "--out", str(tmp_path / "i"), "--device", "cuda")
    assert_one_line_error(result, "torch sees no CUDA device")
    assert not (tmp_path / "i").exists()


@pytest.mark.parametrize(("k", "message"), [("0", "k must be between 1 and 10000"), ("20000", "k must be between 1")])
def test_search_with_bad_k(small_index, k, message):
    assert_one_line_error(lsr("search", str(small_index), "wing", "-k", k), message)


def test_search_with_a_blank_query(small_index):
    assert_one_line_error(lsr("search", str(small_index), "   "), "the query is empty")


def test_search_prints_ranked_hits(small_index, small_searcher):
    result = lsr("search", str(small_index), "heat transfer", "-k", "3")
    assert result.returncode == 0, result.stderr
    for hit in small_searcher.search("heat transfer", 3):
        assert f" {hit.id} " in result.stdout


def test_eval_on_a_missing_split(small_index, small_dataset):
    result = lsr("eval", str(small_index), str(small_dataset), "--split", "dev")
    assert_one_line_error(result, "no qrels for split 'dev' (available splits: test)")


def test_eval_detects_the_msmarco_layout_and_scores_it_like_beir(tmp_path, small_index, small_dataset):
    import json

    from test_datasets import as_msmarco

    msmarco = as_msmarco(small_dataset, tmp_path / "msmarco")
    measures = {}
    for name, folder in (("beir", small_dataset), ("msmarco", msmarco)):
        result = lsr("eval", str(small_index), str(folder), "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        measures[name] = json.loads((tmp_path / name / "report.json").read_text())["measures"]
    assert measures["beir"] == measures["msmarco"]
    assert measures["beir"]["nDCG@10"] > 0
