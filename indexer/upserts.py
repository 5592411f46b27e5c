"""The write path of live updates: documents upserted through the API, encoded as ``lsr index`` would encode them.

Storing them (log, delta, compaction) is ``lsr.indexer.live``; this module only turns documents into
``EncodedDocument`` records, with the same text joining and quantization as batch indexing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lsr.datasets import Document
from lsr.errors import LsrError
from lsr.indexer.live import EncodedDocument
from lsr.indexer.quantization import Quantization
from lsr.retrieval.encoders import DenseEncoder, SparseEncoder


def encode_upserts(
    docs: Sequence[Document], encoder: SparseEncoder, dense_encoder: DenseEncoder | None, quantization: Quantization
) -> list[EncodedDocument]:
    ids = [doc.id for doc in docs]
    if len(set(ids)) != len(ids):
        raise LsrError("a batch names the same document id twice")
    texts = [doc.contents for doc in docs]  # joined as at indexing time
    if any(not text for text in texts):
        raise LsrError("a document needs a title or a text")
    quantized = quantization.quantize(encoder.encode_documents(texts))
    dense = dense_encoder.encode_documents(texts) if dense_encoder else [None] * len(docs)
    return [
        EncodedDocument(doc, quantized[i].indices.astype(np.int32), quantized[i].data.astype(np.int32), dense[i])
        for i, doc in enumerate(docs)
    ]
