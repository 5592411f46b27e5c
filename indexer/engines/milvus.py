"""An index held by a Milvus server (or milvus-lite, its embedded form) through ``pymilvus.MilvusClient``.

One collection per index: ``row`` (the index row, primary key), ``doc_id``, ``title``, ``metadata`` (JSON), ``sparse``
(``SPARSE_FLOAT_VECTOR``, inverted index, inner product) and, when the index has dense vectors, ``dense``
(``FLOAT_VECTOR``, exact ``FLAT`` index, inner product). Impacts are stored as floats: integers are exact in float32
up to 2^24, so Milvus's inner products equal ours and rankings match the memory engine's (ties aside). Nothing is
dropped at build or search time (``drop_ratio_*`` 0), so search is exact.

The manifest records the URI and the collection; a token is read from ``LSR_MILVUS_TOKEN`` at connect time and
never written anywhere. A local file path as URI means milvus-lite (one process at a time per file).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from lsr.errors import IndexFolderError
from lsr.indexer.engines.base import BuildExtras, Capabilities, Ranking

if TYPE_CHECKING:
    from lsr.datasets import Document

TOKEN_VARIABLE = "LSR_MILVUS_TOKEN"
SPARSE_FIELD, DENSE_FIELD = "sparse", "dense"
MAX_LIMIT = 16_384  # Milvus's largest top-k and query batch
INSERT_BATCH = 1_000  # rows per insert call: well under the server's 64 MiB message limit at ~100 terms a row
MAX_TITLE_CHARS = 16_000  # a VARCHAR holds at most 65,535 bytes; 4 bytes a character at worst
MAX_ID_BYTES = 1_024
SPARSE_SEARCH = {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}
DENSE_SEARCH = {"metric_type": "IP", "params": {}}


def _pymilvus():
    # milvus-lite 2.5 imports pkg_resources, which warns on every start; nothing for our users to act on.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    try:
        import pymilvus
    except ImportError as exc:
        raise IndexFolderError(f"the milvus engine needs pymilvus: pip install 'lsr[milvus]' ({exc})") from exc
    return pymilvus


def milvus_settings(uri: str, collection: str | None, index_folder: Path) -> dict[str, str]:
    """Engine settings for the manifest: a local milvus-lite file becomes an absolute path (the index can then be
    opened from any directory), and the collection defaults to one named after the index folder."""
    if not uri:
        raise IndexFolderError("the milvus engine needs --uri (a server address, or a local file such as ./milvus.db)")
    if "://" not in uri:
        uri = str(Path(uri).resolve())
    name = collection or "lsr_" + re.sub(r"\W", "_", index_folder.resolve().name)
    if not re.fullmatch(r"[A-Za-z_]\w{0,254}", name, flags=re.ASCII):
        raise IndexFolderError(f"collection name {name!r}: letters, digits and underscores only, not starting with a digit")
    return {"uri": uri, "collection": name}


def _connect(uri: str):
    pymilvus = _pymilvus()
    try:
        return pymilvus.MilvusClient(uri=uri, token=os.environ.get(TOKEN_VARIABLE, ""))
    except pymilvus.MilvusException as exc:
        raise IndexFolderError(f"cannot connect to Milvus at {uri}: {exc.message}") from exc


def _sparse_rows(vectors: sp.csr_matrix) -> sp.csr_matrix:
    return vectors.astype(np.float32)


def _entities(rows: np.ndarray, docs: Sequence[Document], sparse: sp.csr_matrix, dense: np.ndarray | None) -> list[dict]:
    entities = []
    for position, (row, doc) in enumerate(zip(rows, docs, strict=True)):
        if len(doc.id.encode()) > MAX_ID_BYTES:
            raise IndexFolderError(f"document id {doc.id[:40]!r}… is longer than Milvus's {MAX_ID_BYTES}-byte limit here")
        entity = {
            "row": int(row),
            "doc_id": doc.id,
            "title": doc.title[:MAX_TITLE_CHARS],
            "metadata": doc.metadata or {},
            SPARSE_FIELD: sparse[position],
        }
        if dense is not None:
            entity[DENSE_FIELD] = dense[position]
        entities.append(entity)
    return entities


def _rankings(results: list, k: int) -> list[Ranking]:
    """Milvus hits → our Rankings, ties ordered by lower row as in every engine (Milvus's order among ties is arbitrary)."""
    rankings = []
    for hits in results:
        rows = np.fromiter((hit["id"] for hit in hits), np.int64, len(hits))
        scores = np.fromiter((hit["distance"] for hit in hits), np.float64, len(hits))
        order = np.lexsort((rows, -scores))[:k]
        rankings.append(Ranking(doc_indices=rows[order], scores=scores[order]))
    return rankings


@dataclass(frozen=True)
class MilvusSettings:
    uri: str  # a server address, or the absolute path of a milvus-lite file
    collection: str


class MilvusEngine:
    name: ClassVar[str] = "milvus"
    capabilities: ClassVar[Capabilities] = Capabilities(live_updates=True, stores_updates=True, serves_dense=True)
    Settings: ClassVar[type] = MilvusSettings

    def __init__(self, client: Any, collection: str, dense_dim: int | None) -> None:
        self._client = client
        self.collection = collection
        self.dense_dim = dense_dim

    @classmethod
    def build(cls, vectors: sp.csr_matrix, folder: Path, settings: MilvusSettings, extras: BuildExtras = BuildExtras()) -> None:
        """(Re)creates the collection: an index folder owns its collection, so rebuilding the index rebuilds it."""
        uri, collection, docs, dense = settings.uri, settings.collection, extras.docs, extras.dense
        pymilvus = _pymilvus()
        client = _connect(uri)
        DataType = pymilvus.DataType
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
        schema.add_field("title", DataType.VARCHAR, max_length=65_535)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        index_params = client.prepare_index_params()
        # drop_ratio_build 0: no small impact is left out of the postings, so search stays exact.
        index_params.add_index(
            SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="IP", params={"drop_ratio_build": 0.0}
        )
        if dense is not None:
            schema.add_field(DENSE_FIELD, DataType.FLOAT_VECTOR, dim=int(dense.shape[1]))
            index_params.add_index(DENSE_FIELD, index_type="FLAT", metric_type="IP")
        try:
            if client.has_collection(collection):
                client.drop_collection(collection)
            client.create_collection(collection, schema=schema, index_params=index_params, consistency_level="Strong")
            sparse = _sparse_rows(vectors)
            for start in range(0, vectors.shape[0], INSERT_BATCH):
                end = min(start + INSERT_BATCH, vectors.shape[0])
                part = dense[start:end] if dense is not None else None
                client.insert(collection, _entities(np.arange(start, end), docs[start:end], sparse[start:end], part))
            client.flush(collection)
        except pymilvus.MilvusException as exc:
            raise IndexFolderError(f"Milvus at {uri} refused collection {collection}: {exc.message}") from exc
        folder.mkdir(parents=True, exist_ok=True)  # the index's own files stay canonical; the engine keeps none

    @classmethod
    def open(cls, folder: Path, doc_count: int, settings: MilvusSettings) -> MilvusEngine:
        uri, collection = settings.uri, settings.collection
        pymilvus = _pymilvus()
        client = _connect(uri)
        try:
            if not client.has_collection(collection):
                raise IndexFolderError(f"Milvus at {uri} has no collection {collection}: rebuild it with `lsr reindex`")
            fields = client.describe_collection(collection)["fields"]
            client.load_collection(collection)
        except pymilvus.MilvusException as exc:
            raise IndexFolderError(f"cannot open collection {collection} at {uri}: {exc.message}") from exc
        dense = [field for field in fields if field["name"] == DENSE_FIELD]
        return cls(client, collection, int(dense[0]["params"]["dim"]) if dense else None)

    def search(self, queries: sp.csr_matrix, k: int) -> list[Ranking]:
        """Integer scores, as the memory engine gives; a query without terms matches nothing."""
        rankings = [Ranking(np.empty(0, np.int64), np.empty(0, np.int64))] * queries.shape[0]
        asked = np.flatnonzero(np.diff(queries.indptr))
        for start in range(0, asked.size, MAX_LIMIT):
            rows = asked[start : start + MAX_LIMIT]
            found = self._search(SPARSE_FIELD, _sparse_rows(queries[rows]), SPARSE_SEARCH, k)
            for row, ranking in zip(rows, found, strict=True):
                rankings[row] = Ranking(ranking.doc_indices, np.rint(ranking.scores).astype(np.int64))
        return rankings

    def search_dense(self, queries: np.ndarray, k: int) -> list[Ranking]:
        found = self._search(DENSE_FIELD, np.ascontiguousarray(queries, dtype=np.float32), DENSE_SEARCH, k)
        return [Ranking(ranking.doc_indices, ranking.scores.astype(np.float32)) for ranking in found]

    def dense_vectors(self, rows: np.ndarray) -> np.ndarray:
        ids = [int(row) for row in rows]
        try:
            found = self._client.get(self.collection, ids=ids, output_fields=[DENSE_FIELD])
        except _pymilvus().MilvusException as exc:
            raise IndexFolderError(f"Milvus refused to read the dense vectors of {self.collection}: {exc.message}") from exc
        by_row = {int(entity["row"]): entity[DENSE_FIELD] for entity in found}
        missing = [row for row in ids if row not in by_row]
        if missing:
            raise IndexFolderError(f"collection {self.collection} has no rows {missing[:5]}: rebuild it with `lsr reindex`")
        return np.array([by_row[row] for row in ids], dtype=np.float32).reshape(len(ids), self.dense_dim)

    def _search(self, field: str, data: Any, params: dict, k: int) -> list[Ranking]:
        results = self._client.search(self.collection, data=data, anns_field=field, limit=min(k, MAX_LIMIT), search_params=params)
        return _rankings(results, k)

    def dense_side(self) -> MilvusDenseSide:
        if self.dense_dim is None:
            raise IndexFolderError(f"collection {self.collection} has no dense vectors: rebuild it with `lsr reindex`")
        return MilvusDenseSide(self)

    def write(self, upserts: Sequence[tuple[int, Document, sp.csr_matrix, np.ndarray | None]], deletes: Sequence[int]) -> None:
        """Live updates: ``upserts`` are (row, document, 1 × dim impacts, dense vector or None); ``deletes`` are rows."""
        pymilvus = _pymilvus()
        try:
            if upserts:
                rows = np.array([row for row, *_ in upserts])
                sparse = _sparse_rows(sp.vstack([vector for _, _, vector, _ in upserts], format="csr"))
                dense = np.stack([vector for *_, vector in upserts]) if self.dense_dim else None
                self._client.upsert(self.collection, _entities(rows, [doc for _, doc, _, _ in upserts], sparse, dense))
            if deletes:
                self._client.delete(self.collection, ids=[int(row) for row in deletes])
        except pymilvus.MilvusException as exc:
            raise IndexFolderError(f"Milvus refused the update of collection {self.collection}: {exc.message}") from exc


class MilvusDenseSide:
    """The dense half of a Milvus index, shaped like ``DenseIndex`` for the searcher."""

    def __init__(self, engine: MilvusEngine) -> None:
        self._engine = engine
        self.dim = engine.dense_dim

    def search(self, queries: np.ndarray, k: int) -> list[Ranking]:
        return self._engine.search_dense(queries, k)

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        return self._engine.dense_vectors(rows)
