"""The BM25 side of an index: BM25 over the documents' text, a third signal beside the sparse and dense ones.

Scored in process by bm25s (term scores precomputed into a sparse matrix at build time; a query sums its terms'
columns) rather than by Lucene through Pyserini: on the four shared test sets it was within 0.0020 nDCG@10 of
Lucene's BM25 and 8-22× faster per query (0.05-0.2 ms against 1.1-1.6 ms), with no JVM (``bench/bm25_sides.py``).
Its analysis imitates Anserini's default English analyzer: lowercase, word tokens, possessive 's dropped, Lucene's
33 English stopwords, Porter stemming; scoring is Lucene's BM25 (k1 0.9, b 0.4, Pyserini's BEIR "flat" setting).
``lsr index --encoder bm25`` still builds the Lucene index, the canonical baseline.

Beside bm25s's files the side keeps each document's term counts (``TermCounts``): with them a live index
(``lsr.indexer.live``) scores BM25 over its documents as they are after upserts and deletes (``LiveBm25``), with the
statistics of exactly those documents, until compaction builds the side afresh.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import bm25s
import numpy as np
import scipy.sparse as sp
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


class TermCounts:
    """How often each term occurs in each document, by term (a term's documents are contiguous, in row order), and
    each document's length (its analysed terms): what BM25 needs beyond the collection's size."""

    FILES = ("counts_indptr.npy", "counts_rows.npy", "counts.npy", "doc_lengths.npy")

    def __init__(self, indptr: np.ndarray, rows: np.ndarray, counts: np.ndarray, lengths: np.ndarray) -> None:
        self.indptr, self.rows, self.counts, self.lengths = indptr, rows, counts, lengths

    @staticmethod
    def of(documents: Sequence[Sequence[int]], vocab_size: int) -> TermCounts:
        """``documents``: each document's term ids, as analysed (repeats counted)."""
        lengths = np.fromiter(map(len, documents), np.int64, len(documents))
        terms = np.fromiter(itertools.chain.from_iterable(documents), np.int64, int(lengths.sum()))
        rows = np.repeat(np.arange(len(documents)), lengths)
        ones = np.ones(terms.size, dtype=np.int32)
        by_term = sp.csc_matrix((ones, (rows, terms)), shape=(len(documents), vocab_size))  # repeats summed
        by_term.sort_indices()
        return TermCounts(by_term.indptr.astype(np.int64), by_term.indices.astype(np.int32), by_term.data, lengths)

    def save(self, folder: Path) -> None:
        for name, array in zip(self.FILES, (self.indptr, self.rows, self.counts, self.lengths), strict=True):
            np.save(folder / name, array)

    @classmethod
    def load(cls, folder: Path) -> TermCounts | None:
        """None for a side built before lsr kept term counts."""
        if not all((folder / name).is_file() for name in cls.FILES):
            return None
        return cls(*(np.load(folder / name, mmap_mode="r") for name in cls.FILES))

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows holding ``term`` and its count in each; none for a term beyond this vocabulary."""
        if term >= self.indptr.size - 1:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        start, end = self.indptr[term], self.indptr[term + 1]
        return self.rows[start:end], self.counts[start:end]


class Bm25Side:
    def __init__(self, retriever: bm25s.BM25, settings: Bm25Settings, folder: Path) -> None:
        self._retriever = retriever
        self._folder = folder
        self.settings = settings
        self.analyze = Analyzer(settings.stemmer)
        self.size = int(retriever.scores["num_docs"])

    @staticmethod
    def build(texts: Sequence[str], folder: Path, settings: Bm25Settings = Bm25Settings()) -> None:
        analyze = Analyzer(settings.stemmer)
        documents = [analyze(text) for text in texts]
        retriever = bm25s.BM25(method="lucene", k1=settings.k1, b=settings.b)
        # An empty document still takes its row, so rows stay aligned with docs.jsonl.
        retriever.index(documents, show_progress=False)
        retriever.save(str(folder))
        vocab = retriever.vocab_dict
        TermCounts.of([[vocab[term] for term in terms] for terms in documents], len(vocab)).save(folder)

    @classmethod
    def open(cls, folder: Path, settings: Bm25Settings) -> Bm25Side:
        try:
            return cls(bm25s.BM25.load(str(folder), mmap=True), settings, folder)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFolderError(f"cannot open the BM25 side in {folder}: {exc}") from exc

    @property
    def vocab(self) -> dict[str, int]:
        return self._retriever.vocab_dict

    @cached_property
    def term_counts(self) -> TermCounts | None:
        """Read on first use (live updates only); None for a side built before lsr kept them."""
        try:
            counts = TermCounts.load(self._folder)
        except (OSError, ValueError) as exc:
            raise IndexFolderError(f"cannot read the BM25 side's term counts in {self._folder}: {exc}") from exc
        if counts is not None and counts.lengths.size != self.size:
            raise IndexFolderError(f"{self._folder} is damaged: term counts for {counts.lengths.size} of {self.size} documents")
        return counts

    def search_texts(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """Top-k rows with a positive BM25 score per query text, float scores, ties broken by lower row."""
        rankings = []
        for query in queries:
            ids = self._retriever.get_tokens_ids(self.analyze(query))
            if not ids:
                rankings.append(Ranking(doc_indices=np.zeros(0, np.int64), scores=np.zeros(0, np.float64)))
                continue
            scores = self._retriever.get_scores_from_ids(ids).astype(np.float64)
            rankings.append(_positive_top(scores, k))
        return rankings


def _positive_top(scores: np.ndarray, k: int, visible: np.ndarray | None = None) -> Ranking:
    candidates = np.flatnonzero(scores > 0 if visible is None else (scores > 0) & visible)
    rows, found = best_candidates(candidates, scores[candidates], k)
    return Ranking(doc_indices=rows.astype(np.int64), scores=found)


@dataclass(frozen=True)
class _LiveStatistics:
    added: TermCounts  # of the upserted documents
    lengths: np.ndarray  # of every row, side's and upserted
    documents: int  # rows not removed
    average_length: float  # over those


class LiveBm25:
    """BM25 over the side's documents and those upserted since, without the removed ones, with the statistics of
    exactly those documents (their number, average length, each term's document frequency): it ranks as the side
    rebuilt from them would. bm25s precomputes its scores with the statistics of the build and takes no updates,
    hence scored here at query time from the term counts. Immutable: each write makes a new one (``extended``)."""

    def __init__(
        self, side: Bm25Side, added: tuple[tuple[int, ...], ...], new_terms: dict[str, int], removed: np.ndarray
    ) -> None:
        """``added``: the upserted documents' term ids, in row order after the side's; ``new_terms``: ids of their
        terms the side's vocabulary lacks (past it); ``removed``: rows of either that are deleted or replaced (they
        leave the statistics)."""
        if side.term_counts is None:
            raise IndexFolderError("the BM25 side was built before lsr kept its term counts")
        self.side, self.added, self.removed, self._new_terms = side, added, removed, new_terms

    @cached_property
    def _statistics(self) -> _LiveStatistics:
        """Counted at the first search, not at each write: replaying a long log makes one per logged batch."""
        added = TermCounts.of(self.added, len(self.side.vocab) + len(self._new_terms))
        lengths = np.concatenate((self.side.term_counts.lengths, added.lengths))
        kept = ~self.removed
        documents = int(kept.sum())
        return _LiveStatistics(added, lengths, documents, float(lengths[kept].sum()) / max(documents, 1))

    @staticmethod
    def unchanged(side: Bm25Side) -> LiveBm25:
        return LiveBm25(side, (), {}, np.zeros(side.size, bool))

    def extended(self, texts: Sequence[str], removed: np.ndarray) -> LiveBm25:
        """With more upserted documents (``texts``, in row order) and ``removed`` as it is now."""
        new_terms = dict(self._new_terms)
        vocab = self.side.vocab

        def term_id(term: str) -> int:
            found = vocab.get(term)
            return found if found is not None else new_terms.setdefault(term, len(vocab) + len(new_terms))

        added = tuple(tuple(map(term_id, self.side.analyze(text))) for text in texts)
        return LiveBm25(self.side, self.added + added, new_terms, removed)

    def _term_id(self, term: str) -> int | None:
        found = self.side.vocab.get(term)
        return found if found is not None else self._new_terms.get(term)

    def scores(self, query: str) -> np.ndarray:
        """Every row's BM25 score (Lucene's, as bm25s's "lucene" method computes it); 0 for removed rows."""
        settings, statistics = self.side.settings, self._statistics
        scores = np.zeros(statistics.lengths.size)
        repeats = Counter(term for term in map(self._term_id, self.side.analyze(query)) if term is not None)
        for term, times in repeats.items():
            base_rows, base_counts = self.side.term_counts.postings(term)
            added_rows, added_counts = statistics.added.postings(term)
            rows = np.concatenate((base_rows, added_rows.astype(np.int64) + self.side.size))
            counts = np.concatenate((base_counts, added_counts)).astype(np.float64)
            kept = ~self.removed[rows]
            rows, counts = rows[kept], counts[kept]
            if not rows.size:
                continue
            idf = math.log(1 + (statistics.documents - rows.size + 0.5) / (rows.size + 0.5))
            norms = settings.k1 * (1 - settings.b + settings.b * statistics.lengths[rows] / statistics.average_length)
            scores[rows] += times * idf * counts / (counts + norms)
        return scores

    def search_texts(self, queries: Sequence[str], k: int, hidden: np.ndarray) -> list[Ranking]:
        """Top-k rows per query text, as ``Bm25Side.search_texts``, leaving out ``hidden`` rows (removed or filtered)."""
        visible = ~hidden
        return [_positive_top(self.scores(query), k, visible) for query in queries]
