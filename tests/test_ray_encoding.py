"""`lsr index --ray`: encoding on a (local) Ray cluster writes the same index an in-process run writes."""

from __future__ import annotations

import ctypes
import importlib.util
import signal

import numpy as np
import pytest

from lsr.datasets import read_corpus
from lsr.indexer import IndexFolder, build_index
from tests.conftest import shared_dataset, write_beir_subset


class _Sigaction(ctypes.Structure):
    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("mask", ctypes.c_ulong * 16),
        ("flags", ctypes.c_int),
        ("restorer", ctypes.c_void_p),
    ]


def _segfault_handler() -> int | None:
    """The process's SIGSEGV handler as the C library sees it (Python's signal module only knows its own)."""
    action = _Sigaction()
    assert ctypes.CDLL(None).sigaction(signal.SIGSEGV, None, ctypes.byref(action)) == 0
    return action.handler


# Skipped without Ray by find_spec, not importorskip: importing Ray here would read its settings before lsr sets them.
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray (the ray extra)")
def test_ray_encoded_index_has_the_in_process_vectors(tmp_path, splade, minilm):
    dataset = write_beir_subset(shared_dataset("scifact"), tmp_path / "scifact-200", 200)
    corpus = read_corpus(dataset)
    # Chunks of 100 with batches of 128 inside: the last batch of each chunk is short, as in process.
    build_index(corpus, splade, tmp_path / "in-process", dense_encoder=minilm, chunk_size=100, progress=False)
    handler = _segfault_handler()
    build_index(corpus, splade, tmp_path / "on-ray", dense_encoder=minilm, chunk_size=100, progress=False, ray_address="local")
    # A JVM started earlier in the process (Lucene) keeps the SIGSEGV handler it relies on.
    assert _segfault_handler() == handler
    expected, found = IndexFolder(tmp_path / "in-process"), IndexFolder(tmp_path / "on-ray")
    assert found.manifest.doc_count == expected.manifest.doc_count == 200
    assert (found.vectors != expected.vectors).nnz == 0 and found.vectors.nnz == expected.vectors.nnz > 0
    np.testing.assert_array_equal(found.dense_vectors(), expected.dense_vectors())
    assert [doc.id for doc in found.docs] == [doc.id for doc in expected.docs]
