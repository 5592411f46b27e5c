import hashlib
import json
import logging

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lsr.errors import EncoderError
from lsr.retrieval.encoders import EncoderSpec, SpladeEncoder, load_sparse_encoder, resolve_model
from lsr.retrieval.encoders.splade import splade_pool


def scifact_texts(count):
    from conftest import shared_dataset

    from lsr.datasets import read_corpus

    return [doc.contents for doc in read_corpus(shared_dataset("scifact")).documents[:count]]


def test_splade_tiny_resolves_offline_to_its_package():
    resolved = resolve_model("splade-tiny")
    assert resolved.path.parts[-2:] == ("cognition", "model")
    assert (resolved.path / "model.safetensors").is_file()
    assert resolve_model(str(resolved.path)).content_hash == resolved.content_hash


def test_unknown_encoder_names_are_refused_clearly():
    with pytest.raises(EncoderError, match="unknown encoder 'no-such-org/no-such-model'"):
        resolve_model("no-such-org/no-such-model")
    with pytest.raises(EncoderError, match="unknown encoder"):
        resolve_model("./not/a/folder/at/all")
    with pytest.raises(EncoderError, match="is a dense encoder, not a sparse one"):
        load_sparse_encoder("all-minilm-l6-v2")


def test_a_model_folder_without_its_tokenizer_is_refused_clearly(tmp_path, masked_lm):
    """transformers would load an empty vocabulary there (every word [UNK]): every text would encode alike."""
    masked_lm.save_pretrained(tmp_path)
    with pytest.raises(EncoderError, match="no usable tokenizer"):
        load_sparse_encoder(str(tmp_path))


def test_max_lengths_are_validated():
    with pytest.raises(EncoderError, match="document max length must be between 1 and 512"):
        SpladeEncoder(doc_max_length=4096)


@pytest.mark.parametrize("max_length", [64, 256])
def test_matches_sentence_transformers_reference(splade, max_length):
    """Our pooling order (max, then log1p∘ReLU) must give exactly the reference SPLADE vectors."""
    from sentence_transformers import SparseEncoder

    texts = scifact_texts(24) + ["does vitamin D prevent fractures", "a"]
    reference = SparseEncoder(str(resolve_model("splade-tiny").path), device="cpu")
    reference.max_seq_length = max_length
    expected = reference.encode_document(texts, convert_to_tensor=True).to_dense().numpy()
    encoder = SpladeEncoder(query_max_length=max_length, doc_max_length=max_length)
    for ours in (encoder.encode_documents(texts), encoder.encode_queries(texts)):
        # The reference pads its batches, and padding changes a text's vector in the last bits (up to 6e-6
        # measured): ours encodes each text alone and equals the full-logits computation on it exactly (below).
        np.testing.assert_allclose(ours.toarray(), expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def masked_lm():
    """splade-tiny as transformers loads it: the full-logits reference the tiled encoder must equal."""
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(resolve_model("splade-tiny").path).eval()


def full_logits_vectors(model, tokenizer, texts, max_length):
    """The previous encoder, one text at a time: all (tokens × vocab) logits, masked max, then log1p∘ReLU.

    On one thread: on two, the CPU's fp32 GEMM of a 4-token text by the whole 30,522-column decoder took a path
    whose last bits differed from one thread's and from every narrower GEMM's (an AMX Xeon; "vitamin D", 1 ulp), so
    the reference sums each dot product in the one order a single thread does."""
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for text in texts:
            tokens = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            with torch.inference_mode():
                rows.append(splade_pool(model(**tokens).logits, tokens["attention_mask"]).numpy()[0])
    finally:
        torch.set_num_threads(threads)
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


def test_tiled_decoder_equals_full_logits_bit_for_bit(splade, masked_lm):
    """Real documents of every length up to the 256-token cut, short queries and a one-word text, mixed so
    that equal-length texts share a transformer batch and short ones a decoder group: the sparse vectors
    (indices and values) are exactly those of max-pooling the full logits of each text alone."""
    texts = scifact_texts(40) + ["does vitamin D prevent fractures", "a", "vitamin D", "bone density in the elderly"]
    for max_length, encode in ((256, splade.encode_documents), (64, splade.encode_queries)):
        ours = encode(texts)
        expected = full_logits_vectors(masked_lm, splade.tokenizer, texts, max_length)
        ours.sort_indices()
        expected.sort_indices()
        assert ours.nnz > 0 and ours.dtype == np.float32
        np.testing.assert_array_equal(ours.indptr, expected.indptr)
        np.testing.assert_array_equal(ours.indices, expected.indices)
        np.testing.assert_array_equal(ours.data, expected.data)


def test_literal_formula_with_attention_mask(splade, masked_lm):
    """log(1 + ReLU(logits)) per token, padding excluded, max over tokens — written out literally."""
    texts = ["short query", "a much longer text about bone fractures and vitamin D supplements in the elderly"]
    tokens = splade.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = masked_lm(**tokens).logits
    per_token = torch.log1p(torch.relu(logits)) * tokens["attention_mask"].unsqueeze(-1)
    expected = per_token.max(dim=1).values.numpy()
    np.testing.assert_allclose(splade.encode_queries(texts).toarray(), expected, rtol=1e-5, atol=1e-5)  # padded, as above


def test_rows_keep_input_order_and_lengths_truncate(splade):
    texts = scifact_texts(5)
    together = splade.encode_documents(texts[::-1])
    one_by_one = [splade.encode_documents([text]) for text in texts[::-1]]
    for row, single in enumerate(one_by_one):
        # Nothing is padded, so a text's vector does not depend on the texts encoded with it.
        np.testing.assert_array_equal(together[row].toarray(), single.toarray())
    short = SpladeEncoder(doc_max_length=8).encode_documents(texts[:1])
    assert short.nnz < together[-1].nnz  # 8 tokens expand to fewer terms than 256
    assert splade.encode_documents([]).shape == (0, splade.dim)


def test_bf16_precision_is_recorded_and_close_to_fp32(splade):
    texts = scifact_texts(8)
    bf16 = SpladeEncoder(precision="bf16")
    assert (splade.spec.precision, bf16.spec.precision) == ("fp32", "bf16")
    # bf16 changes document vectors, so its index is a different configuration; fp32 keeps the hash it had
    # before precision was recorded, so existing indexes still resume and open.
    assert bf16.spec.config_hash != splade.spec.config_hash
    before = json.dumps({**splade.spec.identity, "doc_max_length": splade.spec.doc_max_length}, sort_keys=True)
    assert splade.spec.config_hash == hashlib.sha256(before.encode()).hexdigest()[:16]
    older_manifest = {key: value for key, value in splade.spec.to_dict().items() if key != "precision"}
    assert EncoderSpec.from_dict(older_manifest) == splade.spec
    reduced, full = bf16.encode_documents(texts).toarray(), splade.encode_documents(texts).toarray()
    assert reduced.dtype == np.float32
    # bf16 carries 8 significant bits, so logits move by ~0.05 at their usual size (measured max 0.10 on
    # weights); on average far less, and every strong term stays.
    np.testing.assert_allclose(reduced, full, atol=0.15)
    active = (reduced > 0) | (full > 0)
    assert np.abs(reduced - full)[active].mean() < 0.01
    assert (reduced[full > 0.5] > 0).all()
    with pytest.raises(EncoderError, match="precision must be one of fp32, bf16"):
        SpladeEncoder(precision="fp16")


def test_batched_path_of_gpus_and_short_bf16_texts_matches_one_by_one(splade):
    # The padded, length-sorted batches that CUDA runs (and the CPU at bf16 for short texts): padding masked out,
    # rows back in the texts' order. Run here on the CPU at fp32, so only summation order differs.
    texts = [*scifact_texts(4), "a", "vitamin d and bone density", "cells"]
    ids = splade.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    one_by_one = splade.encode_documents(texts).toarray()
    for batch_tokens, tile_elements in ((64, 1 << 12), (4096, 4096 * splade.dim)):  # many batches and tiles; one of each
        batched = splade._encode_batches(ids, batch_tokens, tile_elements).toarray()
        np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
        assert ((batched > 0) == (one_by_one > 0)).mean() > 0.999


def test_bf16_batches_short_texts_and_keeps_their_order():
    bf16 = SpladeEncoder(precision="bf16")
    long_text = scifact_texts(1)[0]
    texts = ["vitamin d", long_text, "cells", "bone density in older women"]
    together = bf16.encode_documents(texts).toarray()
    alone = np.vstack([bf16.encode_documents([text]).toarray() for text in texts])
    np.testing.assert_allclose(together, alone, atol=0.05)  # bf16: batching may move the last bits of short texts
    np.testing.assert_array_equal(together[1], alone[1])  # a long text is still encoded alone


def test_device_is_checked(splade):
    with pytest.raises(EncoderError, match="device must be one of auto, cpu, cuda"):
        SpladeEncoder(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EncoderError, match="torch sees no CUDA device"):
            SpladeEncoder(device="cuda")
        assert SpladeEncoder(device="auto")._device.type == "cpu"


def test_decode_names_vocabulary_terms(splade):
    vector = splade.encode_queries(["vitamin"])
    terms = splade.decode(vector.indices)
    assert "vitamin" in terms
    assert vector.shape == (1, splade.dim) and vector.dtype == np.float32


def test_terms_of_a_text_longer_than_the_model_are_found_without_a_warning(splade, caplog):
    """Explaining a long document: the terms of the whole text, and no "will result in indexing errors" logged."""
    transformers_logger = logging.getLogger("transformers")  # does not propagate: caplog's handler goes on it
    caplog.set_level(logging.WARNING, logger="transformers")
    splade.tokenizer.deprecation_warnings.clear()  # transformers warns once per tokenizer
    transformers_logger.addHandler(caplog.handler)
    try:
        found = splade.term_ids(" ".join(["heat"] * 600 + ["ornithopter"]))
    finally:
        transformers_logger.removeHandler(caplog.handler)
    assert splade.term_ids("ornithopter") <= found
    assert "longer than the specified maximum" not in caplog.text


def test_index_defaults_to_bf16_in_the_manifest_and_queries_follow_it(tmp_path, small_dataset):
    import subprocess
    import sys

    from lsr.retrieval.search import Searcher

    def lsr(*args):
        return subprocess.run([sys.executable, "-m", "lsr", *args], capture_output=True, text=True, timeout=300)

    out = tmp_path / "default"
    result = lsr("index", str(small_dataset), "--out", str(out))  # bf16 unless told: within 0.002 nDCG@10 of fp32
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["encoder"]["precision"] == "bf16"
    assert Searcher.open(out).encoder.spec.precision == "bf16"
    refused = lsr("index", str(small_dataset), "--out", str(tmp_path / "fp16"), "--precision", "fp16")
    assert refused.returncode == 2 and "precision must be one of fp32, bf16" in refused.stderr + refused.stdout


def test_the_traced_transformer_is_kept_only_where_it_computes_what_the_model_does():
    from types import SimpleNamespace

    from lsr.retrieval.encoders.splade import _Unpadded
    from lsr.retrieval.encoders.tracing import traced_body

    class LengthDependent(torch.nn.Module):  # a Python branch on the length: a trace records one side of it
        def forward(self, input_ids):
            scale = 2.0 if input_ids.shape[1] > 5 else 1.0
            return SimpleNamespace(logits=input_ids.float().unsqueeze(-1) * scale)

    class Plain(torch.nn.Module):
        def forward(self, input_ids):
            if torch.jit.is_tracing() and self.refuse_tracing:
                raise RuntimeError("not traceable")
            return SimpleNamespace(logits=input_ids.float().unsqueeze(-1))

    assert not isinstance(traced_body(_Unpadded(LengthDependent())), torch.jit.ScriptModule)
    plain = Plain()
    plain.refuse_tracing = False
    assert isinstance(traced_body(_Unpadded(plain)), torch.jit.ScriptModule)
    plain.refuse_tracing = True
    assert not isinstance(traced_body(_Unpadded(plain)), torch.jit.ScriptModule)  # tracing failed: the eager model runs
    splade = SpladeEncoder()
    assert isinstance(splade._body, torch.jit.ScriptModule)  # splade-tiny traces, and the bit-exact tests use it
    import pickle

    shipped = pickle.loads(pickle.dumps(splade))  # as Ray ships an encoder: traced again on arrival
    assert isinstance(shipped._body, torch.jit.ScriptModule)
    text = ["vitamin d and bone density"]
    assert (shipped.encode_documents(text) != splade.encode_documents(text)).nnz == 0


def test_bf16_queries_run_the_fp32_transformer_on_onnx_runtime_one_by_one(splade, tmp_path, monkeypatch):
    """Queries at bf16: their transformer is the fp32 model exported to ONNX (cached, built once, at the first
    query), so its decoder input is the fp32 torch model's to float rounding, and only the decoder runs at bf16;
    each query is encoded alone, so a batch's rows are the lone queries' vectors; documents keep the torch
    transformer."""
    monkeypatch.setenv("LSR_CACHE_DIR", str(tmp_path))
    bf16 = SpladeEncoder(precision="bf16")
    query = "does vitamin D prevent fractures in older women"
    bf16.encode_documents([query, "vitamin D"])
    assert not list(tmp_path.rglob("*.onnx"))  # construction and documents need no export
    batch = bf16.encode_queries([query, "vitamin D"]).toarray()
    lone = bf16.encode_queries([query]).toarray()[0]
    np.testing.assert_array_equal(batch, np.vstack([lone, bf16.encode_queries(["vitamin D"]).toarray()[0]]))
    exports = list(tmp_path.rglob("*.onnx"))
    assert [path.name for path in exports] == ["unpadded.onnx"]
    built = exports[0].stat().st_mtime_ns
    ids = bf16.tokenizer([query])["input_ids"][0]
    with torch.inference_mode():
        fp32_features = splade._features(ids)
    onnx_features = bf16._query_body(ids)
    assert onnx_features.dtype == torch.bfloat16
    # bf16 rounding of the fp32 output only (the torch bf16 transformer is off by more: up to 0.16 here, outside these bounds).
    torch.testing.assert_close(onnx_features.float(), fp32_features, rtol=8e-3, atol=0.05)
    exact = splade.encode_queries([query]).toarray()[0]
    assert set(np.flatnonzero(lone)) ^ set(np.flatnonzero(exact)) <= set(np.flatnonzero(np.abs(exact) < 0.05))
    np.testing.assert_allclose(lone, exact, atol=0.05)
    SpladeEncoder(precision="bf16").encode_queries([query])  # a second encoder reuses the export
    assert exports[0].stat().st_mtime_ns == built and list(tmp_path.rglob("*.onnx")) == exports


@pytest.mark.parametrize("model", ["splade-tiny", "all-minilm-l6-v2"])
def test_the_truncating_tokenizer_gives_the_ids_of_transformers_own_call(model):
    import pickle

    from lsr.retrieval.encoders.registry import TruncatingTokenizer, load_tokenizer

    tokenizer = load_tokenizer(resolve_model(model).path)
    ours = TruncatingTokenizer(tokenizer)
    texts = [*scifact_texts(50), "", " ", "ü∂ 日本語 🙂 naïve", "word " * 600]
    for max_length in (1, 2, 3, 32, 256, 512):
        assert ours(texts, max_length) == tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        plain = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
        assert ours(texts, max_length, special_tokens=False) == plain  # inference-free queries' word-pieces
    assert max(len(ids) for ids in ours(texts, 512)) == 512
    assert pickle.loads(pickle.dumps(ours))(texts, 64) == ours(texts, 64)  # Ray ships encoders to its actors
