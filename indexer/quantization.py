"""Float term weights → integer impacts, the form inverted indexes (ours and Lucene's) store.

Queries and documents are quantized with the same scale, so every score is an exact integer dot
product: engines agree bit for bit, and ties are broken the same way everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from lsr import defaults
from lsr.errors import IndexFolderError

IMPACT_DTYPE = np.uint16
MAX_IMPACT = int(np.iinfo(IMPACT_DTYPE).max)


@dataclass(frozen=True)
class Quantization:
    # 100 is the scale Pyserini and Anserini use for SPLADE impacts: rounding error ≤ 0.005 per weight.
    scale: float = defaults.QUANTIZATION_SCALE

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise IndexFolderError(f"quantization scale must be positive, got {self.scale}")

    def quantize(self, vectors: sp.csr_matrix) -> sp.csr_matrix:
        """int32 impacts in [0, 65535]; weights that round to 0 are dropped."""
        impacts = vectors.astype(np.float64, copy=True)
        impacts.data = np.clip(np.rint(impacts.data * self.scale), 0, MAX_IMPACT)
        impacts = impacts.astype(np.int32)
        impacts.eliminate_zeros()
        impacts.sort_indices()
        return impacts

    def to_score(self, quantized_scores: np.ndarray) -> np.ndarray:
        """Back to the float scale of the encoder's dot product."""
        return quantized_scores / (self.scale * self.scale)

    def to_dict(self) -> dict:
        return {**asdict(self), "impact_dtype": np.dtype(IMPACT_DTYPE).name}

    @classmethod
    def from_dict(cls, data: dict) -> Quantization:
        return cls(scale=float(data["scale"]))
