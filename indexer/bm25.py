"""The BM25 side of an index: BM25 over the documents' text, a third signal beside the sparse and dense ones.

Scored in process by bm25s (term scores precomputed into a sparse matrix at build time; a query sums its terms'
columns) rather than by Lucene through Pyserini: on the four shared test sets it was within 0.0020 nDCG@10 of
Lucene's BM25 and 8-22× faster per query (0.05-0.2 ms against 1.1-1.6 ms), with no JVM (``bench/bm25_sides.py``).
Its analysis imitates Anserini's default English analyzer: lowercase, word tokens, possessive 's dropped, Lucene's
33 English stopwords, Porter stemming; scoring is Lucene's BM25 (k1 0.9, b 0.4, Pyserini's BEIR "flat" setting).
``lsr index --encoder bm25`` still builds the Lucene index, the canonical baseline.

The side is built once from ``docs.jsonl``: indexes with one refuse live updates (``lsr.indexer.live``) rather than
serve a BM25 ranking that misses the updated documents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from lsr.errors import IndexFolderError
from lsr.indexer.engines.base import Ranking, best_candidates

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, which Anserini's default analyzer uses.
LUCENE_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    }
)
_WORD = re.compile(r"\w+(?:'\w+)?")


@dataclass(frozen=True)
class Bm25Settings:
    """Recorded in the manifest: a query is analysed and scored as the documents were."""

    k1: float = 0.9
    b: float = 0.4
    stemmer: str = "porter"
    library: str = f"bm25s {bm25s.__version__}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Bm25Settings:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class Analyzer:
    def __init__(self, stemmer: str) -> None:
        try:
            self._stem = Stemmer.Stemmer(stemmer).stemWords
        except KeyError:
            raise IndexFolderError(f"unknown stemmer {stemmer!r} (PyStemmer: {', '.join(Stemmer.algorithms())})") from None

    def __call__(self, text: str) -> list[str]:
        words = [word.removesuffix("'s") for word in _WORD.findall(text.lower())]
        return self._stem([word for word in words if word not in LUCENE_STOPWORDS])


class Bm25Side:
    def __init__(self, retriever: bm25s.BM25, settings: Bm25Settings) -> None:
        self._retriever = retriever
        self._analyze = Analyzer(settings.stemmer)
        self.size = int(retriever.scores["num_docs"])

    @staticmethod
    def build(texts: Sequence[str], folder: Path, settings: Bm25Settings = Bm25Settings()) -> None:
        analyze = Analyzer(settings.stemmer)
        retriever = bm25s.BM25(method="lucene", k1=settings.k1, b=settings.b)
        # An empty document still takes its row, so rows stay aligned with docs.jsonl.
        retriever.index([analyze(text) for text in texts], show_progress=False)
        retriever.save(str(folder))

    @classmethod
    def open(cls, folder: Path, settings: Bm25Settings) -> Bm25Side:
        try:
            return cls(bm25s.BM25.load(str(folder), mmap=True), settings)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFolderError(f"cannot open the BM25 side in {folder}: {exc}") from exc

    def search_texts(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """Top-k rows with a positive BM25 score per query text, float scores, ties broken by lower row."""
        rankings = []
        for query in queries:
            ids = self._retriever.get_tokens_ids(self._analyze(query))
            if not ids:
                rankings.append(Ranking(doc_indices=np.zeros(0, np.int64), scores=np.zeros(0, np.float64)))
                continue
            scores = self._retriever.get_scores_from_ids(ids).astype(np.float64)
            candidates = np.flatnonzero(scores > 0)
            rows, found = best_candidates(candidates, scores[candidates], k)
            rankings.append(Ranking(doc_indices=rows.astype(np.int64), scores=found))
        return rankings
