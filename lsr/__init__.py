"""lsr: learned sparse retrieval — encode, index, serve and evaluate.

The names a library user needs, loaded on first use (so that ``import lsr`` and the ``lsr`` command start fast)::

    import lsr

    corpus = lsr.read_corpus("../shared/data/scifact")            # BEIR or MS MARCO folder
    lsr.index_corpus(corpus, "indexes/scifact")                   # splade-tiny; dense_encoder="all-minilm-l6-v2" for hybrid
    searcher = lsr.Searcher.open("indexes/scifact")               # the encoders named in the index's manifest
    hits = searcher.search("does vitamin D prevent fractures", k=10)
    result = lsr.evaluate(searcher, lsr.read_evaluation_set("../shared/data/scifact", "test"))
    result.report.scores.aggregate                                # {"nDCG@10": …, "RR@10": …, …}

Layout, in the order data flows: ``lsr.datasets`` reads corpora → ``lsr.retrieval.encoders`` turns text into
vectors → ``lsr.indexer`` writes index folders (engines) → ``lsr.retrieval.search`` ranks → ``lsr.api`` (HTTP)
and ``lsr.eval`` (metrics, reports); ``lsr.retrieval.training`` makes model folders; ``lsr.cli`` wires it all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "read_corpus": "lsr.datasets",
    "read_queries": "lsr.datasets",
    "read_qrels": "lsr.datasets",
    "read_evaluation_set": "lsr.datasets",
    "Document": "lsr.datasets",
    "index_corpus": "lsr.indexer",
    "Searcher": "lsr.retrieval.search",
    "Hit": "lsr.retrieval.search",
    "Fusion": "lsr.retrieval.search",
    "evaluate": "lsr.eval",
    "LsrError": "lsr.errors",
}
__all__ = [  # written out for readers and linters; test_public_api checks it against _EXPORTS
    "Document",
    "Fusion",
    "Hit",
    "LsrError",
    "Searcher",
    "__version__",
    "evaluate",
    "index_corpus",
    "read_corpus",
    "read_evaluation_set",
    "read_qrels",
    "read_queries",
]

if TYPE_CHECKING:
    from lsr.datasets import Document, read_corpus, read_evaluation_set, read_qrels, read_queries
    from lsr.errors import LsrError
    from lsr.eval import evaluate
    from lsr.indexer import index_corpus
    from lsr.retrieval.search import Fusion, Hit, Searcher


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lsr' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
