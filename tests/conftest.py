"""Shared fixtures: the real splade-tiny and small real corpora cut from ../shared/data (never mocks)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests must never reach a model hub

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not (path / "queries.jsonl.gz").is_file():
        pytest.fail(f"shared dataset {path} is missing: the tests expect ../shared/data beside the repository")
    return path


def write_beir_subset(source: Path, target: Path, doc_count: int) -> Path:
    """A BEIR folder with the first ``doc_count`` documents of ``source``, its queries, and qrels on those docs."""
    target.mkdir(parents=True)
    with gzip.open(source / "corpus.jsonl.gz", "rt") as handle:
        docs = [json.loads(line) for _, line in zip(range(doc_count), handle)]
    (target / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    (target / "queries.jsonl.gz").write_bytes((source / "queries.jsonl.gz").read_bytes())
    kept = {doc["_id"] for doc in docs}
    (target / "qrels").mkdir()
    lines = (source / "qrels" / "test.tsv").read_text().splitlines()
    rows = [line for line in lines[1:] if line.split("\t")[1] in kept]
    (target / "qrels" / "test.tsv").write_text("\n".join([lines[0], *rows]) + "\n")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index: Path, port: int, env: dict[str, str], timeout_s: float) -> subprocess.Popen:
    """A real `lsr serve` of ``index`` on loopback, returned once /ready answers 200."""
    command = [sys.executable, "-m", "lsr", "serve", str(index), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    pytest.fail(f"server did not become ready in {timeout_s:.0f} s")


def system_program(program: str, debian_package: str) -> str:
    """A program the tests drive (the browser, docker-compose), installed from Debian's packages when missing, so
    that the README's one test command sets up what it needs, as CI does."""
    found = shutil.which(program)
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", debian_package]):
            subprocess.run(command, check=False, capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which(program)
    if found is None:
        pytest.fail(f"{program} is needed and could not be installed here: install the Debian package {debian_package}")
    return found


@pytest.fixture(scope="session")
def chromium() -> str:
    return system_program("chromium", "chromium")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return system_program("docker-compose", "docker-compose")


@pytest.fixture(scope="session")
def splade():
    from lsr.retrieval.encoders import SpladeEncoder

    return SpladeEncoder("splade-tiny")


@pytest.fixture(scope="session")
def cranfield() -> Path:
    return shared_dataset("cranfield")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, cranfield) -> Path:
    """120 real Cranfield documents: big enough to rank, small enough to encode in seconds."""
    return write_beir_subset(cranfield, tmp_path_factory.mktemp("data") / "cranfield-120", 120)


@pytest.fixture(scope="session")
def small_index(tmp_path_factory, small_dataset, splade) -> Path:
    from lsr.datasets import read_corpus
    from lsr.indexer import build_index

    out = tmp_path_factory.mktemp("indexes") / "cranfield-120"
    build_index(read_corpus(small_dataset), splade, out, chunk_size=50, progress=False)
    return out


@pytest.fixture(scope="session")
def small_searcher(small_index, splade):
    from lsr.indexer import IndexFolder
    from lsr.retrieval.search import Searcher

    return Searcher(IndexFolder(small_index), splade)


@pytest.fixture(scope="session")
def minilm():
    from lsr.retrieval.encoders import load_dense_encoder

    return load_dense_encoder("all-minilm-l6-v2")


@pytest.fixture(scope="session")
def small_hybrid_index(tmp_path_factory, small_dataset, splade, minilm) -> Path:
    from lsr.datasets import read_corpus
    from lsr.indexer import build_index

    out = tmp_path_factory.mktemp("indexes") / "cranfield-120-hybrid"
    build_index(read_corpus(small_dataset), splade, out, dense_encoder=minilm, chunk_size=50, progress=False)
    return out


@pytest.fixture(scope="session")
def hybrid_searcher(small_hybrid_index, splade, minilm):
    from lsr.indexer import IndexFolder
    from lsr.retrieval.search import Searcher

    return Searcher(IndexFolder(small_hybrid_index), splade, minilm)


def reference_fuse(rankings: dict, fusion, k: int, documents: int) -> list[tuple[int, float]]:
    """The textbook definitions over any number of signals, written out with dicts. Each ranking is its signal's top
    ``fusion.depth``; a term-matching signal (sparse, bm25) that returned fewer has its top filled with the documents it
    did not return, which score 0."""
    signals = list(rankings)
    named = dict(fusion.weights) if fusion.weights else dict.fromkeys(signals, 1.0)
    total = sum(named.get(signal, 0.0) for signal in signals)
    fused = {row: 0.0 for ranking in rankings.values() for row in ranking.doc_indices.tolist()}
    for signal, ranking in rankings.items():
        weight = named.get(signal, 0.0) / total
        rows, scores = ranking.doc_indices.tolist(), ranking.scores.astype(float).tolist()
        assert len(rows) <= fusion.depth
        if not rows:
            continue
        if fusion.method == "rrf":
            values, missing = {row: 1 / (fusion.rrf_k + rank) for rank, row in enumerate(rows, start=1)}, 0.0
        else:
            top = scores + [0.0] * (max(0, min(fusion.depth, documents) - len(rows)) if signal in ("sparse", "bm25") else 0)
            if fusion.normalization == "minmax":
                low, high = min(top), max(top)
                normalized = lambda s, low=low, high=high: (s - low) / (high - low) if high > low else 1.0  # noqa: E731
            else:
                mean = sum(top) / len(top)
                std = (sum((s - mean) ** 2 for s in top) / len(top)) ** 0.5
                normalized = lambda s, mean=mean, std=std: (s - mean) / std if std > 0 else 0.0  # noqa: E731
            values = {row: normalized(s) for row, s in zip(rows, scores, strict=True)}
            missing = normalized(min(top))
        for row in fused:
            fused[row] += weight * values.get(row, missing)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
