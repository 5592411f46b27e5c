"""Lucene indexes through Pyserini's bundled Anserini: the form Anserini and Pyserini users already know.

``lucene``: an impact index of our quantized vectors (Anserini's ``JsonVectorCollection``, ``-impact -pretokenized``),
searched with ``SimpleImpactSearcher`` fed our own integer query vectors — nothing is loaded from a hub, and no query
term is dropped (Pyserini's Python wrapper drops terms under ``min_idf``; calling the Java searcher directly does not).
Terms are written as their dimension numbers and documents as their row numbers, so results map straight back.

``lucene-bm25``: BM25 over the documents' text with Anserini's default analyzer — Pyserini's BEIR "flat" setting
(title and text in one field, k1 = 0.9, b = 0.4) — so every comparison can be made against the canonical baseline.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from lsr.indexer.engines.base import CORES, BuildExtras, Capabilities, NoSettings, Ranking, query_rows
from lsr.indexer.engines.jvm import anserini_class, java_classes
from lsr.retrieval.encoders.base import EncoderSpec

BM25_KIND = "bm25"
BM25_K1 = 0.9
BM25_B = 0.4


def bm25_spec() -> EncoderSpec:
    """BM25 has no model: its identity is the analyzer and parameters of the Anserini release that scores it."""
    settings = f"anserini-default-analyzer k1={BM25_K1} b={BM25_B}"
    return EncoderSpec(
        kind=BM25_KIND,
        name=BM25_KIND,
        content_hash=hashlib.sha256(settings.encode()).hexdigest(),
        query_max_length=0,
        doc_max_length=0,
    )


def _index_collection(kind: str, collection: Path, folder: Path, *flags: str) -> None:
    args = ["-collection", kind, "-input", str(collection), "-index", str(folder)]
    # -quiet: Anserini otherwise logs its settings and a progress line a minute at INFO; errors still show.
    args += ["-generator", "DefaultLuceneDocumentGenerator", "-threads", str(CORES), "-optimize", "-quiet", *flags]
    anserini_class("io.anserini.index.IndexCollection").main(args)


def _index_rows(kind: str, rows: Iterable[dict], count: int, folder: Path, *flags: str) -> None:
    """Writes the rows as an Anserini collection beside ``folder``, indexes it into ``folder``, deletes it."""
    collection = folder.with_name(f"{folder.name}.collection")
    shutil.rmtree(collection, ignore_errors=True)
    _write_collection(collection, rows, count)
    try:
        _index_collection(kind, collection, folder, *flags)
    finally:
        shutil.rmtree(collection, ignore_errors=True)


def _write_collection(collection: Path, rows: Iterable[dict], count: int) -> None:
    """One JSONL file per indexing thread: Anserini reads each file on one thread."""
    collection.mkdir(parents=True)
    per_file = max(1, -(-count // CORES))
    handle = None
    for number, row in enumerate(rows):
        if number % per_file == 0:
            if handle:
                handle.close()
            handle = (collection / f"part-{number // per_file:03d}.jsonl").open("w", encoding="utf-8")
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    if handle:
        handle.close()


def _rankings(hits_per_query: list[Any], as_integers: bool) -> list[Ranking]:
    """Lucene breaks ties by its internal doc order; re-sorting by (score, row) ranks ties as every engine does."""
    rankings = []
    for hits in hits_per_query:
        rows = np.array([int(hit.docid) for hit in hits], dtype=np.int64)
        scores = np.array([hit.score for hit in hits], dtype=np.float64)
        order = np.lexsort((rows, -scores))
        scores = np.rint(scores[order]).astype(np.int64) if as_integers else scores[order].astype(np.float32)
        rankings.append(Ranking(doc_indices=rows[order], scores=scores))
    return rankings


def _batch_search(searcher: Any, queries: list[Any], k: int) -> list[Any]:
    autoclass = java_classes()
    query_list, ids = autoclass("java.util.ArrayList")(), autoclass("java.util.ArrayList")()
    for number, query in enumerate(queries):
        query_list.add(query)
        ids.add(str(number))
    results = searcher.batch_search(query_list, ids, int(k), CORES)
    return [results.get(str(number)) for number in range(len(queries))]


class LuceneImpactEngine:
    name: ClassVar[str] = "lucene"
    capabilities: ClassVar[Capabilities] = Capabilities()
    Settings: ClassVar[type] = NoSettings

    def __init__(self, searcher: Any) -> None:
        self._searcher = searcher

    @classmethod
    def build(
        cls, vectors: sp.csr_matrix, folder: Path, settings: NoSettings = NoSettings(), extras: BuildExtras = BuildExtras()
    ) -> None:
        rows = (
            {
                "id": str(row),
                "contents": "",
                "vector": dict(zip(map(str, vectors.indices[start:end]), vectors.data[start:end].tolist(), strict=True)),
            }
            for row, (start, end) in enumerate(zip(vectors.indptr[:-1], vectors.indptr[1:], strict=True))
        )
        _index_rows("JsonVectorCollection", rows, vectors.shape[0], folder, "-impact", "-pretokenized")

    @classmethod
    def open(cls, folder: Path, doc_count: int, settings: NoSettings = NoSettings()) -> LuceneImpactEngine:
        return cls(anserini_class("io.anserini.search.SimpleImpactSearcher")(str(folder)))

    def search(self, queries: sp.csr_matrix, k: int) -> list[Ranking]:
        autoclass = java_classes()
        hash_map, integer = autoclass("java.util.HashMap"), autoclass("java.lang.Integer")
        java_queries = []
        for terms, weights in query_rows(queries):
            query = hash_map()
            for term, weight in zip(terms.tolist(), weights.tolist(), strict=True):
                query.put(str(term), integer(int(weight)))
            java_queries.append(query)
        if len(java_queries) == 1:
            return _rankings([self._searcher.search(java_queries[0], int(k))], as_integers=True)
        return _rankings(_batch_search(self._searcher, java_queries, k), as_integers=True)


class LuceneBm25Engine:
    """Searches text, not vectors: Lucene analyses documents and queries itself."""

    name: ClassVar[str] = "lucene-bm25"
    capabilities: ClassVar[Capabilities] = Capabilities()
    Settings: ClassVar[type] = NoSettings

    def __init__(self, searcher: Any) -> None:
        self._searcher = searcher

    @classmethod
    def build_from_texts(cls, texts: Sequence[str], folder: Path) -> None:
        rows = ({"id": str(row), "contents": text} for row, text in enumerate(texts))
        _index_rows("JsonCollection", rows, len(texts), folder, "-storePositions", "-storeDocvectors")

    @classmethod
    def open(cls, folder: Path, doc_count: int, settings: NoSettings = NoSettings()) -> LuceneBm25Engine:
        searcher = anserini_class("io.anserini.search.SimpleSearcher")(str(folder))
        searcher.set_bm25(BM25_K1, BM25_B)
        return cls(searcher)

    def search_texts(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """Float BM25 scores."""
        if len(queries) == 1:
            return _rankings([self._searcher.search(queries[0], int(k))], as_integers=False)
        return _rankings(_batch_search(self._searcher, list(queries), k), as_integers=False)
