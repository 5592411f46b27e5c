"""Multi-system, multi-dataset reports: statistics against scipy/by hand, metrics against ir-measures, the CLI end to end."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import ir_measures
import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats
from typer.testing import CliRunner

from lsr.cli import app
from lsr.errors import LsrError
from lsr.eval.efficiency import sparse_figures
from lsr.eval.significance import compare_to_baseline, holm, paired_test
from lsr.eval.systems import SystemSpec, parse_systems
from lsr.runs import read_run

REPO = Path(__file__).resolve().parents[1]
SYSTEM = [0.61, 0.20, 0.90, 0.45, 0.33, 0.72, 0.10, 0.55]
BASELINE = [0.50, 0.25, 0.70, 0.45, 0.30, 0.60, 0.15, 0.40]


def test_paired_t_test_is_scipys_and_randomization_test_is_exact_on_a_small_example():
    test = paired_test(SYSTEM, BASELINE, permutations=10_000)
    assert test.t_p == pytest.approx(stats.ttest_rel(SYSTEM, BASELINE).pvalue)
    # 2^8 sign assignments < 10,000 resamples, so the randomization test must be the exact one, enumerated here.
    delta = np.subtract(SYSTEM, BASELINE)
    observed = abs(delta.mean())
    means = [abs(np.mean(delta * signs)) for signs in itertools.product((1, -1), repeat=len(delta))]
    assert test.permutation_p == pytest.approx(np.mean([m >= observed - 1e-12 for m in means]))
    assert (test.wins, test.ties, test.losses) == (5, 1, 2)
    assert test.mean_delta == pytest.approx(delta.mean())


def test_identical_systems_are_not_different():
    test = paired_test(BASELINE, BASELINE)
    assert (test.t_p, test.permutation_p, test.ties) == (1.0, 1.0, len(BASELINE))


def test_holm_correction():
    # sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → monotone: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_comparison_corrects_over_the_systems_against_the_baseline():
    per_query = {
        name: {str(q): {"m": value} for q, value in enumerate(values)}
        for name, values in {"base": BASELINE, "a": SYSTEM, "b": list(reversed(SYSTEM))}.items()
    }
    tests = compare_to_baseline(per_query, "base", "m")
    assert set(tests) == {"a", "b"}
    assert [tests["a"].t_p_adjusted, tests["b"].t_p_adjusted] == pytest.approx(holm([tests["a"].t_p, tests["b"].t_p]))


def test_flops_is_the_mean_number_of_shared_terms_over_all_query_document_pairs():
    rng = np.random.default_rng(3)
    docs = sp.random(40, 30, density=0.2, format="csr", random_state=rng, data_rvs=lambda n: rng.integers(1, 9, n))
    queries = sp.random(7, 30, density=0.15, format="csr", random_state=rng, data_rvs=lambda n: rng.integers(1, 9, n))
    figures = sparse_figures(docs, queries)
    doc_terms = [set(docs[row].indices) for row in range(docs.shape[0])]
    query_terms = [set(queries[row].indices) for row in range(queries.shape[0])]
    assert figures["flops"] == pytest.approx(np.mean([len(q & d) for q in query_terms for d in doc_terms]))
    assert figures["postings_per_query"] == pytest.approx(np.mean([sum(t in d for d in doc_terms for t in q) for q in query_terms]))
    assert figures["query_terms"] == pytest.approx(np.mean([len(q) for q in query_terms]))
    assert figures["doc_terms"] == pytest.approx(np.mean([len(d) for d in doc_terms]))


@pytest.mark.parametrize(
    ("texts", "baseline", "message"),
    [
        (["x=indexes/{dataset}:hybird"], None, "unknown mode 'hybird'"),
        (["x indexes/a"], None, "expected NAME=PATH"),
        (["x=a", "x=b"], None, "given twice"),
        (["x=a"], "y", "baseline 'y' is not one of the systems"),
        (["bad/name=a"], None, "system name"),
        ([], None, "at least one --system"),
    ],
)
def test_bad_system_specs_are_user_errors(texts, baseline, message):
    with pytest.raises(LsrError, match=re.escape(message)):
        parse_systems(texts, baseline)


def test_system_paths_per_dataset(tmp_path):
    (tmp_path / "idx-a").mkdir()
    (tmp_path / "b.trec").write_text("1 Q0 d 1 1.0 t\n")
    assert SystemSpec.parse(f"x={tmp_path}/idx-{{dataset}}:dense").locate("a") == ("index", tmp_path / "idx-a")
    assert SystemSpec.parse(f"x={tmp_path}/{{dataset}}.trec").locate("b") == ("run", tmp_path / "b.trec")
    with pytest.raises(LsrError, match="has nothing for dataset 'c'"):
        SystemSpec.parse(f"x={tmp_path}/idx-{{dataset}}").locate("c")
    with pytest.raises(LsrError, match="run file, which has no mode"):
        SystemSpec.parse(f"x={tmp_path}/{{dataset}}.trec:sparse").locate("b")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("q9 Q0 d1 1 1.0 t", "query 'q9' is not a query of this dataset"),
        ("q1 Q0 d9 1 1.0 t", "document 'd9' is not in this dataset's corpus"),
        ("q1 Q0 d1 1 1.0", "expected 6 columns"),
        ("q1 Q0 d1 1 high t", "score 'high' is not a number"),
    ],
)
def test_bad_run_files_are_user_errors(tmp_path, line, message):
    path = tmp_path / "run.trec"
    path.write_text(f"q1 Q0 d2 1 2.0 t\n{line}\n")
    with pytest.raises(LsrError, match=re.escape(f"{path}:2: {message}")):
        read_run(path, known_queries={"q1"}, known_docs={"d1", "d2"})


@pytest.fixture(scope="module")
def report_inputs(tmp_path_factory, small_dataset, small_hybrid_index, small_index):
    """Index systems under {dataset}-named folders, and a run file written by `lsr eval` on another index."""
    root = tmp_path_factory.mktemp("systems")
    shutil.copytree(small_hybrid_index, root / small_dataset.name)
    result = CliRunner().invoke(app, ["eval", str(small_index), str(small_dataset), "-o", str(root / "eval"), "-k", "50"])
    assert result.exit_code == 0, result.output
    (root / "eval" / "run.trec").rename(root / f"{small_dataset.name}.trec")
    return root


def report_command(root: Path, dataset: Path, out: Path, *extra: str) -> list[str]:
    systems = [f"sparse={root}/{{dataset}}:sparse", f"dense={root}/{{dataset}}:dense", f"hybrid={root}/{{dataset}}", f"run={root}/{{dataset}}.trec"]
    return ["report", *(arg for s in systems for arg in ("--system", s)), "--dataset", str(dataset), "-o", str(out), "-k", "100", "--latency-queries", "5", *extra]


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory, report_inputs, small_dataset):
    out = tmp_path_factory.mktemp("reports") / "small"
    result = CliRunner().invoke(app, report_command(report_inputs, small_dataset, out, "--baseline", "run"))
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_report_metrics_equal_ir_measures_on_the_written_runs(report_folder, small_dataset):
    from lsr.datasets import read_qrels

    data = json.loads((report_folder / "report.json").read_text())
    qrels = read_qrels(small_dataset, "test")
    (dataset,) = data["datasets"]
    assert set(dataset["systems"]) == {"sparse", "dense", "hybrid", "run"}
    for name, system in dataset["systems"].items():
        run = list(ir_measures.read_trec_run(str(report_folder / "runs" / small_dataset.name / f"{name}.trec")))
        assert {hit.query_id for hit in run} == set(qrels)  # every judged query has hits: no zero-fill involved
        measures = [ir_measures.parse_measure(m) for m in system["measures"]]
        expected = ir_measures.calc_aggregate(measures, qrels, run)
        assert system["measures"] == pytest.approx({str(m): v for m, v in expected.items()})
        for metric in ir_measures.iter_calc(measures, qrels, run):
            assert system["per_query"][metric.query_id][str(metric.measure)] == pytest.approx(metric.value)


@pytest.mark.slow
def test_report_contents(report_folder, small_dataset):
    markdown = (report_folder / "report.md").read_text()
    for expected in ("run (baseline)", "| sparse |", "| hybrid |", "Significance against run", "FLOPS", "Reproducibility"):
        assert expected in markdown
    data = json.loads((report_folder / "report.json").read_text())
    systems = data["datasets"][0]["systems"]
    assert systems["run"]["efficiency"] is None  # efficiency does not apply to a run file: shown as –
    sparse, dense, hybrid = (systems[n]["efficiency"] for n in ("sparse", "dense", "hybrid"))
    assert sparse["query_terms"] > 0 and sparse["flops"] > 0 and dense["query_terms"] is None
    assert dense["flops"] == 384 and hybrid["flops"] == pytest.approx(sparse["flops"] + 384)
    assert len(sparse["encode_ms"]) == 5 and min(sparse["encode_ms"]) > 0 and min(hybrid["retrieve_ms"]) > 0
    assert sparse["docs_per_second"] > 0  # the fixture's index records its indexing time
    assert set(data["datasets"][0]["significance"]["nDCG@10"]) == {"sparse", "dense", "hybrid"}


@pytest.mark.slow
def test_rerunning_gives_the_same_runs_and_statistics(report_folder, report_inputs, small_dataset, tmp_path):
    again = tmp_path / "again"
    result = CliRunner().invoke(app, report_command(report_inputs, small_dataset, again, "--baseline", "run"))
    assert result.exit_code == 0, result.output
    for run in (report_folder / "runs").rglob("*.trec"):
        assert (again / run.relative_to(report_folder)).read_bytes() == run.read_bytes()
    first, second = (json.loads((folder / "report.json").read_text())["datasets"][0] for folder in (report_folder, again))
    assert first["significance"] == second["significance"]
    assert {n: s["per_query"] for n, s in first["systems"].items()} == {n: s["per_query"] for n, s in second["systems"].items()}


@pytest.mark.slow
def test_report_errors_come_before_any_search(report_inputs, small_dataset, cranfield, tmp_path):
    runner = CliRunner()
    # The index and run file belong to the 120-document subset, not to the full Cranfield corpus.
    result = runner.invoke(app, ["report", "-s", f"x={report_inputs}/{{dataset}}", "-d", str(cranfield), "-o", str(tmp_path / "r")])
    assert isinstance(result.exception, LsrError)
    assert "has nothing for dataset 'cranfield'" in str(result.exception)
    shutil.copytree(report_inputs / small_dataset.name, tmp_path / "cranfield")
    result = runner.invoke(app, ["report", "-s", f"x={tmp_path}/{{dataset}}", "-d", str(cranfield), "-o", str(tmp_path / "r")])
    assert "not from dataset 'cranfield' (corpus checksums differ)" in str(result.exception)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_html_report_is_self_contained_and_renders_with_its_plots(report_folder, chromium, tmp_path):
    page = (report_folder / "report.html").read_text()
    assert not re.search(r"https?://", page)  # nothing to fetch: no CDN, no fonts, no external images
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 3 and all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    from PIL import Image

    png = tmp_path / "report.png"
    subprocess.run([str(REPO / "scripts" / "screenshot-report.sh"), str(report_folder / "report.html"), str(png)], check=True, timeout=120)
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    assert (pixels.min(axis=1) < 200).mean() > 0.01  # not blank: text and tables drawn
    coloured = pixels.max(axis=1) - pixels.min(axis=1) > 60  # text and tables are grey: colour comes from the plots
    assert coloured.sum() > 500


def test_manifests_without_indexing_time_still_open_and_show_a_dash(small_index, tmp_path):
    from lsr.eval.comparison_report import DASH, _efficiency_row
    from lsr.eval.comparison import SystemResult
    from lsr.eval.efficiency import Efficiency
    from lsr.eval.metrics import Scores
    from lsr.indexer import IndexFolder

    old = tmp_path / "old"
    shutil.copytree(small_index, old)
    manifest = json.loads((old / "manifest.json").read_text())
    assert manifest.pop("indexing_seconds") > 0
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert IndexFolder(old).manifest.indexing_seconds is None
    result = SystemResult("x", "index", str(old), "sparse", {}, Scores({}, {}), Efficiency(index_bytes=2**20), {})
    assert _efficiency_row("d", result)[-2:] == ["1.0", DASH]
