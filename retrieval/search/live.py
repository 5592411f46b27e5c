"""Searching an index that takes live updates, with metadata filters.

Live updates follow one rule: storage and merging (log, delta segment, tombstones, compaction) are
``lsr.indexer.live``, the write path's encoding is ``lsr.indexer.upserts``, filtering is
``lsr.retrieval.search.filters``. This module only joins them: it hands out a ``Searcher`` over the latest
snapshot for each request and passes writes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lsr import defaults
from lsr.datasets import Document
from lsr.indexer.live import Delete, LiveIndex, LiveView
from lsr.indexer.upserts import encode_upserts
from lsr.retrieval.encoders import DenseEncoder, SparseEncoder
from lsr.retrieval.search.feedback import Feedback
from lsr.retrieval.search.filters import Filter, matches
from lsr.retrieval.search.searcher import Searcher


class LiveSearcher:
    def __init__(
        self,
        live: LiveIndex,
        encoder: SparseEncoder | None,
        dense_encoder: DenseEncoder | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        """``feedback``: pseudo-relevance feedback on the sparse side of every search (off unless given)."""
        self.live = live
        self.encoder = encoder
        self.dense_encoder = dense_encoder
        self.feedback = feedback
        self.searcher()  # the encoders are checked against the index once, here

    @classmethod
    def open(
        cls,
        index_path: str | Path,
        encoder: str | None = None,
        *,
        compact_after: int = defaults.COMPACT_AFTER,
        device: str = defaults.DEVICE,
        feedback: Feedback | None = None,
    ) -> LiveSearcher:
        opened = Searcher.open(index_path, encoder, device=device)  # loads the encoders named in the manifest
        return cls(LiveIndex(index_path, compact_after=compact_after), opened.encoder, opened.dense_encoder, feedback)

    @classmethod
    def from_searcher(cls, searcher: Searcher) -> LiveSearcher:
        return cls(LiveIndex(searcher.index.path), searcher.encoder, searcher.dense_encoder, searcher.feedback)

    @property
    def view(self) -> LiveView:
        return self.live.view

    def searcher(self, filter: Filter | None = None, view: LiveView | None = None) -> Searcher:
        """A searcher over one snapshot (the latest by default), showing only documents that match ``filter``."""
        view = view or self.live.view
        if filter:
            view = view.restricted(np.fromiter((matches(doc.metadata, filter) for doc in view.docs), bool, len(view.docs)))
        return Searcher(view, self.encoder, self.dense_encoder, self.feedback)  # weighted as the index says

    def upsert(self, docs: Sequence[Document]) -> None:
        """Encoded here, then logged durably; visible to every search that starts after this returns."""
        self.live.check_writable()  # before encoding: a BM25 index has no encoder to encode with
        self.live.write(encode_upserts(docs, self.encoder, self.dense_encoder, self.view.manifest.quantization))

    def delete(self, doc_id: str) -> bool:
        """False when no such document exists (nothing is logged then)."""
        if self.live.get(doc_id) is None:
            return False
        self.live.write([Delete(doc_id)])
        return True

    def get(self, doc_id: str) -> Document | None:
        return self.live.get(doc_id)
