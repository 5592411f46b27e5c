"""Sparse encoders' output, built block by block: weights of some texts in some columns → one CSR matrix."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch


class ColumnBlock(NamedTuple):
    """Weights of some texts in some columns: ``weights`` (texts, len(columns)), ``columns`` sorted vocabulary
    ids (None: every column, in order)."""

    columns: torch.Tensor | None
    weights: torch.Tensor


def stack_sparse(blocks: Iterable[ColumnBlock], dim: int) -> sp.csr_matrix:
    """Weight blocks → one CSR matrix, built from their non-zeros directly (scipy's dense → CSR conversion and
    vstack cost 0.1–0.5 ms a call, a quarter of a lone query's encoding); a block is dropped once read, so from a
    generator at most two blocks are alive at a time."""
    counts, columns, values = [np.zeros(1, dtype=np.int64)], [], []
    for block in blocks:
        rows, block_columns = block.weights.nonzero(as_tuple=True)  # row-major, as CSR stores them
        counts.append(torch.bincount(rows, minlength=block.weights.shape[0]).cpu().numpy())
        values.append(block.weights[rows, block_columns].cpu().numpy())
        columns.append((block_columns if block.columns is None else block.columns[block_columns]).cpu().numpy())
    if not columns:
        return sp.csr_matrix((0, dim), dtype=np.float32)
    indptr = np.cumsum(np.concatenate(counts))
    return sp.csr_matrix((np.concatenate(values), np.concatenate(columns), indptr), shape=(len(indptr) - 1, dim))
