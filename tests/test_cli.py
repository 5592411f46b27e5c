"""The `lsr` command as a user runs it: a real process, one-line errors, no tracebacks."""

import json
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


# `lsr search` and `lsr eval` see what a server of the index sees: its live updates (issue 16, item 7).

LIVE_QUERY = "ornithopter heat transfer"
LIVE_ID = "live/ornithopter"  # an id with a slash, as BEIR allows


@pytest.fixture
def live_index(tmp_path, small_index, small_searcher, splade):
    """A copy of the small index with an upsert and a delete logged by a writer that still holds the write lock
    (as a running server does); yields the folder, the deleted id (the query's first hit before) and the writer."""
    import shutil

    from lsr.datasets import Document
    from lsr.indexer.live import LiveIndex
    from lsr.retrieval.search import LiveSearcher

    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    deleted = small_searcher.search(LIVE_QUERY, 1)[0].id
    writer = LiveSearcher(LiveIndex(index), splade)
    writer.upsert([Document(LIVE_ID, "ornithopter heat transfer", "heat transfer to an ornithopter wing")])
    assert writer.delete(deleted)
    yield index, deleted, writer
    writer.live.close()


def table_ids(stdout: str) -> list[str]:
    """The doc id column of `lsr search`'s table, in rank order."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in stdout.splitlines() if "│" in line]
    return [row[1] for row in rows if len(row) == 4 and row[0].isdigit()]


def test_search_sees_live_updates_without_touching_the_writers_lock_or_log(live_index):
    from lsr.indexer.live import WriteAheadLog

    index, deleted, writer = live_index
    log = index / "live" / "wal.jsonl"
    with log.open("ab") as handle:  # a batch the writer is still writing: only the writer may cut it
        handle.write(b'{"batch": [{"op": "delete", "id": "')
    logged = log.read_bytes()
    result = lsr("search", str(index), LIVE_QUERY, "-k", "5")
    assert result.returncode == 0, result.stderr
    ids = table_ids(result.stdout)
    assert ids[0] == LIVE_ID and deleted not in ids and len(ids) == 5, result.stdout
    assert log.read_bytes() == logged
    assert writer.live.writable and not WriteAheadLog(index).lock()  # the writer still holds the lock


def test_eval_sees_live_updates(live_index, small_dataset, tmp_path):
    index, deleted, _ = live_index
    result = lsr("eval", str(index), str(small_dataset), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    ranked = {line.split()[2] for line in (tmp_path / "report" / "run.trec").read_text().splitlines()}
    assert LIVE_ID in ranked and deleted not in ranked


def test_report_sees_live_updates(live_index, small_dataset, tmp_path):
    index, deleted, _ = live_index
    out = tmp_path / "comparison"
    result = lsr("report", "-s", f"live={index}", "-d", str(small_dataset), "-o", str(out), "--latency-queries", "0")
    assert result.returncode == 0, result.stderr
    run = out / "runs" / small_dataset.resolve().name / "live.trec"
    ranked = {line.split()[2] for line in run.read_text().splitlines()}
    assert LIVE_ID in ranked and deleted not in ranked


def test_a_read_only_snapshot_replays_the_log_and_refuses_writes(live_index, splade):
    from lsr.indexer.live import LiveIndex, WriterLockError, read_snapshot
    from lsr.retrieval.search import Feedback, LiveSearcher

    index, deleted, writer = live_index
    view = read_snapshot(index)
    assert view.row(LIVE_ID) is not None and view.row(deleted) is None
    reader = LiveSearcher(LiveIndex(index, read_only=True), splade, feedback=Feedback())
    assert reader.searcher().feedback == Feedback()  # what `lsr search --feedback` asks for reaches the searcher
    ids = [hit.id for hit in reader.searcher().search(LIVE_QUERY, 10)]  # feedback reads the delta's vectors too
    assert LIVE_ID in ids and deleted not in ids, ids
    assert not reader.live.writable and writer.live.writable
    with pytest.raises(WriterLockError, match="read-only"):
        reader.delete(LIVE_ID)


def test_an_engine_without_live_updates_is_searched_as_its_folder(tmp_path, small_index):
    import shutil

    from lsr.indexer import IndexFolder, reindex
    from lsr.indexer.live import LiveIndex, read_snapshot

    copy = tmp_path / "memory"
    shutil.copytree(small_index, copy, ignore=shutil.ignore_patterns("live"))
    assert type(read_snapshot(copy)) is IndexFolder  # no log: the folder, as before
    impact = tmp_path / "impact"
    reindex(copy, impact, "impact-ordered")
    LiveIndex(impact).close()  # a server opened it: an empty log exists, but the engine takes no updates
    assert (impact / "live" / "wal.jsonl").is_file()
    assert type(read_snapshot(impact)) is IndexFolder


def test_a_reader_racing_a_compaction_never_pairs_the_old_folder_with_the_new_log(live_index, monkeypatch):
    from lsr.indexer import live as live_module

    index, deleted, writer = live_index
    replay = live_module.WriteAheadLog.replay
    compacted = []

    def compact_first(log):
        if not compacted:  # between the reader's reading of the folder and of its log
            compacted.append(None)  # first: the compaction replays the new folder's log too
            compacted[0] = writer.live.compact()
        return replay(log)

    monkeypatch.setattr(live_module.WriteAheadLog, "replay", compact_first)
    view = live_module.LiveIndex(index, read_only=True).view
    assert compacted == [True] and not view.delta.docs  # read again: the compacted folder, with its empty log
    assert view.row(LIVE_ID) is not None and view.row(deleted) is None


def test_the_commands_take_an_exponent_and_refuse_one_that_cannot_apply(tmp_path, small_dataset, small_index):
    result = lsr("index", str(small_dataset), "--out", str(small_index), "--add-bm25", "--query-idf", "1")
    assert_one_line_error(result, "--query-idf is recorded when a sparse index is built")
    assert lsr("search", str(small_index), "boundary layer", "--query-idf", "-1").returncode == 2
    out = tmp_path / "index"
    result = lsr("index", str(small_dataset), "--out", str(out), "--query-idf", "0")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["query_idf"] == 0.0
    plain = lsr("search", str(out), "boundary layer transition", "-k", "5")
    weighted = lsr("search", str(out), "boundary layer transition", "-k", "5", "--query-idf", "0.5")
    assert plain.returncode == weighted.returncode == 0 and plain.stdout != weighted.stdout
    assert lsr("search", str(out), "boundary layer transition", "-k", "5", "--query-idf", "0").stdout == plain.stdout
