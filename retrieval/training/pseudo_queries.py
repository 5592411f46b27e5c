"""Training pairs from a corpus alone: each pseudo-query is one sentence (or the title) of a document, inverse-cloze
style (Lee et al. 2019), paired with that document. No generator model is packaged, and a sentence of a document
is the query-like text every corpus has. The pairing only makes the query: a student learns from the teacher's ranking of
the other documents (``learn_from_other_documents``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lsr import defaults
from lsr.datasets import Document
from lsr.errors import LsrError
from lsr.retrieval.training.data import TrainingData
from lsr.runs import Run

# A sentence ends at . ! or ? followed by white space; abbreviations split too often to matter for a query.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
QUERY_ID_PREFIX = "pseudo-"  # never equal to a document id, so BEIR's identical-id rule drops nothing
# How long a pseudo-query cut from a sentence is: the sentence up to max_words ("longest"), or a length drawn
# uniformly between min_words and that ("uniform": the random cropping of Izacard et al. 2022), which also makes
# queries as short as users' keyword queries.
QUERY_LENGTHS = ("longest", "uniform")


@dataclass(frozen=True)
class PseudoQuerySettings:
    count: int = defaults.Adaptation.queries  # at most per_document per document, documents sampled with the seed
    min_words: int = defaults.Adaptation.query_min_words  # shorter sentences ("Results." "Background:") say nothing
    max_words: int = defaults.Adaptation.query_max_words  # a longer sentence gives a random window of this many words
    per_document: int = defaults.Adaptation.queries_per_document  # distinct sentences of one document
    length: str = defaults.Adaptation.query_length  # one of QUERY_LENGTHS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise LsrError(f"the number of pseudo-queries must be positive, got {self.count}")
        if self.per_document < 1:
            raise LsrError(f"pseudo-queries per document must be positive, got {self.per_document}")
        if not 1 <= self.min_words <= self.max_words:
            raise LsrError(f"pseudo-query lengths need 1 ≤ min words ≤ max words, got {self.min_words} and {self.max_words}")
        if self.length not in QUERY_LENGTHS:
            raise LsrError(f"pseudo-query length must be one of {', '.join(QUERY_LENGTHS)}, got {self.length!r}")


def candidate_queries(document: Document, min_words: int) -> list[list[str]]:
    """The title and each sentence of the body with at least ``min_words`` words, as word lists."""
    spans = [document.title, *_SENTENCE_END.split(document.text)]
    return [words for words in (span.split() for span in spans) if len(words) >= min_words]


def pseudo_queries(documents: Sequence[Document], settings: PseudoQuerySettings) -> TrainingData:
    """Pseudo-queries, each with its source document as the one positive; every document stays a candidate negative.

    Documents are drawn in a seeded random order; one without a long enough sentence is skipped, and each gives up
    to ``per_document`` queries from different sentences.
    """
    rng = random.Random(settings.seed)
    order = list(range(len(documents)))
    rng.shuffle(order)
    queries: dict[str, str] = {}
    positives: dict[str, list[str]] = {}
    for row in order:
        if len(queries) == settings.count:
            break
        candidates = candidate_queries(documents[row], settings.min_words)
        if not candidates:
            continue
        wanted = min(settings.per_document, len(candidates), settings.count - len(queries))
        # One pick draws as rng.choice did before several were possible: a seed makes the same queries it made then.
        # A sentence that is also the title (or repeated) is kept once.
        for words in dict.fromkeys(tuple(words) for words in rng.sample(candidates, wanted)):
            longest = min(len(words), settings.max_words)
            length = rng.randint(settings.min_words, longest) if settings.length == "uniform" else longest
            start = rng.randrange(len(words) - length + 1) if len(words) > length else 0
            query_id = f"{QUERY_ID_PREFIX}{len(queries)}"
            queries[query_id] = " ".join(words[start : start + length])
            positives[query_id] = [documents[row].id]
    if not queries:
        raise LsrError(f"no document has a title or sentence of {settings.min_words} or more words to make a query from")
    return TrainingData(queries=queries, documents={doc.id: doc.contents for doc in documents}, positives=positives)


def learn_from_other_documents(data: TrainingData, teacher: Run) -> Run:
    """The teacher's ranking without each pseudo-query's own document, whose best remaining document becomes the
    positive; returns that ranking. A sentence matches its own document word for word, so with the source kept the
    teacher's softmax is one-hot on it and distillation is only the (trivial) pairing; what the hybrid knows and the
    sparse encoder lacks is which *other* documents are about the same thing. A query whose teacher ranked nothing
    else is dropped."""
    others: Run = {}
    for query_id, [source] in list(data.positives.items()):
        ranked = {doc_id: score for doc_id, score in teacher.get(query_id, {}).items() if doc_id != source}
        if ranked:
            others[query_id] = ranked
            data.positives[query_id] = [max(ranked, key=ranked.__getitem__)]
        else:
            del data.queries[query_id], data.positives[query_id]
    if not others:
        raise LsrError("the teacher ranked no document besides the pseudo-queries' own: the corpus is too small to adapt to")
    return others
