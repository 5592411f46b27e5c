"""Searching an index that takes live updates: encodes upserted documents, filters on metadata.

Storage (log, delta segment, tombstones, compaction) is ``lsr.indexer.live``; this module adds what needs
the encoders, and hands out a ``Searcher`` over the latest snapshot for each request.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lsr.datasets import Document
from lsr.errors import LsrError
from lsr.indexer.index_folder import DocInfo
from lsr.indexer.live import Delete, EncodedDocument, LiveIndex, LiveView
from lsr.retrieval.encoders import DenseEncoder, SparseEncoder
from lsr.retrieval.search import Searcher

FilterValue = str | int | float | bool
Filter = dict[str, FilterValue | list[FilterValue]]


def matches(metadata: dict | None, filter: Filter) -> bool:
    """Every field must match: equal to the value, or to one of a list of values; a list field matches if any item does."""
    metadata = metadata or {}
    for field, wanted in filter.items():
        if field not in metadata:
            return False
        values = metadata[field] if isinstance(metadata[field], list) else [metadata[field]]
        accepted = wanted if isinstance(wanted, list) else [wanted]
        if not any(value == option and type(value) is type(option) for value in values for option in accepted):
            return False
    return True


class LiveSearcher:
    def __init__(self, live: LiveIndex, encoder: SparseEncoder, dense_encoder: DenseEncoder | None = None) -> None:
        self.live = live
        self.encoder = encoder
        self.dense_encoder = dense_encoder
        self.searcher()  # the encoders are checked against the index once, here

    @classmethod
    def open(cls, index_path: str | Path, encoder: str | None = None, *, compact_after: int = 1000) -> LiveSearcher:
        opened = Searcher.open(index_path, encoder)  # loads the encoders named in the manifest
        return cls(LiveIndex(index_path, compact_after=compact_after), opened.encoder, opened.dense_encoder)

    @classmethod
    def from_searcher(cls, searcher: Searcher) -> LiveSearcher:
        return cls(LiveIndex(searcher.index.path), searcher.encoder, searcher.dense_encoder)

    @property
    def view(self) -> LiveView:
        return self.live.view

    def searcher(self, filter: Filter | None = None, view: LiveView | None = None) -> Searcher:
        """A searcher over one snapshot (the latest by default), showing only documents that match ``filter``."""
        view = view or self.live.view
        if filter:
            view = view.restricted(np.fromiter((matches(doc.metadata, filter) for doc in view.docs), bool, len(view.docs)))
        return Searcher(view, self.encoder, self.dense_encoder)

    def upsert(self, docs: Sequence[DocInfo]) -> None:
        """Encoded here, then logged durably; visible to every search that starts after this returns."""
        self.live.check_writable()  # before encoding: a BM25 index has no encoder to encode with
        ids = [doc.id for doc in docs]
        if len(set(ids)) != len(ids):
            raise LsrError("a batch names the same document id twice")
        texts = [Document(doc.id, doc.title, doc.text).contents for doc in docs]  # joined as at indexing time
        if any(not text for text in texts):
            raise LsrError("a document needs a title or a text")
        quantized = self.view.manifest.quantization.quantize(self.encoder.encode_documents(texts))
        dense = self.dense_encoder.encode_documents(texts) if self.dense_encoder else [None] * len(docs)
        encoded = [
            EncodedDocument(doc, quantized[i].indices.astype(np.int32), quantized[i].data.astype(np.int32), dense[i])
            for i, doc in enumerate(docs)
        ]
        self.live.write(encoded)

    def delete(self, doc_id: str) -> bool:
        """False when no such document exists (nothing is logged then)."""
        if self.live.get(doc_id) is None:
            return False
        self.live.write([Delete(doc_id)])
        return True

    def get(self, doc_id: str) -> DocInfo | None:
        return self.live.get(doc_id)
