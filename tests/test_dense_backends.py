"""The dense encoder's ONNX backends (retrieval/encoders/dense.py, onnx.py) against torch, on real texts and the
packaged all-MiniLM-L6-v2; how the manifest records the backend and how queries follow it."""

from __future__ import annotations

import hashlib
import json
import os
import pickle

import numpy as np
import pytest

from lsr.errors import EncoderError
from lsr.retrieval.encoders import EncoderSpec, load_dense_encoder, resolve_model
from lsr.retrieval.encoders.dense import mean_pooled


def scifact_texts(count):
    from conftest import shared_dataset

    from lsr.datasets import read_corpus

    return [doc.contents for doc in read_corpus(shared_dataset("scifact")).documents[:count]]


TEXTS = [*scifact_texts(12), "does vitamin D prevent fractures", "a", "0-dimensional biomaterials show inductive properties."]


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory):
    """A fresh cache folder, so that these tests build the exports themselves."""
    folder = tmp_path_factory.mktemp("lsr-cache")
    before = os.environ.get("LSR_CACHE_DIR")
    os.environ["LSR_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        del os.environ["LSR_CACHE_DIR"]
    else:
        os.environ["LSR_CACHE_DIR"] = before


@pytest.fixture(scope="module")
def onnx_minilm(export_cache):
    return load_dense_encoder("all-minilm-l6-v2", backend="onnx", device="cpu")


@pytest.fixture(scope="module")
def int8_minilm(export_cache):
    return load_dense_encoder("all-minilm-l6-v2", backend="onnx-int8", device="cpu")


def test_onnx_matches_torch_on_real_texts(minilm, onnx_minilm, export_cache):
    torch_vectors = minilm.encode_documents(TEXTS)
    onnx_vectors = onnx_minilm.encode_documents(TEXTS)
    assert onnx_vectors.dtype == np.float32 and onnx_vectors.shape == torch_vectors.shape
    # Same graph, other kernels: float rounding only (measured max |Δ| 3e-7, 1 − cos 1e-7).
    np.testing.assert_allclose(onnx_vectors, torch_vectors, atol=1e-5)
    np.testing.assert_allclose(onnx_minilm.encode_queries(TEXTS[-3:]), minilm.encode_queries(TEXTS[-3:]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)
    assert onnx_minilm.encode_documents([]).shape == (0, 384)
    # Built once into lsr's cache, never into the (read-only) model folder, and without a partial file left over.
    exports = sorted(path.name for path in export_cache.rglob("*") if path.is_file())
    assert "model.onnx" in exports and not any(name.startswith(".partial") for name in exports)
    assert not list(resolve_model("all-minilm-l6-v2").path.glob("*.onnx"))


def test_int8_stays_close_to_torch(minilm, int8_minilm):
    cosines = np.sum(int8_minilm.encode_documents(TEXTS) * minilm.encode_documents(TEXTS), axis=1)
    assert cosines.min() > 0.97  # measured ≥ 0.987 over scifact documents and queries


def test_openvino_matches_torch_at_fp32_and_stays_close_at_its_default(minilm, export_cache):
    from lsr.retrieval.encoders import _native_bf16

    default = load_dense_encoder("all-minilm-l6-v2", backend="openvino", device="cpu")
    # OpenVINO's own default precision: bf16 where the CPU computes it natively (AVX512-BF16, AMX), recorded.
    assert (default.spec.backend, default.spec.precision) == ("openvino", "bf16" if _native_bf16() else "fp32")
    full = load_dense_encoder("all-minilm-l6-v2", backend="openvino", precision="fp32", device="cpu")
    torch_vectors = minilm.encode_documents(TEXTS)
    np.testing.assert_allclose(full.encode_documents(TEXTS), torch_vectors, atol=1e-5)
    cosines = np.sum(default.encode_documents(TEXTS) * torch_vectors, axis=1)
    assert cosines.min() > 0.9995  # measured 1 − cos ≤ 3e-5 at bf16 over scifact documents and queries
    copy = pickle.loads(pickle.dumps(default))
    np.testing.assert_array_equal(copy.encode_queries(TEXTS[:2]), default.encode_queries(TEXTS[:2]))


def test_rows_keep_their_order_whatever_the_batching(onnx_minilm):
    together = onnx_minilm.encode_documents(TEXTS[::-1])
    alone = np.vstack([onnx_minilm.encode_documents([text]) for text in TEXTS[::-1]])
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding changes the last bits only


def test_encoder_pickles_without_its_session(onnx_minilm):
    onnx_minilm.encode_queries(["warm"])  # opens the session
    copy = pickle.loads(pickle.dumps(onnx_minilm))  # as Ray ships it to an actor
    np.testing.assert_array_equal(copy.encode_queries(TEXTS[:2]), onnx_minilm.encode_queries(TEXTS[:2]))


def test_backend_is_recorded_and_torch_keeps_its_hash(minilm, onnx_minilm, int8_minilm):
    assert (minilm.spec.backend, onnx_minilm.spec.backend, int8_minilm.spec.backend) == ("torch", "onnx", "onnx-int8")
    assert minilm.spec.identity == onnx_minilm.spec.identity  # the same model: queries may cross backends
    hashes = {minilm.spec.config_hash, onnx_minilm.spec.config_hash, int8_minilm.spec.config_hash}
    assert len(hashes) == 3  # other document vectors, other configurations (resumes do not mix them)
    before = json.dumps({**minilm.spec.identity, "doc_max_length": minilm.spec.doc_max_length}, sort_keys=True)
    assert minilm.spec.config_hash == hashlib.sha256(before.encode()).hexdigest()[:16]
    older_manifest = {key: value for key, value in minilm.spec.to_dict().items() if key != "backend"}
    assert EncoderSpec.from_dict(older_manifest) == minilm.spec
    assert EncoderSpec.from_dict(onnx_minilm.spec.to_dict()) == onnx_minilm.spec


def test_unknown_backends_and_other_poolings_are_refused(tmp_path, export_cache):
    with pytest.raises(EncoderError, match="dense backend must be one of torch, onnx, onnx-int8, openvino"):
        load_dense_encoder("all-minilm-l6-v2", backend="tensorrt")
    with pytest.raises(EncoderError, match="the onnx dense backend runs at fp32, got precision 'bf16'"):
        load_dense_encoder("all-minilm-l6-v2", backend="onnx", precision="bf16")
    source = resolve_model("all-minilm-l6-v2").path
    assert mean_pooled(source) and not mean_pooled(resolve_model("splade-tiny").path)
    cls = tmp_path / "minilm-cls"
    cls.mkdir()
    for item in source.iterdir():
        if item.is_file():
            (cls / item.name).symlink_to(item)
    (cls / "1_Pooling").mkdir()
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (cls / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    assert not mean_pooled(cls)
    with pytest.raises(EncoderError, match="mean pooling models"):
        load_dense_encoder(str(cls), backend="onnx")


def test_index_records_the_backend_and_queries_follow_it(tmp_path, small_dataset, splade, minilm, onnx_minilm):
    from lsr.datasets import read_corpus
    from lsr.indexer import IndexFolder, build_index
    from lsr.retrieval.search import Searcher

    out = tmp_path / "onnx-hybrid"
    build_index(read_corpus(small_dataset), splade, out, dense_encoder=onnx_minilm, chunk_size=60, progress=False)
    recorded = json.loads((out / "manifest.json").read_text())["dense_encoder"]
    assert recorded["backend"] == "onnx" and recorded["config_hash"] == onnx_minilm.spec.config_hash
    opened = Searcher.open(out, device="cpu")
    assert opened.dense_encoder.spec.backend == "onnx"  # as queries follow the index's precision
    # A searcher given the torch encoder of the same model is accepted, as one of another precision is: the
    # vectors agree to float rounding, so the dense ranking is the same.
    crossed = Searcher(IndexFolder(out), splade, minilm)
    query = "flow over a flat plate at hypersonic speed"
    ranked = [[hit.id for hit in searcher.search(query, 10, mode="dense")] for searcher in (crossed, opened)]
    assert ranked[0] == ranked[1]


def test_default_backend_is_openvino_on_bf16_cpus_else_onnx(tmp_path):
    from lsr import defaults
    from lsr.retrieval.encoders import _native_bf16, index_dense_backend

    assert defaults.DENSE_BACKEND == "openvino"
    assert index_dense_backend("all-minilm-l6-v2", "cpu") == ("openvino" if _native_bf16() else "onnx")
    other = tmp_path / "cls-pooled"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "modules.json").write_text(json.dumps([{"path": "", "type": "sentence_transformers.models.Transformer"}]))
    assert index_dense_backend(str(other), "cpu") == "torch"


def test_lsr_index_takes_a_dense_backend(tmp_path, small_index, small_dataset, export_cache):
    import shutil
    import subprocess
    import sys

    def lsr(*args):
        return subprocess.run([sys.executable, "-m", "lsr", *args], capture_output=True, text=True, timeout=600)

    copy = tmp_path / "index"
    shutil.copytree(small_index, copy)
    from lsr.retrieval.encoders import index_dense_backend
    from lsr.retrieval.search import Searcher

    added = lsr("index", str(small_dataset), "--out", str(copy), "--add-dense", "--device", "cpu")
    assert added.returncode == 0, added.stderr
    # OpenVINO (bf16) or ONNX Runtime by default on the CPU: faster than torch (docs/dense-backends.md).
    recorded = json.loads((copy / "manifest.json").read_text())["dense_encoder"]
    assert recorded["backend"] == index_dense_backend("all-minilm-l6-v2", "cpu") != "torch"
    opened = Searcher.open(copy, device="cpu").dense_encoder.spec  # queries on the index's backend and precision
    assert (opened.backend, opened.precision, opened.config_hash) == (
        recorded["backend"],
        recorded["precision"],
        recorded["config_hash"],
    )
    refused = lsr("index", str(small_dataset), "--out", str(tmp_path / "other"), "--dense-backend", "onnx")
    assert refused.returncode == 2 and "give --dense-encoder (or --add-dense)" in refused.stderr
    unknown = lsr("index", str(small_dataset), "--out", str(copy), "--add-dense", "--dense-backend", "tensorrt")
    assert unknown.returncode == 2 and "dense backend must be one of torch, onnx, onnx-int8, openvino" in unknown.stderr
