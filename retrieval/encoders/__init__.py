"""Encoders turn text into vectors; they know nothing of indexes or HTTP."""

from lsr.errors import EncoderError
from lsr.retrieval.encoders.base import EncoderSpec, SparseEncoder
from lsr.retrieval.encoders.registry import packaged_kind, resolve_model
from lsr.retrieval.encoders.splade import DEFAULT_DOC_MAX_LENGTH, DEFAULT_QUERY_MAX_LENGTH, SpladeEncoder


def load_sparse_encoder(
    name: str = "splade-tiny",
    *,
    query_max_length: int = DEFAULT_QUERY_MAX_LENGTH,
    doc_max_length: int = DEFAULT_DOC_MAX_LENGTH,
) -> SparseEncoder:
    """A sparse encoder by name: a packaged model, a local folder or a Hugging Face id."""
    kind = packaged_kind(name)
    if kind not in (None, "splade"):
        raise EncoderError(f"encoder {name!r} is a {kind} encoder, not a sparse one")
    return SpladeEncoder(name, query_max_length=query_max_length, doc_max_length=doc_max_length)


__all__ = [
    "EncoderSpec",
    "SparseEncoder",
    "SpladeEncoder",
    "load_sparse_encoder",
    "resolve_model",
    "DEFAULT_QUERY_MAX_LENGTH",
    "DEFAULT_DOC_MAX_LENGTH",
]
