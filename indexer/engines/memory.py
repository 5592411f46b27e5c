"""The default engine: an exact, in-process inverted index, memory-mapped from .npy files.

Postings are grouped by document range (2^16 rows), then by term, with each row stored as its 16-bit offset in the
range. A term that is in more than a quarter of a range's documents is stored there densely instead, one byte
per document, when its impacts fit a byte (SPLADE's frequent expansion terms: most of a query's postings). A query
is scored one range at a time, term at a time, into an accumulator that covers one range (256 KiB of int32, which
stays in a core's L2 cache) rather than one array over the whole corpus: scattered additions hit cache instead of
memory, dense terms are added with vector instructions, and a query reads well under half the bytes of plain
(int32 row, uint16 impact) postings — scoring is bound by memory bandwidth. Each range also stores every term's largest
impact there, which bounds the best score the range can hold: ranges are scored best bound first and the search
stops once no range left can reach the k-th best score found — results stay exact. On 1M documents this scores a
SPLADE query several times faster than one array of int64 scores did (bench/engines.py).

Dynamic pruning inside a range (MaxScore, block-max WAND) was measured and left out: with SPLADE's long
expanded queries and heavy-tailed impacts, the bounds of the terms a document lacks almost never push it below
the k-th score (on 1M synthetic documents, 50–100% of the candidates survived with the final threshold known in
advance), so skipping postings costs more in look-ups than reading them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import numba
import numpy as np
import scipy.sparse as sp
from numpy.lib.format import open_memmap

from lsr.errors import IndexFolderError
from lsr.indexer.engines.base import BuildExtras, Capabilities, NoSettings, Ranking, best_of, query_rows, search_rows
from lsr.indexer.quantization import IMPACT_DTYPE

RANGE_BITS = 16
RANGE_SIZE = 1 << RANGE_BITS
_FILES = ("range_indptr", "range_max", "postings_offsets", "postings_impacts", "dense_starts", "dense_impacts")
_SPARSE_POSTING_BYTES = 4  # uint16 offset + uint16 impact; a dense term costs one byte per document of the range
_DENSE_MAX_IMPACT = np.iinfo(np.uint8).max
_INT32_SCORES = np.iinfo(np.int32).max


@numba.njit(cache=True, nogil=True)
def _range_bounds(range_max, terms, weights) -> np.ndarray:
    """The highest score any document of each range can reach."""
    bounds = np.zeros(range_max.shape[0], dtype=np.int64)
    for r in range(range_max.shape[0]):
        for i in range(terms.size):
            bounds[r] += np.int64(weights[i]) * range_max[r, terms[i]]
    return bounds


@numba.njit(cache=True, nogil=True)
def _search(arrays, doc_count, bounds, terms, weights, k, accumulator, found_rows, found_scores):
    """``weights`` have the accumulator's dtype; it is all zeros on entry and is left so."""
    range_indptr, offsets, impacts, dense_starts, dense_impacts = arrays
    count = 0
    threshold = np.int64(0)  # the k-th best score once k documents are found
    for r in np.argsort(-bounds, kind="mergesort"):
        if bounds[r] == 0 or (count >= k and bounds[r] < threshold):
            break
        first = np.int64(r) << RANGE_BITS
        span = min(RANGE_SIZE, doc_count - first)
        for i in range(terms.size):
            weight = weights[i]
            start = dense_starts[r, terms[i]]
            if start >= 0:
                for offset in range(span):
                    accumulator[offset] += weight * dense_impacts[start + offset]
            else:
                for p in range(range_indptr[r, terms[i]], range_indptr[r, terms[i] + 1]):
                    accumulator[offsets[p]] += weight * impacts[p]
        for offset in range(span):
            score = accumulator[offset]
            if score != 0:
                accumulator[offset] = 0
                if score >= threshold:
                    found_rows[count] = first + offset
                    found_scores[count] = score
                    count += 1
        if count >= k:
            rows, scores = best_of(found_rows[:count], found_scores[:count], k)
            count = k
            found_rows[:k] = rows
            found_scores[:k] = scores
            threshold = scores[k - 1]
    return best_of(found_rows[:count], found_scores[:count], k)


def _range_postings(vectors: sp.csr_matrix, first: int, end: int) -> sp.csc_matrix:
    """The range's postings by term, rows as offsets in the range."""
    part = vectors[first:end].tocsc()
    part.sum_duplicates()
    return part


def _term_max(part: sp.csc_matrix) -> np.ndarray:
    """Each term's largest impact in the range (0 where it is absent)."""
    term_max = np.zeros(part.shape[1], dtype=IMPACT_DTYPE)
    present = np.flatnonzero(np.diff(part.indptr))
    if present.size:
        term_max[present] = np.maximum.reduceat(part.data, part.indptr[present])
    return term_max


def _range_layout(part: sp.csc_matrix, span: int, term_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The range's dense terms — cheaper to read as a byte per document than as postings, and whose impacts fit
    a byte — and a mask of the postings that stay sparse."""
    counts = np.diff(part.indptr)
    dense = np.flatnonzero((counts * _SPARSE_POSTING_BYTES > span) & (term_max <= _DENSE_MAX_IMPACT))
    is_dense = np.zeros(part.shape[1], dtype=bool)
    is_dense[dense] = True
    return dense, np.repeat(~is_dense, counts)


def _check_arrays(folder: Path, arrays: list[np.ndarray], doc_count: int) -> None:
    """What the scoring loop trusts without bounds checks, checked once at open: dtypes, shapes, and that every
    posting range and dense block lies inside its array (a damaged file must be an error, never a wild read or
    write). Costs a pass over the per-range tables and over the last, partial range's postings, not the index's."""
    range_indptr, range_max, offsets, impacts, dense_starts, dense_impacts = arrays
    ranges = max(1, -(-doc_count // RANGE_SIZE))

    def fail(problem: str) -> None:
        raise IndexFolderError(f"{folder} is damaged: {problem}; rebuild it (lsr reindex, or lsr index --overwrite)")

    expected = {
        "range_indptr": (range_indptr, np.int64, 2),
        "range_max": (range_max, IMPACT_DTYPE, 2),
        "postings_offsets": (offsets, np.uint16, 1),
        "postings_impacts": (impacts, IMPACT_DTYPE, 1),
        "dense_starts": (dense_starts, np.int64, 2),
        "dense_impacts": (dense_impacts, np.uint8, 1),
    }
    for name, (array, dtype, ndim) in expected.items():
        if array.dtype != dtype or array.ndim != ndim:
            fail(f"{name}.npy holds {array.ndim}-d {array.dtype}, not {ndim}-d {np.dtype(dtype)}")
    dim = range_max.shape[1]
    if range_max.shape[0] != ranges or dense_starts.shape != (ranges, dim) or range_indptr.shape != (ranges, dim + 1):
        fail(
            f"its tables have shapes {range_indptr.shape}, {range_max.shape}, {dense_starts.shape} for {ranges} "
            f"range(s) of {doc_count} documents"
        )
    if offsets.size != impacts.size:
        fail(f"{offsets.size} posting offsets but {impacts.size} impacts")
    if range_indptr.size and (
        range_indptr[:, 0].min() < 0 or range_indptr[:, -1].max() > offsets.size or (np.diff(range_indptr, axis=1) < 0).any()
    ):
        fail("range_indptr.npy points outside the postings or is not ascending")
    spans = np.minimum(RANGE_SIZE, doc_count - np.arange(ranges, dtype=np.int64) * RANGE_SIZE)
    if dense_starts.size and (
        dense_starts.min() < -1 or (dense_starts.max(axis=1) + spans > dense_impacts.size)[dense_starts.max(axis=1) >= 0].any()
    ):
        fail("dense_starts.npy points outside dense_impacts.npy")
    last = slice(int(range_indptr[-1, 0]), int(range_indptr[-1, -1]))
    if spans[-1] < RANGE_SIZE and offsets[last].size and int(offsets[last].max()) >= spans[-1]:
        fail(f"postings_offsets.npy has rows beyond the last range's {spans[-1]} documents")


class MemoryEngine:
    name: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = Capabilities(live_updates=True)
    Settings: ClassVar[type] = NoSettings

    def __init__(self, arrays: list[np.ndarray], doc_count: int) -> None:
        range_indptr, self._range_max, offsets, impacts, dense_starts, dense_impacts = arrays
        self._arrays = (range_indptr, offsets, impacts, dense_starts, dense_impacts)
        self.doc_count = doc_count
        self.dim = self._range_max.shape[1]
        self._buffers = threading.local()

    @classmethod
    def build(
        cls, vectors: sp.csr_matrix, folder: Path, settings: NoSettings = NoSettings(), extras: BuildExtras = BuildExtras()
    ) -> None:
        vectors = sp.csr_matrix(vectors)
        dim = vectors.shape[1]
        ranges = [(first, min(first + RANGE_SIZE, vectors.shape[0])) for first in range(0, max(1, vectors.shape[0]), RANGE_SIZE)]
        range_max = np.zeros((len(ranges), dim), dtype=IMPACT_DTYPE)
        # Two passes (each range's postings are rebuilt in the second) so that no copy of the whole index is held.
        layouts = []
        for r, (first, end) in enumerate(ranges):
            part = _range_postings(vectors, first, end)
            range_max[r] = _term_max(part)
            layouts.append(_range_layout(part, end - first, range_max[r]))
        folder.mkdir(parents=True, exist_ok=True)
        sparse_count = sum(int(sparse.sum()) for _, sparse in layouts)
        offsets = open_memmap(folder / "postings_offsets.npy", mode="w+", dtype=np.uint16, shape=(sparse_count,))
        impacts = open_memmap(folder / "postings_impacts.npy", mode="w+", dtype=IMPACT_DTYPE, shape=(sparse_count,))
        dense_bytes = sum((end - first) * dense.size for (first, end), (dense, _) in zip(ranges, layouts, strict=True))
        dense_impacts = open_memmap(folder / "dense_impacts.npy", mode="w+", dtype=np.uint8, shape=(dense_bytes,))
        range_indptr = np.zeros((len(ranges), dim + 1), dtype=np.int64)
        dense_starts = np.full((len(ranges), dim), -1, dtype=np.int64)
        position = dense_position = 0
        for r, ((first, end), (dense, sparse)) in enumerate(zip(ranges, layouts, strict=True)):
            part = _range_postings(vectors, first, end)
            counts = np.diff(part.indptr)
            for term in dense:
                postings = slice(part.indptr[term], part.indptr[term + 1])
                dense_impacts[dense_position + part.indices[postings]] = part.data[postings]
                dense_starts[r, term] = dense_position
                dense_position += end - first
            written = int(sparse.sum())
            offsets[position : position + written] = part.indices[sparse]
            impacts[position : position + written] = part.data[sparse]
            counts[dense] = 0
            range_indptr[r, 1:] = np.cumsum(counts)
            range_indptr[r] += position
            position += written
        for array in (offsets, impacts, dense_impacts):
            array.flush()
        del offsets, impacts, dense_impacts
        np.save(folder / "range_indptr.npy", range_indptr)
        np.save(folder / "range_max.npy", range_max)
        np.save(folder / "dense_starts.npy", dense_starts)

    @classmethod
    def open(cls, folder: Path, doc_count: int, settings: NoSettings = NoSettings()) -> MemoryEngine:
        missing = [name for name in _FILES if not (folder / f"{name}.npy").is_file()]
        if missing:
            raise IndexFolderError(
                f"{folder} lacks {', '.join(missing)} of the memory engine; an index written by an older lsr can be "
                "rebuilt without re-encoding: lsr reindex INDEX --out NEW_INDEX --engine memory"
            )
        # np.asarray: a plain ndarray view of each memory map (no copy), the type numba compiles for.
        try:
            arrays = [np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r")) for name in _FILES]
        except (OSError, ValueError, EOFError) as exc:  # truncated or not .npy at all
            raise IndexFolderError(f"{folder}: the memory engine's files are unreadable ({exc})") from exc
        _check_arrays(folder, arrays, doc_count)
        return cls(arrays, doc_count)

    def search(self, queries: sp.csr_matrix, k: int) -> list[Ranking]:
        """Batches are spread over the machine's cores: scoring and top-k run without the GIL."""
        return search_rows(queries, lambda terms, weights: self._search_one(terms, weights, k))

    def search_serially(self, queries: sp.csr_matrix, k: int) -> list[Ranking]:
        """On the calling thread: for callers that spread work over threads themselves (the sharded engine)."""
        return [self._search_one(terms, weights, k) for terms, weights in query_rows(queries)]

    def _search_one(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Ranking:
        if terms.size == 0:
            return Ranking(doc_indices=np.empty(0, dtype=np.int64), scores=np.empty(0, dtype=np.int64))
        bounds = _range_bounds(self._range_max, terms, weights)
        # int32 sums halve the accumulator's cache footprint; the bounds say when a score could overflow them.
        dtype = np.int32 if bounds.max() <= _INT32_SCORES else np.int64
        accumulator, found_rows, found_scores = self._thread_buffers(dtype, k)
        rows, scores = _search(
            self._arrays, self.doc_count, bounds, terms, weights.astype(dtype), k, accumulator, found_rows, found_scores
        )
        return Ranking(doc_indices=rows.astype(np.int64), scores=scores.astype(np.int64))

    def _thread_buffers(self, dtype: type, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per thread, allocated once: the range accumulator (kept all zeros between queries) and the candidates."""
        buffers = self._buffers
        accumulators = buffers.__dict__.setdefault("accumulators", {})
        if dtype not in accumulators:
            accumulators[dtype] = np.zeros(RANGE_SIZE, dtype=dtype)
        capacity = k + RANGE_SIZE  # the k kept so far plus every document of one range
        if getattr(buffers, "capacity", 0) < capacity:
            buffers.capacity = capacity
            buffers.rows = np.empty(capacity, dtype=np.int64)
            buffers.scores = np.empty(capacity, dtype=np.int64)
        return accumulators[dtype], buffers.rows, buffers.scores
