import numpy as np
import pytest
import torch

from lsr.errors import EncoderError
from lsr.retrieval.encoders import SpladeEncoder, load_sparse_encoder, resolve_model


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
        np.testing.assert_allclose(ours.toarray(), expected, rtol=1e-5, atol=1e-6)


def test_literal_formula_with_attention_mask(splade):
    """log(1 + ReLU(logits)) per token, padding excluded, max over tokens — written out literally."""
    texts = ["short query", "a much longer text about bone fractures and vitamin D supplements in the elderly"]
    tokens = splade._tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = splade._model(**tokens).logits
    per_token = torch.log1p(torch.relu(logits)) * tokens["attention_mask"].unsqueeze(-1)
    expected = per_token.max(dim=1).values.numpy()
    np.testing.assert_allclose(splade.encode_queries(texts).toarray(), expected, rtol=1e-5, atol=1e-6)


def test_rows_keep_input_order_and_lengths_truncate(splade):
    texts = scifact_texts(5)
    together = splade.encode_documents(texts[::-1])
    one_by_one = [splade.encode_documents([text]) for text in texts[::-1]]
    for row, single in enumerate(one_by_one):
        np.testing.assert_allclose(together[row].toarray(), single.toarray(), rtol=1e-5, atol=1e-6)
    short = SpladeEncoder(doc_max_length=8).encode_documents(texts[:1])
    assert short.nnz < together[-1].nnz  # 8 tokens expand to fewer terms than 256


def test_decode_names_vocabulary_terms(splade):
    vector = splade.encode_queries(["vitamin"])
    terms = splade.decode(vector.indices)
    assert "vitamin" in terms
    assert vector.shape == (1, splade.dim) and vector.dtype == np.float32
