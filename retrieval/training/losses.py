"""Loss parts. Written on torch directly: sentence-transformers' SpladeLoss/FlopsLoss are bound to its
SparseEncoder model class, which has no UHD head nor a fixed bag-of-words query side; the formulas are a
few lines each and follow theirs (FLOPS as in Paria et al. 2020, used by SPLADE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flops(weights: torch.Tensor) -> torch.Tensor:
    """Σ_j (mean_i |w_ij|)²: a smooth stand-in for the expected number of multiplications per match."""
    return weights.abs().mean(dim=0).pow(2).sum()


def shortfall(weights: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Σ_j max(0, start_ij − w_ij)², averaged over rows: how far the weights fell below where they started."""
    return torch.relu(start - weights).pow(2).sum(dim=-1).mean()


def l1(weights: torch.Tensor) -> torch.Tensor:
    return weights.abs().sum(dim=-1).mean()


def warmed_up(weight: float, step: int, warmup_steps: int) -> float:
    """λ_t = λ · min(1, t/T)²: the regularizer grows quadratically so early steps learn to rank first."""
    if warmup_steps <= 0:
        return weight
    return weight * min(1.0, step / warmup_steps) ** 2


def contrastive(scores: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every document of the batch; query i's positive is column i.

    ``excluded`` masks other queries' documents that are also judged relevant to query i (not negatives).
    """
    target = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores.masked_fill(excluded, float("-inf")), target)


def margin_mse(student: torch.Tensor, teacher: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(queries, 2 × queries) scores, query i's positive in column i and its negative in column queries + i: over the
    queries ``rows``, match the teacher's positive − negative margin (Hofstätter et al. 2020)."""
    negatives = rows + student.shape[0]
    return F.mse_loss(student[rows, rows] - student[rows, negatives], teacher[rows, rows] - teacher[rows, negatives])


def kl_divergence(student: torch.Tensor, teacher: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) between the softmaxes over every document of the batch (listwise), for the queries ``rows``."""
    return F.kl_div(
        F.log_softmax(student[rows], dim=-1), F.log_softmax(teacher[rows], dim=-1), log_target=True, reduction="batchmean"
    )


DISTILLATION = {"marginmse": margin_mse, "kl": kl_divergence}
