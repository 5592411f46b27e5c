"""Pseudo-relevance feedback on the sparse side: Rocchio over the first pass's top documents."""

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import LsrError
from lsr.indexer import IndexFolder
from lsr.indexer.engines import Ranking
from lsr.retrieval.search import Feedback, Searcher, expand_queries


def test_expansion_adds_the_weighted_mean_of_the_top_documents_cut_to_its_heaviest_terms():
    documents = sp.csr_matrix(np.array([[10, 0, 4, 0, 0], [30, 0, 0, 8, 0], [0, 0, 0, 0, 99]], dtype=np.int32))
    queries = sp.csr_matrix(np.array([[5, 7, 0, 0, 0], [0, 0, 0, 0, 3]], dtype=np.int32))
    first_pass = [Ranking(np.array([1, 0, 2]), np.array([150, 50, 0])), Ranking(np.zeros(0, np.int64), np.zeros(0))]
    expanded = expand_queries(queries, first_pass, lambda row: documents[row], Feedback(documents=2, terms=2, weight=0.5))
    # Mean of rows 1 and 0: [20, 0, 2, 4, 0]; its two heaviest terms 0 and 3, halved and rounded: +10, +2.
    assert expanded.toarray().tolist() == [[15, 7, 0, 2, 0], [0, 0, 0, 0, 3]]  # a query without hits is unchanged
    assert expanded.dtype == queries.dtype
    with pytest.raises(LsrError, match="feedback needs"):
        Feedback(documents=0)


def test_searcher_with_feedback_searches_the_expanded_query(small_index, small_dataset, splade):
    index = IndexFolder(small_index)
    plain, expanded = Searcher(index, splade), Searcher(index, splade, feedback=Feedback(documents=3, terms=20, weight=1.0))
    query = "supersonic flow over a flat plate"
    without, with_feedback = plain.rankings([query], "sparse", 10)[0], expanded.rankings([query], "sparse", 10)[0]
    vector = plain.sparse_queries([query])
    by_hand = expand_queries(vector, index.engine.search(vector, 3), index.vector, expanded.feedback)
    (reference,) = index.engine.search(by_hand, 10)
    assert with_feedback.doc_indices.tolist() == reference.doc_indices.tolist()
    assert by_hand.nnz > vector.nnz  # expansion terms were added …
    assert with_feedback.scores[0] > without.scores[0]  # … with positive weights, so the best score grows
