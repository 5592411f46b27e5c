"""Searcher: an index folder plus the encoder that built it → ranked hits.

This is what the CLI, the API and evaluation all call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lsr.errors import EncoderMismatchError, LsrError
from lsr.indexer.index_folder import IndexFolder
from lsr.retrieval.encoders import SparseEncoder, load_sparse_encoder

MAX_K = 10_000


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    id: str
    score: float  # dot product of query and document vectors (after quantization)
    title: str


def check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise LsrError(f"k must be between 1 and {MAX_K}, got {k}")


class Searcher:
    def __init__(self, index: IndexFolder, encoder: SparseEncoder) -> None:
        expected = index.manifest.encoder
        differing = [key for key, value in expected.identity.items() if encoder.spec.identity[key] != value]
        if differing or encoder.dim != index.manifest.dim:
            raise EncoderMismatchError(
                f"{index.path} was built with encoder {expected.name!r} "
                f"({expected.kind}, model hash {expected.content_hash[:12]}), but the searcher's encoder is "
                f"{encoder.spec.name!r} ({encoder.spec.kind}, model hash {encoder.spec.content_hash[:12]}); "
                "search it with the encoder that built it, or re-index"
            )
        self.index = index
        self.encoder = encoder

    @classmethod
    def open(cls, index_path: str | Path, encoder: str | None = None, *, query_max_length: int | None = None) -> Searcher:
        """Opens an index with the encoder named in its manifest, or with ``encoder`` if that is the same model."""
        index = IndexFolder(index_path)
        spec = index.manifest.encoder
        query_encoder = load_sparse_encoder(
            encoder or spec.name,
            query_max_length=query_max_length or spec.query_max_length,
            doc_max_length=spec.doc_max_length,
        )
        return cls(index, query_encoder)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        check_k(k)
        for query in queries:
            if not query.strip():
                raise LsrError("the query is empty")
        quantization = self.index.manifest.quantization
        query_vectors = quantization.quantize(self.encoder.encode_queries(queries))
        docs = self.index.docs
        results = []
        for ranking in self.index.engine.search(query_vectors, k):
            scores = quantization.to_score(ranking.scores)
            results.append(
                [
                    Hit(rank=rank, id=docs[row].id, score=float(score), title=docs[row].title)
                    for rank, (row, score) in enumerate(zip(ranking.doc_indices, scores, strict=True), start=1)
                ]
            )
        return results
