"""Batch indexing: corpus → encoders → quantized impacts (+ dense vectors) → index folder, resumable.

Work happens in ``<out>.partial/``: each finished chunk of documents is saved there (atomically), so an
interrupted run resumes with ``resume=True`` without re-encoding what is done. Only a complete index is
renamed to ``<out>``. Sparse and dense vectors are encoded in one pass over the corpus.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from lsr import defaults
from lsr.datasets import Corpus, Document
from lsr.errors import IndexFolderError
from lsr.indexer.bm25 import Bm25Settings, Bm25Side
from lsr.indexer.dense import DenseIndex, DenseIndexSettings
from lsr.indexer.distributed import BatchEncoder, ray_encoding
from lsr.indexer.engines import (
    DEFAULT_ENGINE,
    LuceneBm25Engine,
    bm25_spec,
    engine_class,
    parse_settings,
    vector_engine_class,
)
from lsr.indexer.index_folder import (
    MANIFEST,
    IndexFolder,
    Manifest,
    build_engine,
    is_lsr_index,
    publish,
    recover_interrupted_publish,
    write_docs,
    write_index,
    write_manifest,
)
from lsr.indexer.live import WAL_FILE, WAL_FOLDER
from lsr.indexer.locks import index_lock, try_flock
from lsr.indexer.quantization import Quantization
from lsr.indexer.term_statistics import index_query_idf
from lsr.retrieval.encoders import (
    DenseEncoder,
    SparseEncoder,
    index_precision,
    load_indexing_dense_encoder,
    load_sparse_encoder,
)

PROGRESS_STEP = 128  # documents encoded between progress-bar updates
STATE = "state.json"


@dataclass(frozen=True)
class Encoded:
    """Vectors of consecutive documents: sparse integer impacts and/or dense float32 rows."""

    sparse: sp.csr_matrix | None = None
    dense: np.ndarray | None = None

    @staticmethod
    def concat(parts: list[Encoded]) -> Encoded:
        sparse = [part.sparse for part in parts if part.sparse is not None]
        dense = [part.dense for part in parts if part.dense is not None]
        return Encoded(
            sparse=sp.vstack(sparse, format="csr") if sparse else None,
            dense=np.vstack(dense) if dense else None,
        )

    def save(self, path: Path) -> None:
        arrays = {"dense": self.dense} if self.dense is not None else {}
        if self.sparse is not None:
            arrays.update(indptr=self.sparse.indptr, indices=self.sparse.indices, data=self.sparse.data)
        temporary = path.with_suffix(".tmp.npz")
        np.savez(temporary, **arrays)
        os.replace(temporary, path)  # atomic: a chunk file is whole or absent

    @staticmethod
    def load(path: Path, dim: int) -> Encoded:
        with np.load(path) as arrays:
            sparse = None
            if "indptr" in arrays:
                shape = (arrays["indptr"].size - 1, dim)
                sparse = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
            return Encoded(sparse=sparse, dense=arrays.get("dense"))


def partial_folder(out: Path) -> Path:
    return out.with_name(f"{out.name}.partial")


def _locked(parameter: str):
    """Runs the function holding ``<folder>.lock`` for the folder named by ``parameter`` (the index it writes): a
    second build of the same folder fails at once instead of sharing its ``.partial`` and publishing a mix."""

    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def locked(*args, **kwargs):
            folder = Path(signature.bind(*args, **kwargs).arguments[parameter])
            with index_lock(folder, "built"):
                return function(*args, **kwargs)

        return locked

    return decorate


def _check_target(out: Path, overwrite: bool) -> None:
    recover_interrupted_publish(out)  # an index left at <out>.previous by a crash is back at <out> before we decide
    if not out.exists():
        return
    if not out.is_dir():
        raise IndexFolderError(f"{out} is a file, not an index folder; refusing to replace it")
    if not overwrite:
        raise IndexFolderError(f"{out} already exists: pass --overwrite to replace it")
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise IndexFolderError(f"cannot read {out}: {exc.strerror or exc}") from exc
    if not empty and not is_lsr_index(out):
        raise IndexFolderError(f"{out} is not an lsr index; refusing to overwrite it")
    _check_not_served(out)


def _check_not_served(index: Path) -> None:
    """A server taking live updates holds its log's lock: replacing its index folder would lose its writes."""
    wal = index / WAL_FOLDER / WAL_FILE
    if wal.is_file():
        fd = try_flock(wal)
        if fd is None:
            raise IndexFolderError(
                f"{index} is being served with live updates by another process; stop it before replacing the index"
            )
        os.close(fd)


def _start_or_resume(work: Path, state: dict, resume: bool, overwrite: bool) -> None:
    if work.exists() and overwrite and not resume:
        if not (work / STATE).is_file():
            raise IndexFolderError(f"{work} was not left by an lsr indexing run; refusing to delete it")
        shutil.rmtree(work)  # --overwrite starts over, as it does for the index itself
    if work.exists():
        if not resume:
            raise IndexFolderError(
                f"an interrupted indexing run left {work}: pass --resume to continue it, or --overwrite to start over"
            )
        try:
            saved = json.loads((work / STATE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexFolderError(f"cannot resume from {work}: {exc}; delete that folder to start over") from exc
        differing = sorted(key for key in state.keys() | saved.keys() if saved.get(key) != state.get(key))
        if differing:
            raise IndexFolderError(
                f"cannot resume from {work}: it was started with another {', '.join(differing)}; delete that folder to start over"
            )
        return
    (work / "chunks").mkdir(parents=True)
    (work / STATE).write_text(json.dumps(state, indent=2))


def _encode_in_chunks(
    work: Path, texts: list[str], chunk_size: int, encode_batches: BatchEncoder, dim: int, progress: bool | None
) -> Encoded:
    """Encodes the chunks not yet saved in ``work``, then returns all of them concatenated.

    ``encode_batches`` encodes batches of ``PROGRESS_STEP`` texts, yielding them in order (in process, or on Ray);
    each chunk is saved as soon as its last batch is back.
    """
    chunk_count = -(-len(texts) // chunk_size)
    paths = [work / "chunks" / f"{number:06d}.npz" for number in range(chunk_count)]
    done = sum(min(chunk_size, len(texts) - number * chunk_size) for number, path in enumerate(paths) if path.exists())
    batches = [
        (number, texts[start : min(start + PROGRESS_STEP, (number + 1) * chunk_size, len(texts))])
        for number, path in enumerate(paths)
        if not path.exists()
        for start in range(number * chunk_size, min((number + 1) * chunk_size, len(texts)), PROGRESS_STEP)
    ]
    remaining = Counter(number for number, _ in batches)
    parts: dict[int, list[Encoded]] = defaultdict(list)
    disable = None if progress is None else not progress  # None: a bar on terminals only
    with tqdm(total=len(texts), initial=done, unit="doc", desc="encoding", disable=disable) as bar:
        for (number, batch), encoded in zip(batches, encode_batches([batch for _, batch in batches]), strict=True):
            parts[number].append(encoded)
            bar.update(len(batch))
            remaining[number] -= 1
            if remaining[number] == 0:
                Encoded.concat(parts.pop(number)).save(paths[number])
    return Encoded.concat([Encoded.load(path, dim) for path in paths])


def _in_process(encode: Callable[[list[str]], Encoded]) -> BatchEncoder:
    return lambda batches: map(encode, batches)


@_locked("out")
def build_index(
    corpus: Corpus,
    encoder: SparseEncoder,
    out: str | Path,
    *,
    dense_encoder: DenseEncoder | None = None,
    dense_index: DenseIndexSettings = DenseIndexSettings(),
    engine: str = DEFAULT_ENGINE,
    engine_settings: dict | None = None,
    quantization: Quantization = Quantization(),
    chunk_size: int = defaults.CHUNK_SIZE,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    ray_address: str | None = None,
    bm25: Bm25Settings | None = None,
    query_idf: float | None = None,
) -> Manifest:
    """Encodes and indexes ``corpus`` into the folder ``out``; ``progress=None`` shows a bar on a terminal.

    ``bm25`` also stores a BM25 side of the text (``lsr.indexer.bm25``), a third signal for hybrid search.
    ``query_idf``: the exponent of the sparse queries' corpus-IDF weighting the index records (0: none; None: the
    default where it applies, ``lsr.indexer.term_statistics``).

    ``engine_settings`` go into the manifest and to the engine (e.g. a Milvus URI and collection).
    ``ray_address`` encodes on a Ray cluster (``local``: one started on this machine) instead of in process.
    """
    started = time.perf_counter()
    out = Path(out)
    engine_settings = engine_settings or {}
    _check_engine_settings(engine, engine_settings)  # fail on an unknown engine or setting before hours of encoding
    query_idf = index_query_idf(encoder.spec, query_idf)
    if chunk_size < 1:
        raise IndexFolderError(f"chunk size must be positive, got {chunk_size}")
    _check_target(out, overwrite)
    work = partial_folder(out)
    state = {
        "corpus_sha256": corpus.sha256,
        "encoder": encoder.spec.config_hash,
        "dense_encoder": dense_encoder.spec.config_hash if dense_encoder else None,
        "quantization": quantization.to_dict(),
        "chunk_size": chunk_size,
    }
    _start_or_resume(work, state, resume, overwrite)

    def encode(texts: list[str]) -> Encoded:
        sparse = quantization.quantize(encoder.encode_documents(texts))
        return Encoded(sparse=sparse, dense=dense_encoder.encode_documents(texts) if dense_encoder else None)

    texts = [doc.contents for doc in corpus.documents]
    if ray_address is None:
        encoded = _encode_in_chunks(work, texts, chunk_size, _in_process(encode), encoder.dim, progress)
    else:
        with ray_encoding(ray_address, encode) as encode_on_ray:
            encoded = _encode_in_chunks(work, texts, chunk_size, encode_on_ray, encoder.dim, progress)
    manifest = Manifest(
        encoder=encoder.spec,
        quantization=quantization,
        engine=engine,
        doc_count=encoded.sparse.shape[0],
        dim=encoder.dim,
        nnz=int(encoded.sparse.nnz),
        corpus={"path": str(corpus.path), "sha256": corpus.sha256},
        dense_encoder=dense_encoder.spec if dense_encoder else None,
        dense_index=dense_index,
        engine_settings=engine_settings,
        bm25=bm25,
        query_idf=query_idf,
    )
    staging = work / "index"
    shutil.rmtree(staging, ignore_errors=True)  # a crash during assembly leaves a stale one
    write_index(staging, manifest, encoded.sparse, corpus.documents, encoded.dense)
    # Rewritten once the engine is built, so the recorded time covers encoding and every index structure.
    manifest = dataclasses.replace(manifest, indexing_seconds=round(time.perf_counter() - started, 3))
    write_manifest(staging, manifest)
    publish(staging, out)
    shutil.rmtree(work)
    return manifest


@_locked("index_path")
def add_dense_vectors(
    index_path: str | Path,
    corpus: Corpus,
    dense_encoder: DenseEncoder,
    *,
    dense_index: DenseIndexSettings = DenseIndexSettings(),
    chunk_size: int = defaults.CHUNK_SIZE,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Manifest:
    """Adds (or replaces) the dense vectors of an existing index without re-encoding its sparse side; ``overwrite``
    discards an interrupted run's finished chunks instead of refusing to start."""
    index = IndexFolder(index_path)
    documents = _documents_for_new_side(index, corpus)
    _check_compacted(index, "their upserts carry no dense vector (the index could not be opened after)")
    work = partial_folder(index.path)
    state = {
        "corpus_sha256": corpus.sha256,
        "adding": "dense",
        "dense_encoder": dense_encoder.spec.config_hash,
        "chunk_size": chunk_size,
    }
    _start_or_resume(work, state, resume, overwrite)

    def encode(texts: list[str]) -> Encoded:
        return Encoded(dense=dense_encoder.encode_documents(texts))

    texts = [doc.contents for doc in documents]
    encoded = _encode_in_chunks(work, texts, chunk_size, _in_process(encode), index.manifest.dim, progress)
    staging = work / "index"
    shutil.rmtree(staging, ignore_errors=True)
    # Hard links: the unchanged files are shared with the old index, not copied, and stay intact when it goes.
    shutil.copytree(index.path, staging, copy_function=_link_or_copy, ignore=shutil.ignore_patterns("dense", MANIFEST))
    DenseIndex.build(encoded.dense, staging / "dense", dense_index)
    # Tuned fusion settings were chosen for the old dense side, so they do not carry over.
    manifest = dataclasses.replace(index.manifest, dense_encoder=dense_encoder.spec, dense_index=dense_index, fusion=None)
    write_manifest(staging, manifest)
    publish(staging, index.path)
    shutil.rmtree(work)
    return manifest


def _documents_for_new_side(index: IndexFolder, corpus: Corpus) -> list[Document]:
    """The documents a side added to ``index`` covers, row for row: the folder's own, which after live updates were
    compacted are no longer the corpus's (the corpus only has to be the one the index was built from). Updates still
    in the log are not among them: a BM25 side takes them in when the index is opened, a dense side cannot."""
    if corpus.sha256 != index.manifest.corpus["sha256"]:
        raise IndexFolderError(f"{index.path} was built from another corpus than {corpus.path}")
    _check_not_served(index.path)
    return index.docs


def _check_compacted(index: IndexFolder, why: str) -> None:
    """For work that needs every document in the folder's files: live updates still in its log are not."""
    wal = index.path / WAL_FOLDER / WAL_FILE
    if not (wal.is_file() and wal.stat().st_size):
        return
    fix = f"run `lsr compact {index.path}` first"
    if engine_class(index.manifest.engine).capabilities.stores_updates:  # Milvus: never compacted in place
        fix = f"re-index it into the memory engine (`lsr reindex {index.path} --out NEW --engine memory`), compact that"
    raise IndexFolderError(f"{index.path} has live updates not yet compacted and {why}: {fix}")


def _link_or_copy(source: str, target: str) -> None:
    """Hard links for the immutable files; the live-update log is copied, since it is appended to in place (a
    shared inode would share its appends, and its write lock, between two indexes)."""
    if Path(source).name == WAL_FILE:
        shutil.copy2(source, target)
    else:
        os.link(source, target)


@_locked("index_path")
def add_bm25_side(index_path: str | Path, corpus: Corpus, settings: Bm25Settings = Bm25Settings()) -> Manifest:
    """Adds (or replaces) the BM25 side of an existing index; nothing is encoded (seconds, not minutes)."""
    index = IndexFolder(index_path)
    if index.has_text_engine:
        raise IndexFolderError(f"{index.path} is a BM25 index already; add the BM25 side to a splade index")
    documents = _documents_for_new_side(index, corpus)
    staging = _staging_folder(index.path)
    shutil.rmtree(staging, ignore_errors=True)
    # Hard links, as in add_dense_vectors: the unchanged files are shared with the old index.
    shutil.copytree(index.path, staging, copy_function=_link_or_copy, ignore=shutil.ignore_patterns("bm25", MANIFEST))
    Bm25Side.build([doc.contents for doc in documents], staging / "bm25", settings)
    # A tuned fusion weighed the signals the index had; with a new one, the untuned default applies until re-tuned.
    # A side rebuilt as it was (for the term counts live updates need) scores as before: the tuning still holds.
    fusion = index.manifest.fusion if index.manifest.bm25 == settings else None
    manifest = dataclasses.replace(index.manifest, bm25=settings, fusion=fusion)
    write_manifest(staging, manifest)
    publish(staging, index.path)
    return manifest


def _staging_folder(out: Path) -> Path:
    """Where a one-shot build is assembled before the rename."""
    return out.with_name(f"{out.name}.staging")


@_locked("out")
def build_bm25_index(corpus: Corpus, out: str | Path, *, overwrite: bool = False) -> Manifest:
    """A Lucene BM25 index of the corpus text (Pyserini's BEIR "flat" setting); nothing is encoded."""
    started = time.perf_counter()
    out = Path(out)
    _check_target(out, overwrite)
    staging = _staging_folder(out)
    shutil.rmtree(staging, ignore_errors=True)  # nothing in a BM25 build is worth resuming
    staging.mkdir(parents=True)
    write_docs(staging, corpus.documents)
    LuceneBm25Engine.build_from_texts([doc.contents for doc in corpus.documents], staging / "sparse")
    manifest = Manifest(
        encoder=bm25_spec(),
        quantization=Quantization(),
        engine=LuceneBm25Engine.name,
        doc_count=len(corpus.documents),
        dim=0,
        nnz=0,
        corpus={"path": str(corpus.path), "sha256": corpus.sha256},
        indexing_seconds=round(time.perf_counter() - started, 3),
    )
    write_manifest(staging, manifest)
    publish(staging, out)
    return manifest


def _check_engine_settings(engine: str, settings: dict) -> tuple[type, object]:
    """The engine and its typed settings, which go to its build and to every open of it."""
    engine_type = vector_engine_class(engine)
    return engine_type, parse_settings(engine_type, settings)


@_locked("out")
def reindex(
    index_path: str | Path, out: str | Path, engine: str, *, settings: dict | None = None, overwrite: bool = False
) -> Manifest:
    """Builds another engine's files from an index's stored vectors: nothing is re-encoded.

    ``settings`` go into the manifest and are passed to the engine whenever the index is opened.
    """
    index = IndexFolder(index_path, open_engine=False)
    if index.has_text_engine:
        raise IndexFolderError(f"{index.path} is a BM25 index: it has no vectors to re-index")
    settings = settings or {}
    engine_type, typed_settings = _check_engine_settings(engine, settings)
    if not engine_type.capabilities.live_updates:  # the others replay the copied log
        _check_compacted(index, f"the {engine} engine would never read them")
    out = Path(out)
    if out.resolve() == index.path.resolve():
        raise IndexFolderError("re-index into a new folder (--out), not over the index being read")
    _check_target(out, overwrite)
    staging = _staging_folder(out)
    shutil.rmtree(staging, ignore_errors=True)
    # Hard links: documents, vectors and the dense side are shared with the source index, not copied.
    shutil.copytree(index.path, staging, copy_function=_link_or_copy, ignore=shutil.ignore_patterns("sparse", MANIFEST))
    build_engine(engine, index.vectors, staging / "sparse", settings, index.docs, index.dense_vectors())
    engine_type.open(staging / "sparse", index.manifest.doc_count, typed_settings)  # bad values fail here, unpublished
    manifest = dataclasses.replace(index.manifest, engine=engine, engine_settings=settings)
    write_manifest(staging, manifest)
    publish(staging, out)
    return manifest


def index_corpus(
    corpus: Corpus,
    out: str | Path,
    *,
    encoder: str = defaults.SPARSE_ENCODER,
    dense_encoder: str | None = None,
    doc_max_length: int = defaults.DOC_MAX_LENGTH,
    query_max_length: int = defaults.QUERY_MAX_LENGTH,
    precision: str | None = None,
    dense_backend: str | None = None,
    device: str = defaults.DEVICE,
    **options,
) -> Manifest:
    """``build_index`` with the encoders named rather than loaded: a packaged name, a model folder or a Hugging Face
    id; ``precision`` and ``dense_backend`` default as in ``lsr index`` (``index_precision``, ``index_dense_backend``);
    ``device`` is where they run (auto: CUDA when torch sees a GPU); ``options`` are ``build_index``'s (engine,
    chunk_size, resume, overwrite, progress, …)."""
    precision = precision or index_precision(encoder, device)
    sparse = load_sparse_encoder(
        encoder, query_max_length=query_max_length, doc_max_length=doc_max_length, precision=precision, device=device
    )
    dense = load_indexing_dense_encoder(dense_encoder, device=device, backend=dense_backend) if dense_encoder else None
    return build_index(corpus, sparse, out, dense_encoder=dense, **options)
