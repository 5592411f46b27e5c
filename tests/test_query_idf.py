"""Corpus-IDF weighting of SPLADE queries: the statistics, what an index records, and where it is refused."""

import json
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from lsr import defaults
from lsr.errors import IndexFolderError, LsrError
from lsr.indexer import IndexFolder
from lsr.indexer.term_statistics import TermStatistics, check_query_idf, index_query_idf, term_counts
from lsr.retrieval.encoders.base import EncoderSpec
from lsr.retrieval.search import Searcher


def test_idf_weights_by_hand():
    vectors = sp.csr_matrix(np.array([[3, 0, 1, 0], [2, 0, 0, 0], [5, 1, 0, 0]], dtype=np.int32))
    statistics = TermStatistics(3, term_counts(vectors.indices, 4))
    assert statistics.documents == 3 and statistics.document_frequencies.tolist() == [3, 1, 1, 0]
    idf = np.log(4 / np.array([3, 1, 1, 1]))
    idf /= idf[:3].mean()  # the mean over terms some document holds
    np.testing.assert_allclose(statistics.idf, idf, rtol=1e-6)
    queries = sp.csr_matrix(np.array([[1.0, 2.0, 0.0, 0.5]], dtype=np.float32))
    weighted = statistics.weighted(queries, 0.5)
    np.testing.assert_allclose(weighted.toarray()[0], [1.0, 2.0, 0.0, 0.5] * idf**0.5, rtol=1e-6)
    assert queries.toarray()[0].tolist() == [1.0, 2.0, 0.0, 0.5]  # the encoder's vectors are left as they were
    # A damaged id (a row refused when read: tests/test_reliability.py) counts for no dimension.
    assert term_counts(np.array([0, 7, -1, 0], np.int32), 4).tolist() == [2, 0, 0, 0]
    assert term_counts(np.array([], np.int32), 3).tolist() == [0, 0, 0]


def spec(**changes) -> EncoderSpec:
    fields = {"kind": "splade", "name": "m", "content_hash": "0", "query_max_length": 8, "doc_max_length": 8}
    return EncoderSpec(**fields | changes)


def test_what_an_index_records_and_which_encoders_take_it():
    assert index_query_idf(spec(), None) == defaults.QUERY_IDF
    assert index_query_idf(spec(), 0.0) == 0.0 and index_query_idf(spec(), 1.0) == 1.0
    inference_free = spec(arch={"arch": "splade", "query_encoder": "bow", "idf": True})
    uhd = spec(kind="uhd", arch={"arch": "uhd", "query_encoder": "model", "idf": False})
    assert index_query_idf(inference_free, None) is None and index_query_idf(uhd, None) is None
    for encoder in (inference_free, uhd):
        check_query_idf(0.0, encoder)
        with pytest.raises(LsrError, match="plain SPLADE encoders"):
            check_query_idf(0.5, encoder)
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(LsrError, match="positive number"):
            check_query_idf(bad, spec())


def test_an_index_without_the_setting_is_searched_unweighted_and_a_bad_one_is_refused(tmp_path, small_index, splade):
    query = "heat transfer in hypersonic flow"
    weighted = Searcher(IndexFolder(small_index), splade)
    older = tmp_path / "older"
    shutil.copytree(small_index, older)
    manifest = json.loads((older / "manifest.json").read_text())
    del manifest["query_idf"]  # as lsr wrote it before the weighting existed
    (older / "manifest.json").write_text(json.dumps(manifest))
    unweighted = Searcher(IndexFolder(older), splade)
    assert unweighted.query_idf is None
    assert unweighted.sparse_queries([query]).toarray().tolist() == (
        weighted.index.manifest.quantization.quantize(splade.encode_queries([query])).toarray().tolist()
    )
    overridden = Searcher(IndexFolder(older), splade, query_idf=defaults.QUERY_IDF)
    assert overridden.search(query, 10, mode="sparse") == weighted.search(query, 10, mode="sparse")
    assert weighted.search(query, 10, mode="sparse") != unweighted.search(query, 10, mode="sparse")
    manifest["query_idf"] = -1
    (older / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFolderError, match="corrupt.*query_idf"):
        IndexFolder(older)
