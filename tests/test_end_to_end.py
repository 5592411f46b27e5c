"""The README's main job on a real dataset with the real encoder: index, serve over HTTP, evaluate."""

import json
import subprocess
import sys
import time

import httpx
import ir_measures
import pytest
from conftest import free_port

from lsr.datasets import read_evaluation_set
from lsr.indexer import IndexFolder
from lsr.indexer.vectors import brute_force_search

pytestmark = pytest.mark.slow


def lsr(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "lsr", *args], capture_output=True, text=True, timeout=900, **kwargs)


@pytest.fixture(scope="module")
def cranfield_index(tmp_path_factory, cranfield):
    out = tmp_path_factory.mktemp("e2e") / "cranfield"
    result = lsr("index", str(cranfield), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "indexed 1400 documents" in result.stdout
    return out


def test_engine_equals_brute_force_on_every_cranfield_query(cranfield_index, cranfield, splade):
    index = IndexFolder(cranfield_index)
    queries = read_evaluation_set(cranfield, "test").queries
    quantization = index.manifest.quantization
    query_vectors = quantization.quantize(splade.encode_queries(list(queries.values())))
    for got, expected in zip(
        index.engine.search(query_vectors, 100), brute_force_search(index.vectors, query_vectors, 100), strict=True
    ):
        assert got.doc_indices.tolist() == expected.doc_indices.tolist()
        assert got.scores.tolist() == expected.scores.tolist()


def test_served_over_http_by_a_real_server(cranfield_index, splade):
    from lsr.retrieval.search import Searcher

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "lsr", "serve", str(cranfield_index), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "server did not start within 120 s"
                time.sleep(0.5)
        assert health.json()["index"]["doc_count"] == 1400
        query = "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft"
        response = httpx.post(f"{base}/search", json={"query": query, "k": 10}, timeout=30)
        assert response.status_code == 200
        expected = Searcher(IndexFolder(cranfield_index), splade).search(query, 10)
        assert [hit["id"] for hit in response.json()["hits"]] == [hit.id for hit in expected]
        assert httpx.post(f"{base}/search", json={"query": " ", "k": 10}, timeout=30).status_code == 422
        assert httpx.get(f"{base}/docs", timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_eval_writes_run_and_reports_matching_ir_measures(cranfield_index, cranfield, tmp_path):
    result = lsr("eval", str(cranfield_index), str(cranfield), "--split", "test", "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert set(report["measures"]) == {"nDCG@10", "RR@10", "R@100", "R@1000"}
    assert len(report["per_query"]) == 225
    assert report["manifest"]["encoder"]["name"] == "splade-tiny"

    evaluation = read_evaluation_set(cranfield, "test")
    run = list(ir_measures.read_trec_run(str(tmp_path / "report" / "run.trec")))
    assert len({r.query_id for r in run}) == 225  # every query retrieved something
    direct = ir_measures.calc_aggregate([ir_measures.nDCG @ 10, ir_measures.R @ 1000], evaluation.qrels, run)
    assert report["measures"]["nDCG@10"] == pytest.approx(direct[ir_measures.nDCG @ 10])
    assert report["measures"]["R@1000"] == pytest.approx(direct[ir_measures.R @ 1000])
    # Sanity floor: unstemmed BM25 scores 0.346 on Cranfield (its SOURCE.md); SPLADE must not fall far below.
    assert report["measures"]["nDCG@10"] > 0.30
    assert "| nDCG@10 |" in (tmp_path / "report" / "report.md").read_text()
    assert f"{report['measures']['nDCG@10']:.4f}" in result.stdout
