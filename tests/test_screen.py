"""The int8 screen of the SPLADE decoder: it may keep extra columns, never drop one whose max logit is positive."""

import pytest
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
            for texts in (features[:1], features):  # a lone text (a query's path when short) and a batch
                kept = set(candidate.columns(texts, None).tolist())
                positive = exact_positive_columns(texts, weight, b)
                assert positive <= kept
        assert 100 < len(positive) < vocabulary - 100  # the near-zero case really has columns on both sides of 0


def test_padded_tokens_neither_add_columns_nor_hide_them():
    generator = torch.Generator().manual_seed(1)
    weight, bias = torch.randn(3000, 32, generator=generator) * 0.2, torch.full((3000,), -4.0)
    features = torch.randn(3, 100, 32, generator=generator)  # 300 tokens: the 3,000 columns span several tiles
    padding = torch.zeros(3, 100, 1, dtype=torch.bool)
    padding[1, 40:] = True
    padding[2, 1:] = True
    features[padding.expand_as(features)] = 1000.0  # padded positions hold garbage that would win every max
    kept = set(DecoderScreen(weight, bias).columns(features, padding).tolist())
    positive = exact_positive_columns(features, weight, bias, padding)
    assert positive <= kept
    assert len(kept) < 3000 // 2  # the garbage was not counted: with it nearly every column would be positive


def test_a_real_document_keeps_a_few_percent_of_the_vocabulary(splade):
    from tests.test_encoders import scifact_texts

    ids = splade.tokenizer(scifact_texts(1), truncation=True, max_length=256)["input_ids"][0]
    with torch.inference_mode():
        features = splade._features(ids).unsqueeze(0)
        kept = splade._screen.columns(features, None)
        nonzero = splade.encode_documents(scifact_texts(1)).nnz
    assert nonzero <= len(kept) < 0.05 * splade.dim  # measured: ~550 of 30,522 kept for ~240-token documents


def test_screened_training_pool_equals_the_full_one_in_value_and_gradient():
    """What `lsr train` runs on the CPU: only the screened columns are decoded, and the loss and every parameter's
    gradient are those of pooling the full logits."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from lsr.retrieval.encoders import resolve_model
    from lsr.retrieval.encoders.splade import decoder_removed, screened_splade_pool, splade_pool
    from tests.test_encoders import scifact_texts

    path = resolve_model("splade-tiny").path
    tokens = AutoTokenizer.from_pretrained(path)(
        [*scifact_texts(3), "a"], padding=True, truncation=True, max_length=64, return_tensors="pt"
    )
    coefficients = torch.randn(4, 30522, generator=torch.Generator().manual_seed(0))
    results = []
    for screened in (False, True):
        model = AutoModelForMaskedLM.from_pretrained(path)  # dropout off, so both runs see the same function
        if screened:
            with decoder_removed(model) as decoder:
                features = model(**tokens).logits
            pooled = screened_splade_pool(features, tokens["attention_mask"], decoder)
        else:
            pooled = splade_pool(model(**tokens).logits, tokens["attention_mask"])
        # A ranking-like term and a FLOPS-like term, so gradients reach every kept column in two ways.
        ((pooled * coefficients).sum() + 1e-3 * pooled.sum(dim=0).pow(2).sum()).backward()
        results.append((pooled.detach(), {name: p.grad for name, p in model.named_parameters()}))
        assert model.get_output_embeddings() is not None and model.get_output_embeddings().bias is not None  # restored
    (full, full_gradients), (ours, our_gradients) = results
    assert torch.equal(full, ours) and (full > 0).sum() > 100
    assert full_gradients.keys() == our_gradients.keys()
    for name, gradient in full_gradients.items():
        # Key biases have a gradient of exactly 0 in theory (softmax ignores a constant per query), ~1e-6 in float.
        assert (our_gradients[name] - gradient).norm() <= 1e-5 * gradient.norm() + 1e-4, name


def test_a_lone_text_is_tested_inside_onednns_matmul():
    """A lone text (a query, a document encoded alone) takes oneDNN's int8 matmul with the threshold as its bias and
    an int8 output: a row is kept exactly when its int32 max is above the threshold less half a unit (thresholds a
    quarter and three quarters of a unit from it, on both sides, across two prepacked tiles)."""
    from lsr.retrieval.encoders import screen

    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(screen.PACKED_ROWS + 500, 128, generator=generator) * 0.1
    bias = torch.full((len(weight),), -3.0)
    decoder = DecoderScreen(weight, bias)
    if decoder._packed_tiles is None:
        pytest.skip("this CPU's oneDNN int8 matmul is missing or not exact; the int_mm path serves every text")
    assert len(decoder._packed_tiles) == 2  # the rows span two prepacked tiles
    quantized = torch.randint(-127, 128, (1, 20, 128), dtype=torch.int8, generator=generator)
    maxima = decoder._maxima(quantized, None)[:, 0].double()
    offsets = torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=torch.float64).repeat(len(weight) // 4 + 1)[: len(weight)]
    kept = decoder._lone_text_kept(quantized[0], (maxima + offsets).float())
    assert kept.tolist() == (offsets < 0.5).tolist()
    features = torch.randn(1, 20, 128, generator=generator)
    few = set(decoder.columns(features, None).tolist())
    positive = exact_positive_columns(features, weight, bias)
    assert positive <= few and len(positive) > 100
    assert len(few) < len(weight) // 2


def test_the_probe_of_onednns_int8_matmul_agrees_with_its_use():
    from lsr.retrieval.encoders import screen

    if screen._onednn_int8_test_is_exact():
        assert DecoderScreen(torch.randn(300, 64), None)._packed_tiles is not None
    assert DecoderScreen(torch.randn(300, 1100), None)._packed_tiles is None  # hidden · 127² ≥ 2^24: not exact
