"""SPLADE: w_j = max over tokens i of log(1 + ReLU(MLM logit_ij)), padding masked out.

Written on transformers directly rather than through sentence-transformers' SparseEncoder (which the
tests use as the reference it must match): the MLM decoder (vocabulary × hidden, 30,522 × 128 for
splade-tiny) is nearly all the work. Here an int8 screen (screen.py) finds the ~2% of columns whose max logit
can be positive, with a proven error bound, and only those are decoded at the encoder's precision, tile by tile
with the max taken while a tile's logits are in cache, over each text's real tokens only; the tokens × vocabulary
logits that SparseEncoder (and our first encoder) materialize are never written, and the vectors are those of the
full computation. bench/encode.py measures all of them.

Threads: each tile is a small op, and torch synchronizes its intra-op threads after every one. On this shared
2-core machine, busy with other jobs, 2 threads ran slower than 1 for every system and the tiled path lost the
most (bench/encode.py, 100 documents: 9.0 docs/s at 2 threads, 30.0 at 1); encoding documents in parallel,
one thread each, would not synchronize per tile (not done).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForMaskedLM

from lsr import defaults
from lsr.errors import EncoderError
from lsr.retrieval.encoders.base import PRECISIONS, EncoderSpec
from lsr.retrieval.encoders.blocks import ColumnBlock, stack_sparse
from lsr.retrieval.encoders.device import resolve_device
from lsr.retrieval.encoders.registry import TruncatingTokenizer, load_tokenizer, resolve_model, transformers_quiet
from lsr.retrieval.encoders.screen import DecoderScreen
from lsr.retrieval.encoders.tracing import traced_body

DEFAULT_QUERY_MAX_LENGTH = defaults.QUERY_MAX_LENGTH
DEFAULT_DOC_MAX_LENGTH = defaults.DOC_MAX_LENGTH
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
assert set(DTYPES) == set(PRECISIONS)
# Logits per tile (tokens × vocabulary columns): 2 MiB at fp32, so a tile is still in cache (1 MiB L2 per
# core, 32 MiB L3 here) when it is max-pooled. bench/encode.py, 256-token documents, one thread: 256 KiB to
# 2 MiB all ran at 19–20 docs/s, 8 MiB 18, the whole vocabulary per text 13. A lone query (~20 tokens)
# takes nearly the whole vocabulary in one or two tiles, which measured fastest (fewer calls).
TILE_ELEMENTS = 1 << 19
# Fewer columns per matmul than this took another path in the CPU's fp32 GEMM with 2 threads, one whose last bit
# differed from the full-logits matmul's (a 7-token text screened to 35 columns).
MIN_TILE_COLUMNS = 256
# GPU batches: padded tokens per batch. The (tokens × vocabulary) logits of one batch are then 2 GiB at bf16,
# small for a data-centre GPU and large enough to keep it busy.
GPU_BATCH_TOKENS = 1 << 15
# CPU at bf16: texts of up to SHORT_TEXT_TOKENS are encoded in padded batches of SHORT_BATCH_TOKENS. A short text
# costs mostly per-call overhead (25-token package summaries: 3 ms in the transformer, 3.6 in the decoder, one by
# one), which batches share: 1.9× faster on them (512-token batches; 2,048: 1.85×, 8,192: 1.4×), while batches of
# 256-token scifact abstracts ran 0.8–0.9× (bench/encode.py --texts packages measures it).
SHORT_TEXT_TOKENS = 64
SHORT_BATCH_TOKENS = 512


def is_masked_lm(config) -> bool:
    return any(arch.endswith("ForMaskedLM") for arch in (config.architectures or []))


def splade_pool(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, vocab) MLM logits → (batch, vocab) fp32 SPLADE weights; differentiable (training uses it)."""
    padding = attention_mask.unsqueeze(-1) == 0
    # log1p∘ReLU is monotone with f(0) = 0, so max_i f(x_i) == f(max_i x_i) exactly; pooling first
    # runs the activation on (batch, vocab) instead of (batch, tokens, vocab). Padding set to 0
    # (not -inf) keeps the max ≥ 0, where ReLU would clip it anyway. In place: the logits are not
    # needed for the backward pass of the layer that produced them.
    return activate(logits.masked_fill_(padding, 0.0).amax(dim=1))


def activate(pooled: torch.Tensor) -> torch.Tensor:
    """log(1 + ReLU(·)) of max-pooled logits, in fp32 (bf16's 8 bits would round the weights)."""
    return torch.log1p(torch.relu(pooled.float()))


def screened_splade_pool(features: torch.Tensor, attention_mask: torch.Tensor, decoder: nn.Linear) -> torch.Tensor:
    """splade_pool of the logits ``decoder(features)`` without computing them all: only the columns the int8 screen
    (encoders/screen.py) keeps, whose max logit may be positive. Equal to the full computation, gradients included
    (training uses it): a dropped column's max logit is ≤ 0, where log1p∘ReLU is 0 with gradient 0."""
    columns, logits = screened_logits(features, attention_mask.unsqueeze(-1) == 0, decoder)
    pooled = splade_pool(logits, attention_mask)
    return pooled.new_zeros(features.shape[0], decoder.weight.shape[0]).index_copy(1, columns, pooled)


def screened_logits(
    features: torch.Tensor, padding: torch.Tensor | None, decoder: nn.Linear
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the columns the int8 screen keeps, ``decoder(features)`` in those columns only), differentiable in the
    features and the decoder; ``padding`` (texts, tokens, 1) True on padded tokens (None: none)."""
    with torch.no_grad():  # the decoder changes every training step, so it is quantized again each call (~ms)
        screen = DecoderScreen(decoder.weight.detach(), decoder.bias.detach() if decoder.bias is not None else None)
        columns = screen.columns(features.detach(), padding)
    bias = decoder.bias[columns] if decoder.bias is not None else None
    return columns, nn.functional.linear(features, decoder.weight[columns], bias)


def _decoder_slot(model: nn.Module, decoder: nn.Linear | None) -> tuple[nn.Module, str, nn.Linear]:
    """``decoder`` (None: the model's output layer, the MLM decoder of every BERT-family MLM head), with the module
    and attribute holding it."""
    decoder = model.get_output_embeddings() if decoder is None else decoder
    if not isinstance(decoder, nn.Linear):
        raise EncoderError(f"the masked language model's output layer is a {type(decoder).__name__}, not a linear decoder")
    for parent in model.modules():
        for name, child in parent.named_children():
            if child is decoder:
                return parent, name, decoder
    raise EncoderError("the masked language model's output layer is not one of its modules")


def detach_decoder(model: nn.Module, decoder: nn.Linear | None = None) -> nn.Linear:
    """Replaces the MLM decoder (or ``decoder``, one of the model's layers) by the identity, so the model returns the
    head's transformed hidden states, and returns the decoder."""
    parent, name, decoder = _decoder_slot(model, decoder)
    setattr(parent, name, nn.Identity())
    return decoder


@contextmanager
def decoder_removed(model: nn.Module, decoder: nn.Linear | None = None) -> Iterator[nn.Linear]:
    """Inside, the model returns its MLM head's transformed hidden states (``decoder``: which layer is the decoder,
    as in detach_decoder); yields the decoder. Its parameters stay the model's, so an optimizer built on the model
    still updates them and saving still writes them."""
    parent, name, decoder = _decoder_slot(model, decoder)
    setattr(parent, name, nn.Identity())
    try:
        yield decoder
    finally:
        setattr(parent, name, decoder)


class _Unpadded(nn.Module):
    """The model (decoder removed) on one unpadded text: (1, tokens) ids → (1, tokens, hidden). No attention mask,
    which for an unpadded text masks nothing: its export then lacks the ~40 nodes that build one (162 → 121 after
    ONNX Runtime's fusions), 0.28 against 0.32 ms a scifact test query (one thread)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).logits


class SpladeEncoder:
    def __init__(
        self,
        model: str = "splade-tiny",
        *,
        query_max_length: int = DEFAULT_QUERY_MAX_LENGTH,
        doc_max_length: int = DEFAULT_DOC_MAX_LENGTH,
        precision: str = "fp32",
        device: str = "cpu",
    ) -> None:
        resolved = resolve_model(model)
        config = AutoConfig.from_pretrained(resolved.path)
        if not is_masked_lm(config):
            raise EncoderError(f"encoder {model!r} is not a masked language model, so it cannot be a SPLADE encoder")
        limit = getattr(config, "max_position_embeddings", 512)
        for label, length in (("query", query_max_length), ("document", doc_max_length)):
            if not 1 <= length <= limit:
                raise EncoderError(f"{label} max length must be between 1 and {limit} for {model!r}, got {length}")
        if precision not in DTYPES:
            raise EncoderError(f"precision must be one of {', '.join(DTYPES)}, got {precision!r}")
        self.spec = EncoderSpec("splade", model, resolved.content_hash, query_max_length, doc_max_length, precision=precision)
        self._tokenizer = load_tokenizer(resolved.path)
        self._token_ids = TruncatingTokenizer(self._tokenizer)
        dtype = DTYPES[precision]
        # bf16 runs every matmul on the CPU's AVX-512 BF16 (or AMX) units with fp32 accumulation.
        self._device = resolve_device(device)
        self._path = resolved.path
        with transformers_quiet():
            self._model = AutoModelForMaskedLM.from_pretrained(resolved.path).to(self._device, dtype).eval()
        decoder = detach_decoder(self._model)
        self._body = self._unpadded_body()
        self._weight = decoder.weight.detach()
        self._bias = decoder.bias.detach() if decoder.bias is not None else None
        self.dim = int(config.vocab_size)
        self._screen = DecoderScreen(self._weight, self._bias) if self._device.type == "cpu" else None

    def _unpadded_body(self) -> nn.Module:
        eager = _Unpadded(self._model).eval()
        return traced_body(eager) if self._device.type == "cpu" else eager

    @functools.cached_property
    def _query_body(self) -> Callable[[list[int]], torch.Tensor] | None:
        """Queries' transformer on ONNX Runtime, fp32, one thread, one query at a time (None at fp32, whose vectors
        stay those of the torch computation bit for bit, and off the CPU); built at the first query, so processes
        that never encode one (indexing, Ray actors) neither export nor open it. A query's ~100 small ops cost per-op
        overhead more than arithmetic: 0.32–0.45 ms a scifact test query here against 0.79–0.98 ms traced by
        TorchScript, and 0.82–0.90 with OpenVINO (one thread, interleaved). fp32 arithmetic is at least as close to
        the model as the bf16 it replaces; the decoder still runs at the encoder's precision. Documents keep the
        torch transformer, so a document's vector does not depend on whether it was encoded alone."""
        if self._device.type != "cpu" or self.spec.precision == "fp32":
            return None
        from lsr.retrieval.encoders.onnx import session, unpadded_onnx_model

        runner = session(unpadded_onnx_model(self._fp32_unpadded, self.spec.content_hash), threads=1)
        dtype = DTYPES[self.spec.precision]
        return lambda ids: torch.from_numpy(runner.run(None, {"input_ids": np.array([ids], dtype=np.int64)})[0][0]).to(dtype)

    def _fp32_unpadded(self) -> nn.Module:
        with transformers_quiet():
            model = AutoModelForMaskedLM.from_pretrained(self._path).eval()
        detach_decoder(model)
        return _Unpadded(model)

    def __getstate__(self) -> dict:
        """Pickled (Ray ships encoders to its actors) without the traced transformer and the ONNX Runtime session,
        which do not pickle."""
        return {key: value for key, value in self.__dict__.items() if key not in ("_body", "_query_body")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._body = self._unpadded_body()

    @property
    def tokenizer(self):
        return self._tokenizer

    def encode_queries(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._encode(texts, self.spec.query_max_length, queries=True)

    def encode_documents(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._encode(texts, self.spec.doc_max_length)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return self._tokenizer.convert_ids_to_tokens([int(i) for i in ids])

    def term_ids(self, text: str) -> set[int]:
        """The vocabulary terms that occur anywhere in ``text``: a SPLADE weight on any other term is an expansion.

        The whole text, not the encoder's truncated window: a reader sees a word past the cut in the document too.
        Nothing here runs through the model, so transformers' warning that a text longer than the model's maximum
        "will result in indexing errors" does not apply (``verbose=False``)."""
        return set(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _encode(self, texts: Sequence[str], max_length: int, *, queries: bool = False) -> sp.csr_matrix:
        """Queries' transformer is ``_query_body`` where there is one; every other text's is torch's."""
        if not texts:  # the tokenizer refuses an empty list
            return sp.csr_matrix((0, self.dim), dtype=np.float32)
        ids = self._token_ids(list(texts), max_length)
        if self._device.type != "cpu":
            return self._encode_batches(ids, GPU_BATCH_TOKENS, self.dim * GPU_BATCH_TOKENS)
        if self.spec.precision == "fp32":
            return self._encode_one_by_one(ids)
        if queries and self._query_body is not None:
            # One by one, as a served query comes: 2.1–2.6 ms a scifact test query against 2.5–3.4 in padded torch
            # batches of 4 to 32 (one thread), and a query's vector does not depend on the queries beside it.
            return self._encode_one_by_one(ids, self._query_body)
        # bf16 is not bit-exact anyway, so short texts, whose cost is per-call overhead, are batched (see
        # SHORT_TEXT_TOKENS); long ones stay one by one, where the decoder runs near the matmul peak already.
        short = [i for i, row in enumerate(ids) if len(row) <= SHORT_TEXT_TOKENS]
        long = [i for i, row in enumerate(ids) if len(row) > SHORT_TEXT_TOKENS]
        if len(ids) == 1 or not short:  # a batch of one would only add a mask
            return self._encode_one_by_one(ids)
        if not long:  # short texts only (a batch of summaries): no reordering to pay for
            return self._encode_batches(ids, SHORT_BATCH_TOKENS, TILE_ELEMENTS)
        parts = [
            self._encode_batches([ids[i] for i in short], SHORT_BATCH_TOKENS, TILE_ELEMENTS),
            self._encode_one_by_one([ids[i] for i in long]),
        ]
        return sp.vstack(parts, format="csr")[np.argsort(short + long)]

    def _encode_one_by_one(
        self, ids: list[list[int]], features: Callable[[list[int]], torch.Tensor] | None = None
    ) -> sp.csr_matrix:
        """``features``: one text's (tokens, hidden) decoder input (None: the torch transformer's, _features)."""
        features = features or self._features
        rows = (self._weights(features(row).unsqueeze(0), None, TILE_ELEMENTS) for row in ids)
        with torch.inference_mode():  # each row made sparse as it comes
            return stack_sparse(rows, self.dim)

    def _encode_batches(self, ids: list[list[int]], batch_tokens: int, tile_elements: int) -> sp.csr_matrix:
        """Length-sorted, padded batches of at most ``batch_tokens`` tokens (or one longer text), decoded in vocabulary
        tiles of about ``tile_elements`` logits, max-pooled per tile and made sparse per batch; rows come back in
        the texts' order."""
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        with torch.inference_mode():  # each batch made sparse as it comes, as in _encode_one_by_one
            stacked = stack_sparse(self._batch_weights([ids[text] for text in order], batch_tokens, tile_elements), self.dim)
        return stacked if order == sorted(order) else stacked[np.argsort(order)]

    def _batch_weights(self, ids: list[list[int]], batch_tokens: int, tile_elements: int) -> Iterator[ColumnBlock]:
        """The weights of consecutive padded batches of the (length-sorted) ``ids``."""
        start = 0
        while start < len(ids):
            width = len(ids[start])
            end = start + 1
            while end < len(ids) and (end - start + 1) * max(width, len(ids[end])) <= batch_tokens:
                width = max(width, len(ids[end]))
                end += 1
            batch = ids[start:end]
            input_ids = torch.tensor([row + [0] * (width - len(row)) for row in batch], device=self._device)
            mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch], device=self._device)
            features = self._model(input_ids=input_ids, attention_mask=mask).logits
            yield self._weights(features, (mask == 0).unsqueeze(-1), tile_elements)
            start = end

    def _features(self, ids: list[int]) -> torch.Tensor:
        """One text's (tokens, hidden) output of the MLM head without its decoder.

        Texts go through the transformer one at a time, so nothing is padded and a text's vector does not
        depend on the texts encoded with it (with padded batches it did, in the last bits). Length-sorted
        batches of 1,024 or 4,096 tokens measured 10–25% faster on this part alone (one thread, scifact and
        cisi documents), which is 2–4% of a document's encoding: the decoder is the rest. Even a batch of
        equal-length texts changes the matmuls' shapes, and with them the last bits of short texts' vectors.
        """
        return self._body(torch.tensor([ids]))[0]

    def _weights(self, features: torch.Tensor, padding: torch.Tensor | None, tile_elements: int) -> ColumnBlock:
        """(texts, tokens, hidden) features → the texts' SPLADE weights in the columns that can be non-zero,
        ``padding`` (texts, tokens, 1) marking padded tokens (None: there are none). Each weight is log1p∘ReLU of
        the max over the text's tokens of its MLM logit.

        On the CPU an int8 screen (encoders/screen.py) first finds the columns whose max can be positive (~2% of the
        vocabulary for a document, ~0.4% for a query), and only those are computed at the encoder's precision and
        activated, never a vocabulary-wide row (for a lone query the dense rows' passes cost more than the decoding);
        on a GPU every column is. Every computed logit is the same dot product as in the full (tokens × vocab)
        matmul and max and log1p∘ReLU are elementwise, so at fp32 one text's weights equal its full logits' bit for
        bit (tested). Exact (fp32) texts are decoded one by one: stacking several texts' tokens into one matmul
        changes its shape and with it the last bits of some logits.
        """
        if self._screen is None:
            return ColumnBlock(None, activate(self._max_logits(features, padding, self._weight, self._bias, tile_elements)))
        kept = self._screen.columns(features, padding).numpy()
        if len(kept) < MIN_TILE_COLUMNS:
            # Any other columns will do (their max is ≤ 0, so they activate to 0): the lowest ones not kept, after
            # the kept ones, exactly MIN_TILE_COLUMNS in all. The matmul's width and column order decide its last
            # bits (measured: 1 ulp off in 1 of ~10,000 weights with a wider, sorted set), so they stay as tested.
            spare = np.ones(MIN_TILE_COLUMNS + len(kept), dtype=bool)
            spare[kept[kept < len(spare)]] = False
            kept = np.concatenate([kept, np.flatnonzero(spare)[: MIN_TILE_COLUMNS - len(kept)]])
        # numpy and index_select: ~5 µs a step on a lone query's few hundred columns, torch's indexing ~20–30
        columns, order = torch.from_numpy(kept), torch.from_numpy(np.argsort(kept))
        bias = torch.index_select(self._bias, 0, columns) if self._bias is not None else None
        weights = activate(self._max_logits(features, padding, torch.index_select(self._weight, 0, columns), bias, tile_elements))
        return ColumnBlock(torch.index_select(columns, 0, order), torch.index_select(weights, 1, order))

    @staticmethod
    def _max_logits(
        features: torch.Tensor, padding: torch.Tensor | None, weight: torch.Tensor, bias: torch.Tensor | None, tile_elements: int
    ) -> torch.Tensor:
        """The max over tokens of features × weight rows (+ bias), one tile of about ``tile_elements`` logits at a
        time, each max-pooled right after its matmul while it is in cache."""
        pooled = torch.empty(features.shape[0], weight.shape[0], dtype=features.dtype, device=features.device)
        width = max(MIN_TILE_COLUMNS, tile_elements // (features.shape[0] * features.shape[1]))
        for column in range(0, weight.shape[0], width):
            columns = slice(column, column + width)
            logits = torch.nn.functional.linear(features, weight[columns], bias[columns] if bias is not None else None)
            if padding is not None:
                logits.masked_fill_(padding, 0.0)
            torch.amax(logits, 1, out=pooled[:, columns])
        return pooled
