"""A transformer run on one unpadded text, traced by TorchScript where that computes what the eager model does."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from lsr.retrieval.encoders.registry import transformers_quiet


def traced_body(eager: nn.Module) -> nn.Module:
    """``eager`` ((1, tokens) ids → a tensor) traced and frozen by TorchScript, where that gives the same numbers: a
    lone query's transformer took 0.83–0.92 ms traced against 1.56–2.11 ms eager (200 scifact test queries, one
    thread; the eager time is mostly Python dispatch of ~100 small ops), bit-identical on every one. A trace records
    one run's control flow, so it is checked against the eager model on two texts of different lengths, and the
    eager model is kept if they differ or if tracing fails (models whose code does not trace). Put in eval mode."""
    eager.eval()  # freezing refuses a module in training mode
    probes = [torch.tensor([[101, 7592, 102]]), torch.tensor([[101, *range(2000, 2017), 102]])]
    try:
        # transformers_quiet: freezing reads every attribute, one of which logs a config remark
        with torch.inference_mode(), warnings.catch_warnings(), transformers_quiet(keep_warnings=False):
            warnings.simplefilter("ignore")  # the tracer's warnings about Python values it records as constants
            traced = torch.jit.freeze(torch.jit.trace(eager, probes[0], check_trace=False))
            if all(torch.equal(traced(probe), eager(probe)) for probe in reversed(probes)):
                return traced
    except Exception:  # noqa: BLE001 — any failure to trace only means the eager model runs
        pass
    return eager
