"""Where encoders run: ``cpu``, ``cuda``, or ``auto`` (CUDA when torch sees a GPU, else the CPU).

On CUDA, SPLADE encodes padded, length-sorted batches (a GPU is idle on one text at a time) at the index's precision
(``lsr index`` picks fp32 there: see ``index_precision``) and decodes every vocabulary column (the int8 screen runs
on the CPU only); impacts then differ from a CPU build of the same precision by at most a quantization step or so
(``bench/gpu_check.py`` measures it), since batching and the GPU's kernels change the last bits. The CPU keeps the
one-text-at-a-time exact path the tests pin down.
"""

from __future__ import annotations

import torch

from lsr.errors import EncoderError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise EncoderError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise EncoderError("--device cuda: torch sees no CUDA device (a CPU-only torch, or no GPU driver); use cpu or auto")
    return torch.device("cuda")
