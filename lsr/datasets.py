"""Readers for BEIR-format dataset folders, validating every record.

A BEIR folder holds ``corpus.jsonl`` (or ``.jsonl.gz``), ``queries.jsonl`` (or ``.gz``) and
``qrels/<split>.tsv``. Every malformed record is reported with its file and line number, so a user can
fix the data instead of reading a traceback.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lsr.errors import DatasetError

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """The text an encoder sees: title and body, as BEIR's own evaluation joins them."""
        return f"{self.title} {self.text}".strip()


@dataclass(frozen=True)
class Corpus:
    path: Path
    documents: list[Document]
    sha256: str  # of the decompressed file: identifies the corpus for resumable indexing

    def __len__(self) -> int:
        return len(self.documents)


def _find_jsonl(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{folder}: no {stem}.jsonl or {stem}.jsonl.gz (is this a BEIR-format folder?)")


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


def _json_records(path: Path, data: bytes) -> Iterator[tuple[int, dict]]:
    """Yields (line number, object) for each non-blank line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: not valid UTF-8") from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: malformed JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
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
    record_id = _string_field(path, lineno, record, "_id", required=True).strip()
    if not record_id:
        raise DatasetError(f"{path}:{lineno}: empty '_id'")
    if record_id in seen:
        raise DatasetError(f"{path}:{lineno}: duplicate id {record_id!r} (first seen on line {seen[record_id]})")
    seen[record_id] = lineno
    return record_id


def read_corpus(folder: str | Path) -> Corpus:
    """Reads and validates a whole corpus before any expensive work starts."""
    path = _find_jsonl(_check_folder(folder), "corpus")
    data = _read_bytes(path)
    seen: dict[str, int] = {}
    documents = []
    for lineno, record in _json_records(path, data):
        doc_id = _record_id(path, lineno, record, seen)
        title = _string_field(path, lineno, record, "title", required=False)
        # An empty document is kept (BEIR corpora have a few); it is indexed like any other.
        text = _string_field(path, lineno, record, "text", required="title" not in record)
        documents.append(Document(doc_id, title, text))
    if not documents:
        raise DatasetError(f"{path}: the corpus is empty")
    return Corpus(path=path, documents=documents, sha256=hashlib.sha256(data).hexdigest())


def read_queries(folder: str | Path) -> dict[str, str]:
    path = _find_jsonl(_check_folder(folder), "queries")
    seen: dict[str, int] = {}
    queries = {}
    for lineno, record in _json_records(path, _read_bytes(path)):
        query_id = _record_id(path, lineno, record, seen)
        queries[query_id] = _string_field(path, lineno, record, "text", required=True)
    if not queries:
        raise DatasetError(f"{path}: no queries")
    return queries


def available_splits(folder: str | Path) -> list[str]:
    qrels_dir = _check_folder(folder) / "qrels"
    return sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []


def read_qrels(folder: str | Path, split: str) -> Qrels:
    """Reads ``qrels/<split>.tsv`` (query-id, corpus-id, score; BEIR's header line optional)."""
    path = _check_folder(folder) / "qrels" / f"{split}.tsv"
    if not path.is_file():
        splits = ", ".join(available_splits(folder)) or "none"
        raise DatasetError(f"{path}: no qrels for split {split!r} (available splits: {splits})")
    qrels: Qrels = {}
    rows = csv.reader(io.StringIO(_read_bytes(path).decode("utf-8")), delimiter="\t")
    for lineno, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if lineno == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        if len(row) != 3:
            raise DatasetError(f"{path}:{lineno}: expected 3 tab-separated columns (query-id, corpus-id, score)")
        query_id, doc_id, score = (cell.strip() for cell in row)
        try:
            relevance = int(float(score))
        except ValueError as exc:
            raise DatasetError(f"{path}:{lineno}: score {score!r} is not a number") from exc
        qrels.setdefault(query_id, {})[doc_id] = relevance
    if not qrels:
        raise DatasetError(f"{path}: no judgments")
    return qrels


@dataclass(frozen=True)
class EvaluationSet:
    """The queries of one split that have judgments, with those judgments."""

    queries: dict[str, str]
    qrels: Qrels


def read_evaluation_set(folder: str | Path, split: str) -> EvaluationSet:
    qrels = read_qrels(folder, split)
    all_queries = read_queries(folder)
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise DatasetError(f"qrels/{split}.tsv judges {len(missing)} queries not in the queries file: {shown}")
    queries = {qid: all_queries[qid] for qid in qrels}
    return EvaluationSet(queries=queries, qrels=qrels)
