"""Writes a comparison as a report folder: report.html (self-contained, plots inline), report.md, report.json,
and one TREC run per dataset and system. The folder is assembled beside the target and renamed into place."""

from __future__ import annotations

import html
import json
import platform
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lsr.errors import LsrError
from lsr.eval import plots
from lsr.eval.comparison import Comparison, DatasetResult, SystemResult
from lsr.runs import write_run
from lsr.eval.significance import PERMUTATIONS

SIGNIFICANCE_LEVEL = 0.05
PACKAGES = (
    "lsr", "torch", "transformers", "sentence-transformers", "numpy", "scipy", "ir-measures",
    "statsmodels", "faiss-cpu", "numba", "matplotlib",
)  # fmt: skip
DASH = "–"  # a figure that does not apply to the system (e.g. active terms of a run file)


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _number(value: float | None, digits: int = 4) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _count(value: float | None) -> str:
    return DASH if value is None else f"{value:,.1f}"


def _p(value: float | None) -> str:
    return DASH if value is None else ("<0.0001" if value < 1e-4 else f"{value:.4f}")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _significant(result: DatasetResult, system: str, measure: str) -> bool:
    test = result.significance.get(measure, {}).get(system)
    return test is not None and test.permutation_p_adjusted is not None and test.permutation_p_adjusted < SIGNIFICANCE_LEVEL


def _label(comparison: Comparison, system: str) -> str:
    return f"{system} (baseline)" if system == comparison.baseline else system


def summary_table(comparison: Comparison) -> Table:
    measure = comparison.measures[0]
    names = [d.name for d in comparison.datasets]
    rows = []
    for system in comparison.systems:
        values = [d.systems[system.name].scores.aggregate[measure] for d in comparison.datasets]
        cells = [
            _number(value) + ("†" if _significant(d, system.name, measure) else "")
            for value, d in zip(values, comparison.datasets, strict=True)
        ]
        rows.append([_label(comparison, system.name), *cells, _number(sum(values) / len(values))])
    return Table(f"{measure}, every dataset", ["system", *names, "mean"], rows)


def effectiveness_table(comparison: Comparison, dataset: DatasetResult) -> Table:
    first = comparison.measures[0]
    rows = []
    for name, result in dataset.systems.items():
        cells = [_number(result.scores.aggregate[m]) + ("†" if _significant(dataset, name, m) else "") for m in comparison.measures]
        test = dataset.significance[first].get(name)
        rows.append([_label(comparison, name), *cells, f"{test.wins}/{test.ties}/{test.losses}" if test else DASH])
    title = f"{dataset.name} ({dataset.split}, {dataset.judged_queries} judged queries)"
    return Table(title, ["system", *comparison.measures, f"W/T/L {first}"], rows)


def significance_table(comparison: Comparison) -> Table:
    rows = []
    for dataset in comparison.datasets:
        for measure in comparison.measures:
            for name, test in dataset.significance[measure].items():
                rows.append([
                    dataset.name, name, measure, f"{test.mean_delta:+.4f}", _p(test.t_p), _p(test.t_p_adjusted),
                    _p(test.permutation_p), _p(test.permutation_p_adjusted), f"{test.wins}/{test.ties}/{test.losses}",
                ])  # fmt: skip
    header = ["dataset", "system", "measure", "Δ mean", "t-test p", "t-test p (Holm)", "perm. p", "perm. p (Holm)", "W/T/L"]
    return Table(f"Significance against {comparison.baseline}", header, rows)


def _efficiency_row(dataset: str, result: SystemResult) -> list[str]:
    if result.efficiency is None:
        return [dataset, result.system, *[DASH] * 10]
    figures = result.efficiency.summary()
    size = figures["index_bytes"]
    return [
        dataset, result.system, _count(figures["query_terms"]), _count(figures["doc_terms"]), _count(figures["flops"]),
        _count(figures["postings_per_query"]), *(_number(figures[f"{w}_p{q}_ms"], 2) for w in ("encode", "retrieve") for q in (50, 99)),
        DASH if size is None else f"{size / 2**20:.1f}", _count(figures["docs_per_second"]),
    ]  # fmt: skip


def efficiency_table(comparison: Comparison) -> Table:
    rows = [_efficiency_row(d.name, r) for d in comparison.datasets for r in d.systems.values()]
    header = [
        "dataset", "system", "terms/query", "terms/doc", "FLOPS", "postings/query",
        "encode p50 ms", "encode p99 ms", "retrieve p50 ms", "retrieve p99 ms", "index MiB", "indexing docs/s",
    ]  # fmt: skip
    return Table("Efficiency", header, rows)


def reproducibility_table(comparison: Comparison) -> Table:
    rows = []
    for dataset in comparison.datasets:
        for name, result in dataset.systems.items():
            if "manifest" in result.provenance:
                manifest = result.provenance["manifest"]
                encoders = [manifest["encoder"], manifest.get("dense_encoder")]
                what = ", ".join(f"{e['name']} ({e['kind']}, {e['content_hash'][:12]})" for e in encoders if e)
                detail = f"{result.mode}; engine {manifest['engine']['name']}"
                if result.provenance.get("fusion"):
                    tuned = (manifest.get("fusion") or {}).get("tuned_on")
                    origin = f"tuned on {tuned['split']} for {tuned['measure']}" if tuned else "default, not tuned"
                    detail += f"; fusion {json.dumps(result.provenance['fusion'])} ({origin})"
            else:
                what, detail = "TREC run file", f"sha256 {result.provenance['sha256'][:16]}"
            rows.append([dataset.name, name, result.path, what, detail])
    return Table("Systems", ["dataset", "system", "path", "encoders (model hash)", "details"], rows)


def settings_lines(comparison: Comparison) -> list[str]:
    return [
        f"Split {comparison.split}; {comparison.k} hits per query; measures {', '.join(comparison.measures)} (ir-measures); "
        + ("hits whose doc id equals the query id are dropped (BEIR)." if comparison.remove_identical_ids else "identical ids kept."),
        f"† = better or worse than the baseline {comparison.baseline!r} with p < {SIGNIFICANCE_LEVEL} in a two-sided paired "
        f"randomization test ({PERMUTATIONS:,} permutations, seed {comparison.seed}), Holm-corrected over the systems "
        "compared on each dataset and measure. W/T/L: queries where the system is better / equal / worse than the baseline.",
        "Efficiency: terms = non-zero quantized weights; FLOPS = expected multiplications per query-document pair "
        "(SPLADE papers; a dense side adds its dimension); postings = posting entries an exhaustive traversal of the "
        "query's terms visits; index MiB = the whole index folder; latency = the first "
        f"{comparison.latency_queries} queries of each dataset, one query per call after one warm-up call, encoding and "
        "the rest (retrieval) timed separately; – = does not apply or was not recorded.",
    ]


def tables(comparison: Comparison) -> list[Table]:
    return [
        summary_table(comparison),
        *(effectiveness_table(comparison, d) for d in comparison.datasets),
        significance_table(comparison),
        efficiency_table(comparison),
        reproducibility_table(comparison),
    ]


def _markdown_table(table: Table) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([f"## {table.title}", "", row(table.header), "|---" * len(table.header) + "|", *map(row, table.rows), ""])


def markdown(comparison: Comparison, command: str, versions: dict[str, str]) -> str:
    parts = ["# Evaluation report", ""] + [f"{line}\n" for line in settings_lines(comparison)]
    parts += [_markdown_table(t) for t in tables(comparison)]
    parts += ["## Reproducibility", "", f"Command: `{command}`", "", "Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    parts += ["Index manifests, per-query values and latencies are in report.json; runs in runs/<dataset>/<system>.trec.", ""]
    return "\n".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1500px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
th { background: #f0f0f0; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
pre { background: #f7f7f7; padding: 0.8em; white-space: pre-wrap; font-size: 0.8em; }
p.note { color: #555; font-size: 0.9em; max-width: 70em; }
"""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    return f"<h2>{html.escape(table.title)}</h2>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"


def html_report(comparison: Comparison, command: str, versions: dict[str, str], manifests: dict) -> str:
    measure = comparison.measures[0]
    figures = [
        (f"{measure} against FLOPS", plots.effectiveness_vs_flops(comparison, measure)),
        ("Query latency (encoding + retrieval)", plots.latency_distribution(comparison)),
        (f"Per-query {measure} difference from {comparison.baseline}", plots.per_query_delta(comparison, measure)),
    ]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>lsr evaluation report</title>']
    parts += [f"<style>{STYLE}</style></head><body>", "<h1>Evaluation report</h1>"]
    parts += [f'<p class="note">{html.escape(line)}</p>' for line in settings_lines(comparison)]
    *results, systems = tables(comparison)
    parts += [_html_table(t) for t in results]
    for title, uri in figures:
        if uri:
            parts.append(f'<h2>{html.escape(title)}</h2>\n<img alt="{html.escape(title)}" src="{uri}">')
    parts.append(_html_table(systems))
    parts.append("<h2>Reproducibility</h2>")
    parts.append(f"<p>Command:</p><pre>{html.escape(command)}</pre>")
    parts.append(f"<p>Packages:</p><pre>{html.escape(json.dumps(versions, indent=2))}</pre>")
    parts.append(f"<details><summary>Index manifests</summary><pre>{html.escape(json.dumps(manifests, indent=2))}</pre></details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def report_data(comparison: Comparison, command: str, versions: dict[str, str]) -> dict:
    return {
        "command": command,
        "versions": versions,
        "settings": {
            "baseline": comparison.baseline, "measures": comparison.measures, "split": comparison.split, "k": comparison.k,
            "remove_identical_ids": comparison.remove_identical_ids, "seed": comparison.seed, "permutations": PERMUTATIONS,
            "latency_queries": comparison.latency_queries,
            "systems": [{"name": s.name, "path": s.template, "mode": s.mode} for s in comparison.systems],
        },  # fmt: skip
        "datasets": [
            {
                "name": d.name, "path": d.path, "split": d.split, "corpus_sha256": d.corpus_sha256, "judged_queries": d.judged_queries,
                "systems": {
                    name: {
                        "kind": r.kind, "path": r.path, "mode": r.mode, "measures": r.scores.aggregate, "per_query": r.scores.per_query,
                        "efficiency": None if r.efficiency is None else {**r.efficiency.summary(), "encode_ms": r.efficiency.encode_ms, "retrieve_ms": r.efficiency.retrieve_ms},
                        "provenance": r.provenance,
                    }
                    for name, r in d.systems.items()
                },
                "significance": {m: {name: t.to_dict() for name, t in tests.items()} for m, tests in d.significance.items()},
            }  # fmt: skip
            for d in comparison.datasets
        ],
    }


def write_comparison_report(comparison: Comparison, folder: Path, command: str, *, overwrite: bool = False) -> dict[str, Path]:
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise LsrError(f"{folder} already exists: pass --overwrite to replace it")
    if folder.exists() and not (folder / "report.json").is_file():
        raise LsrError(f"{folder} is not an lsr report folder; refusing to overwrite it")
    versions = package_versions()
    staging = folder.with_name(f"{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "runs").mkdir(parents=True)
    manifests = {}
    for dataset in comparison.datasets:
        (staging / "runs" / dataset.name).mkdir()
        for name, result in dataset.systems.items():
            write_run(result.run, staging / "runs" / dataset.name / f"{name}.trec", tag=name)
            if "manifest" in result.provenance:
                manifests[f"{dataset.name}/{name}"] = result.provenance["manifest"]
    (staging / "report.json").write_text(json.dumps(report_data(comparison, command, versions), indent=1) + "\n")
    (staging / "report.md").write_text(markdown(comparison, command, versions))
    (staging / "report.html").write_text(html_report(comparison, command, versions, manifests), encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return {"html": folder / "report.html", "markdown": folder / "report.md", "json": folder / "report.json", "runs": folder / "runs"}
