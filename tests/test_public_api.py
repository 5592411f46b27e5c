"""`import lsr`: read a dataset, build an index, open a searcher, search, evaluate — on real data, real models."""

from __future__ import annotations

import subprocess
import sys

import lsr


def test_import_lsr_stays_light():
    """The public names load on first use, so `import lsr` (and the command's start) pulls in no torch."""
    code = "import sys, lsr; assert 'torch' not in sys.modules; lsr.read_corpus; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_name_resolves():
    assert sorted(lsr.__all__) == sorted(["__version__", *lsr._EXPORTS])
    assert all(getattr(lsr, name) is not None for name in lsr.__all__)


def test_the_whole_loop_through_the_public_api(small_dataset, tmp_path):
    corpus = lsr.read_corpus(small_dataset)
    manifest = lsr.index_corpus(corpus, tmp_path / "index", chunk_size=60, progress=False)
    assert manifest.doc_count == len(corpus) == 120
    searcher = lsr.Searcher.open(tmp_path / "index")
    hits = searcher.search(corpus.documents[7].title, k=5)
    assert hits[0].id == corpus.documents[7].id and [hit.rank for hit in hits] == [1, 2, 3, 4, 5]
    result = lsr.evaluate(searcher, lsr.read_evaluation_set(small_dataset, "test"), measures=["nDCG@10", "R@100"])
    assert set(result.report.scores.aggregate) == {"nDCG@10", "R@100"}
    assert 0 < result.report.scores.aggregate["nDCG@10"] <= 1
    assert result.report.details["manifest"]["doc_count"] == 120
