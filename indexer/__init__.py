"""Turning corpora into index folders, and the index formats and engines behind them."""

from lsr.indexer.index_folder import IndexFolder, Manifest
from lsr.indexer.pipeline import add_bm25_side, add_dense_vectors, build_bm25_index, build_index, index_corpus, reindex
from lsr.indexer.quantization import Quantization

__all__ = [
    "IndexFolder",
    "Manifest",
    "Quantization",
    "add_bm25_side",
    "add_dense_vectors",
    "build_bm25_index",
    "build_index",
    "index_corpus",
    "reindex",
]
