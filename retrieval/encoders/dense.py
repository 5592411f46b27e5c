"""Dense encoders through sentence-transformers: one normalized vector per text.

``backend`` is what runs the transformer: torch (sentence-transformers' model itself), onnx (its ONNX export run by
ONNX Runtime: the same vectors to float rounding), onnx-int8 (that export dynamically quantized) or openvino (the
export compiled by OpenVINO, at bf16 where the CPU computes it natively, else fp32; recorded as the spec's precision).
Tokenization, batching and pooling are sentence-transformers' in every case. bench/dense_backends.py measures them
(docs/dense-backends.md); the exported backends run on the CPU whatever the device, and only for models that
mean-pool the last hidden state (all-MiniLM-L6-v2 and most sentence-transformers retrievers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lsr import defaults
from lsr.errors import EncoderError
from lsr.retrieval.encoders.base import EncoderSpec
from lsr.retrieval.encoders.device import resolve_device
from lsr.retrieval.encoders.registry import resolve_model, transformers_quiet

DEFAULT_DENSE_ENCODER = defaults.DENSE_ENCODER
DENSE_BACKENDS = ("torch", "onnx", "onnx-int8", "openvino")


def mean_pooled(path: Path) -> bool:
    """Whether the sentence-transformers folder at ``path`` is transformer → mean pooling (→ normalization): what the
    ONNX backends run. Read from its files, so that the answer costs no model load."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        types = [module["type"].rsplit(".", 1)[-1] for module in modules]
        pooling = json.loads((path / modules[1]["path"] / "config.json").read_text()) if len(modules) > 1 else {}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    modes = {key for key, value in pooling.items() if key.startswith("pooling_mode_") and value is True}
    mean = pooling.get("pooling_mode") == "mean" or modes == {"pooling_mode_mean_tokens"}
    return types[:2] == ["Transformer", "Pooling"] and all(kind == "Normalize" for kind in types[2:]) and mean


class SentenceTransformerEncoder:
    def __init__(
        self,
        model: str = DEFAULT_DENSE_ENCODER,
        *,
        max_length: int | None = None,
        batch_size: int = 16,
        device: str = "cpu",
        backend: str = "torch",
        precision: str | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        if backend not in DENSE_BACKENDS:
            raise EncoderError(f"dense backend must be one of {', '.join(DENSE_BACKENDS)}, got {backend!r}")
        if precision not in (None, "fp32") and not (backend == "openvino" and precision == "bf16"):
            allowed = "fp32 or bf16" if backend == "openvino" else "fp32"
            raise EncoderError(f"the {backend} dense backend runs at {allowed}, got precision {precision!r}")
        resolved = resolve_model(model)
        try:
            self._device = resolve_device(device)
            with transformers_quiet():
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
        if backend == "openvino" and precision is None:
            from lsr.retrieval.encoders.onnx import openvino_precision

            precision = openvino_precision()  # OpenVINO's own default: bf16 where the CPU computes it natively
        self.spec = EncoderSpec(
            "dense", model, resolved.content_hash, length, length, precision=precision or "fp32", backend=backend
        )
        self._onnx_weights = None  # fp32 or int8 on the ONNX Runtime and OpenVINO backends
        self._session = None  # the exported transformer's runner: feeds → last hidden state
        if backend != "torch":
            if self._device.type != "cpu":
                self._device = torch.device("cpu")  # ONNX Runtime and OpenVINO run here on the CPU; so do tokens
                self._model.to(self._device)
            if not mean_pooled(resolved.path):
                raise EncoderError(f"the exported backends run transformer → mean pooling models; {model!r} is not: use torch")
            self._onnx_weights = "int8" if backend == "onnx-int8" else "fp32"
            self._open_session()

    def _open_session(self) -> None:
        """Exports the transformer first where this machine's cache lacks it (a Ray actor's may)."""
        from lsr.retrieval.encoders.onnx import onnx_model, openvino_runner, session

        path = onnx_model(self._model[0].auto_model, self.spec.content_hash, self._onnx_weights)
        if self.spec.backend == "openvino":
            self._session = openvino_runner(path, self.spec.precision)
        else:
            runner = session(path)
            self._session = lambda feeds: runner.run(None, feeds)[0]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._session is not None:
            return self._encode_onnx(list(texts))
        # On a GPU, bf16 autocast (tensor cores); the CPU stays at fp32, where bf16 measured no faster for MiniLM.
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self._device.type == "cuda"):
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_onnx(self, texts: list[str]) -> np.ndarray:
        """As SentenceTransformer.encode: longest texts first (by characters) in padded batches, mean pooling over
        real tokens, L2 normalization; the transformer runs in ONNX Runtime."""
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            features = self._model.preprocess([texts[i] for i in rows])
            ids = features["input_ids"].numpy()
            feeds = {
                "input_ids": ids,
                "attention_mask": features["attention_mask"].numpy(),
                "token_type_ids": features["token_type_ids"].numpy() if "token_type_ids" in features else np.zeros_like(ids),
            }
            hidden = self._session(feeds)
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            vectors[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return vectors

    # An ONNX Runtime session or OpenVINO model does not pickle (Ray ships encoders to its actors): the copy opens its own.
    def __getstate__(self) -> dict:
        return {**self.__dict__, "_session": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._onnx_weights is not None:
            self._open_session()
