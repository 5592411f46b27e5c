"""Paired significance tests of systems against a baseline, per measure, with multiple-comparison correction.

Statistics come from scipy (paired t-test, permutation test) and statsmodels (Holm correction), not by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

PERMUTATIONS = 10_000
TIE_TOLERANCE = 1e-9  # per-query values closer than this count as a tie (float noise, not a difference)


@dataclass(frozen=True)
class PairedTest:
    mean_delta: float  # system minus baseline, averaged over queries
    t_p: float  # two-sided paired t-test
    permutation_p: float  # two-sided paired randomization test on the mean difference
    wins: int
    ties: int
    losses: int
    t_p_adjusted: float | None = None  # Holm-corrected over the systems compared on one dataset and measure
    permutation_p_adjusted: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(
    system: Sequence[float], baseline: Sequence[float], *, seed: int = 0, permutations: int = PERMUTATIONS
) -> PairedTest:
    """Tests per-query values of a system against the baseline's on the same queries, in the same order."""
    a, b = np.asarray(system, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"paired tests need two equally long series of at least 2 queries, got {a.shape} and {b.shape}")
    delta = a - b
    if np.all(np.abs(delta) < TIE_TOLERANCE):  # identical systems: no evidence of a difference (scipy would give nan)
        t_p = permutation_p = 1.0
    else:
        t_p = float(stats.ttest_rel(a, b).pvalue)
        permutation_p = float(
            stats.permutation_test(
                (a, b),
                lambda x, y, axis: np.mean(x - y, axis=axis),
                permutation_type="samples",  # swaps each query's pair of values: the paired randomization test
                vectorized=True,
                n_resamples=permutations,
                alternative="two-sided",
                rng=np.random.default_rng(seed),
            ).pvalue
        )
    return PairedTest(
        mean_delta=float(delta.mean()),
        t_p=t_p,
        permutation_p=permutation_p,
        wins=int(np.sum(delta > TIE_TOLERANCE)),
        ties=int(np.sum(np.abs(delta) <= TIE_TOLERANCE)),
        losses=int(np.sum(delta < -TIE_TOLERANCE)),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    if not p_values:
        return []
    return [float(p) for p in multipletests(list(p_values), method="holm")[1]]


def compare_to_baseline(
    per_query: Mapping[str, Mapping[str, Mapping[str, float]]], baseline: str, measure: str, *, seed: int = 0
) -> dict[str, PairedTest]:
    """``per_query[system][query][measure]`` → each other system's test against ``baseline``, Holm-corrected together."""
    queries = sorted(per_query[baseline])
    reference = [per_query[baseline][q][measure] for q in queries]
    tests = {
        name: paired_test([values[q][measure] for q in queries], reference, seed=seed)
        for name, values in per_query.items()
        if name != baseline
    }
    t_adjusted = holm([test.t_p for test in tests.values()])
    permutation_adjusted = holm([test.permutation_p for test in tests.values()])
    return {
        name: PairedTest(**{**test.to_dict(), "t_p_adjusted": t, "permutation_p_adjusted": p})
        for (name, test), t, p in zip(tests.items(), t_adjusted, permutation_adjusted, strict=True)
    }
