"""How much do integer impacts cost in effectiveness? `lsr eval`'s number against exact float scoring.

    python bench/quantization.py --dataset ../shared/data/scifact --index indexes/scifact

The quantized figure comes from the index through the same code path as `lsr eval`; the float figure
re-encodes the corpus and queries and ranks by the exact float dot product over all documents.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lsr.datasets import read_corpus, read_evaluation_set  # noqa: E402
from lsr.eval import run_queries, score_run  # noqa: E402
from lsr.indexer import IndexFolder  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402

MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")


def float_run(searcher: Searcher, dataset: Path, queries: dict[str, str], k: int) -> dict[str, dict[str, float]]:
    corpus = read_corpus(dataset)
    doc_ids = [doc.id for doc in corpus.documents]
    documents = searcher.encoder.encode_documents([doc.contents for doc in corpus.documents]).astype(np.float64)
    query_vectors = searcher.weighted_queries(list(queries.values())).astype(np.float64)
    scores = (query_vectors @ documents.T).toarray()
    run = {}
    for row, query_id in enumerate(queries):
        order = np.argsort(-scores[row], kind="stable")
        hits = [(doc_ids[i], float(scores[row, i])) for i in order[: k + 1] if scores[row, i] > 0]
        run[query_id] = dict([(doc, score) for doc, score in hits if doc != query_id][:k])  # BEIR: drop identical ids
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    evaluation = read_evaluation_set(args.dataset, args.split)
    searcher = Searcher.open(args.index)
    quantized = score_run(evaluation.qrels, run_queries(searcher, evaluation.queries, k=1000), MEASURES).aggregate
    exact = score_run(evaluation.qrels, float_run(searcher, args.dataset, evaluation.queries, 1000), MEASURES).aggregate
    print(
        f"{args.dataset.name} {args.split}: {len(evaluation.queries)} queries, scale "
        f"{IndexFolder(args.index).manifest.quantization.scale}"
    )
    print(f"{'measure':10}{'quantized':>12}{'float':>12}{'diff':>10}")
    for name in MEASURES:
        print(f"{name:10}{quantized[name]:12.4f}{exact[name]:12.4f}{quantized[name] - exact[name]:+10.4f}")


if __name__ == "__main__":
    main()
