"""SPLADE: w_j = max over tokens i of log(1 + ReLU(MLM logit_ij)), padding masked out.

Written on transformers directly rather than through sentence-transformers' SparseEncoder (which the
tests use as the reference it must match): pooling before the activation and separate query/document
lengths make encoding about twice as fast on CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer
from transformers.utils import logging as transformers_logging

from lsr import defaults
from lsr.errors import EncoderError
from lsr.retrieval.encoders.base import EncoderSpec
from lsr.retrieval.encoders.registry import resolve_model

DEFAULT_QUERY_MAX_LENGTH = defaults.QUERY_MAX_LENGTH
DEFAULT_DOC_MAX_LENGTH = defaults.DOC_MAX_LENGTH


def is_masked_lm(config) -> bool:
    return any(arch.endswith("ForMaskedLM") for arch in (config.architectures or []))


def splade_pool(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, vocab) MLM logits → (batch, vocab) SPLADE weights; differentiable (training uses it)."""
    padding = attention_mask.unsqueeze(-1) == 0
    # log1p∘ReLU is monotone with f(0) = 0, so max_i f(x_i) == f(max_i x_i) exactly; pooling first
    # runs the activation on (batch, vocab) instead of (batch, tokens, vocab). Padding set to 0
    # (not -inf) keeps the max ≥ 0, where ReLU would clip it anyway. In place: the logits are not
    # needed for the backward pass of the layer that produced them.
    pooled = logits.masked_fill_(padding, 0.0).amax(dim=1)
    return torch.log1p(torch.relu(pooled))


class SpladeEncoder:
    def __init__(
        self,
        model: str = "splade-tiny",
        *,
        query_max_length: int = DEFAULT_QUERY_MAX_LENGTH,
        doc_max_length: int = DEFAULT_DOC_MAX_LENGTH,
        batch_size: int = 16,  # measured fastest on 2 CPU cores (larger batches thrash memory)
    ) -> None:
        resolved = resolve_model(model)
        config = AutoConfig.from_pretrained(resolved.path)
        if not is_masked_lm(config):
            raise EncoderError(f"encoder {model!r} is not a masked language model, so it cannot be a SPLADE encoder")
        limit = getattr(config, "max_position_embeddings", 512)
        for label, length in (("query", query_max_length), ("document", doc_max_length)):
            if not 1 <= length <= limit:
                raise EncoderError(f"{label} max length must be between 1 and {limit} for {model!r}, got {length}")
        if batch_size < 1:
            raise EncoderError(f"batch size must be positive, got {batch_size}")
        self.spec = EncoderSpec("splade", model, resolved.content_hash, query_max_length, doc_max_length)
        self.batch_size = batch_size
        self._tokenizer = AutoTokenizer.from_pretrained(resolved.path)
        transformers_logging.disable_progress_bar()  # the per-load "Loading weights" bar is noise in a CLI
        self._model = AutoModelForMaskedLM.from_pretrained(resolved.path).eval()
        self.dim = int(config.vocab_size)

    @property
    def tokenizer(self):
        return self._tokenizer

    def encode_queries(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._encode(texts, self.spec.query_max_length)

    def encode_documents(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._encode(texts, self.spec.doc_max_length)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return self._tokenizer.convert_ids_to_tokens([int(i) for i in ids])

    def term_ids(self, text: str) -> set[int]:
        """The vocabulary terms that occur in ``text``: a SPLADE weight on any other term is an expansion."""
        return set(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _pool(self, texts: list[str], max_length: int) -> np.ndarray:
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            return splade_pool(self._model(**tokens).logits, tokens["attention_mask"]).numpy()

    def _encode(self, texts: Sequence[str], max_length: int) -> sp.csr_matrix:
        texts = list(texts)
        if not texts:
            return sp.csr_matrix((0, self.dim), dtype=np.float32)
        # Length-sorted batches carry little padding; rows are put back in input order at the end.
        order = np.argsort([len(text) for text in texts], kind="stable")
        blocks = []
        for start in range(0, len(texts), self.batch_size):
            batch = [texts[i] for i in order[start : start + self.batch_size]]
            blocks.append(sp.csr_matrix(self._pool(batch, max_length)))
        sorted_rows = sp.vstack(blocks, format="csr")
        return sorted_rows[np.argsort(order)].astype(np.float32)
