"""Report figures as self-contained SVG data URIs (matplotlib, Agg): readable offline, byte-identical for the same data."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import NullFormatter  # noqa: E402

from lsr.eval.comparison import Comparison  # noqa: E402

# A fixed hash salt and no date make matplotlib's SVG output depend only on the data (deterministic reports).
SVG_SETTINGS = {"svg.hashsalt": "lsr-report", "svg.fonttype": "path"}
PANEL_SIZE = (4.2, 3.4)


def _data_uri(figure) -> str:
    buffer = io.BytesIO()
    with plt.rc_context(SVG_SETTINGS):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _panels(count: int):
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    size = (PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows)
    figure, axes = plt.subplots(rows, columns, figsize=size, squeeze=False, layout="constrained")  # labels never overlap
    flat = axes.ravel()
    for unused in flat[count:]:
        unused.set_visible(False)
    return figure, flat[:count]


def effectiveness_vs_flops(comparison: Comparison, measure: str) -> str | None:
    """One panel per dataset: each index system's ``measure`` against its FLOPS (log scale)."""
    if not any(r.efficiency and r.efficiency.flops for d in comparison.datasets for r in d.systems.values()):
        return None
    figure, axes = _panels(len(comparison.datasets))
    for axis, dataset in zip(axes, comparison.datasets, strict=True):
        for name, result in dataset.systems.items():
            if result.efficiency and result.efficiency.flops:
                axis.scatter(result.efficiency.flops, result.scores.aggregate[measure], s=40)
                axis.annotate(
                    name, (result.efficiency.flops, result.scores.aggregate[measure]), textcoords="offset points", xytext=(5, 4)
                )
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log range overlap
        axis.set_xlabel("FLOPS (multiplications per query-doc pair)")
        axis.set_ylabel(measure)
        axis.set_title(dataset.name)
        axis.grid(alpha=0.3)
    return _data_uri(figure)


def latency_distribution(comparison: Comparison) -> str | None:
    """One panel per dataset: box plots of per-query latency (encoding + retrieval) for each index system."""
    if not any(r.efficiency and r.efficiency.retrieve_ms for d in comparison.datasets for r in d.systems.values()):
        return None
    figure, axes = _panels(len(comparison.datasets))
    for axis, dataset in zip(axes, comparison.datasets, strict=True):
        timed = {n: r.efficiency for n, r in dataset.systems.items() if r.efficiency and r.efficiency.retrieve_ms}
        totals = [
            [e + r for e, r in zip(eff.encode_ms or [0.0] * len(eff.retrieve_ms), eff.retrieve_ms, strict=True)]
            for eff in timed.values()
        ]
        axis.boxplot(totals, tick_labels=list(timed), whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
        axis.set_yscale("log")
        axis.set_ylabel("ms per query (whiskers: p1–p99)")
        axis.set_title(dataset.name)
        axis.grid(alpha=0.3, axis="y")
    return _data_uri(figure)


def per_query_delta(comparison: Comparison, measure: str) -> str | None:
    """One panel per dataset: each system's per-query ``measure`` minus the baseline's, sorted."""
    if len(comparison.systems) < 2:
        return None
    figure, axes = _panels(len(comparison.datasets))
    for axis, dataset in zip(axes, comparison.datasets, strict=True):
        reference = dataset.systems[comparison.baseline].scores.per_query
        for name, result in dataset.systems.items():
            if name == comparison.baseline:
                continue
            deltas = sorted(result.scores.per_query[q][measure] - reference[q][measure] for q in reference)
            axis.plot(range(len(deltas)), deltas, label=name, linewidth=1.5)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xlabel("queries, sorted by difference")
        axis.set_ylabel(f"Δ {measure} vs {comparison.baseline}")
        axis.set_title(dataset.name)
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    return _data_uri(figure)
