"""Efficiency figures of an index system: vector sparsity, FLOPS, postings traversed, latency, size, indexing speed.

FLOPS follows the SPLADE papers (Paria et al. 2020; Formal et al. 2021): the expected number of
multiplications per query-document pair, sum over terms j of P(j active in a query) * P(j active in a doc),
estimated on the evaluated queries and the indexed documents. A dense side adds its dimension (one
multiplication per coordinate of every scored pair).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp

from lsr.indexer.index_folder import IndexFolder


class TimedEncoder:
    """Wraps a searcher's query encoder: records the time of every ``encode_queries`` call and what it returned.

    Wrapping (instead of re-encoding separately) times exactly the work the searcher did for each query.
    """

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.seconds = 0.0
        self.outputs: list = []

    def __getattr__(self, name: str):
        return getattr(self._encoder, name)

    def encode_queries(self, texts: Sequence[str]):
        started = time.perf_counter()
        vectors = self._encoder.encode_queries(texts)
        self.seconds += time.perf_counter() - started
        self.outputs.append(vectors)
        return vectors

    def take(self) -> float:
        """Seconds spent since the last call, resetting the clock."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


@dataclass(frozen=True)
class Efficiency:
    query_terms: float | None = None  # mean non-zero quantized terms per query
    doc_terms: float | None = None  # mean non-zero terms per indexed document
    flops: float | None = None
    postings_per_query: float | None = None  # posting entries an exhaustive traversal visits, mean over queries
    encode_ms: list[float] = field(default_factory=list)  # per query, one query per call
    retrieve_ms: list[float] = field(default_factory=list)  # the rest of the call: quantization, engine, fusion, hits
    index_bytes: int | None = None
    docs_per_second: float | None = None  # indexing speed as recorded in the manifest

    def percentile(self, which: str, q: float) -> float | None:
        values = getattr(self, f"{which}_ms")
        return float(np.percentile(values, q)) if values else None

    def summary(self) -> dict:
        """The figures shown in the report tables (per-query latencies stay in the JSON)."""
        figures = {key: value for key, value in asdict(self).items() if not key.endswith("_ms")}
        for which in ("encode", "retrieve"):
            for q in (50, 99):
                figures[f"{which}_p{q}_ms"] = self.percentile(which, q)
        return figures


def folder_bytes(index: IndexFolder) -> int:
    return sum(path.stat().st_size for path in index.path.rglob("*") if path.is_file())


def sparse_figures(doc_vectors: sp.csr_matrix, query_vectors: sp.csr_matrix) -> dict[str, float]:
    """Active terms, FLOPS and postings traversed for quantized query and document vectors over one vocabulary."""
    doc_frequency = np.bincount(doc_vectors.indices, minlength=doc_vectors.shape[1]).astype(np.float64)
    query_frequency = np.bincount(query_vectors.indices, minlength=query_vectors.shape[1]).astype(np.float64)
    query_rows = query_vectors.shape[0]
    active = sp.csr_matrix((np.ones(query_vectors.nnz), query_vectors.indices, query_vectors.indptr), shape=query_vectors.shape)
    postings = active @ doc_frequency  # per query: the lengths of its terms' posting lists
    return {
        "query_terms": query_vectors.nnz / query_rows,
        "doc_terms": doc_vectors.nnz / doc_vectors.shape[0],
        "flops": float((query_frequency / query_rows) @ (doc_frequency / doc_vectors.shape[0])),
        "postings_per_query": float(np.mean(postings)),
    }


def index_efficiency(
    index: IndexFolder,
    signals: tuple[str, ...],
    *,
    sparse_queries: sp.csr_matrix | None,
    dense_dim: int | None,
    encode_ms: list[float],
    retrieve_ms: list[float],
) -> Efficiency:
    """``signals``: what the searches ranked by; ``sparse_queries``: the quantized query vectors the searcher used
    (None when the signals have no sparse one)."""
    figures: dict = {}
    if sparse_queries is not None and "sparse" in signals:
        figures = sparse_figures(index.vectors, sparse_queries)
    if "dense" in signals and dense_dim:
        figures["flops"] = figures.get("flops", 0.0) + dense_dim
    seconds = index.manifest.indexing_seconds
    return Efficiency(
        **figures,
        encode_ms=encode_ms,
        retrieve_ms=retrieve_ms,
        index_bytes=folder_bytes(index),
        docs_per_second=index.manifest.doc_count / seconds if seconds else None,
    )
