"""Why a document matched a query: per-term contributions of the quantized sparse dot product.

A sparse score is Σ_term query impact × document impact / scale², so the contributions listed here add up to
the document's sparse score exactly. A term is an expansion when the encoder weighted it although it does
not occur in the text (known only for encoders that can tokenize, and for documents whose text the index stores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from lsr.errors import LsrError
from lsr.retrieval.search.searcher import Searcher

TOP_DOCUMENT_TERMS = 20


@runtime_checkable
class Tokenizing(Protocol):
    def term_ids(self, text: str) -> set[int]: ...


@dataclass(frozen=True)
class TermWeight:
    term: str
    weight: float  # impact / scale: the encoder's weight after quantization
    in_text: bool | None  # None: unknown (the encoder cannot tokenize, or the text is not stored)


@dataclass(frozen=True)
class Contribution:
    term: str
    query_weight: float
    document_weight: float
    score: float  # query_weight × document_weight
    in_query: bool | None
    in_document: bool | None


@dataclass(frozen=True)
class Explanation:
    doc_id: str
    title: str
    score: float  # the sparse score: Σ contributions
    matches: list[Contribution]  # best first
    query_terms: list[TermWeight]
    document_terms: list[TermWeight]  # the document's heaviest terms


def require_term_weights(searcher: Searcher) -> Searcher:
    """Explanations and encodings are term weights, which a BM25 index (scored inside Lucene) does not expose."""
    if searcher.encoder is None:
        raise LsrError(f"{searcher.index.path} is a BM25 index: it has no sparse encoder to explain or encode with")
    return searcher


def _in_text(searcher: Searcher, text: str, term_ids: np.ndarray) -> list[bool | None]:
    if not text or not isinstance(searcher.encoder, Tokenizing):
        return [None] * term_ids.size
    present = searcher.encoder.term_ids(text)
    return [int(term) in present for term in term_ids]


def term_weights(searcher: Searcher, vector: sp.csr_matrix, text: str, limit: int | None) -> list[TermWeight]:
    scale = searcher.index.manifest.quantization.scale
    order = np.argsort(-vector.data, kind="stable")[:limit]
    terms, impacts = vector.indices[order], vector.data[order]
    names = searcher.encoder.decode(terms)
    in_text = _in_text(searcher, text, terms)
    return [TermWeight(n, float(i) / scale, t) for n, i, t in zip(names, impacts, in_text, strict=True)]


def _document_text(title: str, text: str) -> str:
    """What the document was encoded from; empty (in-text unknown) when the index stores no text for it."""
    return f"{title} {text}" if text else ""


def explain(searcher: Searcher, query: str, doc_ids: list[str]) -> list[Explanation]:
    """One explanation per document, over any ``SearchableIndex`` (an index folder or a live view).

    Raises KeyError for an id that is not in the index.
    """
    require_term_weights(searcher)
    if not query.strip():
        raise LsrError("the query is empty")
    index = searcher.index
    quantization = index.manifest.quantization
    query_vector = searcher.sparse_queries([query])
    query_terms = term_weights(searcher, query_vector, query, None)
    explanations = []
    for doc_id in doc_ids:
        row = index.row(doc_id)
        if row is None:
            raise KeyError(doc_id)
        doc = index.docs[row]
        text = _document_text(doc.title, doc.text)
        doc_vector = sp.csr_matrix(index.vector(row))
        common, query_at, doc_at = np.intersect1d(query_vector.indices, doc_vector.indices, return_indices=True)
        query_impacts, doc_impacts = query_vector.data[query_at], doc_vector.data[doc_at]
        products = query_impacts.astype(np.int64) * doc_impacts
        order = np.argsort(-products, kind="stable")
        terms = common[order]
        scale = quantization.scale
        matches = [
            Contribution(
                name, float(query_impacts[i]) / scale, float(doc_impacts[i]) / scale, float(products[i]) / scale**2, q, d
            )
            for name, i, q, d in zip(
                searcher.encoder.decode(terms),
                order,
                _in_text(searcher, query, terms),
                _in_text(searcher, text, terms),
                strict=True,
            )
        ]
        explanations.append(
            Explanation(
                doc_id=doc.id,
                title=doc.title,
                score=float(products.sum()) / scale**2,
                matches=matches,
                query_terms=query_terms,
                document_terms=term_weights(searcher, doc_vector, text, TOP_DOCUMENT_TERMS),
            )
        )
    return explanations
