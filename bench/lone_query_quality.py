"""nDCG@10 of bf16 sparse search with the test queries encoded three ways, on indexes built at bf16:

    python bench/lone_query_quality.py --indexes indexes/bf16 cranfield cisi nfcorpus scifact

(a) in padded batches through the torch bf16 transformer, as `lsr eval` encoded them before ONNX Runtime; (b) one
at a time through the torch bf16 transformer (a lone query's path before ONNX Runtime); (c) as lsr encodes every
bf16 query now: one at a time, the fp32 transformer on ONNX Runtime, the decoder at bf16.
Each index is ``<indexes>/<dataset>``, built with
``lsr index ../shared/data/<dataset> --out <indexes>/<dataset> --precision bf16``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import scipy.sparse as sp
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lsr  # noqa: E402


def ndcg10(searcher: lsr.Searcher, evaluation) -> float:
    result = lsr.evaluate(searcher, evaluation, measures=["nDCG@10"], mode="sparse", progress=False)
    return float(next(iter(result.report.scores.aggregate.values())))


def one_at_a_time(encode):
    return lambda queries: sp.vstack([encode([query]) for query in queries], format="csr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indexes", type=Path, default=Path("indexes/bf16"))
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("datasets", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| dataset | batched, torch bf16 transformer | lone, torch bf16 transformer | lone, ONNX Runtime fp32 transformer |")
    print("|---|---:|---:|---:|")
    for dataset in args.datasets:
        searcher = lsr.Searcher.open(args.indexes / dataset)
        evaluation = lsr.read_evaluation_set(args.data / dataset, "test")
        encoder = searcher.encoder
        encode, onnx_body = encoder.encode_queries, encoder._query_body
        encoder._query_body = None  # queries then take the documents' path: padded batches of short texts
        scores = [ndcg10(searcher, evaluation)]
        encoder.encode_queries = one_at_a_time(encode)
        scores.append(ndcg10(searcher, evaluation))
        encoder.encode_queries, encoder._query_body = encode, onnx_body
        scores.append(ndcg10(searcher, evaluation))
        print(f"| {dataset} | " + " | ".join(f"{score:.4f}" for score in scores) + " |", flush=True)


if __name__ == "__main__":
    main()
