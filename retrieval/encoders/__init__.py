"""Encoders turn text into vectors; they know nothing of indexes or HTTP."""

import torch

from lsr import defaults
from lsr.errors import EncoderError
from lsr.retrieval.encoders.arch import Architecture, UhdSettings, read_architecture
from lsr.retrieval.encoders.base import DenseEncoder, EncoderSpec, SparseEncoder
from lsr.retrieval.encoders.bow import BagOfWordPieces, InferenceFreeEncoder, load_idf
from lsr.retrieval.encoders.dense import DEFAULT_DENSE_ENCODER, DENSE_BACKENDS, SentenceTransformerEncoder, mean_pooled
from lsr.retrieval.encoders.device import DEVICES, resolve_device
from lsr.retrieval.encoders.registry import packaged_kind, resolve_model
from lsr.retrieval.encoders.splade import DEFAULT_DOC_MAX_LENGTH, DEFAULT_QUERY_MAX_LENGTH, SpladeEncoder
from lsr.retrieval.encoders.uhd import UhdEncoder


def load_sparse_encoder(
    name: str = defaults.SPARSE_ENCODER,
    *,
    query_max_length: int = DEFAULT_QUERY_MAX_LENGTH,
    doc_max_length: int = DEFAULT_DOC_MAX_LENGTH,
    precision: str = "fp32",
    device: str = defaults.DEVICE,
) -> SparseEncoder:
    """A sparse encoder by name: a packaged model, a local folder or a Hugging Face id.

    Folders written by `lsr train` say in lsr_encoder.json whether they hold SPLADE or UHD, and whether
    queries are encoded by the model or by the tokenizer alone (inference-free).
    """
    kind = packaged_kind(name)
    if kind not in (None, "splade"):
        raise EncoderError(f"encoder {name!r} is a {kind} encoder, not a sparse one")
    resolved = resolve_model(name)
    architecture = read_architecture(resolved.path)
    if architecture.uhd:
        if precision != "fp32":
            raise EncoderError(f"UHD encoders run at fp32 only, got precision {precision!r}")
        document_encoder = UhdEncoder(
            name,
            resolved.path,
            resolved.content_hash,
            architecture.uhd,
            architecture.spec_params,
            query_max_length=query_max_length,
            doc_max_length=doc_max_length,
            device=device,
        )
    else:
        document_encoder = SpladeEncoder(
            name, query_max_length=query_max_length, doc_max_length=doc_max_length, precision=precision, device=device
        )
    if architecture.query_encoder == "model":
        return document_encoder
    idf = load_idf(resolved.path, document_encoder.dim) if architecture.idf else None
    queries = BagOfWordPieces(document_encoder.tokenizer, document_encoder.dim, query_max_length, idf)
    return InferenceFreeEncoder(document_encoder, queries, architecture.spec_params)


def index_precision(name: str, device: str = defaults.DEVICE) -> str:
    """The precision `lsr index` encodes at unless told: bf16 for SPLADE, which moved nDCG@10 by at most 0.0017 on
    scifact, nfcorpus, cranfield and cisi (splade-tiny, test splits) and encodes short texts (≤ 64 tokens, batched)
    ~1.7× faster than fp32 (256-token documents: alike, both decoding only the int8 screen's columns);
    fp32 for UHD, whose encoder has no reduced precision, and on CPUs without native bf16 arithmetic (there torch
    emulates it, slower than fp32). fp32 on a GPU too: on an H100 (bench/gpu_check.py, scifact) fp32 encoded faster
    than bf16 (2,708 vs 948 docs/s; splade-tiny is too small to be bound by arithmetic there) and its impacts stayed
    within 1 of a CPU fp32 build's, where bf16's differed from a CPU bf16 build's by up to 10."""
    if resolve_device(device).type == "cuda" or read_architecture(resolve_model(name).path).uhd or not _native_bf16():
        return "fp32"
    return defaults.PRECISION


def _native_bf16() -> bool:
    try:  # oneDNN's own check for AVX-512 BF16 / AMX; a private operator, so its absence means "no"
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def index_dense_backend(name: str = DEFAULT_DENSE_ENCODER, device: str = defaults.DEVICE) -> str:
    """The backend `lsr index` runs a dense encoder on unless told (docs/dense-backends.md): OpenVINO on CPUs with
    native bf16, where it runs at bf16 (2.0× torch's documents/s, 2.4× its single-query speed, nDCG@10 within
    0.0015 on scifact and nfcorpus); elsewhere ONNX Runtime (the same vectors as torch, 2.4× its query speed, its
    documents/s). Torch on a GPU, and for models the exported backends cannot run (other than mean pooling)."""
    if resolve_device(device).type == "cuda" or not mean_pooled(resolve_model(name).path):
        return "torch"
    if defaults.DENSE_BACKEND == "openvino" and not _native_bf16():
        return "onnx"
    return defaults.DENSE_BACKEND


def load_dense_encoder(
    name: str = DEFAULT_DENSE_ENCODER,
    *,
    max_length: int | None = None,
    device: str = defaults.DEVICE,
    backend: str = "torch",
    precision: str | None = None,
) -> DenseEncoder:
    """A dense encoder by name: a packaged model, a local sentence-transformers folder or a Hugging Face id;
    ``backend``: what runs its transformer (DENSE_BACKENDS); ``precision``: fp32, or bf16 on openvino (None: the
    backend's default, bf16 for openvino on CPUs with native bf16)."""
    kind = packaged_kind(name)
    if kind not in (None, "dense"):
        raise EncoderError(f"encoder {name!r} is a {kind} encoder, not a dense one")
    return SentenceTransformerEncoder(name, max_length=max_length, device=device, backend=backend, precision=precision)


def load_indexing_dense_encoder(name: str, *, device: str = defaults.DEVICE, backend: str | None = None) -> DenseEncoder:
    """The dense encoder `lsr index` runs: on ``backend``, else on ``index_dense_backend``'s choice for it."""
    return load_dense_encoder(name, device=device, backend=backend or index_dense_backend(name, device))


__all__ = [
    "Architecture",
    "BagOfWordPieces",
    "InferenceFreeEncoder",
    "UhdEncoder",
    "UhdSettings",
    "DEFAULT_DENSE_ENCODER",
    "DENSE_BACKENDS",
    "index_dense_backend",
    "DenseEncoder",
    "SentenceTransformerEncoder",
    "load_dense_encoder",
    "load_indexing_dense_encoder",
    "EncoderSpec",
    "SparseEncoder",
    "SpladeEncoder",
    "load_sparse_encoder",
    "index_precision",
    "DEVICES",
    "resolve_device",
    "read_architecture",
    "resolve_model",
    "DEFAULT_QUERY_MAX_LENGTH",
    "DEFAULT_DOC_MAX_LENGTH",
]
