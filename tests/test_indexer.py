import json

import numpy as np
import pytest

from lsr import defaults
from lsr.datasets import read_corpus
from lsr.errors import EncoderMismatchError, IndexFolderError
from lsr.indexer import IndexFolder, build_index
from lsr.indexer.pipeline import partial_folder
from lsr.indexer.vectors import brute_force_search
from lsr.retrieval.search import Searcher


class CountingEncoder:
    """The real encoder, counting the documents it encodes and optionally failing after some calls."""

    def __init__(self, encoder, fail_after_calls=None):
        self._encoder = encoder
        self.spec, self.dim = encoder.spec, encoder.dim
        self.encoded = 0
        self._calls_left = fail_after_calls

    def encode_documents(self, texts):
        if self._calls_left == 0:
            raise KeyboardInterrupt  # what a user's Ctrl-C looks like to the pipeline
        if self._calls_left is not None:
            self._calls_left -= 1
        self.encoded += len(texts)
        return self._encoder.encode_documents(texts)


def test_manifest_records_encoder_quantization_and_counts(small_index, splade):
    index = IndexFolder(small_index)
    manifest = index.manifest
    assert manifest.doc_count == 120 == len(index.docs)
    assert manifest.encoder.name == "splade-tiny"
    assert manifest.encoder.content_hash == splade.spec.content_hash
    assert manifest.encoder.config_hash == splade.spec.config_hash
    assert manifest.quantization.scale == 100
    assert manifest.nnz == index.vectors.nnz > 0
    saved = json.loads((small_index / "manifest.json").read_text())
    assert saved["format_version"] == 1 and saved["created_at"] and saved["engine"] == {"name": "memory"}
    assert not partial_folder(small_index).exists()


def test_search_equals_brute_force_over_the_same_vectors(small_searcher):
    """Queries weighted by corpus IDF by hand, as a new index records (lsr.indexer.term_statistics)."""
    queries = ["boundary layer transition", "heat transfer in hypersonic flow", "buckling of cylindrical shells"]
    index = small_searcher.index
    assert index.manifest.query_idf == defaults.QUERY_IDF == small_searcher.query_idf
    frequencies = np.asarray((index.vectors > 0).sum(axis=0)).ravel()
    idf = np.log((index.manifest.doc_count + 1) / np.maximum(frequencies, 1))
    weights = (idf / idf[frequencies > 0].mean()).astype(np.float32) ** np.float32(defaults.QUERY_IDF)
    encoded = small_searcher.encoder.encode_queries(queries).tocsr()
    encoded.data *= weights[encoded.indices]
    quantization = index.manifest.quantization
    query_vectors = quantization.quantize(encoded)
    assert (query_vectors != quantization.quantize(small_searcher.encoder.encode_queries(queries))).nnz  # it weighs
    expected = brute_force_search(index.vectors, query_vectors, 10)
    for hits, reference in zip(small_searcher.search_many(queries, 10), expected, strict=True):
        assert [hit.id for hit in hits] == [small_searcher.index.docs[row].id for row in reference.doc_indices]
        np.testing.assert_allclose([hit.score for hit in hits], quantization.to_score(reference.scores))


def test_interrupted_run_resumes_without_reencoding_finished_chunks(tmp_path, small_dataset, small_index, splade):
    corpus = read_corpus(small_dataset)
    out = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus, CountingEncoder(splade, fail_after_calls=1), out, chunk_size=50, progress=False)
    assert not out.exists()  # no half index
    assert len(list((partial_folder(out) / "chunks").glob("*.npz"))) == 1

    with pytest.raises(IndexFolderError, match="pass --resume to continue it"):
        build_index(corpus, splade, out, chunk_size=50, progress=False)
    with pytest.raises(IndexFolderError, match="another chunk_size"):
        build_index(corpus, splade, out, chunk_size=40, resume=True, progress=False)

    resumed = CountingEncoder(splade)
    build_index(corpus, resumed, out, chunk_size=50, resume=True, progress=False)
    assert resumed.encoded == 70  # chunks 2 and 3 only
    assert not partial_folder(out).exists()
    assert (IndexFolder(out).vectors != IndexFolder(small_index).vectors).nnz == 0


def test_overwrite_discards_an_interrupted_run_and_starts_over(tmp_path, small_dataset, small_index, splade):
    corpus = read_corpus(small_dataset)
    out = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus, CountingEncoder(splade, fail_after_calls=1), out, chunk_size=50, progress=False)
    restarted = CountingEncoder(splade)
    build_index(corpus, restarted, out, chunk_size=40, overwrite=True, progress=False)  # another chunk size: no resume
    assert restarted.encoded == len(corpus.documents)
    assert not partial_folder(out).exists()
    assert (IndexFolder(out).vectors != IndexFolder(small_index).vectors).nnz == 0

    stranger = tmp_path / "other.partial"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("not lsr's")
    with pytest.raises(IndexFolderError, match="was not left by an lsr indexing run"):
        build_index(corpus, splade, tmp_path / "other", overwrite=True, progress=False)
    assert (stranger / "notes.txt").exists()


def test_existing_index_needs_overwrite_and_other_folders_are_never_replaced(tmp_path, small_dataset, splade):
    corpus = read_corpus(small_dataset)
    corpus.documents[:] = corpus.documents[:10]
    out = tmp_path / "index"
    build_index(corpus, splade, out, progress=False)
    with pytest.raises(IndexFolderError, match="already exists: pass --overwrite"):
        build_index(corpus, splade, out, progress=False)
    build_index(corpus, splade, out, overwrite=True, progress=False)
    assert IndexFolder(out).manifest.doc_count == 10
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(IndexFolderError, match="is not an lsr index; refusing to overwrite"):
        build_index(corpus, splade, precious, overwrite=True, progress=False)
    assert (precious / "thesis.tex").exists()


def test_searching_with_another_model_is_refused(tmp_path, small_index):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from lsr.retrieval.encoders import resolve_model

    source = resolve_model("splade-tiny").path
    model = AutoModelForMaskedLM.from_pretrained(source)
    with __import__("torch").no_grad():
        model.cls.predictions.bias += 0.01  # a fine-tuned variant: same shape, other weights
    model.save_pretrained(tmp_path / "variant")
    AutoTokenizer.from_pretrained(source).save_pretrained(tmp_path / "variant")
    with pytest.raises(EncoderMismatchError, match="was built with encoder 'splade-tiny'"):
        Searcher.open(small_index, str(tmp_path / "variant"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "manifest.json").unlink(), "is not an lsr index"),
        (lambda p: (p / "manifest.json").write_text("{oops"), "is corrupt"),
        (lambda p: (p / "manifest.json").write_text('{"format_version": 99}'), "index format 99 is not supported"),
        (lambda p: __import__("shutil").rmtree(p / "sparse"), "is incomplete: sparse is missing"),
    ],
)
def test_damaged_index_folders_are_refused(tmp_path, small_index, damage, message):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_index, copy)
    damage(copy)
    with pytest.raises(IndexFolderError, match=message):
        IndexFolder(copy)


def test_missing_index_folder_is_reported(tmp_path):
    with pytest.raises(IndexFolderError, match="does not exist"):
        IndexFolder(tmp_path / "nothing")
