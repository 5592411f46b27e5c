"""The int8 screen of the SPLADE decoder: it may keep extra columns, never drop one whose max logit is positive."""

import torch

from lsr.retrieval.encoders.screen import DecoderScreen


def exact_positive_columns(features, weight, bias, padding=None):
    logits = torch.nn.functional.linear(features.double(), weight.double(), bias.double())
    if padding is not None:
        logits = logits.masked_fill(padding, float("-inf"))
    return set(torch.nonzero(logits.amax(dim=1).amax(dim=0) > 0).flatten().tolist())


def test_no_positive_column_is_dropped_even_with_outliers_and_near_zero_logits():
    generator = torch.Generator().manual_seed(0)
    vocabulary, hidden = 5000, 64
    weight = torch.randn(vocabulary, hidden, generator=generator) * 0.1
    weight[:, 3] *= 40  # an outlier input dimension makes the per-row int8 steps coarse
    bias = -torch.rand(vocabulary, generator=generator) * 2
    screen = DecoderScreen(weight, bias)
    for tokens in (1, 7, 300):
        features = torch.randn(2, tokens, hidden, generator=generator)
        features[0, 0, 5] = 60.0  # and an outlier feature the per-text scale
        logits = torch.nn.functional.linear(features, weight, bias)
        # Biases chosen so that many max logits sit just above or below 0, where int8 rounding flips signs.
        bias_near_zero = bias - logits.amax(dim=1).amax(dim=0) + torch.randn(vocabulary, generator=generator) * 1e-3
        near_zero = DecoderScreen(weight, bias_near_zero)
        for candidate, b in ((screen, bias), (near_zero, bias_near_zero)):
            kept = set(candidate.columns(features, None, 1 << 16).tolist())
            positive = exact_positive_columns(features, weight, b)
            assert positive <= kept
        assert 100 < len(positive) < vocabulary - 100  # the near-zero case really has columns on both sides of 0


def test_padded_tokens_neither_add_columns_nor_hide_them():
    generator = torch.Generator().manual_seed(1)
    weight, bias = torch.randn(3000, 32, generator=generator) * 0.2, torch.full((3000,), -3.0)
    features = torch.randn(3, 10, 32, generator=generator)
    padding = torch.zeros(3, 10, 1, dtype=torch.bool)
    padding[1, 4:] = True
    padding[2, 1:] = True
    features[padding.expand_as(features)] = 1000.0  # padded positions hold garbage that would win every max
    kept = set(DecoderScreen(weight, bias).columns(features, padding, 1 << 14).tolist())
    positive = exact_positive_columns(features, weight, bias, padding)
    assert positive <= kept
    assert len(kept) < 3000 // 2  # the garbage was not counted: with it nearly every column would be positive


def test_a_real_document_keeps_a_few_percent_of_the_vocabulary(splade):
    from tests.test_encoders import scifact_texts

    ids = splade.tokenizer(scifact_texts(1), truncation=True, max_length=256)["input_ids"][0]
    with torch.inference_mode():
        features = splade._features(ids).unsqueeze(0)
        kept = splade._screen.columns(features, None, 1 << 19)
        nonzero = splade.encode_documents(scifact_texts(1)).nnz
    assert nonzero <= len(kept) < 0.05 * splade.dim  # measured: ~550 of 30,522 kept for ~240-token documents
