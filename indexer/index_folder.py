"""The index folder: one directory is one searchable thing.

    manifest.json  what built it (encoder spec, quantization, engine, counts); written last
    docs.jsonl     doc ids and titles, in index row order (and text and metadata, when the corpus had them)
    vectors/       the quantized document vectors (canonical; engines are built from them)
    sparse/        the engine's files
    dense/         dense document vectors in a faiss index (when the index has a dense encoder)
    bm25/          BM25 over the documents' text (when built with --bm25): a third signal for hybrid search

Folders are assembled under a temporary name and renamed into place, so a reader never sees half an index.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from lsr import __version__
from lsr.datasets import Document
from lsr.errors import IndexFolderError
from lsr.indexer.bm25 import Bm25Settings, Bm25Side
from lsr.indexer.dense import DenseIndex, DenseIndexSettings
from lsr.indexer.engines import BM25_KIND, BuildExtras, engine_class, parse_settings, vector_engine_class
from lsr.indexer.locks import LockHeld, held_here, index_lock
from lsr.indexer.quantization import Quantization
from lsr.indexer.searchable import DenseSide
from lsr.indexer.term_statistics import TermStatistics, term_counts, valid_exponent
from lsr.indexer.vectors import check_vectors, load_vectors, save_vectors, stored_terms
from lsr.retrieval.encoders.base import EncoderSpec

FORMAT_VERSION = 1
FORMAT_NAME = "lsr-index"  # the manifest's "format": what tells an lsr index from any folder with a manifest.json
MANIFEST = "manifest.json"
# Siblings of an index folder <index>: publish's backup, compaction's and one-shot builds' staging folders, and a
# replaced index being deleted.
DISCARDED = "discarded"
LEFTOVER_SUFFIXES = ("previous", "compacting", "staging", DISCARDED)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Manifest:
    encoder: EncoderSpec
    quantization: Quantization
    engine: str
    doc_count: int
    dim: int
    nnz: int
    corpus: dict  # path and sha256 of the corpus file it was built from
    dense_encoder: EncoderSpec | None = None
    dense_index: DenseIndexSettings = DenseIndexSettings()
    fusion: dict | None = None  # hybrid settings chosen by `lsr tune`, used by default
    # Exponent of the corpus-IDF weighting of sparse queries (lsr.indexer.term_statistics); None: none (older indexes).
    query_idf: float | None = None
    bm25: Bm25Settings | None = None  # the BM25 side's analysis and parameters, when the index has one
    engine_settings: dict = field(default_factory=dict)  # passed to the engine when it opens (e.g. a search budget)
    # Wall time of the run that finished the index (a resumed run counts only its own part); None in older indexes.
    indexing_seconds: float | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    lsr_version: str = __version__
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "lsr_version": self.lsr_version,
            "created_at": self.created_at,
            "encoder": self.encoder.to_dict(),
            "quantization": self.quantization.to_dict(),
            "engine": {"name": self.engine, **self.engine_settings},
            "doc_count": self.doc_count,
            "dim": self.dim,
            "nnz": self.nnz,
            "corpus": self.corpus,
            "dense_encoder": self.dense_encoder.to_dict() if self.dense_encoder else None,
            "dense_index": self.dense_index.to_dict() if self.dense_encoder else None,
            "fusion": self.fusion,
            "query_idf": self.query_idf,
            "bm25": self.bm25.to_dict() if self.bm25 else None,
            "indexing_seconds": self.indexing_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        return cls(
            encoder=EncoderSpec.from_dict(data["encoder"]),
            quantization=Quantization.from_dict(data["quantization"]),
            engine=data["engine"]["name"],
            engine_settings={key: value for key, value in data["engine"].items() if key != "name"},
            doc_count=int(data["doc_count"]),
            dim=int(data["dim"]),
            nnz=int(data["nnz"]),
            corpus=data["corpus"],
            dense_encoder=EncoderSpec.from_dict(data["dense_encoder"]) if data.get("dense_encoder") else None,
            dense_index=DenseIndexSettings.from_dict(data.get("dense_index")),
            fusion=data.get("fusion"),
            query_idf=_query_idf(data.get("query_idf")),
            bm25=Bm25Settings.from_dict(data["bm25"]) if data.get("bm25") else None,
            indexing_seconds=data.get("indexing_seconds"),
            created_at=data["created_at"],
            lsr_version=data["lsr_version"],
            format_version=int(data["format_version"]),
        )


def _query_idf(value: object) -> float | None:
    if value is None:
        return None
    exponent = float(value)
    if not valid_exponent(exponent):
        raise ValueError(f"query_idf must be a finite number ≥ 0, got {value!r}")
    return exponent


def read_manifest(folder: Path) -> Manifest:
    if not folder.is_dir():
        if folder.exists():
            raise IndexFolderError(f"{folder} is a file, not an index folder")
        if folder.with_name(f"{folder.name}.previous").is_dir():
            raise IndexFolderError(f"index folder {folder} is being replaced by another process; try again when it is done")
        raise IndexFolderError(f"index folder {folder} does not exist")
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexFolderError(f"{folder} is not an lsr index (no {MANIFEST}); build one with `lsr index`")
    try:
        data = json.loads(path.read_text())
        if data.get("format", FORMAT_NAME) != FORMAT_NAME:  # older manifests have no "format"
            raise IndexFolderError(f"{folder} is not an lsr index ({MANIFEST} says format {data.get('format')!r})")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexFolderError(f"{path}: index format {version} is not supported (this lsr reads {FORMAT_VERSION})")
        return Manifest.from_dict(data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise IndexFolderError(f"{path} is corrupt: {exc}") from exc
    except OSError as exc:
        raise IndexFolderError(f"cannot read {path}: {exc.strerror or exc}") from exc


def is_lsr_index(folder: Path) -> bool:
    """Whether ``folder`` holds an lsr index: a manifest naming the lsr format (or an older one with a format version
    and no name) and the parts every index has. Only such folders are ever replaced or deleted."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    marker = data.get("format")
    if marker != FORMAT_NAME and not (marker is None and isinstance(data.get("format_version"), int)):
        return False
    expected = ["docs.jsonl", "sparse", *(["dense"] if data.get("dense_encoder") else [])]
    return (folder / "docs.jsonl").is_file() and all((folder / part).exists() for part in expected)


def recover_interrupted_publish(path: Path) -> None:
    """Puts an index back in place after a crash between publish's two renames (``<index>`` missing, the whole
    index at ``<index>.previous``), and removes what crashed builds, compactions and publishes left beside it
    (``.previous`` once ``<index>`` is whole, ``.compacting``, ``.staging``, ``.discarded``); reports a ``.partial``
    (a resumable build). Does nothing while another process builds or publishes the index (it holds ``<index>.lock``)."""
    path = Path(path)
    siblings = {suffix: path.with_name(f"{path.name}.{suffix}") for suffix in (*LEFTOVER_SUFFIXES, "partial")}
    if not any(sibling.exists() for sibling in siblings.values()):
        return
    building_here = held_here(path)  # this process builds or publishes the index: its .partial is no leftover
    try:
        with index_lock(path, "published"):
            previous = siblings["previous"]
            if not path.exists() and is_lsr_index(previous):
                previous.rename(path)
                log.warning("%s: recovered the index from %s (a publish was interrupted)", path, previous.name)
            for suffix in LEFTOVER_SUFFIXES:
                leftover = siblings[suffix]
                if not leftover.is_dir() or (suffix == "previous" and not (path.exists() and is_lsr_index(leftover))):
                    continue
                shutil.rmtree(leftover)
                log.warning("%s: removed %s, left by an interrupted run", path, leftover.name)
            if siblings["partial"].is_dir() and not building_here:
                log.warning(
                    "%s: an interrupted `lsr index` left %s: run it again with --resume to finish it, or delete it",
                    path,
                    siblings["partial"].name,
                )
    except LockHeld:
        pass  # a build or publish is under way: what lies beside the index is its work
    except (OSError, IndexFolderError) as exc:  # e.g. a read-only parent folder: the index itself may still be readable
        log.warning("%s: cannot clean up after an interrupted run: %s", path, exc)


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Atomically: readers see the old manifest or the new one, never half of one."""
    temporary = folder / f"{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    os.replace(temporary, folder / MANIFEST)


def write_docs(folder: Path, docs: list[Document]) -> None:
    with (folder / "docs.jsonl").open("w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(doc.to_json() + "\n")


def build_engine(
    engine: str, vectors: sp.csr_matrix, folder: Path, settings: dict, docs: list[Document], dense: np.ndarray | None
) -> None:
    """Builds an engine's part of an index (an engine that stores updates keeps the documents and dense vectors too)."""
    engine_type = vector_engine_class(engine)
    engine_type.build(vectors, folder, parse_settings(engine_type, settings), BuildExtras(docs, dense))


def write_index(
    folder: Path, manifest: Manifest, vectors: sp.csr_matrix, docs: list[Document], dense: np.ndarray | None = None
) -> None:
    """Writes a complete index into an empty staging folder; the manifest goes last."""
    folder.mkdir(parents=True)
    write_docs(folder, docs)
    save_vectors(vectors, folder / "vectors")
    build_engine(manifest.engine, vectors, folder / "sparse", manifest.engine_settings, docs, dense)
    if dense is not None:
        DenseIndex.build(dense, folder / "dense", manifest.dense_index)
    if manifest.bm25 is not None:
        Bm25Side.build([doc.contents for doc in docs], folder / "bm25", manifest.bm25)
    write_manifest(folder, manifest)


def publish(staging: Path, target: Path) -> None:
    """Moves a finished index into place, replacing an older index there only once the new one is whole.

    Callers hold ``index_lock(target)``; a crash between the renames is undone by ``recover_interrupted_publish``."""
    _fsync_tree(staging)  # on disk before the old index goes: a power cut must not leave empty files in its place
    previous = None
    if target.exists():
        previous = target.with_name(f"{target.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)
        target.rename(previous)
    staging.rename(target)
    _fsync_directory(target.parent)  # the renames themselves
    if previous is not None:
        # Renamed before it is deleted: a crash part-way through the delete leaves a folder that is no longer a whole
        # index, and recovery keeps a .previous that is not one (it may be a user's), while a .discarded is always ours.
        discarded = target.with_name(f"{target.name}.{DISCARDED}")
        shutil.rmtree(discarded, ignore_errors=True)
        previous.rename(discarded)
        shutil.rmtree(discarded)


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(folder: Path) -> None:
    """Every file and folder under ``folder`` (np.save and friends write without fsync)."""
    for root, _, files in os.walk(folder):
        for name in files:
            descriptor = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_directory(Path(root))


class IndexFolder:
    """An opened, validated index folder."""

    def __init__(self, path: str | Path, open_engine: bool = True) -> None:
        """``open_engine=False`` for readers of the stored vectors only (re-indexing), so that an engine this
        version cannot open does not stand in the way of rebuilding it."""
        self.path = Path(path)
        recover_interrupted_publish(self.path)
        self.manifest = read_manifest(self.path)
        for part in self.parts:
            if not (self.path / part).exists():
                raise IndexFolderError(f"{self.path} is incomplete: {part} is missing")
        if not self.has_text_engine:
            check_vectors(self.path / "vectors", self.manifest.doc_count)
        if open_engine:
            self.engine  # noqa: B018 — opened now, so a broken index fails when it is opened, not at its first query

    @cached_property
    def engine(self) -> Any:  # a vector engine, or the BM25 engine that searches text
        try:
            engine_type = engine_class(self.manifest.engine)
            settings = parse_settings(engine_type, self.manifest.engine_settings)
            engine = engine_type.open(self.path / "sparse", self.manifest.doc_count, settings)
        except (OSError, ValueError) as exc:
            raise IndexFolderError(f"{self.path}: cannot open the {self.manifest.engine} engine: {exc}") from exc
        dim = getattr(engine, "dim", None)
        if isinstance(dim, int) and not self.has_text_engine and dim != self.manifest.dim:
            raise IndexFolderError(
                f"{self.path} is damaged: its engine has {dim} dimensions, the manifest says {self.manifest.dim}"
            )
        return engine

    @property
    def parts(self) -> list[str]:
        """What the folder holds besides the manifest; BM25 indexes have no vectors."""
        vectors = [] if self.has_text_engine else ["vectors"]
        optional = [name for name, present in (("dense", self.manifest.dense_encoder), ("bm25", self.manifest.bm25)) if present]
        return ["docs.jsonl", *vectors, "sparse", *optional]

    @property
    def has_text_engine(self) -> bool:
        return self.manifest.encoder.kind == BM25_KIND

    @cached_property
    def docs(self) -> list[Document]:
        try:
            with (self.path / "docs.jsonl").open(encoding="utf-8") as handle:
                docs = [Document.from_json(line) for line in handle]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:  # ValueError: bad JSON or UTF-8
            raise IndexFolderError(f"{self.path}: docs.jsonl is damaged: {exc}") from exc
        if len(docs) != self.manifest.doc_count:
            raise IndexFolderError(f"{self.path}: docs.jsonl has {len(docs)} rows, the manifest says {self.manifest.doc_count}")
        return docs

    @cached_property
    def dense(self) -> DenseSide | None:
        if self.manifest.dense_encoder is None:
            return None
        if self.engine.capabilities.serves_dense:
            return self.engine.dense_side()
        try:
            return DenseIndex.open(self.path / "dense", self.manifest.dense_index)
        except RuntimeError as exc:  # faiss reports unreadable files as RuntimeError
            raise IndexFolderError(f"{self.path}: cannot open the dense index: {exc}") from exc

    @cached_property
    def bm25(self) -> Bm25Side | None:
        return Bm25Side.open(self.path / "bm25", self.manifest.bm25) if self.manifest.bm25 else None

    def dense_vectors(self) -> np.ndarray | None:
        """The stored dense vectors (the faiss copy is canonical, whichever engine serves them)."""
        if self.manifest.dense_encoder is None:
            return None
        return DenseIndex.open(self.path / "dense", self.manifest.dense_index).vectors()

    @cached_property
    def vectors(self) -> sp.csr_matrix:
        return load_vectors(self.path / "vectors", self.manifest.dim)

    @cached_property
    def term_statistics(self) -> TermStatistics:
        terms = stored_terms(self.path / "vectors")  # counted from the memory map: the impacts are never loaded
        return TermStatistics(self.manifest.doc_count, term_counts(terms, self.manifest.dim))

    def vector(self, row: int) -> sp.csr_matrix:
        """The quantized sparse vector of one row (1 × dim)."""
        return self.vectors[row]

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {doc.id: row for row, doc in enumerate(self.docs)}

    def row(self, doc_id: str) -> int | None:
        return self._rows.get(doc_id)
