"""Issue 16: no acknowledged write lost, no corrupt index published, no crash on a damaged folder.

Real processes throughout where the point is crashes (SIGKILL) or concurrency (two `lsr` processes at once),
over the real small Cranfield index and the real splade-tiny; nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import free_port, start_server
from fastapi.testclient import TestClient

from lsr.api.app import create_app
from lsr.api.settings import Settings
from lsr.datasets import read_corpus
from lsr.errors import IndexFolderError
from lsr.indexer import IndexFolder, build_index, index_folder
from lsr.indexer.index_folder import is_lsr_index, publish
from lsr.indexer.live import LiveIndex
from lsr.retrieval.search import LiveSearcher

API_KEY = "reliability-key"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LSR_API_KEY": API_KEY}


def run_lsr(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lsr", *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The CLI's contract for a user-facing error: exit code 2, one `error:` line on stderr."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


def upsert(port: int, prefix: str, count: int) -> list[str]:
    """Acknowledged ids only: each batch is answered once it is durable."""
    acknowledged = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": API_KEY}, timeout=60) as client:
        for number in range(count):
            doc = {"id": f"{prefix}-{number}", "title": f"ornithopter {prefix} {number}", "text": "flapping wing lift"}
            response = client.post("/documents", json={"documents": [doc]})
            assert response.status_code == 200, response.text
            acknowledged.extend(response.json()["upserted"])
    return acknowledged


def missing_documents(port: int, ids: list[str]) -> list[str]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        return [doc_id for doc_id in ids if client.get(f"/documents/{doc_id}").status_code != 200]


# 1. Offline compaction takes the write lock a serving process holds.


@pytest.mark.slow
def test_offline_compaction_is_refused_while_a_server_writes_and_no_acknowledged_write_is_lost(tmp_path, small_index):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    port = free_port()
    server = start_server(index, port, ENV, timeout_s=180)
    try:
        acknowledged = upsert(port, "before", 3)
        refused = run_lsr("compact", index)
        acknowledged += upsert(port, "after", 3)  # before the fix these went to the log of the folder moved aside
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert "stop that process" in one_line_error(refused)

    compacted = run_lsr("compact", index)  # the killed server's lock died with it
    assert compacted.returncode == 0, compacted.stderr
    assert IndexFolder(index).manifest.doc_count == 120 + len(acknowledged)
    restarted = start_server(index, port, ENV, timeout_s=180)
    try:
        assert not missing_documents(port, acknowledged)
    finally:
        restarted.terminate()
        restarted.wait(30)


def test_a_second_server_on_the_same_index_serves_reads_and_answers_writes_409(tmp_path, small_index, splade):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    first = LiveSearcher(LiveIndex(index), splade)  # takes the write lock when it opens, before any write
    try:
        second = LiveSearcher(LiveIndex(index), splade)
        assert first.live.writable and not second.live.writable
        with TestClient(create_app(second, Settings(api_key=API_KEY))) as client:
            doc = {"id": "x", "title": "wing"}
            response = client.post("/documents", json={"documents": [doc]}, headers={"X-API-Key": API_KEY})
            assert response.status_code == 409 and "locked by another process" in response.json()["detail"]
            assert str(tmp_path) not in response.json()["detail"]
            assert client.post("/search", json={"query": "wing", "k": 3}).status_code == 200
    finally:
        first.live.close()


# 2. Two builds of one --out: one wins, the other fails at once; the published index is whole.


@pytest.mark.slow
def test_two_concurrent_resumed_builds_of_one_index_cannot_both_publish(tmp_path, small_dataset, small_index):
    out = tmp_path / "index"
    command = [
        sys.executable,
        "-m",
        "lsr",
        "index",
        str(small_dataset),
        "--out",
        str(out),
        "--resume",
        "--overwrite",
        "--chunk-size",
        "50",
        "--precision",
        "fp32",  # as the small_index fixture it is compared with
    ]
    first = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = Path(f"{out}.partial") / "state.json"
    deadline = time.monotonic() + 180
    while not state.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.is_file(), "the first build never started"
    first.send_signal(signal.SIGSTOP)  # mid-build, holding <out>.partial: the second one runs meanwhile
    try:
        second = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert "being built by another process" in one_line_error(second)
    built = IndexFolder(out)
    assert built.manifest.doc_count == 120
    assert (built.vectors != IndexFolder(small_index).vectors).nnz == 0
    assert not Path(f"{out}.partial").exists()


# 3. --overwrite replaces lsr indexes only.


@pytest.fixture(scope="module")
def tiny_corpus(small_dataset):
    corpus = read_corpus(small_dataset)
    corpus.documents[:] = corpus.documents[:10]
    return corpus


def test_overwrite_never_deletes_a_folder_that_is_not_an_lsr_index(tmp_path, tiny_corpus, splade):
    app = tmp_path / "webapp"
    app.mkdir()
    (app / "manifest.json").write_text(json.dumps({"name": "my web app", "version": "1.0"}))
    (app / "index.html").write_text("<h1>years of work</h1>")
    with pytest.raises(IndexFolderError, match="is not an lsr index; refusing to overwrite"):
        build_index(tiny_corpus, splade, app, overwrite=True, progress=False)
    assert (app / "index.html").read_text() == "<h1>years of work</h1>"

    lookalike = tmp_path / "lookalike"  # the lsr format, but not the parts of an index: not ours to delete
    lookalike.mkdir()
    (lookalike / "manifest.json").write_text(json.dumps({"format": "lsr-index", "format_version": 1}))
    (lookalike / "notes.txt").write_text("keep")
    with pytest.raises(IndexFolderError, match="is not an lsr index"):
        build_index(tiny_corpus, splade, lookalike, overwrite=True, progress=False)
    assert (lookalike / "notes.txt").exists()

    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    with pytest.raises(IndexFolderError, match="is a file"):
        build_index(tiny_corpus, splade, a_file, overwrite=True, progress=False)
    assert a_file.read_text() == "not a folder"


def test_new_manifests_name_the_format_and_older_ones_still_open_and_overwrite(tmp_path, small_index, tiny_corpus, splade):
    assert json.loads((small_index / "manifest.json").read_text())["format"] == "lsr-index"
    older = tmp_path / "older"
    shutil.copytree(small_index, older)
    manifest = json.loads((older / "manifest.json").read_text())
    del manifest["format"]
    (older / "manifest.json").write_text(json.dumps(manifest))
    assert is_lsr_index(older) and IndexFolder(older).manifest.doc_count == 120
    build_index(tiny_corpus, splade, older, overwrite=True, progress=False)
    assert IndexFolder(older).manifest.doc_count == 10


# 4. A publish interrupted by SIGKILL between its two renames is recovered by whoever opens the index next.

CRASH_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path

rename = Path.rename

def rename_then_die(self, target):
    moved = rename(self, target)
    if str(target).endswith(".previous"):  # publish's first rename: the old index moved aside, the new one not in
        os.kill(os.getpid(), signal.SIGKILL)
    return moved

Path.rename = rename_then_die
sys.argv = ["lsr", *sys.argv[1:]]
from lsr.cli import main
main()
"""


def crash_between_publish_renames(dataset: Path, out: Path) -> None:
    """A real `lsr index --overwrite` killed with SIGKILL right after publish moved the old index aside."""
    command = [
        sys.executable,
        "-c",
        CRASH_BETWEEN_RENAMES,
        "index",
        str(dataset),
        "--out",
        str(out),
        "--overwrite",
        "--chunk-size",
        "50",
    ]
    crashed = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert not out.exists() and is_lsr_index(Path(f"{out}.previous"))


@pytest.mark.slow
@pytest.mark.parametrize("opener", ["search", "serve"])
def test_an_index_left_at_previous_by_a_killed_publish_is_recovered_on_open(tmp_path, small_dataset, small_index, opener):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    crash_between_publish_renames(small_dataset, index)
    if opener == "search":
        result = run_lsr("search", index, "wing flutter", "-k", "3")
        assert result.returncode == 0 and "flutter" in result.stdout, result.stderr[-2000:]
    else:
        port = free_port()
        server = start_server(index, port, ENV, timeout_s=180)
        try:
            assert httpx.get(f"http://127.0.0.1:{port}/health").json()["index"]["doc_count"] == 120
        finally:
            server.terminate()
            server.wait(30)
    assert IndexFolder(index).manifest.doc_count == 120
    assert not Path(f"{index}.previous").exists()


def test_leftovers_beside_an_index_are_cleaned_or_reported(tmp_path, small_index, caplog):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    shutil.copytree(small_index, f"{index}.previous")  # a publish finished both renames, then crashed
    Path(f"{index}.compacting").mkdir()  # a compaction crashed while writing
    (Path(f"{index}.compacting") / "docs.jsonl").write_text("")
    Path(f"{index}.partial", "chunks").mkdir(parents=True)  # an interrupted build: resumable, so kept
    with caplog.at_level(logging.WARNING):
        IndexFolder(index)
    assert not Path(f"{index}.previous").exists() and not Path(f"{index}.compacting").exists()
    assert Path(f"{index}.partial").exists()
    assert "--resume" in caplog.text and "index.partial" in caplog.text


def test_a_replaced_index_half_deleted_by_a_crash_is_removed_on_open(tmp_path, small_index, monkeypatch, caplog):
    """A crash part-way through deleting the index a publish replaced leaves a folder that is no index any more."""
    index, staging = tmp_path / "index", tmp_path / "index.staging"
    shutil.copytree(small_index, index)
    shutil.copytree(small_index, staging)
    delete = shutil.rmtree

    def crash_part_way(folder, *args, **kwargs):
        if Path(folder).name == "index.discarded" and Path(folder).exists():
            (Path(folder) / "manifest.json").unlink()
            raise OSError("killed while deleting")
        delete(folder, *args, **kwargs)

    monkeypatch.setattr(index_folder.shutil, "rmtree", crash_part_way)
    with pytest.raises(OSError, match="killed while deleting"):
        publish(staging, index)
    monkeypatch.undo()
    discarded = Path(f"{index}.discarded")
    assert discarded.is_dir() and not is_lsr_index(discarded) and not Path(f"{index}.previous").exists()
    with caplog.at_level(logging.WARNING):
        assert IndexFolder(index).manifest.doc_count == 120
    assert not discarded.exists() and "removed index.discarded" in caplog.text


def test_leftovers_of_a_build_under_way_are_left_alone(tmp_path, small_index):
    """Another process holds <index>.lock (it is building or publishing): its folders are its work."""
    index = tmp_path / "index"
    shutil.copytree(small_index, f"{index}.previous")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); "
            "time.sleep(120)",
            f"{index}.lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexFolderError, match="being replaced by another process"):
            IndexFolder(index)
        assert Path(f"{index}.previous").exists() and not index.exists()
    finally:
        holder.kill()
        holder.wait()
    assert IndexFolder(index).manifest.doc_count == 120  # the holder is gone: recovered now


# 5. /metrics labels come from fixed sets.


def test_metrics_labels_do_not_grow_with_made_up_methods_or_paths(small_searcher):
    client = TestClient(create_app(LiveSearcher.from_searcher(small_searcher)))
    for number in range(30):
        client.request(f"FOO{number}", "/search")
        client.get(f"/no-such-page-{number}")
    client.get("/documents/some-id")
    metrics = client.get("/metrics").text
    assert "FOO" not in metrics and "no-such-page" not in metrics and "some-id" not in metrics
    assert 'method="other",route="/search",status="405"' in metrics
    assert 'route="/documents/{doc_id}"' in metrics
    methods = {line.split('method="')[1].split('"')[0] for line in metrics.splitlines() if 'method="' in line}
    assert methods <= {"GET", "POST", "other"}


# 6. Damaged index arrays are an error when the index opens, never a segfault or wrong hits.


def _tamper(name: str, change) -> callable:
    def damage(index: Path) -> None:
        path = index / name
        array = np.load(path)
        np.save(path, change(array))

    return damage


def _truncate(name: str):
    def damage(index: Path) -> None:
        path = index / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return damage


DAMAGE = {
    "range_indptr beyond the postings": _tamper("sparse/range_indptr.npy", lambda a: a + 10**12),
    "dense_starts beyond dense_impacts": _tamper("sparse/dense_starts.npy", lambda a: np.where(a < 0, 10**12, a)),
    "offsets beyond the last range": _tamper("sparse/postings_offsets.npy", lambda a: np.full_like(a, 65000)),
    "offsets of another dtype": _tamper("sparse/postings_offsets.npy", lambda a: a.astype(np.int64)),
    "truncated impacts": _truncate("sparse/postings_impacts.npy"),
    "truncated vectors/terms.npy": _truncate("vectors/terms.npy"),
    "vectors/indptr beyond terms": _tamper("vectors/indptr.npy", lambda a: a * 2),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damaged_arrays_are_refused_when_the_index_opens(tmp_path, small_index, damage):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    DAMAGE[damage](index)
    with pytest.raises(IndexFolderError, match="damaged|unreadable"):
        IndexFolder(index)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["range_indptr beyond the postings", "dense_starts beyond dense_impacts"])
def test_lsr_search_on_damaged_arrays_is_a_one_line_error_not_a_segfault(tmp_path, small_index, damage):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    DAMAGE[damage](index)
    assert "is damaged" in one_line_error(run_lsr("search", index, "wing flutter boundary layer heat transfer"))


def test_explain_on_a_document_with_damaged_term_ids_is_a_clear_500(tmp_path, small_index, splade):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    terms = np.load(index / "vectors" / "terms.npy")
    indptr = np.load(index / "vectors" / "indptr.npy")
    terms[indptr[3] : indptr[4]] = 10**9  # row 3's term ids: beyond the vocabulary (no full scan catches it at open)
    np.save(index / "vectors" / "terms.npy", terms)
    service = LiveSearcher(LiveIndex(index), splade)
    doc_id = service.view.docs[3].id
    with TestClient(create_app(service, Settings()), raise_server_exceptions=False) as client:
        response = client.get("/explain", params={"query": "wing", "id": doc_id})
        assert response.status_code == 500
        assert "is damaged" in response.json()["detail"] and str(tmp_path) not in response.json()["detail"]
        assert client.get("/explain", params={"query": "wing", "id": service.view.docs[4].id}).status_code == 200


# 7. Smaller ones: bad input is a one-line error, the API tells anonymous callers no paths and loads no CDN.


def _beir_corpus(folder: Path, lines: list[str]) -> Path:
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_a_lone_surrogate_in_a_corpus_is_refused_before_any_model_loads(tmp_path):
    from lsr.datasets import read_corpus as read
    from lsr.errors import DatasetError

    folder = _beir_corpus(
        tmp_path / "bad",
        ['{"_id": "1", "title": "fine", "text": "ok"}', '{"_id": "2", "title": "bad \\ud800 title", "text": "x"}'],
    )
    with pytest.raises(DatasetError, match=r"corpus.jsonl:2: .*lone surrogate"):
        read(folder)
    pair = _beir_corpus(tmp_path / "good", ['{"_id": "1", "title": "an emoji \\ud83d\\ude00", "text": "ok"}'])
    assert read(pair).documents[0].title == "an emoji \U0001f600"


def test_deeply_nested_json_in_a_corpus_is_a_dataset_error(tmp_path):
    from lsr.datasets import read_corpus as read
    from lsr.errors import DatasetError

    nested = '{"_id": "1", "title": "t", "metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    with pytest.raises(DatasetError, match=r"corpus.jsonl:1: JSON nested too deeply"):
        read(_beir_corpus(tmp_path / "nested", [nested]))


@pytest.mark.slow
def test_a_truncated_docs_file_and_a_file_at_out_are_one_line_errors(tmp_path, small_dataset, small_index):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    docs = index / "docs.jsonl"
    docs.write_bytes(docs.read_bytes()[: docs.stat().st_size // 2])  # cut mid-line
    assert "docs.jsonl is damaged" in one_line_error(run_lsr("search", index, "wing flutter"))

    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    assert "is a file" in one_line_error(run_lsr("index", small_dataset, "--out", a_file, "--overwrite"))
    assert a_file.read_text() == "keep me"


def test_health_names_the_index_without_its_path_and_docs_load_no_cdn(small_searcher, small_index):
    with TestClient(create_app(LiveSearcher.from_searcher(small_searcher), Settings())) as client:
        health = client.get("/health").json()
        assert health["index"]["path"] == small_index.name and str(small_index.parent) not in json.dumps(health)
        page = client.get("/docs")
        assert page.status_code == 200 and "/openapi.json" in page.text
        assert "<script" not in page.text and "://" not in page.text  # nothing loaded, from anywhere
        assert client.get("/redoc").status_code == 404
    with TestClient(create_app(LiveSearcher.from_searcher(small_searcher), Settings(docs_cdn=True))) as client:
        assert "swagger-ui" in client.get("/docs").text


def test_a_build_creates_missing_parent_folders_of_out_and_leaves_no_lock_file(tmp_path, tiny_corpus, splade):
    out = tmp_path / "new" / "deeper" / "index"
    build_index(tiny_corpus, splade, out, progress=False)
    assert IndexFolder(out).manifest.doc_count == 10
    assert sorted(path.name for path in out.parent.iterdir()) == ["index"]


def test_a_server_without_an_api_key_leaves_the_write_lock_to_others(tmp_path, small_index, splade):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    reader = LiveSearcher(LiveIndex(index), splade)
    with TestClient(create_app(reader, Settings())):  # no key: writes are 403 anyway
        assert not reader.live.writable
        writer = LiveIndex(index)
        try:
            assert writer.writable and writer.compact() is False  # nothing pending, but not refused
        finally:
            writer.close()


def test_an_out_under_a_folder_that_cannot_be_written_is_a_clear_error(tiny_corpus, splade):
    """/sys refuses new entries even to root (tests run as root, so chmod cannot make a read-only parent)."""
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    with pytest.raises(IndexFolderError, match="(?i)cannot lock .*(denied|read-only|not permitted)"):
        build_index(tiny_corpus, splade, Path("/sys/lsr-reliability-test/index"), progress=False)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: _tamper("postings_docs.npy", lambda a: a + 10**6)(folder),
        lambda folder: _tamper("segment_indptr.npy", lambda a: a * 3)(folder),
        lambda folder: _truncate("forward_indptr.npy")(folder),
    ],
    ids=["postings beyond the documents", "segment_indptr beyond the segments", "truncated forward_indptr"],
)
def test_damaged_impact_ordered_arrays_are_refused_when_the_engine_opens(tmp_path, small_index, damage):
    from lsr.indexer.engines import ImpactOrderedEngine

    folder = tmp_path / "impact-ordered"
    ImpactOrderedEngine.build(IndexFolder(small_index).vectors, folder)
    assert ImpactOrderedEngine.open(folder, 120).dim == IndexFolder(small_index).manifest.dim
    damage(folder)
    with pytest.raises(IndexFolderError, match="damaged|unreadable"):
        ImpactOrderedEngine.open(folder, 120)
