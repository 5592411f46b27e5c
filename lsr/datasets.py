"""Readers for dataset folders, validating every record.

Two layouts are recognised by their files:

- BEIR: ``corpus.jsonl``, ``queries.jsonl`` (either may be ``.gz``) and ``qrels/<split>.tsv``;
- MS MARCO / TREC: ``collection.tsv`` (id, text — or id, title, text), ``queries.<split>.tsv`` (or
  ``queries.tsv``; id, text) and TREC qrels ``qrels.<split>.tsv`` or ``.txt`` (query-id, iteration, doc-id, relevance).

Every malformed record is reported with its file and line number, so a user can fix the data instead of
reading a traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from lsr.errors import DatasetError

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Document:
    """One document, as read from a corpus, stored in an index's ``docs.jsonl`` and upserted over the API."""

    id: str
    title: str
    text: str = ""  # older indexes stored no text: explanations then cannot tell expansion terms apart
    metadata: dict = field(default_factory=dict)  # a BEIR row's "metadata" object, kept for filtering

    @property
    def contents(self) -> str:
        """The text an encoder sees: title and body, as BEIR's own evaluation joins them."""
        return f"{self.title} {self.text}".strip()

    def to_json(self) -> str:
        row = {"id": self.id, "title": self.title}
        row.update({key: value for key, value in (("text", self.text), ("metadata", self.metadata)) if value})
        return json.dumps(row, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Document:
        row = json.loads(line)
        return cls(row["id"], row["title"], row.get("text", ""), row.get("metadata") or {})


DuplicateIds = Literal["error", "first", "last"]


@dataclass(frozen=True)
class Corpus:
    path: Path
    documents: list[Document]
    sha256: str  # of the decompressed file: identifies the corpus for resumable indexing
    duplicates_dropped: list[str] = field(default_factory=list)  # ids whose extra copies were dropped

    def __len__(self) -> int:
        return len(self.documents)


def _find(folder: Path, *names: str) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


BEIR, MSMARCO = "beir", "msmarco"
BEIR_CORPUS = ("corpus.jsonl", "corpus.jsonl.gz")
BEIR_QUERIES = ("queries.jsonl", "queries.jsonl.gz")
MSMARCO_CORPUS = ("collection.tsv", "collection.tsv.gz")


def dataset_format(folder: Path) -> str:
    if _find(folder, *BEIR_CORPUS, *BEIR_QUERIES) or (folder / "qrels").is_dir():
        return BEIR
    if _find(folder, *MSMARCO_CORPUS, "queries.tsv") or any(folder.glob("qrels.*")) or any(folder.glob("queries.*.tsv")):
        return MSMARCO
    raise DatasetError(
        f"{folder}: neither a BEIR folder (corpus.jsonl[.gz], queries.jsonl[.gz], qrels/<split>.tsv) "
        "nor an MS MARCO folder (collection.tsv[.gz], queries.<split>.tsv, qrels.<split>.tsv)"
    )


def _require(path: Path | None, description: str) -> Path:
    if path is None:
        raise DatasetError(description)
    return path


def _check_folder(folder: str | Path) -> Path:
    path = Path(folder)
    if not path.exists():
        raise DatasetError(f"dataset folder {path} does not exist")
    if not path.is_dir():
        raise DatasetError(f"{path} is not a folder: expected a BEIR-format dataset folder")
    return path


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc


def _lines(path: Path, data: bytes) -> Iterator[tuple[int, str]]:
    """Yields (line number, line) for each non-blank line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: not valid UTF-8") from exc
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield lineno, line.rstrip("\r")


def _tsv_rows(path: Path, data: bytes, widths: tuple[int, ...], columns: str) -> Iterator[tuple[int, list[str]]]:
    for lineno, line in _lines(path, data):
        row = line.split("\t")
        if len(row) not in widths:
            raise DatasetError(f"{path}:{lineno}: expected {columns}, found {len(row)} tab-separated columns")
        yield lineno, row


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json_records(path: Path, data: bytes) -> Iterator[tuple[int, dict]]:
    """Yields (line number, object) for each non-blank line."""
    for lineno, line in _lines(path, data):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: malformed JSON: {exc.msg}") from exc
        except RecursionError:
            raise DatasetError(f"{path}:{lineno}: JSON nested too deeply") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        if _SURROGATE_ESCAPE.search(line):  # an escaped surrogate must be half of a pair, as the API requires
            try:
                json.dumps(record, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise DatasetError(f"{path}:{lineno}: a \\u escape is a lone surrogate, not a character") from None
        yield lineno, record


def _string_field(path: Path, lineno: int, record: dict, key: str, *, required: bool) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise DatasetError(f"{path}:{lineno}: missing field {key!r}")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DatasetError(f"{path}:{lineno}: field {key!r} must be a string, got {type(value).__name__}")
    return str(value)


def _record_id(path: Path, lineno: int, record: dict, seen: dict[str, int]) -> str:
    return _unique_id(path, lineno, _string_field(path, lineno, record, "_id", required=True), seen)


def _nonempty_id(path: Path, lineno: int, record_id: str) -> str:
    record_id = record_id.strip()
    if not record_id:
        raise DatasetError(f"{path}:{lineno}: empty '_id'")
    return record_id


def _duplicate_id(path: Path, lineno: int, record_id: str, first_line: int) -> DatasetError:
    return DatasetError(f"{path}:{lineno}: duplicate id {record_id!r} (first seen on line {first_line})")


def _unique_id(path: Path, lineno: int, record_id: str, seen: dict[str, int]) -> str:
    record_id = _nonempty_id(path, lineno, record_id)
    if record_id in seen:
        raise _duplicate_id(path, lineno, record_id, seen[record_id])
    seen[record_id] = lineno
    return record_id


def _beir_documents(path: Path, data: bytes) -> Iterator[tuple[int, Document]]:
    for lineno, record in _json_records(path, data):
        doc_id = _nonempty_id(path, lineno, _string_field(path, lineno, record, "_id", required=True))
        title = _string_field(path, lineno, record, "title", required=False)
        # An empty document is kept (BEIR corpora have a few); it is indexed like any other.
        text = _string_field(path, lineno, record, "text", required="title" not in record)
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DatasetError(f'{path}:{lineno}: "metadata" must be an object, got {type(metadata).__name__}')
        yield lineno, Document(doc_id, title, text, metadata)


def _msmarco_documents(path: Path, data: bytes) -> Iterator[tuple[int, Document]]:
    for lineno, row in _tsv_rows(path, data, (2, 3), "id<TAB>text or id<TAB>title<TAB>text"):
        title, text = (row[1], row[2]) if len(row) == 3 else ("", row[1])
        yield lineno, Document(_nonempty_id(path, lineno, row[0]), title, text)


def _one_per_id(path: Path, numbered: Iterator[tuple[int, Document]], duplicates: DuplicateIds) -> Corpus:
    """Documents by id in first-seen order; a repeated id is an error, or keeps its first or last text."""
    documents: dict[str, Document] = {}
    first_line: dict[str, int] = {}
    repeated: list[str] = []
    for lineno, document in numbered:
        if document.id not in documents:
            first_line[document.id] = lineno
            documents[document.id] = document
            continue
        if duplicates == "error":
            error = _duplicate_id(path, lineno, document.id, first_line[document.id])
            raise DatasetError(f"{error}; to keep one copy of each id, choose duplicates first or last")
        repeated.append(document.id)
        if duplicates == "last":
            documents[document.id] = document
    return Corpus(path=path, documents=list(documents.values()), sha256="", duplicates_dropped=repeated)


def read_corpus(folder: str | Path, duplicates: DuplicateIds = "error") -> Corpus:
    """Reads and validates a whole corpus before any expensive work starts.

    A repeated document id is an error unless ``duplicates`` is ``"first"`` or ``"last"``: then the first or the
    last text is kept (at the id's first position) and each dropped copy is listed in ``duplicates_dropped``.
    """
    folder = _check_folder(folder)
    if dataset_format(folder) == BEIR:
        names, parse = BEIR_CORPUS, _beir_documents
    else:
        names, parse = MSMARCO_CORPUS, _msmarco_documents
    path = _require(_find(folder, *names), f"{folder}: no {' or '.join(names)}")
    data = _read_bytes(path)
    corpus = _one_per_id(path, parse(path, data), duplicates)
    if not corpus.documents:
        raise DatasetError(f"{path}: the corpus is empty")
    return replace(corpus, sha256=hashlib.sha256(data).hexdigest())


def read_queries(folder: str | Path, split: str | None = None) -> dict[str, str]:
    """All queries of a BEIR folder; an MS MARCO folder's ``queries.<split>.tsv`` (else ``queries.tsv``)."""
    folder = _check_folder(folder)
    seen: dict[str, int] = {}
    queries = {}
    if dataset_format(folder) == BEIR:
        path = _require(_find(folder, *BEIR_QUERIES), f"{folder}: no {' or '.join(BEIR_QUERIES)}")
        for lineno, record in _json_records(path, _read_bytes(path)):
            queries[_record_id(path, lineno, record, seen)] = _string_field(path, lineno, record, "text", required=True)
    else:
        names = ([f"queries.{split}.tsv"] if split else []) + ["queries.tsv"]
        path = _require(_find(folder, *names), f"{folder}: no {' or '.join(names)}")
        for lineno, row in _tsv_rows(path, _read_bytes(path), (2,), "id<TAB>text"):
            queries[_unique_id(path, lineno, row[0], seen)] = row[1]
    if not queries:
        raise DatasetError(f"{path}: no queries")
    return queries


def available_splits(folder: str | Path) -> list[str]:
    folder = _check_folder(folder)
    if dataset_format(folder) == BEIR:
        return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
    trec_qrels = [*folder.glob("qrels.*.tsv"), *folder.glob("qrels.*.txt")]
    return sorted({path.name[len("qrels.") : -len(".tsv")] for path in trec_qrels})  # .tsv and .txt: same length


def _judgment(path: Path, lineno: int, query_id: str, doc_id: str, score: str, qrels: Qrels) -> None:
    try:
        relevance = int(float(score))
    except ValueError as exc:
        raise DatasetError(f"{path}:{lineno}: score {score!r} is not a number") from exc
    qrels.setdefault(query_id.strip(), {})[doc_id.strip()] = relevance


def read_qrels(folder: str | Path, split: str) -> Qrels:
    """BEIR ``qrels/<split>.tsv`` (query-id, corpus-id, score; header optional) or TREC ``qrels.<split>.tsv|txt``."""
    folder = _check_folder(folder)
    beir = dataset_format(folder) == BEIR
    candidates = [f"qrels/{split}.tsv"] if beir else [f"qrels.{split}.tsv", f"qrels.{split}.txt"]
    path = _find(folder, *candidates)
    if path is None:
        splits = ", ".join(available_splits(folder)) or "none"
        raise DatasetError(f"{folder / candidates[0]}: no qrels for split {split!r} (available splits: {splits})")
    qrels: Qrels = {}
    data = _read_bytes(path)
    if beir:
        for lineno, row in _tsv_rows(path, data, (3,), "3 tab-separated columns (query-id, corpus-id, score)"):
            if not (lineno == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid")):  # BEIR's header
                _judgment(path, lineno, row[0], row[1], row[2], qrels)
    else:
        for lineno, line in _lines(path, data):
            row = line.split()  # TREC qrels are whitespace-separated
            if len(row) != 4:
                raise DatasetError(f"{path}:{lineno}: expected 4 TREC qrels columns (query-id, iteration, doc-id, relevance)")
            _judgment(path, lineno, row[0], row[2], row[3], qrels)
    if not qrels:
        raise DatasetError(f"{path}: no judgments")
    return qrels


@dataclass(frozen=True)
class EvaluationSet:
    """The queries of one split that have judgments, with those judgments."""

    queries: dict[str, str]
    qrels: Qrels
    name: str = ""  # the dataset folder's name
    split: str = ""


def read_evaluation_set(folder: str | Path, split: str) -> EvaluationSet:
    qrels = read_qrels(folder, split)
    all_queries = read_queries(folder, split)
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise DatasetError(f"qrels/{split}.tsv judges {len(missing)} queries not in the queries file: {shown}")
    queries = {qid: all_queries[qid] for qid in qrels}
    return EvaluationSet(queries=queries, qrels=qrels, name=Path(folder).resolve().name, split=split)
