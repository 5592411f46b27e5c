"""Which vocabulary columns of a SPLADE vector can be non-zero, found with int8 arithmetic, provably.

A SPLADE weight is log(1 + ReLU(max over tokens of the MLM logit)), so a column whose max logit is ≤ 0 is 0, and for
a 256-token document ~98% of the 30,522 columns are (splade-tiny: ~550 left). The screen computes every logit
in int8 (one scale per text for the features, one per vocabulary row for the decoder, int32 accumulation, the max
over tokens taken on the int32 products while a tile is in cache) together with a bound on its error, and keeps
the columns whose approximate max plus the bound is above 0: a column it drops has a max logit ≤ 0 for certain.
The caller computes the kept columns at full precision, so the vectors are those of the full computation.

Why int8: torch._int_mm (oneDNN, AVX-512 VNNI here) ran the decoder's matmul ~3.5× faster than fp32 and ~1.9×
faster than bf16 on 256-token scifact documents, one thread; an approximate int8 encoder without the recomputation
moved cisi's nDCG@10 by −0.0030 (outside the 0.002 bound), while this one changes nothing. A lone text (a query, a
document encoded alone) takes oneDNN's int8 matmul primitive instead (AMX here; the op PyTorch's x86 quantization
lowers to), with the test below folded into it as a bias and an int8 output; _int_mm's GEMM stays for batches.

Bound: with x̂ = s·round(x/s) and ŵ = r·round(w/r), |x̂ − x| ≤ s/2 and |ŵ − w| ≤ r/2 elementwise, so
|x·w − x̂·ŵ| = |x·(w − ŵ) + (x − x̂)·ŵ| ≤ (r/2)·‖x‖₁ + (s/2)·‖ŵ‖₁; the max over tokens moves by at most the largest
token's bound. A relative slack covers the float rounding of the dequantization and of the full computation.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch

INT8_LEVELS = 127  # symmetric: values in [-127, 127], so products of two fit int32 for any hidden size < 133,000
# Float rounding (fp32 accumulation of the full computation, the dequantization) is ~1e-6 relative: 1e-3 is ample.
RELATIVE_SLACK = 1e-3
SLACK_FACTOR = (1 + RELATIVE_SLACK) / (1 - RELATIVE_SLACK)
# int32 products per tile (512 KiB), max-pooled while in cache: fastest of 2^15–2^19 for 12 to 256 tokens (one
# thread, e.g. 256 tokens: 5.0 ms at 2^17 against 6.6 at 2^19).
TILE_PRODUCTS = 1 << 17
MIN_TILE_ROWS = 256
# A lone text goes through oneDNN's int8 matmul primitive instead (see _lone_text_kept), in tiles of vocabulary rows:
# BERT's 30,522 in one ran 0.15 ms faster a scifact test query than tiles of 16,384 and 0.5 than 8,192 (interleaved
# rounds, one thread), and for 32 to 512 tokens it was the fastest of 4,096–32,768 and 1.2–3× faster than _int_mm
# with its max (256 tokens: 3.2–4.3 against 5.1–5.3 ms).
PACKED_ROWS = 32768


class DecoderScreen:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """``weight``: (vocabulary, hidden) MLM decoder, at the precision the full computation uses."""
        rows = weight.float()
        self._row_scale = rows.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / INT8_LEVELS
        self._rows = torch.round(rows / self._row_scale[:, None]).to(torch.int8)
        row_norm = (self._rows.float() * self._row_scale[:, None]).abs().sum(dim=1)  # ‖ŵ‖₁ per row
        bias = bias.float() if bias is not None else torch.zeros(rows.shape[0])
        # The test below in units of a row's int32 products (see columns()), computed in float64 and kept in float32
        # (fewer and faster passes over the vocabulary per text), whose rounding _threshold_margin covers.
        bias_per_scale = -(bias.double() / self._row_scale.double())
        norm_per_scale = -(SLACK_FACTOR / 2) * (row_norm.double() / self._row_scale.double())
        self._bias_per_scale = bias_per_scale.float()
        self._norm_per_scale = norm_per_scale.float()
        self._largest_terms = (bias_per_scale.abs().max().item(), norm_per_scale.abs().max().item())

    def __getstate__(self) -> dict:
        """Pickled (Ray ships encoders to its actors) without the prepacked tiles, oneDNN's opaque tensors."""
        return {key: value for key, value in self.__dict__.items() if key != "_packed_tiles"}

    def columns(self, features: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        """The sorted columns whose max logit over tokens may be > 0 for at least one of the texts.

        ``features``: (texts, tokens, hidden) decoder inputs; ``padding``: (texts, tokens, 1), True on padded tokens
        (None: there are none).
        """
        texts, tokens = features.shape[:2]
        real = features.float() if padding is None else features.float().masked_fill(padding, 0.0)
        magnitude = real.abs()
        scale = magnitude.amax(dim=(1, 2)).clamp_min(torch.finfo(torch.float32).tiny) / INT8_LEVELS
        quantized = torch.round(real / scale[:, None, None]).to(torch.int8)
        # Keep a column if approximate + bound > 0, where approximate = p·s·r + b (p: the int32 max, s: the text's
        # scale, r: the row's) and bound = (1 + ε)·(r/2·L + s/2·‖ŵ‖₁) + ε·|approximate| (L: the largest token's
        # ‖x‖₁). Where approximate ≥ 0 that holds; where it is < 0 it reads (1 − ε)·approximate + (1 + ε)·B > 0,
        # i.e. p > −b/(s·r) − k·L/(2s) − k·‖ŵ‖₁/(2r) with k = (1 + ε)/(1 − ε), the same test for both signs. So
        # the whole test is a threshold per column and text, compared with the int32 maxima as they are.
        inverse_scale = 1 / scale.double()
        token_term = SLACK_FACTOR / 2 * magnitude.sum(dim=2).amax(dim=1).double() * inverse_scale  # L: max over tokens
        offset = (token_term + self._threshold_margin(inverse_scale, token_term)).float()
        if texts == 1:  # a lone text (a query): scalars, so each pass over the vocabulary is one op
            threshold = torch.add(self._norm_per_scale, self._bias_per_scale, alpha=inverse_scale.item()).sub_(offset.item())
            if padding is None and self._packed_tiles is not None:
                kept = self._lone_text_kept(quantized[0], threshold)
            else:
                kept = self._maxima(quantized, padding)[:, 0].numpy() > threshold.numpy()
        else:
            threshold = self._bias_per_scale[:, None] * inverse_scale.float()[None, :] + self._norm_per_scale[:, None]
            kept = (self._maxima(quantized, padding).numpy() > (threshold - offset[None, :]).numpy()).any(axis=1)
        # numpy compares and finds the kept columns in ~10 + 15 µs over the vocabulary, torch in ~45 + 70 (one thread)
        return torch.from_numpy(np.flatnonzero(kept))

    def _threshold_margin(self, inverse_scale: torch.Tensor, token_term: torch.Tensor) -> torch.Tensor:
        """How far below the float64 threshold its float32 evaluation is put so that it is certainly not above: the
        float32 terms and the ≤ 4 float32 operations computing it are each off by ≤ 2⁻²⁴ of the largest magnitude
        involved, so 2⁻²⁰ of it is ample. Lowering a threshold only keeps more columns, so the screen stays a proof;
        the products themselves compare exactly (int32 against float32 in float64, or oneDNN's exact float32)."""
        largest_bias, largest_norm = self._largest_terms
        return 2.0**-20 * (largest_bias * inverse_scale + largest_norm + token_term)

    def _maxima(self, quantized: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        """(rows, texts) int32: each row's largest product with a text's tokens (``quantized``: (texts, tokens,
        hidden) int8, ``padding`` as in columns()). Vocabulary rows × tokens, not tokens × rows: the same int32
        products, and oneDNN's int8 GEMM ran 15–60% faster this way round (one thread; 12 to 256 tokens), the max
        over tokens then reading contiguous rows."""
        texts, tokens, hidden = quantized.shape
        tokens_by_hidden = quantized.reshape(texts * tokens, hidden).t().contiguous()
        products = torch.empty(self._rows.shape[0], texts, dtype=torch.int32)
        padded = padding.reshape(1, texts, tokens) if padding is not None else None
        width = max(MIN_TILE_ROWS, TILE_PRODUCTS // (texts * tokens))
        for column in range(0, self._rows.shape[0], width):
            rows = slice(column, column + width)
            tile = torch._int_mm(self._rows[rows], tokens_by_hidden).view(-1, texts, tokens)
            if padded is not None:
                tile.masked_fill_(padded, torch.iinfo(torch.int32).min)  # a padded token never wins the max
            torch.amax(tile, 2, out=products[rows])
        return products

    def _lone_text_kept(self, tokens: torch.Tensor, threshold: torch.Tensor) -> np.ndarray:
        """Whether each row's largest product with the int8 ``tokens`` (one text's) is above its float32
        ``threshold``, from oneDNN's int8 matmul with −threshold as its bias and an int8 output: each token's product
        p comes out as round(p − threshold), saturated to [−128, 127], whose sign is the test. It is ≥ 0 whenever
        p > threshold, as float32 p − threshold is then ≥ 0 (p is exact in float32, see _packed_tiles, and rounding
        is monotone); it may be 0 where p is up to half a unit below, which only keeps a column more. One byte per
        product instead of four: 0.41–0.64 against 0.55–0.83 ms for 21 tokens with their max (one thread), as
        float32 products."""
        kept = np.empty(len(threshold), dtype=bool)
        negated = torch.neg(threshold)
        for start, prepacked in self._packed_tiles:
            rows = slice(start, start + len(prepacked.unit_scales))
            kept[rows] = _onednn_test(tokens, prepacked, negated[rows]).numpy().max(axis=0) >= 0
        return kept

    @functools.cached_property
    def _packed_tiles(self) -> list[tuple[int, Prepacked]] | None:
        """The int8 rows prepacked for oneDNN's matmul primitive in tiles of PACKED_ROWS, each with unit scales and
        zero points, so that it computes the int32 products themselves, exact in float32 while every |product sum|
        < 2^24, i.e. hidden · 127² < 2^24; None where oneDNN's int8 matmul is missing or does not compute what
        _lone_text_kept needs (CPUs without VNNI may saturate 16-bit pair sums) or the hidden size is too large.
        Built at the first lone text's screen, so a screen that never sees one (each training step's: batches) does
        not pay for it."""
        if self._rows.shape[1] * INT8_LEVELS**2 >= 1 << 24 or not _onednn_int8_test_is_exact():
            return None
        return [
            (start, Prepacked.of(self._rows[start : start + PACKED_ROWS].contiguous()))
            for start in range(0, self._rows.shape[0], PACKED_ROWS)
        ]


class Prepacked(NamedTuple):
    """int8 rows in oneDNN's matmul layout, with the unit scales and zero points that keep its products exact."""

    packed: torch.Tensor
    unit_scales: torch.Tensor
    zero_points: torch.Tensor

    @classmethod
    def of(cls, rows: torch.Tensor) -> Prepacked:
        packed = torch.ops.onednn.qlinear_prepack(rows, None)
        return cls(packed, torch.ones(len(rows)), torch.zeros(len(rows), dtype=torch.int64))


def _onednn_test(tokens: torch.Tensor, rows: Prepacked, bias: torch.Tensor) -> torch.Tensor:
    """(tokens, rows) int8: round(product + bias) saturated, for int8 ``tokens`` and prepacked int8 ``rows``."""
    scale, zero_point = 1.0, 0
    return torch.ops.onednn.qlinear_pointwise(
        tokens, scale, zero_point, *rows, bias, scale, zero_point, torch.int8, "none", [], ""
    )


@functools.cache
def _onednn_int8_test_is_exact() -> bool:
    """Whether oneDNN's int8 matmul (``torch.ops.onednn``, PyTorch's x86 quantization kernels) is available and
    returns round(product + bias), saturated to int8, for the worst operands: ±127 everywhere, the case where a
    16-bit pair sum saturates, with biases a quarter or three quarters of a unit from one product of each row (no
    ties to round) and products far from the rest (saturation)."""
    generator = torch.Generator().manual_seed(0)
    extremes = lambda rows: (torch.randint(0, 2, (rows, 64), generator=generator) * 254 - 127).to(torch.int8)  # noqa: E731
    tokens, rows = extremes(8), extremes(96)
    products = tokens.double() @ rows.double().t()
    quarter = torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=torch.float64).repeat(24)
    bias = -(products[torch.arange(96) % 8, torch.arange(96)] + quarter)
    try:
        tested = _onednn_test(tokens, Prepacked.of(rows), bias.float())
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return torch.equal(tested.double(), torch.round(products + bias).clamp(-128, 127))
