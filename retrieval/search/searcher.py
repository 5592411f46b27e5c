"""Searcher: an index plus the encoders that built it → ranked hits by one signal (sparse, dense, bm25) or several
fused (hybrid).

This is what the CLI, the API and evaluation all call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from lsr import defaults
from lsr.errors import EncoderMismatchError, LsrError
from lsr.indexer.engines.base import Ranking
from lsr.indexer.index_folder import IndexFolder
from lsr.indexer.live import read_snapshot
from lsr.indexer.searchable import SearchableIndex
from lsr.indexer.term_statistics import check_query_idf
from lsr.retrieval.encoders import DenseEncoder, EncoderSpec, SparseEncoder, load_dense_encoder, load_sparse_encoder
from lsr.retrieval.search.feedback import Feedback, expand_queries
from lsr.retrieval.search.fusion import Fusion, fuse_signals, with_overrides
from lsr.retrieval.search.modes import SIGNALS, parse_mode

MAX_K = 10_000


class Candidates(NamedTuple):
    """A batch of queries searched by each signal, before fusion (``Searcher.candidates``)."""

    rankings: dict[str, list[Ranking]]  # signal → each query's top depth
    dense_queries: np.ndarray | None  # the queries' dense vectors, when dense is one of the signals
    depth: int


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    id: str
    score: float  # sparse: dot product of quantized vectors; dense: cosine; bm25: BM25; fused: lsr.retrieval.search.fusion
    title: str


def check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise LsrError(f"k must be between 1 and {MAX_K}, got {k}")


def _check_same_model(index: SearchableIndex, expected: EncoderSpec, actual: EncoderSpec) -> None:
    if any(actual.identity[key] != value for key, value in expected.identity.items()):
        raise EncoderMismatchError(
            f"{index.path} was built with encoder {expected.name!r} "
            f"({expected.kind}, model hash {expected.content_hash[:12]}), but the searcher's encoder is "
            f"{actual.name!r} ({actual.kind}, model hash {actual.content_hash[:12]}); "
            "search it with the encoder that built it, or re-index"
        )


def _check_encoder_presence(index: SearchableIndex, has_encoder: bool) -> None:
    if has_encoder == index.has_text_engine:
        needs = "a BM25 index: it takes no" if index.has_text_engine else "not a BM25 index: it needs a"
        raise EncoderMismatchError(f"{index.path} is {needs} sparse encoder")


class Searcher:
    def __init__(
        self,
        index: SearchableIndex,
        encoder: SparseEncoder | None,
        dense_encoder: DenseEncoder | None = None,
        feedback: Feedback | None = None,
        query_idf: float | None = None,
    ) -> None:
        """``encoder`` is None for a BM25 index: Lucene analyses the query text itself. ``feedback``: pseudo-relevance
        feedback on the sparse side (off unless given). ``query_idf``: the exponent of the sparse queries' corpus-IDF
        weighting (``lsr.indexer.term_statistics``; 0: none), instead of the one the index records."""
        manifest = index.manifest
        _check_encoder_presence(index, encoder is not None)
        if encoder is not None:
            _check_same_model(index, manifest.encoder, encoder.spec)
            if encoder.dim != manifest.dim:
                raise EncoderMismatchError(f"{index.path} has {manifest.dim} dimensions, the encoder {encoder.dim}")
        if query_idf is not None:
            if encoder is None:
                raise LsrError(f"{index.path} is a BM25 index: it has no sparse queries to weight by IDF")
            check_query_idf(query_idf, manifest.encoder)
        self.query_idf = manifest.query_idf if query_idf is None else query_idf
        if dense_encoder is not None:
            if manifest.dense_encoder is None:
                raise LsrError(f"{index.path} has no dense vectors; add them with `lsr index … --add-dense`")
            _check_same_model(index, manifest.dense_encoder, dense_encoder.spec)
        self.index = index
        self.encoder = encoder
        self.dense_encoder = dense_encoder
        self.feedback = feedback
        present = {"sparse": True, "dense": dense_encoder is not None, "bm25": index.bm25 is not None}
        self.signals = tuple(signal for signal in SIGNALS if present[signal])  # what "hybrid" fuses
        self.default_mode = "hybrid" if len(self.signals) > 1 else "sparse"
        # Never tuned: the default for these signals, chosen by leave-one-dataset-out evidence (bench/fusion_default.py).
        untuned = defaults.UNTUNED_FUSION.get("+".join(self.signals), {})
        self.default_fusion = Fusion.from_dict(manifest.fusion or untuned)

    @classmethod
    def open(
        cls,
        index_path: str | Path,
        encoder: str | None = None,
        *,
        dense_encoder: str | None = None,
        query_max_length: int | None = None,
        device: str = defaults.DEVICE,
        feedback: Feedback | None = None,
        query_idf: float | None = None,
        live: bool = False,
    ) -> Searcher:
        """Opens an index with the encoders named in its manifest, or with the given ones if they are the same models.

        ``device``: where the query encoders run (auto: CUDA when torch sees a GPU). ``live``: search what a server of
        the index searches, its live updates (upserts, deletes) included; they are read without taking the index's
        write lock, so a server that holds it is neither blocked nor disturbed."""
        index = read_snapshot(index_path) if live else IndexFolder(index_path)
        spec = index.manifest.encoder
        query_encoder = None
        if encoder:
            _check_encoder_presence(index, True)
        if not index.has_text_engine:
            query_encoder = load_sparse_encoder(
                encoder or spec.name,
                query_max_length=query_max_length or spec.query_max_length,
                doc_max_length=spec.doc_max_length,
                precision=spec.precision,  # queries at the precision the documents were encoded at
                device=device,
            )
        dense_spec = index.manifest.dense_encoder
        dense = None
        if dense_spec or dense_encoder:
            dense = load_dense_encoder(
                dense_encoder or dense_spec.name,
                max_length=dense_spec.query_max_length if dense_spec else None,
                device=device,
                # queries on the backend, and at the precision, the documents were encoded with
                backend=dense_spec.backend if dense_spec else "torch",
                precision=dense_spec.precision if dense_spec else None,
            )
        return cls(index, query_encoder, dense, feedback, query_idf)

    def check_mode(self, mode: str) -> tuple[str, ...]:
        """The signals ``mode`` ranks by, each one the index has."""
        signals = parse_mode(mode)
        if signals is None:  # hybrid
            if len(self.signals) == 1:
                raise LsrError(f"{self.index.path} has no dense vectors, so only sparse search is possible")
            return self.signals
        if "dense" in signals and self.dense_encoder is None:
            raise LsrError(f"{self.index.path} has no dense vectors; add them with `lsr index … --add-dense`")
        if "bm25" in signals and self.index.bm25 is None:
            raise LsrError(f"{self.index.path} has no BM25 side; add one with `lsr index … --add-bm25`")
        return signals

    def fusion_for(self, mode: str | None, overrides: Mapping[str, object]) -> Fusion:
        """The index's fusion (tuned, else the untuned default) with the settings a user gave for a search in ``mode``
        (None: the default mode) changed; settings that do not apply to that search are refused."""
        return with_overrides(self.default_fusion, overrides, self.check_mode(mode or self.default_mode))

    def rankings(self, queries: Sequence[str], side: str, depth: int) -> list[Ranking]:
        """One side's top ``depth`` per query, as index rows and that side's float scores."""
        if side == "dense":
            return self.index.dense.search(self.dense_encoder.encode_queries(queries), depth)
        if side == "bm25":
            return self.index.bm25.search_texts(queries, depth)
        if self.encoder is None:
            return self.index.engine.search_texts(queries, depth)
        quantization = self.index.manifest.quantization
        query_vectors = self.sparse_queries(queries)
        if self.feedback is not None:
            first_pass = self.index.engine.search(query_vectors, self.feedback.documents)
            query_vectors = expand_queries(query_vectors, first_pass, self.index.vector, self.feedback)
        return [
            Ranking(doc_indices=r.doc_indices, scores=quantization.to_score(r.scores))
            for r in self.index.engine.search(query_vectors, depth)
        ]

    def weighted_queries(self, queries: Sequence[str]) -> sp.csr_matrix:
        """The queries' float sparse vectors with the index's corpus-IDF weighting, before quantization."""
        vectors = self.encoder.encode_queries(queries)
        return self.index.term_statistics.weighted(vectors, self.query_idf) if self.query_idf else vectors

    def sparse_queries(self, queries: Sequence[str]) -> sp.csr_matrix:
        """The queries' quantized sparse vectors, as the sparse side searches them."""
        return self.index.manifest.quantization.quantize(self.weighted_queries(queries))

    def fuse(self, rankings: dict[str, Ranking], fusion: Fusion, k: int) -> Ranking:
        """The top k of one query's signal rankings (each of ``self.rankings``) fused."""
        return fuse_signals(rankings, fusion, k, documents=len(self.index.docs))

    def hits(self, ranking: Ranking) -> list[Hit]:
        docs = self.index.docs
        return [
            Hit(rank=rank, id=docs[row].id, score=float(score), title=docs[row].title)
            for rank, (row, score) in enumerate(zip(ranking.doc_indices, ranking.scores, strict=True), start=1)
        ]

    def search(self, query: str, k: int = 10, *, mode: str | None = None, fusion: Fusion | None = None) -> list[Hit]:
        return self.search_many([query], k, mode=mode, fusion=fusion)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 10, *, mode: str | None = None, fusion: Fusion | None = None
    ) -> list[list[Hit]]:
        """``mode`` defaults to hybrid when the index has more than one signal; ``fusion`` to the index's tuned
        settings, or the untuned default."""
        check_k(k)
        signals = self.check_mode(mode or self.default_mode)
        for query in queries:
            if not query.strip():
                raise LsrError("the query is empty")
        if len(signals) == 1:
            return [self.hits(ranking) for ranking in self.rankings(queries, signals[0], k)]
        fusion = fusion or self.default_fusion
        fusion.signal_weights(signals)  # weights that give these signals nothing fail before any search
        return [self.hits(ranking) for ranking in self.fused(self.candidates(queries, signals, max(k, fusion.depth)), fusion, k)]

    def candidates(self, queries: Sequence[str], signals: tuple[str, ...], depth: int) -> Candidates:
        """What fusion needs of a batch of queries, searched once: each signal's top ``depth``, and the queries' dense
        vectors for dense feedback."""
        rankings = {signal: self.rankings(queries, signal, depth) for signal in signals if signal != "dense"}
        dense_queries = None
        if "dense" in signals:
            dense_queries = self.dense_encoder.encode_queries(queries)
            rankings["dense"] = self.index.dense.search(dense_queries, depth)
        return Candidates(rankings, dense_queries, depth)

    def fused(
        self, candidates: Candidates, fusion: Fusion, k: int, *, first_pass: Sequence[np.ndarray] | None = None
    ) -> list[Ranking]:
        """Each query's top k of its candidates fused; with ``fusion.dense_feedback``, after a dense search again
        from the first fused pass (``lsr.retrieval.search.fusion``). ``first_pass``: each query's rows fused without
        feedback, best first, when the caller has them already (``lsr tune`` fuses that fusion too)."""
        rankings = candidates.rankings
        if fusion.dense_feedback and candidates.dense_queries is not None:
            rankings = {**rankings, "dense": self._dense_feedback(candidates, fusion, first_pass)}
        count = len(next(iter(rankings.values())))
        return [self.fuse({signal: found[number] for signal, found in rankings.items()}, fusion, k) for number in range(count)]

    def _dense_feedback(self, candidates: Candidates, fusion: Fusion, first_pass: Sequence[np.ndarray] | None) -> list[Ranking]:
        """Each query's dense vector plus ``dense_feedback_weight`` × the mean stored vector of its first fused pass's
        top ``dense_feedback`` documents, searched again."""
        expanded = np.array(candidates.dense_queries, dtype=np.float32)
        if first_pass is None:
            first_pass = [r.doc_indices for r in self.fused(candidates, fusion.changed(dense_feedback=0), fusion.dense_feedback)]
        for number, first in enumerate(first_pass):
            top = first[: fusion.dense_feedback]
            if top.size:
                expanded[number] += fusion.dense_feedback_weight * self.index.dense.vectors_of(top).mean(axis=0)
        return self.index.dense.search(expanded, candidates.depth)
