"""Batch indexing: corpus → encoder → quantized impacts → index folder, resumable chunk by chunk.

Work happens in ``<out>.partial/``: each finished chunk of documents is saved there (atomically), so an
interrupted run resumes with ``resume=True`` without re-encoding what is done. Only a complete index is
renamed to ``<out>``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from lsr.datasets import Corpus
from lsr.errors import IndexFolderError
from lsr.indexer.engines import DEFAULT_ENGINE, engine_class
from lsr.indexer.index_folder import MANIFEST, DocInfo, Manifest, publish, write_index
from lsr.indexer.quantization import Quantization
from lsr.retrieval.encoders.base import SparseEncoder

DEFAULT_CHUNK_SIZE = 1000
STATE = "state.json"


def partial_folder(out: Path) -> Path:
    return out.with_name(f"{out.name}.partial")


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise IndexFolderError(f"{out} already exists: pass --overwrite to replace it")
    if not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise IndexFolderError(f"{out} is not an lsr index; refusing to overwrite it")


def _start_or_resume(work: Path, state: dict, resume: bool) -> None:
    if work.exists():
        if not resume:
            raise IndexFolderError(
                f"an interrupted indexing run left {work}: pass --resume to continue it, or delete that folder to start over"
            )
        try:
            saved = json.loads((work / STATE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexFolderError(f"cannot resume from {work}: {exc}; delete that folder to start over") from exc
        differing = sorted(key for key in state if saved.get(key) != state[key])
        if differing:
            raise IndexFolderError(
                f"cannot resume from {work}: it was started with another {', '.join(differing)}; "
                "delete that folder to start over"
            )
        return
    (work / "chunks").mkdir(parents=True)
    (work / STATE).write_text(json.dumps(state, indent=2))


def _chunk_path(work: Path, number: int) -> Path:
    return work / "chunks" / f"{number:06d}.npz"


def _save_chunk(path: Path, impacts: sp.csr_matrix) -> None:
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, indptr=impacts.indptr, indices=impacts.indices, data=impacts.data)
    os.replace(temporary, path)  # atomic: a chunk file is whole or absent


def _load_chunk(path: Path, dim: int) -> sp.csr_matrix:
    with np.load(path) as arrays:
        return sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(arrays["indptr"].size - 1, dim))


def build_index(
    corpus: Corpus,
    encoder: SparseEncoder,
    out: str | Path,
    *,
    engine: str = DEFAULT_ENGINE,
    quantization: Quantization = Quantization(),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Manifest:
    """Encodes and indexes ``corpus`` into the folder ``out``; ``progress=None`` shows a bar on a terminal."""
    out = Path(out)
    engine_class(engine)  # fail on an unknown engine before hours of encoding
    if chunk_size < 1:
        raise IndexFolderError(f"chunk size must be positive, got {chunk_size}")
    _check_target(out, overwrite)
    work = partial_folder(out)
    state = {
        "corpus_sha256": corpus.sha256,
        "encoder": encoder.spec.config_hash,
        "quantization": quantization.to_dict(),
        "chunk_size": chunk_size,
    }
    _start_or_resume(work, state, resume)

    documents = corpus.documents
    chunk_count = -(-len(documents) // chunk_size)
    done = [_chunk_path(work, n).exists() for n in range(chunk_count)]
    initial = sum(min(chunk_size, len(documents) - n * chunk_size) for n in range(chunk_count) if done[n])
    with tqdm(total=len(documents), initial=initial, unit="doc", desc="encoding", disable=None if progress is None else not progress) as bar:
        for number in range(chunk_count):
            if done[number]:
                continue
            chunk = documents[number * chunk_size : (number + 1) * chunk_size]
            vectors = encoder.encode_documents([doc.contents for doc in chunk], on_progress=bar.update)
            _save_chunk(_chunk_path(work, number), quantization.quantize(vectors))

    vectors = sp.vstack([_load_chunk(_chunk_path(work, n), encoder.dim) for n in range(chunk_count)], format="csr")
    manifest = Manifest(
        encoder=encoder.spec,
        quantization=quantization,
        engine=engine,
        doc_count=vectors.shape[0],
        dim=encoder.dim,
        nnz=int(vectors.nnz),
        corpus={"path": str(corpus.path), "sha256": corpus.sha256},
    )
    staging = work / "index"
    shutil.rmtree(staging, ignore_errors=True)  # a crash during assembly leaves a stale one
    write_index(staging, manifest, vectors, [DocInfo(doc.id, doc.title) for doc in documents])
    publish(staging, out)
    shutil.rmtree(work)
    return manifest
