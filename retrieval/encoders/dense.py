"""Dense encoders through sentence-transformers: one normalized vector per text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lsr import defaults
from lsr.errors import EncoderError
from lsr.retrieval.encoders.base import EncoderSpec
from lsr.retrieval.encoders.device import resolve_device
from lsr.retrieval.encoders.registry import resolve_model

DEFAULT_DENSE_ENCODER = defaults.DENSE_ENCODER


class SentenceTransformerEncoder:
    def __init__(
        self, model: str = DEFAULT_DENSE_ENCODER, *, max_length: int | None = None, batch_size: int = 16, device: str = "cpu"
    ) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        resolved = resolve_model(model)
        transformers_logging.disable_progress_bar()  # the per-load "Loading weights" bar is noise in a CLI
        try:
            self._device = resolve_device(device)
            self._model = SentenceTransformer(str(resolved.path), device=str(self._device))
        except (OSError, ValueError, KeyError) as exc:
            raise EncoderError(f"cannot load {model!r} as a sentence-transformers model: {exc}") from exc
        limit = self._model.max_seq_length
        length = max_length or limit
        if not 1 <= length <= limit:
            raise EncoderError(f"max length must be between 1 and {limit} for {model!r}, got {length}")
        self._model.max_seq_length = length
        self.batch_size = batch_size
        self.dim = int(self._model.get_embedding_dimension())
        self.spec = EncoderSpec("dense", model, resolved.content_hash, length, length)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # On a GPU, bf16 autocast (tensor cores); the CPU stays at fp32, where bf16 measured no faster for MiniLM.
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self._device.type == "cuda"):
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)
