"""Live updates of an index folder: a write-ahead log, an in-memory delta segment, tombstones, compaction.

    <index>/live/wal.jsonl   one JSON line per acknowledged batch of upserts and deletes, fsynced before the
                             writer is answered, replayed on open (a torn last line — a batch that was never
                             acknowledged — is dropped)

The base index folder is never modified in place. Upserted documents (already encoded and quantized) live in
a delta segment; deleted or replaced base rows are tombstoned. ``LiveView`` composes base and delta behind
the interface the Searcher uses (``engine``, ``dense``, ``docs``, ``manifest``): rows ``0…N-1`` are the base
index's, rows ``N…`` the delta's, and both sides are scored exactly with the same integer impacts, so a
document ranks the same before and after compaction. A BM25 side, whose statistics span every document, is
scored over base + delta with the statistics of the visible documents once the index has taken a write
(``LiveBm25``; deleted rows leave them, rows a filter hides do not). Compaction folds the delta into a new index
folder, written aside and renamed into place (which also starts an empty log).

Live updates need an engine whose scores are exact (the default ``memory`` engine, or ``milvus``); others are
refused. A Milvus collection takes the writes itself (upserted rows are added to it, superseded rows deleted), so
its delta is searched by Milvus, not here; the log still records each batch (and is replayed into Milvus on open,
which is idempotent), and such an index is not compacted: Milvus compacts its own segments.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lsr import defaults
from lsr.datasets import Document
from lsr.errors import IndexFolderError, LsrError
from lsr.indexer.bm25 import LiveBm25
from lsr.indexer.engines import Ranking, engine_class, top_k
from lsr.indexer.index_folder import IndexFolder, publish, read_manifest, recover_interrupted_publish, write_index
from lsr.indexer.locks import index_lock, try_flock
from lsr.indexer.term_statistics import TermStatistics, term_counts
from lsr.indexer.vectors import stored_terms

WAL_FOLDER = "live"
WAL_FILE = "wal.jsonl"
log = logging.getLogger(__name__)


class LiveUpdateError(LsrError):
    """A live update cannot be applied (the engine does not support it, the log is held or corrupt)."""


class WriterLockError(LiveUpdateError):
    """Another process holds the index's write lock (its log), or the log cannot be opened for writing."""


@dataclass(frozen=True)
class EncodedDocument:
    """A document to upsert, with its quantized sparse vector (term ids, impacts) and dense vector."""

    doc: Document
    terms: np.ndarray  # int32, ascending
    impacts: np.ndarray  # int32, positive
    dense: np.ndarray | None = None  # float32

    def sparse_row(self, dim: int) -> sp.csr_matrix:
        return sp.csr_matrix((self.impacts, self.terms, [0, self.terms.size]), shape=(1, dim), dtype=np.int32)

    def to_record(self) -> dict:
        record = {"op": "upsert", "id": self.doc.id, "title": self.doc.title, "text": self.doc.text}
        record.update(metadata=self.doc.metadata, terms=self.terms.tolist(), impacts=self.impacts.tolist())
        if self.dense is not None:
            record["dense"] = self.dense.tolist()  # float32 → float64 text → float32 round-trips exactly
        return record

    @staticmethod
    def from_record(record: dict) -> EncodedDocument:
        doc = Document(record["id"], record["title"], record["text"], record["metadata"] or {})
        dense = np.asarray(record["dense"], dtype=np.float32) if "dense" in record else None
        return EncodedDocument(doc, np.asarray(record["terms"], np.int32), np.asarray(record["impacts"], np.int32), dense)


@dataclass(frozen=True)
class Delete:
    id: str

    def to_record(self) -> dict:
        return {"op": "delete", "id": self.id}


Operation = EncodedDocument | Delete


class WriteAheadLog:
    """Append-only, one line per batch; an exclusive lock keeps a second process from writing the same log.

    The lock is the index's write lock: a server takes it when it opens the index (``lock``) and keeps it until it
    closes, and offline compaction and ``lsr index --overwrite`` need it too, so no one replaces the folder a
    writer appends to."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / WAL_FOLDER / WAL_FILE
        self._handle = None
        self.refused: str | None = None  # why this process cannot write, once ``lock`` failed

    @property
    def locked(self) -> bool:
        return self._handle is not None

    def lock(self) -> bool:
        """Takes the log's exclusive lock now (creating an empty log); False, with the reason in ``refused``, when
        another process holds it or the log cannot be written."""
        if self._handle is not None:
            return True
        try:
            fd = try_flock(self.path, create_parent=True, flags=os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            self.refused = f"cannot write {self.path}: {exc.strerror or exc}"
            return False
        if fd is None:
            self.refused = f"{self.path} is locked by another process writing this index"
            return False
        directory = os.open(self.path.parent, os.O_RDONLY)  # make the new file's name durable too
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._handle = os.fdopen(fd, "ab")
        self.refused = None
        return True

    def replay(self) -> list[list[Operation]]:
        if not self.path.is_file():
            return []
        batches = []
        with self.path.open("rb") as handle:
            data = handle.read()
        lines = data.split(b"\n")
        complete, torn = lines[:-1], lines[-1]  # a batch ends with "\n" once it is whole
        for number, line in enumerate(complete, start=1):
            try:
                records = json.loads(line)["batch"]
                batches.append([EncodedDocument.from_record(r) if r["op"] == "upsert" else Delete(r["id"]) for r in records])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
                raise LiveUpdateError(f"{self.path}:{number} is corrupt ({exc}); restore the index from a backup") from exc
        if torn and self.locked:  # only the writer cuts it: without the lock, it may be a batch being written now
            self._truncate(len(data) - len(torn))  # never acknowledged: its writer got no answer
        return batches

    def _truncate(self, size: int) -> None:
        with self.path.open("r+b") as handle:
            handle.truncate(size)
            os.fsync(handle.fileno())

    def append(self, batch: Sequence[Operation]) -> None:
        """Returns once the batch is on disk (fsync), so an acknowledged write survives a crash."""
        handle = self._open()
        handle.write(json.dumps({"batch": [operation.to_record() for operation in batch]}).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())

    def _open(self):
        # A log whose lock was refused at open stays refused: this process's view missed the holder's writes.
        if self._handle is None and (self.refused is not None or not self.lock()):
            raise WriterLockError(self.refused)
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclass(frozen=True)
class Delta:
    """The documents upserted since the base index was built, in upsert order."""

    docs: tuple[Document, ...]
    sparse: sp.csr_matrix  # int32 impacts, one row per doc
    dense: np.ndarray | None

    @staticmethod
    def empty(dim: int, dense_dim: int | None) -> Delta:
        dense = np.zeros((0, dense_dim), dtype=np.float32) if dense_dim else None
        return Delta((), sp.csr_matrix((0, dim), dtype=np.int32), dense)

    def extend(self, added: Sequence[EncodedDocument]) -> Delta:
        dim = self.sparse.shape[1]
        rows = [d.sparse_row(dim) for d in added]
        dense = self.dense
        if dense is not None:
            dense = np.vstack([dense, *(d.dense[None, :] for d in added)])
        return Delta(self.docs + tuple(d.doc for d in added), sp.vstack([self.sparse, *rows], format="csr"), dense)


class _Rows(Sequence):
    """Base docs followed by delta docs, indexed by unified row, without copying the base list."""

    def __init__(self, base: Sequence[Document], delta: Sequence[Document]) -> None:
        self._base, self._delta = base, delta

    def __len__(self) -> int:
        return len(self._base) + len(self._delta)

    def __getitem__(self, row: int) -> Document:
        return self._base[row] if row < len(self._base) else self._delta[row - len(self._base)]


def _merge(base: Ranking, delta_rows: np.ndarray, delta_scores: np.ndarray, hidden: np.ndarray, k: int) -> Ranking:
    """Visible rows of both, best first, ties broken by lower unified row like every engine.

    A row past ``hidden`` is one a Milvus collection holds already but this snapshot does not show yet."""
    rows = np.concatenate((base.doc_indices, delta_rows))
    scores = np.concatenate((base.scores, delta_scores.astype(base.scores.dtype, copy=False)))
    visible = rows < hidden.size
    visible[visible] = ~hidden[rows[visible]]
    rows, scores = rows[visible], scores[visible]
    order = np.lexsort((rows, -scores))[:k]
    return Ranking(doc_indices=rows[order], scores=scores[order])


def _sparse_delta_top(delta: sp.csr_matrix, queries: sp.csr_matrix, depth: int) -> list[Ranking]:
    scores = (queries.astype(np.int64) @ delta.T.astype(np.int64)).toarray()
    return [top_k(row, depth) for row in scores]


def _no_delta_top(delta, queries, depth: int) -> list[Ranking]:
    """For an engine that holds the delta rows itself (Milvus)."""
    return [Ranking(np.empty(0, np.int64), np.empty(0, np.int64))] * queries.shape[0]


def _dense_delta_top(delta: np.ndarray, queries: np.ndarray, depth: int) -> list[Ranking]:
    scores = np.asarray(queries, dtype=np.float32) @ delta.T
    orders = (np.argsort(-row, kind="stable")[:depth] for row in scores)
    return [Ranking(doc_indices=order.astype(np.int64), scores=row[order]) for order, row in zip(orders, scores, strict=True)]


class _Composed:
    """One side (an engine or the dense index) of base + delta, with hidden rows dropped."""

    def __init__(self, base, delta, delta_top, hidden: np.ndarray, base_count: int) -> None:
        self._base, self._delta, self._delta_top = base, delta, delta_top
        self._hidden, self._base_count = hidden, base_count
        # A hidden row can push at most one visible row out of its part's top k.
        self._hidden_in_base = int(hidden[:base_count].sum())
        self._hidden_in_delta = int(hidden[base_count:].sum())

    def search(self, queries, k: int) -> list[Ranking]:
        base = self._base.search(queries, k + self._hidden_in_base)
        delta = self._delta_top(self._delta, queries, k + self._hidden_in_delta)
        return [_merge(b, d.doc_indices + self._base_count, d.scores, self._hidden, k) for b, d in zip(base, delta, strict=True)]

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """The dense side's stored vectors: base rows from the base index, delta rows from the delta."""
        rows = np.asarray(rows, dtype=np.int64)
        in_base = rows < self._base_count
        vectors = np.empty((rows.size, self._delta.shape[1]), dtype=np.float32)
        if in_base.any():
            vectors[in_base] = self._base.vectors_of(rows[in_base])
        vectors[~in_base] = self._delta[rows[~in_base] - self._base_count]
        return vectors

    def search_texts(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """A BM25 side before any write (``_LiveText`` after), or a BM25 index (no writes): only hidden (filtered-out)
        rows need dropping."""
        nothing = np.empty(0, np.int64)
        return [_merge(b, nothing, nothing, self._hidden, k) for b in self._base.search_texts(queries, k + self._hidden_in_base)]


class _LiveText:
    """The BM25 side once the index has taken writes: scored over base + delta with their current statistics."""

    def __init__(self, bm25: LiveBm25, hidden: np.ndarray) -> None:
        self._bm25, self._hidden = bm25, hidden

    def search_texts(self, queries: Sequence[str], k: int) -> list[Ranking]:
        return self._bm25.search_texts(queries, k, self._hidden)


class _LiveTermStatistics:
    """A snapshot's term statistics, counted on first use from the base's and the writes' vectors."""

    def __init__(self, base: IndexFolder, delta: Delta, hidden: np.ndarray) -> None:
        self._base, self._delta, self._hidden = base, delta, hidden

    @cached_property
    def value(self) -> TermStatistics:
        base, count, dim = self._base, self._base.manifest.doc_count, self._base.manifest.dim
        deleted = np.flatnonzero(self._hidden[:count])
        added = np.flatnonzero(~self._hidden[count:])
        frequencies = base.term_statistics.document_frequencies.copy()
        if deleted.size:
            frequencies -= term_counts(stored_terms(base.path / "vectors", deleted), dim)
        if added.size:
            frequencies += term_counts(self._delta.sparse[added].indices, dim)
        return TermStatistics(count - deleted.size + added.size, frequencies)


class LiveView:
    """An immutable snapshot of base + delta − hidden rows; a ``SearchableIndex``, as the folder itself is."""

    def __init__(
        self,
        base: IndexFolder,
        delta: Delta,
        hidden: np.ndarray,
        ids: dict[str, int],
        live_bm25: LiveBm25 | None = None,
        statistics: _LiveTermStatistics | None = None,
    ) -> None:
        """``live_bm25``: the BM25 side's state after the writes so far (None before the first). ``statistics``: the
        unfiltered snapshot's, for a filtered view of it."""
        self.base, self.delta, self.hidden, self.ids, self.live_bm25 = base, delta, hidden, ids, live_bm25
        self._statistics = statistics or _LiveTermStatistics(base, delta, hidden)
        self.path = base.path
        count = base.manifest.doc_count
        self.manifest = base.manifest
        self.docs = _Rows(base.docs, delta.docs)
        self.has_text_engine = base.has_text_engine
        holds_delta = base.engine.capabilities.stores_updates
        sparse_top, dense_top = (_no_delta_top, _no_delta_top) if holds_delta else (_sparse_delta_top, _dense_delta_top)
        self.engine = _Composed(base.engine, delta.sparse, sparse_top, hidden, count)
        self.dense = _Composed(base.dense, delta.dense, dense_top, hidden, count) if base.dense is not None else None
        self.bm25 = None
        if base.bm25 is not None:
            self.bm25 = _Composed(base.bm25, None, None, hidden, count) if live_bm25 is None else _LiveText(live_bm25, hidden)

    @property
    def doc_count(self) -> int:
        """Visible documents."""
        return len(self.ids)

    @property
    def term_statistics(self) -> TermStatistics:
        return self._statistics.value

    def row(self, doc_id: str) -> int | None:
        return self.ids.get(doc_id)

    def vector(self, row: int) -> sp.csr_matrix:
        """The quantized sparse vector of one row (1 × dim, int32)."""
        count = self.manifest.doc_count
        if row >= count:
            return self.delta.sparse[row - count]
        vectors = self.base.vectors
        terms = vectors.indices[vectors.indptr[row] : vectors.indptr[row + 1]]  # as stored: scipy drops bad ids silently
        if terms.size and (int(terms.max()) >= self.manifest.dim or int(terms.min()) < 0):
            raise IndexFolderError(f"{self.path} is damaged: row {row} of its vectors has term ids beyond {self.manifest.dim}")
        return vectors[row]

    def restricted(self, allowed: np.ndarray) -> LiveView:
        """The same snapshot with only the ``allowed`` rows (a boolean mask) visible: metadata filters."""
        hidden = self.hidden | ~allowed
        ids = {i: r for i, r in self.ids.items() if not hidden[r]}
        # Filtered rows stay in the statistics (BM25's and the sparse side's): a filter does not change scores.
        return LiveView(self.base, self.delta, hidden, ids, self.live_bm25, self._statistics)


READ_ATTEMPTS = 5


def _identity(path: Path) -> tuple[int, int] | None:
    """Which folder ``path`` names now: a publish renames a new one into place."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def read_snapshot(path: str | Path) -> IndexFolder | LiveView:
    """What a server of ``path`` searches now, for a process that only reads: the index folder with the batches its
    write-ahead log acknowledged applied, read without the write lock (see ``LiveIndex``'s ``read_only``). An index
    whose engine takes no live updates, or that has no log, is the folder itself, as it always was."""
    path = Path(path)
    if not (path / WAL_FOLDER / WAL_FILE).is_file() or not engine_class(read_manifest(path).engine).capabilities.live_updates:
        return IndexFolder(path)
    return LiveIndex(path, read_only=True).view


class LiveIndex:
    """An index folder that takes upserts and deletes; ``view`` is always the latest acknowledged state.

    ``read_only``: for a process that only searches (``lsr search``, ``eval``, ``tune``) while a server may hold the
    write lock: the lock is never taken (so a server starting now is not refused it), the log is only read (a torn
    last line is skipped, never cut: it may be a batch its writer is appending now), a Milvus collection is not
    written, and writes are refused."""

    def __init__(self, path: str | Path, *, compact_after: int = defaults.COMPACT_AFTER, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        recover_interrupted_publish(self.path)
        self.compact_after = compact_after  # delta rows + tombstones that trigger a background compaction
        self._lock = threading.Lock()  # one writer at a time; readers never wait
        self._compacting = threading.Lock()
        if read_only:
            self._load_unlocked()
        else:
            self._load()

    def _load_unlocked(self) -> None:
        """Without the write lock, a compaction may publish a new folder (with a new, empty log) between reading the
        folder and reading its log: then both are read again, so the view is never one folder with another's log."""
        for _ in range(READ_ATTEMPTS):
            before = _identity(self.path)
            try:
                self._load()
            except (IndexFolderError, LiveUpdateError):
                if _identity(self.path) == before:
                    raise
                continue  # replaced while being read
            if _identity(self.path) == before:
                return
        raise LiveUpdateError(f"{self.path} was replaced {READ_ATTEMPTS} times while being read; try again")

    def _load(self, wal: WriteAheadLog | None = None) -> None:
        """``wal``: the new folder's log, already locked (compaction hands the lock over without a gap)."""
        if wal is None:
            wal = WriteAheadLog(self.path)
            if self.read_only:
                wal.refused = f"{self.path} is opened read-only"
            elif self.path.is_dir():
                wal.lock()  # before reading the folder: no one can replace it under us from here on
        else:
            wal.path = self.path / WAL_FOLDER / WAL_FILE
        self._wal = wal
        base = IndexFolder(self.path)
        manifest = base.manifest
        dense_dim = base.dense.dim if base.dense is not None else None
        ids = {doc.id: row for row, doc in enumerate(base.docs)}
        self.view = LiveView(base, Delta.empty(manifest.dim, dense_dim), np.zeros(manifest.doc_count, bool), ids)
        for batch in self._wal.replay():  # into Milvus too: idempotent, and a rebuilt collection gets the updates back
            self.view = self._applied(batch)

    @property
    def pending(self) -> int:
        """Delta rows and tombstones waiting for compaction."""
        return len(self.view.delta.docs) + int(self.view.hidden[: self.view.manifest.doc_count].sum())

    @property
    def compacts(self) -> bool:
        """False for an engine that stores updates itself (Milvus): it already holds every update."""
        return not self.view.base.engine.capabilities.stores_updates

    @property
    def writable(self) -> bool:
        """Whether this process holds the index's write lock (another server or a compaction may hold it)."""
        return self._wal.locked

    def release_write_lock(self, reason: str) -> None:
        """For a process that will not write (a server without an API key): others may take the lock; this
        process's writes are refused with ``reason`` from now on."""
        with self._lock:
            self._wal.close()
            self._wal.refused = reason

    def check_writable(self) -> None:
        engine = self.view.manifest.engine
        if not engine_class(engine).capabilities.live_updates:
            raise LiveUpdateError(f"{self.path} uses the {engine} engine, which takes no live updates")
        bm25 = self.view.base.bm25
        if bm25 is not None and bm25.term_counts is None:
            raise LiveUpdateError(
                f"{self.path}'s BM25 side was built before lsr kept the term counts live updates need: rebuild it with "
                f"`lsr index <dataset> --out {self.path} --add-bm25`"
            )
        if not self._wal.locked:
            raise WriterLockError(f"{self._wal.refused}: this process serves it read-only")

    def write(self, batch: Sequence[Operation]) -> None:
        """Durable (logged and fsynced) and visible to searches when this returns."""
        if not batch:
            return
        with self._lock:
            self.check_writable()
            for operation in batch:
                self._check(operation)
            # Milvus takes the batch before the log does: a batch Milvus refuses is not logged, so never replayed.
            view = self._applied(batch)
            self._wal.append(batch)
            self.view = view  # one reference swap: readers see all of the batch or none of it
        if self.compacts and self.pending >= self.compact_after and not self._compacting.locked():
            threading.Thread(target=self._compact_in_background, daemon=True).start()

    def _compact_in_background(self) -> None:
        if not self._compacting.acquire(blocking=False):
            return
        try:
            self.compact()
        except Exception:  # a failed compaction loses nothing (the log is intact); the next write retries
            log.exception("compacting %s failed", self.path)
        finally:
            self._compacting.release()

    def _check(self, operation: Operation) -> None:
        if isinstance(operation, Delete):
            return
        manifest = self.view.manifest
        if operation.terms.size and int(operation.terms.max()) >= manifest.dim:
            raise LiveUpdateError(f"document {operation.doc.id!r}: term id beyond the index's {manifest.dim} dimensions")
        if (operation.dense is None) != (manifest.dense_encoder is None):
            raise LiveUpdateError(f"document {operation.doc.id!r}: dense vector given for an index without one, or missing")

    def _applied(self, batch: Sequence[Operation]) -> LiveView:
        """The view with ``batch`` applied; a Milvus collection is updated here (before any snapshot shows the batch)."""
        view = self.view
        hidden = view.hidden
        ids = dict(view.ids)
        added: list[EncodedDocument] = []
        superseded = []
        next_row = hidden.size
        for operation in batch:
            previous = ids.pop(operation.id if isinstance(operation, Delete) else operation.doc.id, None)
            if previous is not None:
                superseded.append(previous)
            if isinstance(operation, EncodedDocument):
                ids[operation.doc.id] = next_row
                added.append(operation)
                next_row += 1
        hidden = np.concatenate((hidden, np.zeros(len(added), bool)))
        hidden[superseded] = True
        delta = view.delta.extend(added) if added else view.delta
        live_bm25 = view.live_bm25
        if view.base.bm25 is not None:
            live_bm25 = (live_bm25 or LiveBm25.unchanged(view.base.bm25)).extended([d.doc.contents for d in added], hidden)
        # A reader leaves the collection to the writer: a batch it replays late could undo a newer delete there.
        if view.base.engine.capabilities.stores_updates and not self.read_only:
            first = next_row - len(added)
            dim = delta.sparse.shape[1]
            upserts = [(first + i, d.doc, d.sparse_row(dim), d.dense) for i, d in enumerate(added)]
            view.base.engine.write(upserts, superseded)
        return LiveView(view.base, delta, hidden, ids, live_bm25)

    def get(self, doc_id: str) -> Document | None:
        view = self.view
        row = view.row(doc_id)
        return None if row is None else view.docs[row]

    def compact(self) -> bool:
        """Folds the delta and tombstones into a new index folder; False when there was nothing to fold."""
        with self._lock:
            if not self.compacts:
                raise LiveUpdateError(f"{self.path} is served by Milvus, which holds every update: there is nothing to compact")
            if not self._wal.locked:  # the holder (a server) may be appending to the log of the folder we would replace
                raise WriterLockError(f"cannot compact {self.path}: {self._wal.refused}; stop that process (lsr serve) first")
            if self.pending == 0:
                return False
            view = self.view
            kept = np.flatnonzero(~view.hidden)
            count = view.manifest.doc_count
            base_kept, delta_kept = kept[kept < count], kept[kept >= count] - count
            vectors = sp.vstack([view.base.vectors[base_kept], view.delta.sparse[delta_kept]], format="csr")
            dense = None
            if view.dense is not None:
                dense = np.vstack([view.base.dense.vectors()[base_kept], view.delta.dense[delta_kept]])
            docs = [view.docs[int(row)] for row in kept]
            corpus = {**view.manifest.corpus, "live_updates": True}
            manifest = dataclasses.replace(view.manifest, doc_count=len(docs), nnz=int(vectors.nnz), corpus=corpus)
            staging = self.path.with_name(f"{self.path.name}.compacting")
            with index_lock(self.path, "compacted"):
                shutil.rmtree(staging, ignore_errors=True)
                write_index(staging, manifest, vectors, docs, dense)
                # The new folder's empty log is locked before it is published: the write lock passes without a gap.
                wal = WriteAheadLog(staging)
                if not wal.lock():
                    raise WriterLockError(f"cannot compact {self.path}: {wal.refused}")
                try:
                    publish(staging, self.path)  # everything logged is now in the new folder
                except BaseException:
                    wal.close()
                    raise
                self._wal.close()
                self._load(wal)
            return True

    def close(self) -> None:
        self._wal.close()
