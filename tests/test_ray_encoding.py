"""`lsr index --ray`: encoding on a (local) Ray cluster writes the same index an in-process run writes."""

from __future__ import annotations

import numpy as np
import pytest

from lsr.datasets import read_corpus
from lsr.indexer import IndexFolder, build_index
from tests.conftest import shared_dataset, write_beir_subset


@pytest.mark.slow
def test_ray_encoded_index_has_the_in_process_vectors(tmp_path, splade, minilm):
    pytest.importorskip("ray")
    dataset = write_beir_subset(shared_dataset("scifact"), tmp_path / "scifact-200", 200)
    corpus = read_corpus(dataset)
    # Chunks of 100 with batches of 128 inside: the last batch of each chunk is short, as in process.
    build_index(corpus, splade, tmp_path / "in-process", dense_encoder=minilm, chunk_size=100, progress=False)
    build_index(corpus, splade, tmp_path / "on-ray", dense_encoder=minilm, chunk_size=100, progress=False, ray_address="local")
    expected, found = IndexFolder(tmp_path / "in-process"), IndexFolder(tmp_path / "on-ray")
    assert found.manifest.doc_count == expected.manifest.doc_count == 200
    assert (found.vectors != expected.vectors).nnz == 0 and found.vectors.nnz == expected.vectors.nnz > 0
    np.testing.assert_array_equal(found.dense_vectors(), expected.dense_vectors())
    assert [doc.id for doc in found.docs] == [doc.id for doc in expected.docs]
