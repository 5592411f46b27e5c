"""Issue 16: a crash at any rename/fsync boundary of indexing, --add-dense, --add-bm25, reindex, live writes and
compaction leaves the old index or the new one, openable and complete, never neither.

Each operation runs in a child process (``tests/fault_driver.py``) over the real splade-tiny and MiniLM and a few
real Cranfield documents. A first run records the operation's boundaries: every ``os.rename``, ``os.replace`` and
``os.fsync`` under the test's folder (chunk checkpoints, manifests, every fsync of publish's tree, publish's two
renames and its directory fsync, the log's fsyncs). Then, for each boundary, the index is put back in its old state
and the operation is run again, killed with SIGKILL just before that boundary, and just after it too where the
boundary is a rename or replace (after an fsync the folder is as it was before it). After each crash the index
must open, with ``IndexFolder`` and with ``Searcher.open`` (either runs the recovery of an interrupted publish),
and be, file for file and in its search results, either the old index or the one an uncrashed run makes; nothing
may be left beside it but a resumable ``.partial``; and running the operation again (with ``--resume``) must
finish it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHARED_DATA, write_beir_subset

from lsr.datasets import Document
from lsr.indexer import IndexFolder
from lsr.retrieval.search import LiveSearcher, Searcher
from lsr.retrieval.search import searcher as searcher_module

DRIVER = Path(__file__).with_name("fault_driver.py")
# One thread everywhere in the children: the driver forks (see its docstring), and the machine's cores are shared.
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
QUERIES = ["boundary layer", "supersonic flow", "heat transfer"]
VOLATILE = ("created_at", "indexing_seconds")  # manifest fields that differ between two runs of one build
LEFT_FOR_RESUME = ("partial", "lock")  # a resumable build, and a lock file (a dead holder's lock is free)
pytestmark = pytest.mark.slow  # about a minute: some 280 runs of the operations, in child processes


class Driver:
    """The fork server: ``run`` executes one operation in a fresh child and returns how the child ended."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root, self.logs = root, logs
        self.log = logs / "child.log"
        self._stderr = (logs / "driver.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(DRIVER), str(root)],
            env=ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        assert line, f"the driver exited: {(self.logs / 'driver.log').read_text()[-3000:]}"
        return json.loads(line)

    def run(self, operation: str, *, crash: tuple[list[str], int, str] | None = None, **arguments) -> str:
        """How the child ended: "done", "killed" (at its crash point), or its exit status and error.

        ``crash``: (the boundaries an uncrashed run passed, the number of one of them, "before" or "after")."""
        record = self.logs / "boundaries.json"
        request = {"operation": operation, "arguments": arguments, "log": str(self.log), "record": str(record)}
        if crash is not None:
            boundaries, number, when = crash
            occurrence = boundaries[:number].count(boundaries[number])
            request.update(crash=[boundaries[number], occurrence, when], record=None)
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        if answer == {"exit": 0}:
            return "done"
        if answer == {"signal": signal.SIGKILL}:
            return "killed"
        return f"{answer}: {self.log.read_text()[-3000:]}"

    def boundaries(self, operation: str, **arguments) -> list[str]:
        """Runs ``operation`` uncrashed, returning the boundaries it passed."""
        assert self.run(operation, **arguments) == "done"
        return json.loads((self.logs / "boundaries.json").read_text())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(60)
        self._stderr.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    driver = Driver(tmp_path_factory.mktemp("faults"), tmp_path_factory.mktemp("fault-logs"))
    yield driver
    driver.close()


def loaded_once(load: Callable) -> Callable:
    """``load`` memoized, and the query encodings of what it loads too: the same queries are searched after every
    crash, and what is under test is the index they search, not the encoder."""

    @functools.cache
    def load_once(*args, **kwargs):
        encoder = load(*args, **kwargs)
        encode = functools.cache(type(encoder).encode_queries)
        encoder.encode_queries = lambda texts: encode(encoder, tuple(texts))
        return encoder

    return load_once


@pytest.fixture(scope="module", autouse=True)
def memoized_model_loads():
    """``Searcher.open`` loads the encoders its manifest names; here each model is loaded once, not per crash."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(searcher_module, "load_sparse_encoder", loaded_once(searcher_module.load_sparse_encoder))
        patch.setattr(searcher_module, "load_dense_encoder", loaded_once(searcher_module.load_dense_encoder))
        yield


@dataclass(frozen=True)
class Corpora:
    old: Path  # 8 documents
    new: Path  # 12 documents, the first 8 the same
    old_index: Path  # built from `old`
    new_index: Path  # built from `new`: the sparse index the --add-* operations, reindex and live updates start from


@pytest.fixture(scope="module")
def corpora(driver) -> Corpora:
    data = driver.root / "data"
    cranfield = SHARED_DATA / "cranfield"
    old, new = write_beir_subset(cranfield, data / "old", 8), write_beir_subset(cranfield, data / "new", 12)
    old_index, new_index = data / "old-index", data / "new-index"
    assert driver.run("build", dataset=str(old), out=str(old_index), chunk_size=4) == "done"
    assert driver.run("build", dataset=str(new), out=str(new_index), chunk_size=4) == "done"
    return Corpora(old, new, old_index, new_index)


def siblings(index: Path) -> list[Path]:
    return sorted(index.parent.glob(f"{index.name}.*"))


def reset(index: Path, old: Path | None) -> None:
    """The state before the operation: ``old`` at ``index`` and nothing beside it (no index at all for None)."""
    for path in [index, *siblings(index)]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if old is not None:
        shutil.copytree(old, index)


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file's bytes, with the manifest's run-dependent fields left out."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "manifest.json":
                manifest = json.loads(data)
                data = json.dumps({key: value for key, value in manifest.items() if key not in VOLATILE}).encode()
            files[path.relative_to(folder).as_posix()] = hashlib.sha256(data).hexdigest()
    return files


def opened(index: Path, queries: list[str] = QUERIES) -> dict:
    """The index as a reader finds it: opened (recovering an interrupted publish), its files, its rankings."""
    IndexFolder(index)
    searcher = Searcher.open(index)
    hits = [[(hit.id, hit.score) for hit in ranked] for ranked in searcher.search_many(queries, 5)]
    left = [path.name for path in siblings(index) if path.suffix.lstrip(".") not in LEFT_FOR_RESUME]
    assert not left, f"left beside the index after it was opened: {left}"
    return {"files": fingerprint(index), "hits": hits}


def old_or_new(state: dict, old: dict, new: dict) -> str:
    if state in (old, new):
        return "old" if state == old else "new"
    differences = []
    for name, reference in (("old", old), ("new", new)):
        files = sorted({path for path, digest in state["files"].items() ^ reference["files"].items()})
        rankings = "" if state["hits"] == reference["hits"] else ", and in its rankings"
        differences.append(f"from the {name} index in {files[:6]}{rankings}")
    raise AssertionError(f"the index is neither the old one nor the new one: it differs {'; '.join(differences)}")


def crash_everywhere(
    driver: Driver,
    name: str,
    operation: str,
    arguments: dict,
    rerun: dict,
    put_back: Callable[[], None],
    state: Callable[[], dict],
) -> None:
    """Crashes ``operation`` at each of its boundaries (from the state ``put_back`` makes); after each crash, ``state``
    (what opening the index finds) must be the old or the new one, and the operation rerun with ``rerun`` must finish.
    Prints how many crashes left the old index and how many the new one."""
    put_back()
    old = state()
    put_back()
    boundaries = driver.boundaries(operation, **arguments)
    new = state()
    assert new != old
    assert any(boundary.endswith(".previous") for boundary in boundaries), boundaries  # publish moved the old index
    points = [(number, "before") for number in range(len(boundaries))]
    points += [(number, "after") for number, boundary in enumerate(boundaries) if not boundary.startswith("fsync")]
    outcomes: Counter = Counter()
    for number, when in points:
        put_back()
        where = f"{name}: crash {when} boundary {number} ({boundaries[number]})"
        assert driver.run(operation, crash=(boundaries, number, when), **arguments) == "killed", where
        try:
            outcomes[old_or_new(state(), old, new)] += 1
        except Exception as exc:
            raise AssertionError(f"{where}: {exc}") from exc
        assert driver.run(operation, **rerun) == "done", f"{where}, then rerun"
        assert state() == new, f"{where}, then rerun"
    print(f"{name}: {len(boundaries)} boundaries, {len(points)} crash points: {dict(outcomes)}")
    # The crashes before publish's first rename leave the old index, those after its second the new one.
    assert outcomes["old"] and outcomes["new"] and outcomes.total() == len(points)


def test_a_crash_anywhere_in_an_overwriting_build_leaves_the_old_or_the_new_index(driver, corpora):
    index = driver.root / "build" / "index"
    index.parent.mkdir()
    arguments = {"dataset": str(corpora.new), "out": str(index), "chunk_size": 4}
    crash_everywhere(
        driver,
        "lsr index --overwrite",
        "build",
        arguments,
        {**arguments, "resume": True},
        lambda: reset(index, corpora.old_index),
        lambda: opened(index),
    )


def test_a_crash_anywhere_in_add_dense_leaves_the_old_or_the_new_index(driver, corpora):
    index = driver.root / "dense" / "index"
    index.parent.mkdir()
    arguments = {"dataset": str(corpora.new), "index": str(index), "chunk_size": 4}
    crash_everywhere(
        driver,
        "lsr index --add-dense",
        "add_dense",
        arguments,
        {**arguments, "resume": True},
        lambda: reset(index, corpora.new_index),
        lambda: opened(index),
    )


def test_a_crash_anywhere_in_add_bm25_leaves_the_old_or_the_new_index(driver, corpora):
    index = driver.root / "bm25" / "index"
    index.parent.mkdir()
    arguments = {"dataset": str(corpora.new), "index": str(index)}
    crash_everywhere(
        driver,
        "lsr index --add-bm25",
        "add_bm25",
        arguments,
        arguments,
        lambda: reset(index, corpora.new_index),
        lambda: opened(index),
    )


def test_a_crash_anywhere_in_an_overwriting_reindex_leaves_the_old_or_the_new_index(driver, corpora):
    source = driver.root / "reindex" / "source"
    out = driver.root / "reindex" / "out"
    shutil.copytree(corpora.new_index, source)
    before = fingerprint(source)
    arguments = {"index": str(source), "out": str(out), "engine": "impact-ordered"}
    crash_everywhere(
        driver,
        "lsr reindex --overwrite",
        "reindex_to",
        arguments,
        arguments,
        lambda: reset(out, corpora.old_index),  # another index at --out: replaced by the re-indexed one
        lambda: opened(out),
    )
    assert fingerprint(source) == before  # its files were hard-linked into every staging folder, never changed


def upserts(prefix: str, count: int) -> list[dict]:
    return [
        {"id": f"{prefix}-{n}", "title": f"ornithopter {prefix} {n}", "text": f"flapping wing lift, {prefix} batch {n}"}
        for n in range(count)
    ]


def live_state(index: Path, expected: dict[str, str] | None = None) -> dict:
    """What a server finds on (re)opening a live index: the documents it shows, their texts, its rankings."""
    IndexFolder(index)
    live = LiveSearcher.open(index)
    try:
        texts = {doc_id: live.live.get(doc_id).text for doc_id in sorted(live.view.ids)}
        queries = [*QUERIES, *(f"ornithopter {doc_id}" for doc_id in expected or {})]
        hits = [[hit.id for hit in ranked] for ranked in live.searcher().search_many(queries, 5)]
    finally:
        live.live.close()
    if expected is not None:  # every acknowledged upsert, with its text, found by its own title
        assert {doc_id: texts.get(doc_id) for doc_id in expected} == expected
        assert all(doc_id in ranked for doc_id, ranked in zip(expected, hits[len(QUERIES) :]))
    left = [path.name for path in siblings(index) if path.suffix.lstrip(".") not in LEFT_FOR_RESUME]
    assert not left, f"left beside the index after it was opened: {left}"
    return {"files": fingerprint(index), "texts": texts, "hits": hits}


def test_a_crash_anywhere_in_compaction_keeps_every_acknowledged_update(driver, corpora):
    live_template = driver.root / "compact" / "live"
    index = driver.root / "compact" / "index"
    shutil.copytree(corpora.new_index, live_template)
    searcher = LiveSearcher.open(live_template)
    batches = [upserts("a", 3), upserts("b", 2)]
    for batch in batches:
        searcher.upsert(_documents(batch))
    replaced = searcher.view.docs[0].id  # a base document replaced, another deleted
    searcher.upsert(_documents([{"id": replaced, "title": f"ornithopter {replaced}", "text": "rewritten while live"}]))
    deleted = searcher.view.docs[1].id
    assert searcher.delete(deleted)
    searcher.live.close()
    acknowledged = {doc["id"]: doc["text"] for batch in batches for doc in batch} | {replaced: "rewritten while live"}

    def state() -> dict:
        found = live_state(index, acknowledged)
        assert deleted not in found["texts"] and len(found["texts"]) == 12 - 1 + 5
        return found

    crash_everywhere(
        driver,
        "lsr compact",
        "compact",
        {"index": str(index)},
        {"index": str(index)},
        lambda: reset(index, live_template),
        state,
    )


def _documents(batch: list[dict]) -> list[Document]:
    return [Document(doc["id"], doc["title"], doc["text"]) for doc in batch]


def test_a_crash_at_any_fsync_of_the_write_ahead_log_loses_no_acknowledged_upsert(driver, corpora):
    index = driver.root / "wal" / "index"
    index.parent.mkdir()
    batches = [upserts("w0", 2), upserts("w1", 1), upserts("w2", 2)]
    reset(index, corpora.new_index)
    boundaries = driver.boundaries("upsert", index=str(index), batches=batches)
    logged = [number for number, boundary in enumerate(boundaries) if boundary.endswith("/live/wal.jsonl")]
    assert len(logged) == len(batches)  # one fsync per batch, before the batch is acknowledged
    for number in range(len(boundaries)):
        reset(index, corpora.new_index)
        where = f"upsert: crash before boundary {number} ({boundaries[number]})"
        crash = (boundaries, number, "before")
        assert driver.run("upsert", crash=crash, index=str(index), batches=batches) == "killed", where
        acknowledged = [batch for batch, fsync in zip(batches, logged) if fsync < number]
        in_flight = next((batch for batch, fsync in zip(batches, logged) if fsync >= number), [])
        found = live_state(index)["texts"]
        for batch in acknowledged:
            assert all(found.get(doc["id"]) == doc["text"] for doc in batch), where
        # The batch being logged is all there or not at all; the batches after it were never written.
        assert len({doc["id"] in found for doc in in_flight}) <= 1, where
        later = [doc["id"] for batch in batches[len(acknowledged) + 1 :] for doc in batch]
        assert not set(later) & set(found), where
        assert driver.run("upsert", index=str(index), batches=batches) == "done", f"{where}, then rerun"
        assert all(doc["id"] in live_state(index)["texts"] for batch in batches for doc in batch), f"{where}, then rerun"
    print(f"live upserts: {len(boundaries)} boundaries, {len(boundaries)} crash points")


def test_a_crash_while_an_interrupted_publish_is_recovered_leaves_the_old_index(driver, corpora):
    """The recovery itself (on open) renames ``.previous`` back: a crash around that rename is recovered too."""
    index = driver.root / "recover" / "index"
    index.parent.mkdir()

    def put_back() -> None:  # a publish killed between its renames, with a half-written staging folder beside it
        reset(index, None)
        shutil.copytree(corpora.old_index, f"{index}.previous")
        shutil.copytree(corpora.new_index / "vectors", Path(f"{index}.staging", "vectors"))

    put_back()
    boundaries = driver.boundaries("open_index", index=str(index))
    assert boundaries == ["rename recover/index.previous -> recover/index"]
    reset(index, corpora.old_index)
    old = opened(index)
    for when in ("before", "after"):
        put_back()
        assert driver.run("open_index", crash=(boundaries, 0, when), index=str(index)) == "killed"
        assert opened(index) == old
    print("recovery on open: 1 boundary, 2 crash points")
