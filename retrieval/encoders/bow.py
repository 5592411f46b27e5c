"""Inference-free queries: a query is its bag of word-pieces (optionally IDF-weighted), no model call.

Documents are still encoded by a SPLADE model trained with this query side held fixed, so the score is
sum over the query's word-pieces of the document's weight for each (times its IDF).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lsr.errors import EncoderError
from lsr.retrieval.encoders.base import EncoderSpec
from lsr.retrieval.encoders.registry import TruncatingTokenizer

IDF_FILE = "idf.npy"


def word_piece_ids(token_ids: TruncatingTokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """The distinct word-piece ids of each text, special tokens left out."""
    return [sorted(set(ids)) for ids in token_ids(list(texts), max_length, special_tokens=False)]


def compute_idf(tokenizer, texts: Sequence[str], max_length: int) -> np.ndarray:
    """BM25's IDF, log(1 + (N − df + 0.5) / (df + 0.5)), per vocabulary entry: never negative."""
    document_frequency = np.zeros(len(tokenizer), dtype=np.float64)
    for ids in word_piece_ids(TruncatingTokenizer(tokenizer), texts, max_length):
        document_frequency[ids] += 1
    count = len(texts)
    return np.log1p((count - document_frequency + 0.5) / (document_frequency + 0.5)).astype(np.float32)


def load_idf(folder: Path, dim: int) -> np.ndarray:
    path = folder / IDF_FILE
    if not path.is_file():
        raise EncoderError(f"{folder} asks for IDF-weighted queries but has no {IDF_FILE}")
    idf = np.load(path)
    if idf.shape != (dim,):
        raise EncoderError(f"{path} holds {idf.shape} weights, the vocabulary has {dim}")
    return idf


class BagOfWordPieces:
    """Query vectors from the tokenizer alone: weight 1 (or the IDF) for each distinct word-piece."""

    def __init__(self, tokenizer, dim: int, max_length: int, idf: np.ndarray | None = None) -> None:
        self._token_ids = TruncatingTokenizer(tokenizer)
        self.dim = dim
        self.max_length = max_length
        self.idf = idf

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        rows = word_piece_ids(self._token_ids, texts, self.max_length)
        indptr = np.cumsum([0, *map(len, rows)])
        indices = np.fromiter((i for ids in rows for i in ids), dtype=np.int32, count=int(indptr[-1]))
        data = self.idf[indices] if self.idf is not None else np.ones(indices.size, dtype=np.float32)
        return sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(len(rows), self.dim))


class InferenceFreeEncoder:
    """A document encoder paired with bag-of-word-piece queries (the doc-only / inference-free mode)."""

    def __init__(self, document_encoder, queries: BagOfWordPieces, arch_params: dict) -> None:
        if queries.dim != document_encoder.dim:
            raise EncoderError(f"query vocabulary ({queries.dim}) and document dimensions ({document_encoder.dim}) differ")
        self.spec: EncoderSpec = dataclasses.replace(document_encoder.spec, arch=arch_params)
        self.dim = document_encoder.dim
        self._documents = document_encoder
        self._queries = queries

    def encode_queries(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._queries.encode(texts)

    def encode_documents(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._documents.encode_documents(texts)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return self._documents.decode(ids)
