"""Corpus statistics of an index's sparse side, for weighting SPLADE queries by corpus IDF.

splade-tiny's query weights barely tell a rare term from a common one; multiplying each query term's weight by
(idf / mean idf)^exponent, with the document frequencies counted over the index's own (expanded) document vectors,
raised sparse nDCG@10 on each shared test set with the exponent chosen on the others, and on a collection that
chose nothing (bench/query_idf.py, docs/query-idf.md). The exponent an index applies is recorded in its manifest (``query_idf``).
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from lsr import defaults
from lsr.errors import LsrError
from lsr.retrieval.encoders.base import EncoderSpec


class TermStatistics:
    """How many documents an index shows and how many of them hold each term."""

    def __init__(self, documents: int, document_frequencies: np.ndarray) -> None:
        self.documents = documents
        self.document_frequencies = document_frequencies  # int64, one per dimension

    @cached_property
    def idf(self) -> np.ndarray:
        """log((N + 1) / df) per dimension over its mean across the terms some document holds, so a query's weights
        keep their scale; a term no document holds counts as held by one (it matches nothing either way)."""
        df = self.document_frequencies
        idf = np.log((self.documents + 1) / np.maximum(df, 1))
        held = df > 0
        return (idf / idf[held].mean() if held.any() else idf).astype(np.float32)

    def weighted(self, queries: sp.csr_matrix, exponent: float) -> sp.csr_matrix:
        """Each query term's weight times (idf / mean idf)^exponent."""
        weighted = sp.csr_matrix(queries, dtype=np.float32, copy=True)
        weighted.data *= self.idf[weighted.indices] ** np.float32(exponent)
        return weighted


def term_counts(terms: np.ndarray, dim: int) -> np.ndarray:
    """For each dimension, how many times it is among ``terms`` (the term ids of some vectors: how many hold it).

    An id outside the dimensions (a damaged row, refused when that row is read) counts for none: no query holds it."""
    if terms.size and (int(terms.min()) < 0 or int(terms.max()) >= dim):
        terms = terms[(terms >= 0) & (terms < dim)]
    return np.bincount(terms, minlength=dim).astype(np.int64)


def takes_query_idf(spec: EncoderSpec) -> bool:
    """Plain SPLADE, whose queries the model encodes: the encoders the weighting was measured on. UHD's latent
    dimensions and inference-free queries (weighted by the encoder itself) were not."""
    return spec.kind == "splade" and spec.arch is None


def index_query_idf(spec: EncoderSpec, requested: float | None) -> float | None:
    """What an index built with this encoder records: the requested exponent, else the default where it applies."""
    if requested is None:
        return defaults.QUERY_IDF if takes_query_idf(spec) else None
    check_query_idf(requested, spec)
    return requested


def valid_exponent(exponent: float) -> bool:
    """0 (no weighting) or a positive finite number: what an index may record and a search may ask for."""
    return exponent >= 0 and math.isfinite(exponent)


def check_query_idf(exponent: float | None, spec: EncoderSpec) -> None:
    if exponent is None or exponent == 0:
        return
    if not valid_exponent(exponent):
        raise LsrError(f"the query IDF exponent must be a positive number, or 0 for none; got {exponent}")
    if not takes_query_idf(spec):
        raise LsrError(
            f"query IDF weighting applies to plain SPLADE encoders, whose queries the model encodes; {spec.name!r} is "
            f"{'UHD' if spec.kind == 'uhd' else 'inference-free'}: use 0"
        )
