"""What every encoder offers, and the spec that identifies it in an index manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

# Arithmetic the sparse encoder runs in: "fp32", or "bf16" (the CPU's bfloat16 matmuls, fp32 accumulation).
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class EncoderSpec:
    kind: str  # "splade", "uhd" or "dense"
    name: str  # as the user named it: a packaged name, a folder or a Hugging Face id
    content_hash: str  # of the model files: two specs with equal hashes encode alike
    query_max_length: int
    doc_max_length: int
    # Architecture parameters of trained models (UHD: dim, k, buckets, binarized; inference-free: query side,
    # idf); None for a plain SPLADE or dense model, so their specs stay as they were.
    arch: dict | None = None
    # Document vectors were computed at this precision; searchers encode queries at the index's precision.
    precision: str = "fp32"
    # What ran a dense encoder's transformer (torch, onnx, onnx-int8: encoders/dense.py); searchers encode queries
    # with the index's backend, as with precision.
    backend: str = "torch"

    @property
    def identity(self) -> dict[str, str]:
        """What must agree between the encoder that built an index and the one that searches it."""
        identity = {"kind": self.kind, "content_hash": self.content_hash}
        if self.arch:
            identity["arch"] = json.dumps(self.arch, sort_keys=True)
        return identity

    @property
    def config_hash(self) -> str:
        """Changes whenever document vectors would change."""
        settings = {"doc_max_length": self.doc_max_length}
        if self.precision != "fp32":  # fp32 hashes as before precision existed, so older indexes keep theirs
            settings["precision"] = self.precision
        if self.backend != "torch":  # likewise torch, as before backends existed
            settings["backend"] = self.backend
        payload = json.dumps({**self.identity, **settings}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {**asdict(self), "config_hash": self.config_hash}

    @classmethod
    def from_dict(cls, data: dict) -> EncoderSpec:
        # "arch", "precision" and "backend" are optional: manifests written before they existed lack them.
        optional = ("arch", "precision", "backend")
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data or key not in optional})


class SparseEncoder(Protocol):
    spec: EncoderSpec
    dim: int  # number of columns of the vectors: the vocabulary (or latent) size

    def encode_queries(self, texts: Sequence[str]) -> sp.csr_matrix:
        """One float32 row per text."""
        ...

    def encode_documents(self, texts: Sequence[str]) -> sp.csr_matrix:
        """One float32 row per text."""
        ...

    def decode(self, ids: Sequence[int]) -> list[str]:
        """The term each dimension stands for."""
        ...


class DenseEncoder(Protocol):
    spec: EncoderSpec
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalized: inner products are cosine similarities."""
        ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalized."""
        ...
